"""Affine warps of images and points in plain torch, safe inside a captured CUDA graph.

Pixel-centre convention of the whole package: pixel ``i`` covers ``[i - 0.5, i + 0.5]``, so
integer coordinates are pixel centres; a matrix maps input-pixel coordinates of the original
image to those of the warped one.

Why not ``kornia.geometry.transform.warp_affine`` (which computes the same resampling): it
builds its normalisation matrices on the host and copies them to the device on every call, a
host-to-device copy that a CUDA graph cannot capture (and a small stall in eager mode). Here
the matrices are built from device tensors only, and the affine inverse is in closed form
(``torch.linalg.inv`` checks for singular matrices on the host).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def invert_affine(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) inverse of affine matrices, closed form (no solver, no host sync)."""
    a, b, tx = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    c, d, ty = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    out = torch.zeros_like(matrix)
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = ia, ib, -(ia * tx + ib * ty)
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = ic, id_, -(ic * tx + id_ * ty)
    out[..., 2, 2].fill_(1.0)  # fill_, not "= 1.0": that copies a host scalar and blocks
    return out


def warp_images(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images resampled by (N or 1, 3, 3) original -> warped matrices.

    Bilinear, zeros outside the original frame. Pixel centres map exactly (``align_corners``
    sampling, whose -1 and +1 are the centres of the first and last pixels), so the same
    matrix moves keypoints with :func:`vidpose.data.augment.warp_coords`.
    """
    n, _, h, w = images.shape
    inv = invert_affine(matrices.to(torch.float32))  # warped pixel -> original pixel
    # In align_corners-normalised coordinates u = x * sx - 1 (sx = 2 / (W - 1)), the same map
    # (output location -> where it samples) is theta below.
    sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    a, b, tx = inv[:, 0, 0], inv[:, 0, 1], inv[:, 0, 2]
    c, d, ty = inv[:, 1, 0], inv[:, 1, 1], inv[:, 1, 2]
    row0 = torch.stack([a, b * (sx / sy), a + b * (sx / sy) + sx * tx - 1.0], dim=-1)
    row1 = torch.stack([c * (sy / sx), d, c * (sy / sx) + d + sy * ty - 1.0], dim=-1)
    theta = torch.stack([row0, row1], dim=1).to(images.dtype)
    theta = theta.expand(n, -1, -1) if theta.shape[0] == 1 else theta
    grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
