"""Heatmap targets, decoding (windowed soft-argmax) and confidence, as pure tensor functions.

Coordinate convention (used everywhere in vidpose.models and vidpose.losses):

* A coordinate is ``(x, y)`` in pixels, x first. Pixel ``i`` *covers* ``[i - 0.5, i + 0.5]``, so
  the centre of the top-left pixel is ``(0, 0)`` and an image of width W spans
  ``[-0.5, W - 0.5]`` (the ``align_corners=False`` convention of ``grid_sample``).
* A heatmap at stride ``s`` has one cell per ``s x s`` block of input pixels. Cell ``j`` covers
  input pixels ``s*j .. s*j + s - 1``, whose centre is ``s*j + (s - 1) / 2``; hence
  ``x_px = s * x_hm + (s - 1) / 2`` (:func:`heatmap_to_input`) and its inverse
  (:func:`input_to_heatmap`). Targets are built and decoded with the same pair of functions, so
  a target drawn at ``input_to_heatmap(p)`` decodes back to ``p``.

What a heatmap means: a head emits *logits* ``L (B, K, h, w)``; the model's belief about where
keypoint k is, is the spatial softmax ``P = softmax(beta * L)`` over the ``h * w`` cells. The
supervised losses (:mod:`vidpose.losses.supervised`) train ``P`` (with ``beta = 1``) towards the
normalised Gaussian target, so a perfectly trained ``P`` *is* that Gaussian and decoding with
``beta = 1`` is consistent with training.

Decoding: :func:`soft_argmax` with a ``radius`` takes the expectation of ``P`` inside a
``(2r+1) x (2r+1)`` box that starts at the arg-max cell and is re-centred on the estimate a few
times. Why a box: a global soft-argmax is pulled towards the middle of the map by a second mode
(a confusable left/right paw) and by the small mass spread over thousands of background cells.
Why re-centre: a box fixed on the integer arg-max cell is asymmetric around a sub-pixel peak and
so biased towards the cell centre (up to ~0.17 cells for sigma = 2, r = 3); a box centred on the
estimate (fractional weights for partly covered cells) is symmetric around the peak, which
removes the bias. Near the map's edge the box is shrunk, per axis, to the distance from the
estimate to the edge, so that the edge cannot cut it on one side only and pull the estimate
inwards. The box is a constant for gradients: it only chooses which cells vote; gradients flow
through their votes. Accuracy on Gaussian targets: < 0.01 cell away from the edges, up to
~0.15 cell within 3 sigma of an edge (the shrunk box converges more slowly); an expectation over
cells cannot leave the span of cell centres, so points within half a cell of the map's edge
decode onto the first/last cell centre.

Confidence (:func:`heatmap_confidence`): the mass of ``P`` inside the final box, in [0, 1].
It is ~1 for a sharp single peak (a Gaussian of sigma s keeps
``erf((r + .5) / (s * sqrt 2))**2`` of its mass: 0.99 for the defaults sigma 2, r 5), about 1/2
for two equal peaks and at most ``(2r + 1)**2 / (h * w)`` for a flat map. Keep
``radius >= ~2.5 * sigma`` so that a perfect prediction gets a confidence near 1 and the box
does not truncate the peak.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vidpose._device import device_vector

DEFAULT_SIGMA = 2.0
"""Default Gaussian target width, in heatmap cells (8 input px at heatmap stride 4)."""

DEFAULT_WINDOW_RADIUS = 5
"""Default half-width of the soft-argmax / confidence box, in heatmap cells (11 x 11 cells);
2.5 x :data:`DEFAULT_SIGMA`, see :func:`heatmap_confidence`."""

DEFAULT_ITERATIONS = 3
"""How many times the soft-argmax box is re-centred on the estimate after the arg-max start."""


def input_to_heatmap(coords_px: Tensor, stride: int) -> Tensor:
    """Input-image pixels -> heatmap cells at ``stride`` (pixel-centre convention).

    Args:
        coords_px: (..., 2) x, y in input-image pixels.
        stride: input pixels per heatmap cell.

    Returns:
        (..., 2) x, y in heatmap cells; NaN stays NaN.
    """
    return (coords_px - (stride - 1) / 2.0) / stride


def heatmap_to_input(coords_hm: Tensor, stride: int) -> Tensor:
    """Heatmap cells at ``stride`` -> input-image pixels; inverse of :func:`input_to_heatmap`."""
    return coords_hm * stride + (stride - 1) / 2.0


def gaussian_targets(coords_hm: Tensor, height: int, width: int, sigma: float) -> Tensor:
    """Unnormalised Gaussian heatmaps (peak 1 at the keypoint).

    Args:
        coords_hm: (B, K, 2) x, y in heatmap cells (see :func:`input_to_heatmap`); NaN where
            the keypoint is missing.
        height, width: heatmap size h, w in cells.
        sigma: Gaussian standard deviation in heatmap cells.

    Returns:
        (B, K, h, w) float32 on ``coords_hm``'s device, ``exp(-d**2 / (2 sigma**2))`` with d the
        distance from the cell centre to the keypoint; all zeros for missing keypoints. A
        keypoint outside the map gives a truncated (possibly all ~0) map.
    """
    coords = coords_hm.detach().float()
    missing = ~torch.isfinite(coords).all(dim=-1)  # (B, K)
    coords = torch.where(missing[..., None], torch.zeros_like(coords), coords)
    xs = torch.arange(width, device=coords.device, dtype=torch.float32)
    ys = torch.arange(height, device=coords.device, dtype=torch.float32)
    # Separable: exp(-(dx^2 + dy^2) / 2s^2) = gx(x) * gy(y); an outer product is cheaper.
    gx = torch.exp(-((xs - coords[..., 0:1]) ** 2) / (2.0 * sigma**2))  # (B, K, w)
    gy = torch.exp(-((ys - coords[..., 1:2]) ** 2) / (2.0 * sigma**2))  # (B, K, h)
    maps = gy[..., :, None] * gx[..., None, :]
    return maps * (~missing)[..., None, None].float()


def gaussian_targets_px(
    coords_px: Tensor, height: int, width: int, stride: int, sigma: float = DEFAULT_SIGMA
) -> Tensor:
    """Gaussian targets for keypoints given in input pixels, at heatmap ``stride``.

    Args:
        coords_px: (B, K, 2) x, y in model-input pixels; NaN where missing.
        height, width: heatmap size h, w in cells (e.g. ``output.heatmaps.shape[-2:]``).
        stride: heatmap stride (``output.heatmap_stride``).
        sigma: Gaussian standard deviation in heatmap cells.

    Returns:
        (B, K, h, w) float32, see :func:`gaussian_targets`.
    """
    return gaussian_targets(input_to_heatmap(coords_px, stride), height, width, sigma)


def spatial_softmax(logits: Tensor, beta: float = 1.0) -> Tensor:
    """Softmax over the spatial cells of each map, computed in float32.

    Args:
        logits: (B, K, h, w) heatmap logits, any float dtype.
        beta: inverse temperature; 1 matches how the supervised losses train the logits.

    Returns:
        (B, K, h, w) float32, each map summing to 1.
    """
    b, k, h, w = logits.shape
    flat = (logits.float() * beta).reshape(b, k, h * w)
    return torch.softmax(flat, dim=-1).reshape(b, k, h, w)


def _box_weights(center: Tensor, size: int, radius: Tensor | float) -> Tensor:
    """Fraction of each cell ``[i - .5, i + .5]`` inside the box ``[c - r - .5, c + r + .5]``.

    Args:
        center: (B, K) box centre in cells.
        size: number of cells along the axis.
        radius: box half-width in cells, a number or (B, K).

    Returns:
        (B, K, size) weights in [0, 1]; exactly 1 on 2r+1 cells when ``center`` is an integer.
        (Each cell still votes for its centre: a map is a set of point samples, and moving a
        partly covered cell's vote to the middle of its covered part was measured to be less
        accurate on sampled Gaussians.)
    """
    pos = torch.arange(size, device=center.device, dtype=center.dtype)
    lo = (center - radius - 0.5)[..., None]
    hi = (center + radius + 0.5)[..., None]
    return (torch.minimum(pos + 0.5, hi) - torch.maximum(pos - 0.5, lo)).clamp(0.0, 1.0)


def _argmax_xy(probs: Tensor) -> Tensor:
    """(B, K, h, w) -> (B, K, 2) float x, y of the arg-max cell (no gradient)."""
    w = probs.shape[-1]
    idx = probs.detach().flatten(-2).argmax(dim=-1)
    return torch.stack([(idx % w).float(), torch.div(idx, w, rounding_mode="floor").float()], -1)


def _windowed_moments(
    probs: Tensor, center: Tensor, radius: float, symmetric: bool = False
) -> tuple[Tensor, Tensor]:
    """Mass and centroid of ``probs`` inside the box around ``center``.

    Args:
        probs: (B, K, h, w) non-negative float32.
        center: (B, K, 2) box centre x, y in cells (treated as a constant).
        radius: box half-width in cells.
        symmetric: shrink the box's half-width along each axis to the distance from ``center``
            to the map's edge, so that the map's border never cuts it on one side only.

    Returns:
        mass (B, K) and centroid (B, K, 2) x, y in cells; the centroid falls back to ``center``
        where the box holds no mass.
    """
    h, w = probs.shape[-2:]
    center = center.detach()
    cx, cy = center[..., 0], center[..., 1]
    rx: Tensor | float = radius
    ry: Tensor | float = radius
    if symmetric:
        rx = torch.minimum(cx, (w - 1) - cx).clamp(0.0, float(radius))
        ry = torch.minimum(cy, (h - 1) - cy).clamp(0.0, float(radius))
    wx = _box_weights(cx, w, rx)  # (B, K, w)
    wy = _box_weights(cy, h, ry)  # (B, K, h)
    xs = torch.arange(w, device=probs.device, dtype=probs.dtype)
    ys = torch.arange(h, device=probs.device, dtype=probs.dtype)
    col = torch.einsum("bkhw,bkh->bkw", probs, wy) * wx  # mass per column inside the box
    row = torch.einsum("bkhw,bkw->bkh", probs, wx) * wy  # mass per row inside the box
    mass = col.sum(-1)
    safe = mass.clamp_min(1e-20)
    centroid = torch.stack([(col * xs).sum(-1) / safe, (row * ys).sum(-1) / safe], dim=-1)
    empty = (mass <= 1e-20)[..., None]
    return mass, torch.where(empty, center, centroid)


def soft_argmax(
    probs: Tensor,
    radius: float | None = DEFAULT_WINDOW_RADIUS,
    iterations: int = DEFAULT_ITERATIONS,
) -> Tensor:
    """Sub-pixel keypoint location: expectation of each map, globally or in a local box.

    Args:
        probs: (B, K, h, w) non-negative maps (a spatial softmax, or Gaussian targets); need not
            sum to 1: the expectation is normalised by the mass it uses.
        radius: half-width of the box in cells (see the module docstring for why a box);
            None for a plain global soft-argmax over the whole map.
        iterations: re-centrings of the box on the estimate after starting at the arg-max.

    Returns:
        (B, K, 2) float32 x, y in heatmap cells (convert with :func:`heatmap_to_input`). An
        all-zero map gives its arg-max cell, (0, 0).
    """
    probs = probs.float()
    if radius is None:
        h, w = probs.shape[-2:]
        big = float(max(h, w))
        middle = device_vector(((w - 1) / 2.0, (h - 1) / 2.0), probs)
        center = middle.expand(*probs.shape[:2], 2)
        return _windowed_moments(probs, center, big)[1]
    center = _argmax_xy(probs)
    for _ in range(iterations + 1):
        center = _windowed_moments(probs, center, radius, symmetric=True)[1]
    return center


def heatmap_confidence(
    probs: Tensor, coords_hm: Tensor, radius: float = DEFAULT_WINDOW_RADIUS
) -> Tensor:
    """Share of each map's mass inside the box of half-width ``radius`` around ``coords_hm``.

    Args:
        probs: (B, K, h, w) non-negative maps (normally a spatial softmax).
        coords_hm: (B, K, 2) x, y in cells, normally from :func:`soft_argmax`.
        radius: box half-width in cells; use the decoding radius.

    Returns:
        (B, K) float32 in [0, 1]: ~1 for a single sharp peak, ~0.5 for two equal peaks,
        ``(2r+1)**2 / (h*w)`` for a flat map; 0 for an all-zero map.
    """
    probs = probs.float()
    inside = _windowed_moments(probs, coords_hm, radius)[0]
    total = probs.sum(dim=(-2, -1))
    return (inside / total.clamp_min(1e-20)).clamp(0.0, 1.0)


def decode_heatmaps(
    logits: Tensor,
    stride: int,
    beta: float = 1.0,
    radius: float | None = DEFAULT_WINDOW_RADIUS,
    iterations: int = DEFAULT_ITERATIONS,
) -> tuple[Tensor, Tensor]:
    """Heatmap logits -> input-pixel coordinates and confidences (float32, differentiable).

    Args:
        logits: (B, K, h, w) heatmap logits at ``stride`` input pixels per cell.
        stride: heatmap stride.
        beta: inverse temperature of the spatial softmax.
        radius: soft-argmax / confidence box half-width in cells; None for a global soft-argmax
            (then confidence uses :data:`DEFAULT_WINDOW_RADIUS`).
        iterations: box re-centrings, see :func:`soft_argmax`.

    Returns:
        coords_px (B, K, 2) x, y in input pixels, confidence (B, K) in [0, 1].
    """
    # bf16 coordinates would be quantised to ~1 px at 256 px, so decode in float32.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        probs = spatial_softmax(logits, beta)
        coords_hm = soft_argmax(probs, radius, iterations)
        conf_radius = DEFAULT_WINDOW_RADIUS if radius is None else radius
        confidence = heatmap_confidence(probs, coords_hm, conf_radius)
        return heatmap_to_input(coords_hm, stride), confidence
