"""Labeled frames, decoded once and cached at the model's input size, with deterministic splits.

The cache is a uint8 tensor; the training loop moves it to the training device once and gathers
batches from it there, so a training step costs no host work beyond a tensor of indices.

For a temporal-context model (``context_frames`` W > 1) each labeled image also brings its
neighbours t-W//2..t+W//2, read from the PNGs beside it in DeepLabCut naming (``img0042.png``
has ``img0040.png``..``img0044.png``, same digit width); a missing neighbour, and every one
further out on that side, repeats the nearer frame (edge replication, as at a video's ends),
and one warning says how many labels lacked neighbours.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidpose.data.augment import orig_to_input
from vidpose.errors import ProjectError
from vidpose.io.poses import Poses

SPLITS = ("train", "val", "test")


@dataclass
class LabeledData:
    """Every labeled frame of a project at model input size.

    Attributes:
        images: (N, 3, H, W) uint8 RGB at the model input size.
        keypoints: (N, K, 2) float32 input-pixel coordinates; 0 where missing.
        visible: (N, K) bool.
        orig_hw: (N, 2) int64 original (height, width) of each image.
        split: (N,) str, one of "train" | "val" | "test".
        labels: the labels table the rows come from.
        windows: (N, W, 3, H, W_img) uint8 each frame with its W - 1 neighbours (frame t at
            ``W // 2``), or None when no context model asked for them; ``images`` is then the
            view ``windows[:, W // 2]``.
    """

    images: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    orig_hw: torch.Tensor
    split: np.ndarray
    labels: Poses
    windows: torch.Tensor | None = None

    @property
    def context_frames(self) -> int:
        """W, the frames per sample (1 without neighbours)."""
        return 1 if self.windows is None else int(self.windows.shape[1])

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def make_splits(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Deterministic train/val/test assignment of n rows: (n,) array of split names.

    Counts are rounded (n=90 with 0.1/0.1 gives 72/9/9); at least one training row is kept.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if n_val + n_test >= n:
        raise ProjectError(
            f"{n} labeled frames cannot be split with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: no training frames would be left"
        )
    split = np.full(n, "train", dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val : n_val + n_test]] = "test"
    return split


def read_image_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grey and RGBA images are converted."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def resize_uint8(images: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 3, H0, W0) uint8 -> (N, 3, H, W) uint8, bilinear with antialiasing."""
    if tuple(images.shape[2:]) == tuple(hw):
        return images
    out = torch.nn.functional.interpolate(
        images.float(), size=hw, mode="bilinear", align_corners=False, antialias=True
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


_FRAME_NAME = re.compile(r"^(?P<stem>.*?)(?P<digits>\d+)(?P<ext>\.png)$", re.IGNORECASE)


def neighbour_paths(path: Path, context_frames: int) -> list[Path]:
    """The W = ``context_frames`` paths of ``path``'s window, ``path`` itself in the middle.

    Neighbour ``img<digits±k>.png`` (same digit width) is used when it exists; otherwise it,
    and every neighbour further out on the same side, is replaced by the nearer frame (the
    centre frame itself when the adjacent one is missing). A name without a trailing frame
    number gets the centre frame everywhere.
    """
    half = context_frames // 2
    m = _FRAME_NAME.match(path.name)
    out = [path] * context_frames
    if m is None:
        return out
    stem, digits, ext = m["stem"], m["digits"], m["ext"]
    index, width = int(digits), len(digits)
    for sign in (-1, 1):
        prev = path
        for k in range(1, half + 1):
            j = index + sign * k
            cand = path.with_name(f"{stem}{j:0{width}d}{ext}") if j >= 0 else None
            if cand is not None and cand.exists() and cand != prev:
                prev = cand
            out[half + sign * k] = prev
    return out


def _load_rgb_resized(path: Path, input_hw: tuple[int, int]) -> tuple[torch.Tensor, tuple]:
    rgb = read_image_rgb(path)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    return resize_uint8(t, input_hw)[0], rgb.shape[:2]


def load_labeled(
    labels: Poses,
    image_paths: list[Path],
    input_hw: tuple[int, int],
    split: np.ndarray,
    context_frames: int = 1,
) -> LabeledData:
    """Decode every labeled image once, resize to ``input_hw`` and convert keypoints.

    Images of different sizes are allowed (each keeps its own scale factor). With
    ``context_frames`` W > 1 (odd), each image's W - 1 neighbours are decoded too (see
    :func:`neighbour_paths`) into ``windows``; a UserWarning says once how many labels lacked
    some neighbour and were edge-replicated.
    """
    n = labels.n_frames
    w = context_frames
    if w < 1 or w % 2 == 0:
        raise ValueError(f"context_frames must be odd and >= 1, got {w}")
    windows = torch.empty((n, w, 3, *input_hw), dtype=torch.uint8)
    orig_hw = np.zeros((n, 2), dtype=np.int64)
    lacking: list[str] = []
    for i, path in enumerate(image_paths):
        paths = neighbour_paths(Path(path), w) if w > 1 else [Path(path)]
        windows[i, w // 2], orig_hw[i] = _load_rgb_resized(Path(path), input_hw)
        for k, p in enumerate(paths):
            if k != w // 2:
                if p == Path(path):
                    windows[i, k] = windows[i, w // 2]
                else:
                    windows[i, k] = _load_rgb_resized(p, input_hw)[0]
        if w > 1 and len(set(paths)) < w:
            lacking.append(Path(path).name)
    if lacking:
        shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        warnings.warn(
            f"{len(lacking)} of {n} labeled frame(s) lack some of their {w - 1} neighbouring "
            f"frames (img<number>.png beside them); the nearest available frame was repeated "
            f"(edge replication): {shown}",
            stacklevel=2,
        )
    images = windows[:, w // 2]
    coords = orig_to_input(labels.coords, orig_hw[:, None, :], input_hw)
    visible = ~np.isnan(coords).any(axis=2)
    coords = np.where(visible[..., None], coords, 0.0)
    return LabeledData(
        images=images,
        keypoints=torch.from_numpy(coords.astype(np.float32)),
        visible=torch.from_numpy(visible),
        orig_hw=torch.from_numpy(orig_hw),
        split=np.asarray(split, dtype=object),
        labels=labels,
        windows=windows if w > 1 else None,
    )
