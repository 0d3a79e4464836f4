"""Labeled frames, decoded once and cached at the model's input size, with deterministic splits.

The cache is a uint8 tensor; the training loop moves it to the training device once and gathers
batches from it there, so a training step costs no host work beyond a tensor of indices.
"""

from __future__ import annotations

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
    """

    images: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    orig_hw: torch.Tensor
    split: np.ndarray
    labels: Poses

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


def load_labeled(
    labels: Poses,
    image_paths: list[Path],
    input_hw: tuple[int, int],
    split: np.ndarray,
) -> LabeledData:
    """Decode every labeled image once, resize to ``input_hw`` and convert keypoints.

    Images of different sizes are allowed (each keeps its own scale factor).
    """
    n = labels.n_frames
    images = torch.empty((n, 3, *input_hw), dtype=torch.uint8)
    orig_hw = np.zeros((n, 2), dtype=np.int64)
    for i, path in enumerate(image_paths):
        rgb = read_image_rgb(path)
        orig_hw[i] = rgb.shape[:2]
        t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
        images[i] = resize_uint8(t, input_hw)[0]
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
    )
