"""The one record for keypoint tables: labels, predictions, ground truth, smoothed output.

Every reader in :mod:`vidpose.io` returns a :class:`Poses`; every writer takes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


COORD_DECIMALS = 4
"""Predicted and smoothed tables are rounded to 1e-4 px (likelihood to 1e-5) before they are
written: far below any model's precision, and it makes writing a predictions CSV ~7x faster
than printing every float in full (and the file about half as large)."""


@dataclass(eq=False)
class Poses:
    """Keypoint coordinates for N frames and K keypoints.

    Attributes:
        coords: (N, K, 2) float64, pixel (x, y) in the original frame; NaN where missing.
        likelihood: (N, K) float64 in [0, 1]; all NaN for labels (which carry none).
        keypoints: K keypoint (body part) names, unique.
        frames: (N,) frame identifiers: image paths relative to the project (str) for labels,
            or frame indices (int64) for video predictions.
        scorer: who made the table (a labeller's or a model's name); the first header row.
        is_labels: True for manual labels (written as x, y only); False for predictions
            (written as x, y, likelihood). Defaults to True when no likelihood is given.
        keypoint_columns: extra per-keypoint quantities, name -> (N, K) float64 array, e.g.
            ``{"ens_var_x": ...}``; written as extra coords columns after x, y[, likelihood].
        frame_columns: extra per-frame columns, name -> (N,) array, e.g. ``{"split": ...}``;
            written as extra columns after all keypoints.
        fps: frames per second of the source video, when known (predictions set it; formats
            with a time axis, NWB and movement, use it).
        video: the source video's path, when known.
        skeleton: edges between keypoints as (name, name) pairs, when known (drawing, NWB).

    ``fps``, ``video`` and ``skeleton`` describe where the table came from; tables in formats
    that cannot store them (CSV, DeepLabCut .h5) read back without them, and :meth:`equals`
    does not compare them.
    """

    coords: np.ndarray
    keypoints: list[str]
    frames: np.ndarray
    likelihood: np.ndarray | None = None
    scorer: str = "vidpose"
    is_labels: bool | None = None
    keypoint_columns: dict[str, np.ndarray] = field(default_factory=dict)
    frame_columns: dict[str, np.ndarray] = field(default_factory=dict)
    fps: float | None = None
    video: str | None = None
    skeleton: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.float64)
        self.keypoints = [str(k) for k in self.keypoints]
        if self.coords.ndim != 3 or self.coords.shape[2] != 2:
            raise ValueError(f"coords must be (N, K, 2), got {self.coords.shape}")
        n, k = self.coords.shape[:2]
        if len(self.keypoints) != k:
            raise ValueError(f"{len(self.keypoints)} keypoint names for {k} keypoints in coords")
        if len(set(self.keypoints)) != k:
            dup = sorted({x for x in self.keypoints if self.keypoints.count(x) > 1})
            raise ValueError(f"keypoint names must be unique; repeated: {dup}")
        if self.is_labels is None:
            self.is_labels = self.likelihood is None
        if self.likelihood is None:
            self.likelihood = np.full((n, k), np.nan)
        self.likelihood = np.asarray(self.likelihood, dtype=np.float64)
        if self.likelihood.shape != (n, k):
            raise ValueError(f"likelihood must be ({n}, {k}), got {self.likelihood.shape}")
        self.frames = _as_frames(self.frames)
        if self.frames.shape != (n,):
            raise ValueError(f"frames must have {n} entries, got {self.frames.shape}")
        for name, arr in list(self.keypoint_columns.items()):
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != (n, k):
                raise ValueError(f"keypoint column {name!r} must be ({n}, {k}), got {arr.shape}")
            self.keypoint_columns[name] = arr
        for name, arr in list(self.frame_columns.items()):
            arr = np.asarray(arr)
            if arr.shape != (n,):
                raise ValueError(f"frame column {name!r} must be ({n},), got {arr.shape}")
            self.frame_columns[name] = arr
        if self.fps is not None:
            self.fps = float(self.fps)
            if not np.isfinite(self.fps) or self.fps <= 0:
                raise ValueError(f"fps must be a positive number, got {self.fps}")
        if self.video is not None:
            self.video = str(self.video)
        if self.skeleton is not None:
            edges = [(str(a), str(b)) for a, b in self.skeleton]
            unknown = sorted({n for e in edges for n in e} - set(self.keypoints))
            if unknown:
                raise ValueError(f"skeleton names unknown keypoints {unknown}")
            self.skeleton = edges

    @property
    def n_frames(self) -> int:
        return self.coords.shape[0]

    @property
    def n_keypoints(self) -> int:
        return self.coords.shape[1]

    @property
    def visible(self) -> np.ndarray:
        """(N, K) bool: both coordinates present."""
        return ~np.isnan(self.coords).any(axis=2)

    def keypoint_index(self, names: str | Sequence[str]) -> list[int]:
        """Indices of keypoints given by name; raises KeyError naming the unknown ones."""
        names = [names] if isinstance(names, str) else list(names)
        lookup = {k: i for i, k in enumerate(self.keypoints)}
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise KeyError(f"unknown keypoints {unknown}; known: {self.keypoints}")
        return [lookup[n] for n in names]

    def select_frames(self, index: np.ndarray | Sequence[int] | slice) -> Poses:
        """A new Poses with the given rows (integer indices, bool mask or slice)."""
        idx = np.arange(self.n_frames)[index]
        return Poses(
            coords=self.coords[idx],
            keypoints=list(self.keypoints),
            frames=self.frames[idx],
            likelihood=self.likelihood[idx],
            scorer=self.scorer,
            is_labels=self.is_labels,
            keypoint_columns={k: v[idx] for k, v in self.keypoint_columns.items()},
            frame_columns={k: v[idx] for k, v in self.frame_columns.items()},
            fps=self.fps,
            video=self.video,
            skeleton=self.skeleton,
        )

    def rounded(self) -> Poses:
        """A copy with coordinates and extra keypoint columns rounded to ``COORD_DECIMALS``
        and likelihoods to one more decimal (what prediction writes)."""
        out = self.select_frames(slice(None))
        out.coords = np.round(out.coords, COORD_DECIMALS)
        out.likelihood = np.round(out.likelihood, COORD_DECIMALS + 1)
        out.keypoint_columns = {
            k: np.round(v, COORD_DECIMALS) for k, v in out.keypoint_columns.items()
        }
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """The table as a pandas DataFrame in DeepLabCut's layout: columns (scorer, bodyparts,
        coords) with x, y[, likelihood] and the extra keypoint columns, then each per-frame
        column as ``(name, "", "")``; the index holds the frame numbers or image paths."""
        from vidpose.io.dlc_h5 import poses_to_dataframe

        return poses_to_dataframe(self)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        fps: float | None = None,
        video: str | None = None,
        skeleton: list[tuple[str, str]] | None = None,
    ) -> Poses:
        """The inverse of :meth:`to_dataframe` (any DeepLabCut-layout DataFrame), with the
        descriptive fields the DataFrame cannot hold.

        Raises:
            LabelsError: the DataFrame is not in that layout (naming the row and column).
        """
        from vidpose.io.dlc_h5 import poses_from_dataframe

        poses = poses_from_dataframe(df)
        return replace(poses, fps=fps, video=video, skeleton=skeleton)

    def equals(self, other: Poses) -> bool:
        """Exact equality of every array (NaN equal to NaN), names and metadata."""
        if not isinstance(other, Poses):
            return False
        same_meta = (
            self.keypoints == other.keypoints
            and self.scorer == other.scorer
            and self.is_labels == other.is_labels
            and self.keypoint_columns.keys() == other.keypoint_columns.keys()
            and self.frame_columns.keys() == other.frame_columns.keys()
            and self.frames.dtype.kind == other.frames.dtype.kind
        )
        if not same_meta:
            return False
        pairs = [(self.coords, other.coords), (self.likelihood, other.likelihood)]
        pairs += [(v, other.keypoint_columns[k]) for k, v in self.keypoint_columns.items()]
        if not all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in pairs):
            return False
        if not np.array_equal(self.frames, other.frames):
            return False
        return all(_array_equal(v, other.frame_columns[k]) for k, v in self.frame_columns.items())

    def __repr__(self) -> str:
        kind = "labels" if self.is_labels else "predictions"
        return (
            f"Poses({kind}, {self.n_frames} frames x {self.n_keypoints} keypoints, "
            f"scorer={self.scorer!r})"
        )


def _as_frames(frames: np.ndarray | Sequence) -> np.ndarray:
    """Frame identifiers as int64 indices when all are integers, else as str paths."""
    arr = np.asarray(frames)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == arr // 1):
        return arr.astype(np.int64)
    return (
        np.array([str(f) for f in arr.tolist()], dtype=object) if arr.size else arr.astype(object)
    )


def _array_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality; NaN equals NaN for float arrays."""
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)
