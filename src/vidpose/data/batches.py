"""Typed batches that flow from the data layer into training: labeled frames and unlabeled clips.

Coordinates are model-input pixels with pixel centres at integers: pixel ``i`` covers
``[i - 0.5, i + 0.5]``, so the centre of pixel (x=3, y=5) is (3.0, 5.0). ``orig_hw`` keeps the
original frame size so that predictions can be mapped back to original-frame pixels with
:func:`vidpose.data.augment.input_to_orig`.

Missing keypoints are marked by ``visible == False`` and their coordinates are **zero**, never
NaN: a NaN multiplied by a zero mask is still NaN, so NaN-free tensors keep every loss finite.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class LabeledBatch:
    """B labeled frames at the model input size.

    Attributes:
        images: (B, 3, H, W) float32 RGB in [0, 1].
        keypoints: (B, K, 2) float32 (x, y) in input pixels; (0, 0) where not visible.
        visible: (B, K) bool; False for keypoints that are unlabeled or outside the frame.
        frame_index: (B,) int64 rows into the labels table the frames come from.
        orig_hw: (B, 2) int64 original (height, width) of each frame, before resizing.
        windows: (B, W, 3, H, W_img) float32 each frame with its W - 1 neighbours (the frame
            at ``W // 2``, so ``images`` is ``windows[:, W // 2]``), for networks that look
            at several frames; None when only the frames themselves were loaded.
    """

    images: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    frame_index: torch.Tensor
    orig_hw: torch.Tensor
    windows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # Shape checks only: reading values would force a device sync on every step.
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(self.images.shape)}")
        b = self.images.shape[0]
        if self.keypoints.ndim != 3 or self.keypoints.shape[0] != b or self.keypoints.shape[2] != 2:
            raise ValueError(f"keypoints must be ({b}, K, 2), got {tuple(self.keypoints.shape)}")
        k = self.keypoints.shape[1]
        if tuple(self.visible.shape) != (b, k):
            raise ValueError(f"visible must be ({b}, {k}), got {tuple(self.visible.shape)}")
        if tuple(self.frame_index.shape) != (b,):
            raise ValueError(f"frame_index must be ({b},), got {tuple(self.frame_index.shape)}")
        if tuple(self.orig_hw.shape) != (b, 2):
            raise ValueError(f"orig_hw must be ({b}, 2), got {tuple(self.orig_hw.shape)}")
        if self.windows is not None and (
            self.windows.ndim != 5 or self.windows.shape[0] != b or self.windows.shape[2] != 3
        ):
            raise ValueError(f"windows must be ({b}, W, 3, H, W), got {tuple(self.windows.shape)}")

    def as_windows(self) -> torch.Tensor:
        """(B, W, 3, H, W_img) windows; (B, 1, 3, H, W_img) when no neighbours were loaded."""
        return self.images[:, None] if self.windows is None else self.windows

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    @property
    def input_hw(self) -> tuple[int, int]:
        """(H, W) of the model input."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LabeledBatch:
        """The same batch with every tensor on ``device``."""
        return LabeledBatch(
            images=self.images.to(device, non_blocking=non_blocking),
            keypoints=self.keypoints.to(device, non_blocking=non_blocking),
            visible=self.visible.to(device, non_blocking=non_blocking),
            frame_index=self.frame_index.to(device, non_blocking=non_blocking),
            orig_hw=self.orig_hw.to(device, non_blocking=non_blocking),
            windows=None
            if self.windows is None
            else self.windows.to(device, non_blocking=non_blocking),
        )


@dataclass
class UnlabeledClip:
    """T consecutive frames of one video at the model input size, or of V synchronized
    cameras' videos of one session (the same T instants in each).

    Attributes:
        frames: (T, 3, H, W) float32 RGB in [0, 1]; with V views (V * T, 3, H, W), view after
            view (frame ``v * T + t`` is view v at instant t).
        video_index: which video (session, with views) of the training set the clip comes from.
        start_frame: index in that video of ``frames[0]``; frame t is ``start_frame + t``.
        orig_hw: (height, width) of the video's frames before resizing (the first view's).
        matrix: (3, 3) float32 original -> augmented input-pixel matrix when the frames were
            already augmented (by the DALI clip pipeline), for
            :func:`vidpose.data.augment.unwarp_coords`; None when they were not.
        view_hw: with V >= 2 synchronized views, each view's (height, width) before resizing;
            empty for a one-camera clip.
    """

    frames: torch.Tensor
    video_index: int
    start_frame: int
    orig_hw: tuple[int, int]
    matrix: torch.Tensor | None = None
    view_hw: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise ValueError(f"frames must be (T, 3, H, W), got {tuple(self.frames.shape)}")
        if self.matrix is not None and tuple(self.matrix.shape) != (3, 3):
            raise ValueError(f"matrix must be (3, 3), got {tuple(self.matrix.shape)}")
        self.orig_hw = (int(self.orig_hw[0]), int(self.orig_hw[1]))
        self.view_hw = tuple((int(h), int(w)) for h, w in self.view_hw)
        if self.view_hw and self.frames.shape[0] % len(self.view_hw):
            raise ValueError(
                f"{self.frames.shape[0]} frames cannot be {len(self.view_hw)} views' clips"
            )

    @property
    def n_views(self) -> int:
        """V, the synchronized views (1 for a one-camera clip)."""
        return max(1, len(self.view_hw))

    @property
    def n_frames(self) -> int:
        """Frames of each view (T)."""
        return int(self.frames.shape[0]) // self.n_views

    @property
    def views_frames(self) -> torch.Tensor:
        """The frames as (V, T, 3, H, W) (V = 1 for one camera)."""
        return self.frames.reshape(self.n_views, -1, *self.frames.shape[1:])

    @property
    def input_hw(self) -> tuple[int, int]:
        """(H, W) of the model input."""
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> UnlabeledClip:
        """The same clip with its frames (and matrix) on ``device``."""
        return dataclasses.replace(
            self,
            frames=self.frames.to(device, non_blocking=non_blocking),
            matrix=None
            if self.matrix is None
            else self.matrix.to(device, non_blocking=non_blocking),
        )
