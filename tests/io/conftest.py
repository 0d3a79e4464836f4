"""Tiny synthetic pose tables with known contents for the vidpose.io tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vidpose.io import Poses

MIRROR_MOUSE = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mirror-mouse-example"
)

# Awkward but ordinary floats: a real label value, repr-tricky decimals, tiny and huge magnitudes.
AWKWARD = [101.900392541708, 0.1, 1 / 3, 1e-300, 1.7976931348623157e308, 123456789.12345679, -5.0]


def labels(n: int = 4, k: int = 3) -> Poses:
    """n labelled images of k keypoints ("kp0".."kp{k-1}") under labeled-data/.

    coords[i, j] = (10 i + j + AWKWARD[(i + j) % 7], 100 + i); keypoint 1 of frame 1 missing.
    """
    coords = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            coords[i, j] = (10 * i + j + AWKWARD[(i + j) % len(AWKWARD)], 100 + i)
    if n > 1 and k > 1:
        coords[1, 1] = np.nan
    return Poses(
        coords=coords,
        keypoints=[f"kp{j}" for j in range(k)],
        frames=[f"labeled-data/img{i:03d}.png" for i in range(n)],
        scorer="tester",
    )


def predictions(n: int = 5, k: int = 2, extras: bool = False) -> Poses:
    """Predictions for frames 0..n-1 of a video; seeded random coords, frame 2 keypoint 0 NaN.

    With ``extras``: keypoint columns "ens_var_x"/"ens_var_y" and frame columns "split" (str),
    "train_step" (int) and "in_train" (bool).
    """
    rng = np.random.default_rng(7)
    coords = rng.uniform(0, 640, (n, k, 2))
    likelihood = rng.uniform(0, 1, (n, k))
    coords[2 % n, 0] = np.nan
    likelihood[2 % n, 0] = np.nan
    keypoint_columns: dict[str, np.ndarray] = {}
    frame_columns: dict[str, np.ndarray] = {}
    if extras:
        keypoint_columns = {"ens_var_x": rng.uniform(0, 5, (n, k)), "ens_var_y": rng.random((n, k))}
        frame_columns = {
            "split": np.array([("train", "val", "test")[i % 3] for i in range(n)], dtype=object),
            "train_step": np.arange(n, dtype=np.int64) * 100,
            "in_train": np.arange(n) % 2 == 0,
        }
    return Poses(
        coords=coords,
        keypoints=["nose", "tail base", "paw"][:k],
        frames=np.arange(n),
        likelihood=likelihood,
        scorer="model_v1",
        keypoint_columns=keypoint_columns,
        frame_columns=frame_columns,
    )


@pytest.fixture
def labels_table() -> Poses:
    return labels()


@pytest.fixture
def predictions_table() -> Poses:
    return predictions()


@pytest.fixture
def predictions_with_extras() -> Poses:
    return predictions(extras=True)


@pytest.fixture
def make_labels() -> Callable[..., Poses]:
    return labels


@pytest.fixture
def mirror_mouse() -> Path:
    """The real mirror-mouse example project (skips the test when it is absent)."""
    if not (MIRROR_MOUSE / "CollectedData.csv").is_file():
        pytest.skip(f"mirror-mouse example not found at {MIRROR_MOUSE}")
    return MIRROR_MOUSE


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a text file (exact bytes, no newline translation) under tmp_path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        return path

    return write
