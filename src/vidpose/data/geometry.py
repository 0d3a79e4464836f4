"""Model-input geometry without augmentation: resizing frames and mapping pixel coordinates
between original frames and the model input (pixel-centre convention of
:mod:`vidpose.data.augment`). Light: prediction uses it without loading kornia."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidpose._device import device_vector

__all__ = ["input_to_orig", "orig_to_input", "resize_frames"]


def resize_frames(
    frames: np.ndarray | torch.Tensor,
    input_hw: tuple[int, int],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """RGB frames to model input: (B, H0, W0, 3) uint8 -> (B, 3, H, W) float32 in [0, 1].

    Bilinear with antialiasing (``align_corners=False``, i.e. pixel-centre aligned, matching
    :func:`orig_to_input`). The uint8 frames are moved to ``device`` (default: where they are)
    before conversion, so a host-to-device copy moves 1 byte per value, not 4.
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H0, W0, 3) RGB, got {tuple(frames.shape)}")
    if device is not None:
        frames = frames.to(device, non_blocking=True)
    x = frames.permute(0, 3, 1, 2).to(torch.float32)
    if frames.dtype == torch.uint8:
        x = x / 255.0
    if tuple(x.shape[-2:]) != tuple(input_hw):
        x = F.interpolate(
            x, size=tuple(input_hw), mode="bilinear", align_corners=False, antialias=True
        )
    return x.clamp_(0.0, 1.0).contiguous()


def _hw_parts(hw, ref: torch.Tensor):
    """(height, width) of a size given as a tuple (Python floats) or a (..., 2) tensor (moved to
    ``ref``'s device and dtype); host arrays of many sizes are copied once."""
    if isinstance(hw, torch.Tensor):
        t = hw.to(device=ref.device, dtype=ref.dtype)
        return t[..., 0], t[..., 1]
    arr = np.asarray(hw, dtype=np.float64)
    if arr.ndim == 1:
        return float(arr[0]), float(arr[1])
    t = torch.as_tensor(arr, dtype=ref.dtype).to(ref.device)
    return t[..., 0], t[..., 1]


def _xy_ratio(num_hw, den_hw, like):
    """(..., 2) ratio num/den of (height, width) sizes, as (x, y) factors shaped/typed like like."""
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if like.is_floating_point() else torch.float32
        ref = torch.empty((), dtype=dtype, device=like.device)
        nh, nw = _hw_parts(num_hw, ref)
        dh, dw = _hw_parts(den_hw, ref)
        x, y = nw / dw, nh / dh
        if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
            return device_vector((x, y), ref)
        x, y = torch.broadcast_tensors(torch.as_tensor(x, device=ref.device), y)
        return torch.stack([x, y], dim=-1).to(dtype)
    num = np.asarray(num_hw, dtype=np.float64)
    den = np.asarray(den_hw, dtype=np.float64)
    return (num / den)[..., ::-1]


def orig_to_input(coords, orig_hw, input_hw):
    """Original-frame pixels -> model-input pixels: ``x_in = (x_orig + 0.5) * W / W0 - 0.5``.

    Args:
        coords: (..., 2) (x, y), numpy array or tensor; NaN passes through.
        orig_hw: (H0, W0), or an array / tensor (..., 2) broadcastable against coords, e.g.
            ``orig_hw[:, None, :]`` for coords (B, K, 2) with one size per frame.
        input_hw: (H, W) of the model input (same broadcasting).

    Returns:
        (..., 2) coordinates of the same kind as coords (numpy float64, or the tensor's dtype).
    """
    if not isinstance(coords, torch.Tensor):
        coords = np.asarray(coords, dtype=np.float64)
    return (coords + 0.5) * _xy_ratio(input_hw, orig_hw, coords) - 0.5


def input_to_orig(coords, orig_hw, input_hw):
    """Model-input pixels -> original-frame pixels; the inverse of :func:`orig_to_input`."""
    if not isinstance(coords, torch.Tensor):
        coords = np.asarray(coords, dtype=np.float64)
    return (coords + 0.5) * _xy_ratio(orig_hw, input_hw, coords) - 0.5
