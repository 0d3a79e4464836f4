"""8-bit 4:2:0 YUV to RGB in torch, on whatever device the frames are (a GPU, usually).

Why: converting decoded pictures to RGB is half of PyAV's per-frame cost (on a 406x396 H.264
video, 2,950 frames/s decoded to planar YUV against 1,050-1,670 to RGB, on one process of this
project's 2-core machine). A reader can hand over the planes instead (:class:`FrameBatch` with
``pixels="i420"``) and the consumer converts a whole batch here, which on a GPU costs nothing
measurable; NVDEC delivers NV12 and goes through the same arithmetic.

The matrix is BT.601 limited range ("TV range": Y in [16, 235], Cb/Cr in [16, 240]), what FFmpeg's
swscale applies to a stream that signals no colour description (PyAV's ``rgb24``). Chroma is
repeated over each 2x2 block and values are rounded down: swscale rounds low by about half a
level, so this lands within 2 levels of it (mean difference about 0.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidpose.video.base import i420_shape

__all__ = ["i420_shape", "i420_to_input", "i420_to_rgb", "nv12_to_rgb", "yuv420_to_rgb"]

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_Y_GAIN = 255.0 / 219.0
_C_GAIN = 255.0 / 224.0
_R_CR = 2.0 * (1.0 - _KR) * _C_GAIN
_B_CB = 2.0 * (1.0 - _KB) * _C_GAIN
_G_CB = 2.0 * _KB * (1.0 - _KB) / _KG * _C_GAIN
_G_CR = 2.0 * _KR * (1.0 - _KR) / _KG * _C_GAIN


def yuv420_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """Planes to RGB: ``y`` (B, H, W), ``cb`` and ``cr`` (B, ceil(H/2), ceil(W/2)) uint8 ->
    (B, H, W, 3) uint8, on the planes' device."""
    height, width = y.shape[1], y.shape[2]
    luma = (y.to(torch.float32) - 16.0) * _Y_GAIN
    chroma = torch.stack((cb, cr), dim=-1).to(torch.float32) - 128.0
    # each chroma sample over its 2x2 block; expand + reshape, which needs no host sync
    # (repeat_interleave reads its output size back, which a CUDA graph capture forbids)
    b, ch, cw, _ = chroma.shape
    chroma = chroma[:, :, None, :, None].expand(b, ch, 2, cw, 2, 2).reshape(b, 2 * ch, 2 * cw, 2)
    chroma = chroma[:, :height, :width]
    u, v = chroma[..., 0], chroma[..., 1]
    rgb = torch.stack((luma + _R_CR * v, luma - _G_CB * u - _G_CR * v, luma + _B_CB * u), dim=-1)
    return rgb.floor_().clamp_(0.0, 255.0).to(torch.uint8)


def nv12_to_rgb(nv12: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """NV12 frames to RGB (module docstring).

    Args:
        nv12: (B, H + ceil(H/2), W') uint8: H rows of luma, then ceil(H/2) rows of interleaved
            (Cb, Cr) pairs; W' >= W, even (row padding is ignored).
        height, width: frame size H, W.

    Returns:
        (B, H, W, 3) uint8 RGB.
    """
    if nv12.ndim == 2:
        return nv12_to_rgb(nv12[None], height, width)[0]
    b = nv12.shape[0]
    ch, cw = (height + 1) // 2, (width + 1) // 2
    if nv12.shape[1] < height + ch or nv12.shape[2] < 2 * cw:
        raise ValueError(
            f"NV12 frames of {height}x{width} need at least ({height + ch}, {2 * cw}) rows x "
            f"columns, got {tuple(nv12.shape[1:])}"
        )
    uv = nv12[:, height : height + ch, : 2 * cw].reshape(b, ch, cw, 2)
    return yuv420_to_rgb(nv12[:, :height, :width], uv[..., 0], uv[..., 1])


def i420_to_rgb(i420: torch.Tensor) -> torch.Tensor:
    """(B, 3H/2, W) uint8 packed I420 (:func:`i420_shape`) -> (B, H, W, 3) uint8 RGB."""
    b, rows, width = i420.shape
    height = rows * 2 // 3
    flat = i420.reshape(b, rows * width)
    luma, chroma = height * width, (height // 2) * (width // 2)
    y = flat[:, :luma].reshape(b, height, width)
    cb = flat[:, luma : luma + chroma].reshape(b, height // 2, width // 2)
    cr = flat[:, luma + chroma :].reshape(b, height // 2, width // 2)
    return yuv420_to_rgb(y, cb, cr)


def i420_to_input(i420: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3H/2, W) uint8 packed I420 -> (B, 3, h, w) float32 RGB in [0, 1] at ``size``: a
    network's input, made at the network's resolution.

    What :func:`i420_to_rgb` then a bilinear, antialiased resize give, to within a level or two:
    the Y, Cb, Cr planes are resized first (each chroma sample covering its 2 x 2 block, as in
    :func:`i420_to_rgb`), then the colour matrix is applied to h x w pixels instead of H x W.
    The matrix is affine and a resize's weights sum to one, so the two orders agree but for the
    rounding to 8-bit RGB that this skips (its mean, half a level down, is kept) and for the
    clamp to [0, 255] (applied after the resize here: dark edges differ by a few levels). On
    the mirror-mouse video: 0.14 level apart on average, under half a level for 99.9% of
    values (``tests/video/test_color.py``). At batch 256
    of 406 x 396 frames to 256 x 256 on an H200: the conversion and resize took 6.1 ms of a
    33.6 ms prediction step through :func:`i420_to_rgb`. Frames already at ``size`` get
    exactly :func:`i420_to_rgb`'s values.
    """
    b, rows, width = i420.shape
    height = rows * 2 // 3
    if (height, width) == tuple(size):  # nothing to resize: exactly i420_to_rgb's values
        return i420_to_rgb(i420).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    flat = i420.reshape(b, rows * width)
    luma_n = height * width
    yuv = torch.empty((b, 3, height, width), dtype=torch.float32, device=i420.device)
    yuv[:, 0] = flat[:, :luma_n].reshape(b, height, width)
    # each chroma sample over its 2 x 2 block, as i420_to_rgb (and FFmpeg's rgb24) do
    cbcr = flat[:, luma_n:].reshape(b, 2, height // 2, 1, width // 2, 1)
    yuv[:, 1:].view(b, 2, height // 2, 2, width // 2, 2).copy_(
        cbcr.expand(b, 2, height // 2, 2, width // 2, 2)
    )
    yuv = F.interpolate(yuv, size=size, mode="bilinear", align_corners=False, antialias=True)
    y, cbcr = yuv[:, :1], yuv[:, 1:]
    # -0.5 level: i420_to_rgb rounds down (as swscale rounds low), half a level on average
    luma = (y - 16.0).mul_(_Y_GAIN).sub_(0.5).mul_(1.0 / 255.0)
    u = (cbcr[:, :1] - 128.0).mul_(1.0 / 255.0)
    v = (cbcr[:, 1:] - 128.0).mul_(1.0 / 255.0)
    rgb = torch.cat(
        (
            luma + _R_CR * v,
            luma - _G_CB * u - _G_CR * v,
            luma + _B_CB * u,
        ),
        dim=1,
    )
    return rgb.clamp_(0.0, 1.0)
