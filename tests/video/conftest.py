"""Tiny synthetic videos whose frames say their own index.

Frame ``i`` (48 x 64 RGB): a diagonal gradient shifted by ``7 * i`` (so that consecutive frames
differ and P/B-frames carry real motion), with rows 0..11 holding ``i`` in binary: 8 blocks of
8 px, block ``b`` white when bit ``b`` of ``i`` is set, black otherwise. H.264 at crf 18 keeps
each block's mean far from 128, so :func:`frame_ids` recovers ``i`` from a decoded frame.
Videos are 40 frames at 30 fps, H.264 with B-frames and a keyframe every 8 frames (so random
access really seeks).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vidpose.video.writer import VideoWriter

N_FRAMES = 40
HEIGHT, WIDTH = 48, 64
FPS = 30
GOP = 8


def make_frames(n: int = N_FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """(n, height, width, 3) uint8 frames, frame i encoding i (see module docstring)."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        grey = (xx * 4 + yy * 2 + i * 7) % 200
        frames[i] = (grey[..., None] + np.array([0, 20, 40])).astype(np.uint8)
        for b in range(8):
            frames[i, :12, b * 8 : (b + 1) * 8] = 255 if (i >> b) & 1 else 0
    return frames


def frame_ids(frames: np.ndarray) -> np.ndarray:
    """(T,) index encoded in each of (T, H, W, 3) frames."""
    blocks = frames[:, :12, :64].reshape(len(frames), 12, 8, 8, 3).mean(axis=(1, 3, 4))
    bits = blocks > 128
    return (bits * (1 << np.arange(8))).sum(axis=1)


@pytest.fixture(scope="session")
def synth_frames() -> np.ndarray:
    return make_frames()


@pytest.fixture(scope="session")
def write_video(tmp_path_factory, synth_frames) -> Callable[..., Path]:
    """``write_video(name, **writer_kwargs) -> path`` of the 40-frame video, in a fresh dir."""

    def write(name: str, frames: np.ndarray | None = None, **kwargs) -> Path:
        frames = synth_frames if frames is None else frames
        path = tmp_path_factory.mktemp("videos") / name
        kwargs.setdefault("gop", GOP)
        with VideoWriter(path, FPS, frames.shape[2], frames.shape[1], **kwargs) as w:
            w.write(frames)
        return path

    return write


@pytest.fixture(scope="session")
def mp4_video(write_video) -> Path:
    return write_video("synth.mp4")


@pytest.fixture(scope="session")
def mkv_video(write_video) -> Path:
    return write_video("synth.mkv")


@pytest.fixture(scope="session")
def ids() -> Callable[[np.ndarray], np.ndarray]:
    """The :func:`frame_ids` decoder, for tests."""
    return frame_ids
