"""One colour per keypoint, the same in every vidpose figure and labeled video.

Keypoint ``i`` of ``K`` always gets the same colour: matplotlib's ``tab10`` for K <= 10 (the
most distinguishable set), else K evenly spaced samples of ``turbo`` (trimmed at both ends,
whose near-black and dark-red are hard to see on video).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps


def keypoint_colors(keypoints: int | Sequence[str]) -> np.ndarray:
    """(K, 3) float RGB in [0, 1] for K keypoints (a count or the list of names)."""
    k = keypoints if isinstance(keypoints, int) else len(keypoints)
    if k <= 10:
        return np.asarray(colormaps["tab10"].colors[:k], dtype=float).reshape(k, 3)
    return np.asarray(colormaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3], dtype=float)


def keypoint_colors_u8(keypoints: int | Sequence[str]) -> np.ndarray:
    """(K, 3) uint8 RGB, for drawing on video frames."""
    return np.round(keypoint_colors(keypoints) * 255).astype(np.uint8)
