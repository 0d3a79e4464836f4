"""The built-in unsupervised losses, each with its parameters and default weight.

Default weights: the pixel-valued losses (px beyond their margin) are ~10-100x the normalised
heatmap loss when they fire; their weights keep them a correction, not the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vidpose._schema import setting
from vidpose._warp import warp_images
from vidpose.losses.pca import ALIGNMENTS, fit_multiview_pca, fit_pose_pca
from vidpose.losses.registry import (
    LossSetup,
    UnsupervisedInputs,
    UnsupervisedLoss,
    per_camera,
    register_unsupervised_loss,
)
from vidpose.losses.unsupervised import (
    LossTerms,
    equivariance_loss,
    multiview_pca_loss,
    pca_loss,
    temporal_loss,
    unimodal_loss,
)

MIN_PCA_LABELS = 2
"""Fewest labeled training frames for single-view PCA (one component needs two poses)."""

MIN_MULTIVIEW_LABELS = 4
"""Fewest labeled training frames for multiview PCA (a 3D subspace needs four points)."""


@dataclass
class TemporalParams:
    epsilon_px: float = setting(
        5.0, "frame-to-frame jump (original-frame px) below which the loss is 0", ge=0
    )
    min_confidence: float = setting(
        0.05, "frame pairs with a confidence below this are ignored", ge=0, le=1
    )


@register_unsupervised_loss("temporal", params=TemporalParams, weight=0.005)
class TemporalLoss(UnsupervisedLoss):
    """Frame-to-frame jumps beyond epsilon_px (confident pairs only)."""

    params: TemporalParams
    gates = (
        "a frame pair counts only when both confidences are >= losses.temporal.min_confidence, "
        "and costs only when the keypoint moves more than losses.temporal.epsilon_px"
    )

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        p = self.params
        return temporal_loss(inputs.coords_px, inputs.confidence, p.epsilon_px, p.min_confidence)


@dataclass
class EquivarianceParams:
    epsilon_px: float = setting(
        2.0, "disagreement of the two views (original-frame px) below which the loss is 0", ge=0
    )
    min_confidence: float = setting(
        0.0, "keypoints less confident than this in either view are not counted", ge=0, le=1
    )
    rotation_deg: float = setting(15.0, "the second view is turned by up to this angle", ge=0)
    scale: float = setting(0.15, "and scaled by up to this fraction", ge=0, lt=1)
    translate: float = setting(0.05, "and shifted by up to this fraction of the frame", ge=0)
    brightness: float = setting(0.2, "and its brightness changed by up to this fraction", ge=0)
    contrast: float = setting(0.2, "and its contrast changed by up to this fraction", ge=0)
    one_way: bool = setting(
        False,
        "the first view's predictions are a fixed target (no gradient): only the second view "
        "learns to agree",
    )


@register_unsupervised_loss("equivariance", params=EquivarianceParams, weight=0.05)
class EquivarianceLoss(UnsupervisedLoss):
    """Poses that do not move with the image (the clip seen again, turned, scaled and re-lit).

    Both views' predictions, mapped back to original-frame px, must agree within a margin."""

    params: EquivarianceParams
    needs_second_view = True
    gates = (
        "a keypoint counts only when it lies inside both views and both confidences are >= "
        "losses.equivariance.min_confidence, and costs only when the views disagree by more "
        "than losses.equivariance.epsilon_px"
    )

    def second_view(
        self, frames: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        p = self.params
        u = torch.rand(6, generator=generator, device=frames.device) * 2.0 - 1.0
        angle = u[0] * math.radians(p.rotation_deg)
        scale = 1.0 + u[1] * p.scale
        h, w = frames.shape[-2:]
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        a, b = torch.cos(angle) * scale, -torch.sin(angle) * scale
        c, d = -b, a
        m = torch.zeros((3, 3), dtype=torch.float32, device=frames.device)
        m[0, 0], m[0, 1], m[0, 2] = a, b, cx + u[2] * p.translate * w - (a * cx + b * cy)
        m[1, 0], m[1, 1], m[1, 2] = c, d, cy + u[3] * p.translate * h - (c * cx + d * cy)
        m[2, 2].fill_(1.0)  # not "= 1.0": a copy from the host (no CUDA graph can hold it)
        warped = warp_images(frames, m[None])
        mean = warped.mean()
        contrast, gain = 1.0 + u[4] * p.contrast, 1.0 + u[5] * p.brightness
        return ((warped - mean) * contrast + mean).mul(gain).clamp(0.0, 1.0), m

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        assert inputs.second is not None
        p = self.params
        first = inputs.coords_px.detach() if p.one_way else inputs.coords_px
        return equivariance_loss(
            first,
            inputs.second.coords_px,
            p.epsilon_px,
            inputs.in_both,
            inputs.confidence,
            inputs.second.confidence,
            p.min_confidence,
        )


@dataclass
class PcaMultiviewParams:
    epsilon_percentile: float = setting(
        99.0, "margin = this percentile of the labels' own reconstruction error", gt=0, le=100
    )
    epsilon_px: float | None = setting(
        None, "fixed margin in px (overrides epsilon_percentile)", ge=0
    )
    min_confidence: float = setting(
        0.0, "keypoints less confident than this are not counted", ge=0, le=1
    )


@dataclass
class PcaSingleviewParams(PcaMultiviewParams):
    """The margins of the multiview subspace, and how many components the pose subspace has
    (the multiview one is 3-D: a point seen by several cameras)."""

    variance: float = setting(
        0.99, "keep enough PCA components to explain this variance", gt=0, le=1
    )
    components: int | None = setting(
        None, "fixed number of PCA components (overrides variance)", ge=1
    )
    align: str = setting(
        "similarity",
        "what a pose may change at no cost: similarity (position, rotation and size), "
        "translation (position only) or none",
        choices=ALIGNMENTS,
    )


def _keypoints_for_pca(setup: LossSetup) -> list[int]:
    if setup.pca_keypoint_idx is None:
        return list(range(len(setup.keypoints)))
    return list(setup.pca_keypoint_idx)


@register_unsupervised_loss("pca_singleview", params=PcaSingleviewParams, weight=0.003)
class PcaSingleviewLoss(UnsupervisedLoss):
    """Distance of each pose from the labels' pose subspace beyond its margin.

    With separate cameras every image is a pose: one subspace is fitted to every camera's
    labels and holds each camera's predictions."""

    params: PcaSingleviewParams
    gates = (
        "a keypoint counts only when its confidence is >= losses.pca_singleview.min_confidence, "
        "and costs only beyond its margin (losses.pca_singleview.epsilon_percentile of the "
        "labels' own error, or epsilon_px)"
    )

    @classmethod
    def problems(cls, params: PcaSingleviewParams, setup: LossSetup) -> list[str]:
        n_kp = len(_keypoints_for_pca(setup))
        fewest = 3 if params.align == "similarity" else 2
        if n_kp < fewest:
            hint = " (or losses.pca_singleview.align=translation)" if n_kp >= 2 else ""
            where = "the project has" if setup.pca_keypoint_idx is None else "pca_keypoints has"
            return [
                f"pose PCA with align={params.align} needs at least {fewest} keypoints and "
                f"{where} {n_kp}{hint}"
            ]
        if setup.n_train_labels < MIN_PCA_LABELS:
            return [
                f"pose PCA needs at least {MIN_PCA_LABELS} labeled training frames and there "
                f"are {setup.n_train_labels}"
            ]
        return []

    def __init__(self, params: PcaSingleviewParams, setup: LossSetup) -> None:
        super().__init__(params, setup)
        self.pca = fit_pose_pca(
            per_camera(setup.labels_px, setup.n_cameras),
            _keypoints_for_pca(setup),
            variance=params.variance,
            n_components=params.components,
            epsilon_percentile=params.epsilon_percentile,
            epsilon_px=params.epsilon_px,
            align=params.align,
            keypoint_names=setup.keypoints,
        )

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        c = inputs.cameras
        confidence = None if inputs.confidence is None else per_camera(inputs.confidence, c)
        return pca_loss(
            per_camera(inputs.coords_px, c), self.pca, confidence, self.params.min_confidence
        )

    def fitted(self) -> dict[str, Any]:
        return {"pose_pca": self.pca.to_dict()}


@register_unsupervised_loss("pca_multiview", params=PcaMultiviewParams, weight=0.01)
class PcaMultiviewLoss(UnsupervisedLoss):
    """Disagreement between views of matched keypoints (3D subspace) beyond its margin.

    Views are the mirrored parts of one frame (``view_matches``) or separate cameras (every
    keypoint matched across them, at the same instant)."""

    params: PcaMultiviewParams
    gates = (
        "a keypoint counts only when its confidence is >= losses.pca_multiview.min_confidence, "
        "and costs only beyond its margin (losses.pca_multiview.epsilon_percentile of the "
        "labels' own error, or epsilon_px)"
    )

    @classmethod
    def problems(cls, params: PcaMultiviewParams, setup: LossSetup) -> list[str]:
        if setup.view_matches is None or len(setup.view_matches) == 0:
            return [
                "vidpose.yaml has no view_matches (add views and view_matches) and the project "
                "has no separate cameras (one CollectedData_<view>.csv per view)"
            ]
        if setup.n_train_labels < MIN_MULTIVIEW_LABELS:
            return [
                f"multiview PCA needs at least {MIN_MULTIVIEW_LABELS} labeled training frames "
                f"and there are {setup.n_train_labels}"
            ]
        return []

    def __init__(self, params: PcaMultiviewParams, setup: LossSetup) -> None:
        super().__init__(params, setup)
        assert setup.view_matches is not None
        self.pca = fit_multiview_pca(
            setup.labels_px,
            setup.view_matches,
            epsilon_percentile=params.epsilon_percentile,
            epsilon_px=params.epsilon_px,
        )

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        return multiview_pca_loss(
            inputs.coords_px, self.pca, inputs.confidence, self.params.min_confidence
        )

    def fitted(self) -> dict[str, Any]:
        return {"multiview_pca": self.pca.to_dict()}


@register_unsupervised_loss("unimodal", weight=0.1)
class UnimodalLoss(UnsupervisedLoss):
    """KL from a single Gaussian at the prediction to the heatmap (penalises extra peaks)."""

    needs_heatmaps = True
    gates = "a keypoint counts only when its single-peak target lies on the heatmap"

    def __init__(self, params: Any, setup: LossSetup) -> None:
        super().__init__(params, setup)
        self.sigma = setup.heatmap_sigma

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        assert inputs.heatmap_logits is not None and inputs.coords_hm is not None
        return unimodal_loss(inputs.heatmap_logits, inputs.coords_hm, self.sigma)


@dataclass
class ReprojectionParams:
    epsilon_px: float = setting(
        5.0, "reprojection error (px, each camera's frame) below which the loss is 0", ge=0
    )
    min_confidence: float = setting(
        0.5, "cameras less confident than this neither place the 3D point nor count", ge=0, le=1
    )


@register_unsupervised_loss("reprojection", params=ReprojectionParams, weight=0.01)
class ReprojectionLoss(UnsupervisedLoss):
    """Cameras whose predictions no single 3D point explains (needs a calibration).

    Each keypoint is triangulated from its confident cameras (weighted by confidence) and
    projected back; each camera's distance to that projection beyond epsilon_px costs."""

    params: ReprojectionParams
    gates = (
        "a camera's keypoint counts only when its confidence is >= "
        "losses.reprojection.min_confidence and at least two cameras' are, and costs only "
        "beyond losses.reprojection.epsilon_px of reprojection error"
    )

    @classmethod
    def problems(cls, params: ReprojectionParams, setup: LossSetup) -> list[str]:
        if setup.n_cameras < 2:
            return [
                "the project has no separate cameras (one CollectedData_<view>.csv per view "
                "of vidpose.yaml's views)"
            ]
        if setup.calibration is None:
            return [
                "vidpose.yaml names no calibration (add 'calibration: calibration.toml', the "
                "cameras in Anipose's format)"
            ]
        return []

    def __init__(self, params: ReprojectionParams, setup: LossSetup) -> None:
        # imported here: the camera math is needed by multi-camera projects only
        from vidpose.geometry.differentiable import CameraTensors

        super().__init__(params, setup)
        self._cameras = {"cpu": CameraTensors.from_calibration(setup.calibration)}

    def _cameras_on(self, device: torch.device) -> Any:
        # copied once per device, before any CUDA graph capture (the eager warm-up steps)
        key = str(device)
        if key not in self._cameras:
            self._cameras[key] = self._cameras["cpu"].to(device=device)
        return self._cameras[key]

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
        from vidpose.geometry.differentiable import reprojection_consistency_loss

        c = inputs.cameras
        t, ck = inputs.coords_px.shape[:2]
        coords = inputs.coords_px.reshape(t, c, ck // c, 2)
        conf = None if inputs.confidence is None else inputs.confidence.reshape(t, c, ck // c)
        terms = reprojection_consistency_loss(
            coords,
            self._cameras_on(coords.device),
            conf,
            margin_px=self.params.epsilon_px,
            min_confidence=self.params.min_confidence,
        )
        return LossTerms(terms.loss, terms.per_element, terms.count, terms.mask)
