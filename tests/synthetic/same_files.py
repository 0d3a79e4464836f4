"""Comparing two synthetic projects file by file (shared by the determinism tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vidpose.video.pyav_reader import PyAVReader


def _pixels(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return np.asarray(Image.open(path))
    with PyAVReader(path) as reader:
        return np.concatenate([b.frames for b in reader.iter_batches(64)])


def assert_same(root_a: Path, root_b: Path, name: str, a: bytes, b: bytes) -> None:
    """File ``name`` of two projects made with the same seed is the same.

    Byte for byte, except that a video (and the labeled PNGs decoded from it) was seen to
    differ in rare runs on a loaded 2-core machine, with x264 on one thread (cause not found
    yet): then its decoded pixels must still agree to within 1 grey level on average.
    """
    if a == b:
        return
    assert name.endswith((".mp4", ".png")), f"{name} differs"
    pa, pb = _pixels(root_a / name), _pixels(root_b / name)
    assert pa.shape == pb.shape, name
    assert np.abs(pa.astype(np.int16) - pb.astype(np.int16)).mean() < 1.0, name
