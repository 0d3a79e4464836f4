"""Unsupervised losses on an unlabeled clip: temporal, pose PCA, multiview PCA, unimodal heatmap.

Pure functions of tensors. Coordinates are predictions mapped back to *original-frame* pixels
(so every ``epsilon_px`` is in real pixels), except for :func:`unimodal_loss`, which works in
heatmap cells. Each returns a :class:`LossTerms`: the scalar to weigh, the per-element values for
logging, and how many elements counted. A term with nothing to count is 0, still attached to the
graph (so ``backward`` works and gives zero gradients), never NaN. Everything is computed in
float32, whatever the autocast dtype.

Margins follow one pattern: an element costs ``ReLU(error - epsilon)``, so predictions within
the margin (plausible motion, label-like poses) are never pushed, and beyond it the cost grows
linearly in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vidpose._device import device_constant
from vidpose.losses.pca import (
    MultiviewPCA,
    PosePCA,
    multiview_reconstruction_error,
    pca_margin,
    pca_reconstruction_error,
    safe_norm,
)
from vidpose.models.heatmaps import gaussian_targets

_MIN_TARGET_MASS = 1e-6


@dataclass
class LossTerms:
    """One unsupervised loss evaluated on a clip.

    Attributes:
        loss: scalar float32 tensor, mean of ``per_element`` over the counted elements (0, with
            a graph, when none count).
        per_element: float32 tensor of the per-element values (ReLU'd errors for the margin
            losses, divergences for ``unimodal``); 0 where not counted. Shape per loss.
        count: 0-dim int64 tensor, the number of counted elements. A tensor (not an int) so
            that computing a loss never forces a device-to-host sync; ``int(terms.count)``
            when you need the number.
        mask: bool tensor shaped like ``per_element``, True where counted.
    """

    loss: Tensor
    per_element: Tensor
    count: Tensor
    mask: Tensor

    def activity(self) -> Tensor:
        """(3,) float32 on the loss's device, no host sync: [terms whose hinge is active (counted
        and > 0), terms counted (not gated off by confidence), all terms]."""
        active = (self.mask & (self.per_element > 0)).sum().float()
        # a fill kernel, not a host-to-device copy: no sync in the training step
        every = self.per_element.new_full((), float(self.mask.numel()), dtype=torch.float32)
        return torch.stack([active, self.count.float(), every])


def _masked_terms(values: Tensor, mask: Tensor) -> LossTerms:
    """LossTerms with the mean of ``values`` over ``mask`` (same shape)."""
    mask = mask.expand_as(values)
    values = torch.where(mask, values, torch.zeros_like(values))
    count = mask.sum()
    return LossTerms(values.sum() / count.clamp_min(1), values, count, mask)


def _confident(confidence: Tensor | None, like: Tensor, min_confidence: float) -> Tensor:
    """(…) bool, True where ``confidence >= min_confidence`` (everywhere when None)."""
    if confidence is None:
        return torch.ones(like.shape, dtype=torch.bool, device=like.device)
    return confidence >= min_confidence


# ---------------------------------------------------------------------------------------------
# Temporal


def temporal_loss(
    coords_px: Tensor,
    confidence: Tensor | None,
    epsilon_px: float,
    min_confidence: float = 0.0,
) -> LossTerms:
    """Penalise keypoints that jump further than ``epsilon_px`` between consecutive frames.

    Args:
        coords_px: (T, K, 2) x, y in original-frame px of T consecutive frames (leading batch
            dims (..., T, K, 2) are allowed: clips are independent).
        confidence: (T, K) in [0, 1], or None to count every pair.
        epsilon_px: motion per frame that costs nothing, px.
        min_confidence: a pair (t, t+1) of a keypoint counts only if both frames' confidences
            are >= this; a jump to or from an unsure prediction may be a real occlusion.

    Returns:
        LossTerms with per_element (T-1, K) = ReLU(|p[t+1] - p[t]| - epsilon_px) px.
    """
    with torch.autocast(device_type=coords_px.device.type, enabled=False):
        c = coords_px.float()
        step = safe_norm(c[..., 1:, :, :] - c[..., :-1, :, :])  # (..., T-1, K)
        over = torch.relu(step - epsilon_px)
        ok = _confident(confidence, c[..., 0], min_confidence)
        return _masked_terms(over, ok[..., 1:, :] & ok[..., :-1, :])


def temporal_norm(coords_px: np.ndarray) -> np.ndarray:
    """Frame-to-frame displacement of each keypoint, for per-video metrics.

    Args:
        coords_px: (N, K, 2) x, y in px of consecutive frames; NaN where missing.

    Returns:
        (N, K) px; row t is ``|p[t] - p[t-1]|``, NaN for the first frame and wherever either
        frame is missing.
    """
    coords_px = np.asarray(coords_px, dtype=np.float64)
    out = np.full(coords_px.shape[:-1], np.nan)
    out[1:] = np.linalg.norm(np.diff(coords_px, axis=0), axis=-1)
    return out


# ---------------------------------------------------------------------------------------------
# Equivariance


def equivariance_loss(
    coords_px: Tensor,
    coords2_px: Tensor,
    epsilon_px: float,
    valid: Tensor | None = None,
    confidence: Tensor | None = None,
    confidence2: Tensor | None = None,
    min_confidence: float = 0.0,
) -> LossTerms:
    """Penalise predictions that do not move with the image.

    The same frames are seen twice, the second time turned, scaled, shifted and re-lit; both
    predictions, mapped back to original-frame px, should agree. Gradients reach both views.

    Args:
        coords_px, coords2_px: (..., K, 2) the two views' predictions in original-frame px.
        epsilon_px: disagreement that costs nothing, px.
        valid: (..., K) bool, False where a keypoint is outside either view (not counted).
        confidence, confidence2: (..., K) in [0, 1], or None.
        min_confidence: a keypoint counts only if both views' confidences are >= this.

    Returns:
        LossTerms with per_element (..., K) = ReLU(|p - p2| - epsilon_px) px.
    """
    with torch.autocast(device_type=coords_px.device.type, enabled=False):
        gap = safe_norm(coords_px.float() - coords2_px.float())
        ok = _confident(confidence, gap, min_confidence) & _confident(
            confidence2, gap, min_confidence
        )
        if valid is not None:
            ok = ok & valid
        return _masked_terms(torch.relu(gap - epsilon_px), ok)


# ---------------------------------------------------------------------------------------------
# PCA


def pca_loss(
    coords_px: Tensor,
    pca: PosePCA,
    confidence: Tensor | None = None,
    min_confidence: float = 0.0,
) -> LossTerms:
    """Penalise poses far from the labels' pose subspace.

    Args:
        coords_px: (B, K, 2) x, y in original-frame px (all K keypoints).
        pca: fitted :class:`~vidpose.losses.pca.PosePCA`.
        confidence: (B, K) in [0, 1], or None to count every PCA keypoint.
        min_confidence: a PCA keypoint whose confidence is below this is not counted (its
            error still enters its neighbours' projections).

    Returns:
        LossTerms with per_element (B, K_pca) = ReLU(err - margin) px, the margin being
        ``pca.epsilon_px`` (scaled with each pose's size for ``align="similarity"``).
    """
    err = pca_reconstruction_error(coords_px, pca)
    eps = pca_margin(coords_px, pca)
    ok = _confident(confidence, coords_px[..., 0], min_confidence)
    ok = ok.index_select(
        -1, device_constant(pca, "keypoint_idx", pca.keypoint_idx, ok.device, torch.long)
    )
    return _masked_terms(torch.relu(err - eps), ok)


def multiview_pca_loss(
    coords_px: Tensor,
    mv: MultiviewPCA,
    confidence: Tensor | None = None,
    min_confidence: float = 0.0,
) -> LossTerms:
    """Penalise matched keypoints whose views disagree (are far from the multiview subspace).

    Args:
        coords_px: (B, K, 2) x, y in original-frame px (all K keypoints, every view).
        mv: fitted :class:`~vidpose.losses.pca.MultiviewPCA`.
        confidence: (B, K) in [0, 1], or None to count every matched keypoint.
        min_confidence: a view's keypoint below this confidence is not counted.

    Returns:
        LossTerms with per_element (B, M, V) = ReLU(err - mv.epsilon_px) px.
    """
    err = multiview_reconstruction_error(coords_px, mv)
    eps = device_constant(mv, "epsilon_px", mv.epsilon_px, err.device, torch.float32)
    ok = _confident(confidence, coords_px[..., 0], min_confidence)
    idx = device_constant(mv, "matches", mv.view_matches.reshape(-1), ok.device, torch.long)
    ok = ok.index_select(-1, idx).reshape(err.shape)
    return _masked_terms(torch.relu(err - eps), ok)


# ---------------------------------------------------------------------------------------------
# Unimodal heatmap


def unimodal_loss(heatmap_logits: Tensor, coords_hm: Tensor, sigma: float) -> LossTerms:
    """Penalise multi-peaked heatmaps: KL from an ideal Gaussian at the prediction.

    The predicted distribution is the spatial softmax ``P`` of the logits (as in
    :mod:`vidpose.models.heatmaps`); the ideal one ``G`` is a Gaussian of width ``sigma`` centred
    on the predicted location, normalised to sum 1 over the map. The per-keypoint value is
    ``KL(G || P) = sum G * (log G - log P)``: 0 when ``P`` is that Gaussian, about ``log 2``
    when half of ``P``'s mass sits in a second peak far away, large for a flat map. ``G`` is
    built from detached coordinates: it is a target that the heatmap is pulled towards, not a
    quantity to move towards the heatmap. Same divergence and normalisation as the supervised
    ``heatmap_kl``, so the two have comparable scales.

    Args:
        heatmap_logits: (B, K, h, w) logits, any float dtype.
        coords_hm: (B, K, 2) predicted x, y in heatmap cells, pixel-centre convention (cell
            ``(i, j)`` covers x in [i - 0.5, i + 0.5], y in [j - 0.5, j + 0.5]; see
            :func:`vidpose.models.heatmaps.input_to_heatmap`).
        sigma: Gaussian standard deviation in heatmap cells; use the supervised targets' sigma.

    Returns:
        LossTerms with per_element (B, K) divergences (nats); keypoints whose Gaussian falls
        entirely off the map (or NaN coordinates) are not counted.
    """
    b, k, h, w = heatmap_logits.shape
    with torch.autocast(device_type=heatmap_logits.device.type, enabled=False):
        log_p = torch.log_softmax(heatmap_logits.float().reshape(b, k, h * w), dim=-1)
        target = gaussian_targets(coords_hm, h, w, sigma).reshape(b, k, h * w)
        mass = target.sum(-1)
        valid = mass > _MIN_TARGET_MASS
        target = target / mass.clamp_min(_MIN_TARGET_MASS)[..., None]
        kl = (torch.xlogy(target, target) - target * log_p).sum(-1)
        return _masked_terms(kl, valid)
