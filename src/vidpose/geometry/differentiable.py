"""Camera math in torch, differentiable, and the multi-camera reprojection-consistency loss.

The same model as :mod:`vidpose.geometry.camera` (the distortion formulas are shared), for V
cameras at once, views first: ``(V, ..., 2)``. Nothing here reads a tensor back to the host or
branches on data (fixed Newton iterations, ``torch.linalg.solve_ex``, masks instead of boolean
indexing), so that a training step using it can be captured as a CUDA graph (not yet tried on
a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vidpose.geometry import camera as cm
from vidpose.geometry.calibration import Calibration

UNDISTORT_ITERATIONS = 8
MIN_DEPTH = 1e-6  # world units: depth a projection is clamped to (a point behind the camera)
MAX_SLOPE = 10.0  # |x / z|, |y / z| a projection is clamped to (84 deg off-axis): keeps the
# lens polynomial finite for points far outside (or behind) a camera's view


@dataclass(frozen=True)
class CameraTensors:
    """V cameras as tensors on one device.

    Attributes:
        matrix: (V, 3, 3) intrinsics.
        distortion: (V, 5) ``(k1, k2, p1, p2, k3)``.
        rotation: (V, 3, 3) world -> camera rotations.
        translation: (V, 3) world -> camera translations.
    """

    matrix: Tensor
    distortion: Tensor
    rotation: Tensor
    translation: Tensor

    @classmethod
    def from_calibration(
        cls,
        calibration: Calibration,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> CameraTensors:
        """The calibration's cameras, in its order; build them once on the training device."""

        def t(arrays: list[np.ndarray]) -> Tensor:
            return torch.from_numpy(np.stack(arrays)).to(device=device, dtype=dtype)

        cams = calibration.cameras
        return cls(
            matrix=t([c.matrix for c in cams]),
            distortion=t([c.distortion for c in cams]),
            rotation=t([c.rotation_matrix for c in cams]),
            translation=t([c.translation for c in cams]),
        )

    @classmethod
    def from_params(
        cls, matrix: Tensor, distortion: Tensor, rvec: Tensor, translation: Tensor
    ) -> CameraTensors:
        """From Rodrigues vectors (V, 3), differentiably (e.g. to refine a calibration)."""
        return cls(matrix, distortion, rodrigues(rvec), translation)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        return CameraTensors(
            *(
                x.to(device=device, dtype=dtype)
                for x in (self.matrix, self.distortion, self.rotation, self.translation)
            )
        )

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def _coeffs(self, ndim: int) -> tuple[Tensor, ...]:
        """Distortion coefficients shaped (V, 1, ..., 1) to broadcast over ``ndim`` - 1 axes."""
        d = self.distortion.reshape(len(self), *([1] * (ndim - 1)), cm.N_DISTORTION)
        return tuple(d[..., i] for i in range(cm.N_DISTORTION))


def rodrigues(rvec: Tensor) -> Tensor:
    """(..., 3) Rodrigues vectors -> (..., 3, 3) rotations; finite gradients at 0."""
    t2 = (rvec * rvec).sum(-1)[..., None, None]
    small = t2 < 1e-6
    t = torch.where(small, torch.ones_like(t2), t2).sqrt()
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, 0.5 * (torch.sin(t / 2) / (t / 2)) ** 2)
    zero = torch.zeros_like(rvec[..., 0])
    x, y, z = rvec.unbind(-1)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rvec.dtype, device=rvec.device)
    return eye + a * k + b * (k @ k)


def project(points: Tensor, cameras: CameraTensors, min_depth: float = MIN_DEPTH) -> Tensor:
    """(..., 3) world points -> (V, ..., 2) pixels in every camera.

    Depth is clamped to ``min_depth`` and the ray's slope to :data:`MAX_SLOPE`, so a point
    behind a camera or far outside its view projects far away but finite (no NaN can reach a
    gradient through the lens polynomial).
    """
    shape = points.shape[:-1]
    flat = points.reshape(-1, 3)
    cam = camera_space(flat, cameras)
    z = cam[..., 2].clamp_min(min_depth)
    x = (cam[..., 0] / z).clamp(-MAX_SLOPE, MAX_SLOPE)
    y = (cam[..., 1] / z).clamp(-MAX_SLOPE, MAX_SLOPE)
    xd, yd = cm.distort_xy(x, y, cameras._coeffs(2))
    k = cameras.matrix[:, None]  # (V, 1, 3, 3)
    u = k[..., 0, 0] * xd + k[..., 0, 1] * yd + k[..., 0, 2]
    v = k[..., 1, 0] * xd + k[..., 1, 1] * yd + k[..., 1, 2]
    return torch.stack([u, v], -1).reshape(len(cameras), *shape, 2)


def camera_space(points: Tensor, cameras: CameraTensors) -> Tensor:
    """(N, 3) world points -> (V, N, 3) in each camera's frame (z: depth along its axis)."""
    return torch.einsum("vij,nj->vni", cameras.rotation, points) + cameras.translation[:, None]


def normalize(
    points_px: Tensor, cameras: CameraTensors, iterations: int = UNDISTORT_ITERATIONS
) -> Tensor:
    """(V, ..., 2) pixels -> (V, ..., 2) undistorted normalized coordinates.

    Newton's method runs without a graph; one last step with it gives the exact gradient of the
    converged inverse (``J^-1`` with respect to the pixels, by the implicit function theorem).
    """
    k = cameras.matrix.reshape(len(cameras), *([1] * (points_px.ndim - 2)), 3, 3)
    du = points_px[..., 0] - k[..., 0, 2]
    dv = points_px[..., 1] - k[..., 1, 2]
    det = k[..., 0, 0] * k[..., 1, 1] - k[..., 0, 1] * k[..., 1, 0]
    xd = (k[..., 1, 1] * du - k[..., 0, 1] * dv) / det
    yd = (k[..., 0, 0] * dv - k[..., 1, 0] * du) / det
    coeffs = cameras._coeffs(points_px.ndim - 1)
    with torch.no_grad():
        x, y = xd.detach(), yd.detach()
        c0 = tuple(c.detach() for c in coeffs)
        for _ in range(iterations):
            x, y, _, _ = cm.newton_step(x, y, xd.detach(), yd.detach(), c0)
    x, y, _, _ = cm.newton_step(x, y, xd, yd, coeffs)
    return torch.stack([x, y], -1)


def triangulate(
    normalized: Tensor, weights: Tensor, cameras: CameraTensors, valid: Tensor | None = None
) -> Tensor:
    """Weighted linear triangulation (:mod:`vidpose.geometry.triangulate`), differentiable.

    Args:
        normalized: (V, ..., 2) undistorted normalized coordinates; must be finite.
        weights: (V, ...) >= 0, 0 for a view not to use.
        cameras: the V cameras.
        valid: (...) bool, points with at least 2 views of positive weight; others get a
            placeholder solution (0, 0, 0) so that no NaN reaches the gradients. Computed from
            ``weights`` when None.

    Returns:
        (..., 3) world points.
    """
    n_views = len(cameras)
    shape = normalized.shape[1:-1]
    x, y = normalized.reshape(n_views, -1, 2).unbind(-1)  # (V, P)
    w = weights.reshape(n_views, -1)
    coef = torch.stack([w * (x * x + y * y), w * x, w * y, w], -1)  # (V, P, 4)
    ext = torch.cat([cameras.rotation, cameras.translation[..., None]], -1)  # (V, 3, 4)
    m = coef.transpose(0, 1).reshape(-1, 4 * n_views) @ _dlt_basis(ext).reshape(4 * n_views, 16)
    m = m.reshape(-1, 4, 4)
    ok = (w > 0).sum(0) >= 2 if valid is None else valid.reshape(-1)
    eye = torch.eye(3, dtype=m.dtype, device=m.device)
    lhs = torch.where(ok[:, None, None], m[:, :3, :3], eye)
    rhs = torch.where(ok[:, None], -m[:, :3, 3], 0.0)
    sol, _ = torch.linalg.solve_ex(lhs, rhs)
    return sol.reshape(*shape, 3)


def _dlt_basis(ext: Tensor) -> Tensor:
    """(V, 4, 16): :func:`vidpose.geometry.triangulate.dlt_basis` in torch."""
    p1, p2, p3 = ext[:, 0], ext[:, 1], ext[:, 2]

    def outer(a: Tensor, b: Tensor) -> Tensor:
        return a[:, :, None] * b[:, None, :]

    terms = [
        outer(p3, p3),
        -(outer(p3, p1) + outer(p1, p3)),
        -(outer(p3, p2) + outer(p2, p3)),
        outer(p1, p1) + outer(p2, p2),
    ]
    return torch.stack(terms, 1).reshape(ext.shape[0], 4, 16)


def _safe_norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last axis with gradient 0 (not NaN) at the zero vector."""
    sq = (v * v).sum(-1)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), 0.0)


@dataclass
class ReprojectionTerms:
    """The reprojection-consistency loss on a batch.

    Attributes:
        loss: scalar, mean of ``per_element`` over ``mask`` (0 with a graph when none count).
        per_element: (B, V, K) ``ReLU(error_px - margin_px)``; 0 where not counted.
        mask: (B, V, K) bool, counted: a confident view of a point with >= 2 confident views
            that triangulates in front of every one of them (a point behind a camera comes
            from predictions too far apart to say which is wrong: not counted).
        count: 0-dim int64, ``mask.sum()`` (a tensor: no host sync).
        points: (B, K, 3) triangulated world points ((0, 0, 0) where fewer than 2 views).
        error_px: (B, V, K) reprojection error of every view's prediction, px, without a graph;
            NaN where a prediction is not finite.
    """

    loss: Tensor
    per_element: Tensor
    mask: Tensor
    count: Tensor
    points: Tensor
    error_px: Tensor


def reprojection_consistency_loss(
    coords_px: Tensor,
    cameras: CameraTensors,
    confidence: Tensor | None = None,
    *,
    margin_px: float = 5.0,
    min_confidence: float = 0.5,
) -> ReprojectionTerms:
    """Penalise per-view predictions that no single 3D point explains.

    Each keypoint is triangulated from its confident views (weighted by confidence), projected
    back into them, and every confident view's distance to that projection beyond
    ``margin_px`` costs ``ReLU(error - margin_px)`` px. Gradients flow to the coordinates
    through the triangulation; confidences only weigh the views (detached), so a network cannot
    lower the loss by lowering its confidence. Computed in float32 at least (float64 kept).

    Args:
        coords_px: (B, V, K, 2) predictions in original-frame pixels of each view.
        cameras: the V cameras, in the order of ``coords_px``'s views.
        confidence: (B, V, K) in [0, 1]; None trusts every view.
        margin_px: errors up to this are free; >= 0.
        min_confidence: views below it (or with non-finite coordinates) are not used.
    """
    if margin_px < 0:
        raise ValueError(f"margin_px must be >= 0, got {margin_px}")
    dtype = torch.promote_types(coords_px.dtype, torch.float32)
    device_type = coords_px.device.type
    with torch.autocast(device_type, enabled=False):
        cams = cameras.to(device=coords_px.device, dtype=dtype)
        pts = coords_px.to(dtype).transpose(0, 1)  # (V, B, K, 2)
        finite = torch.isfinite(pts).all(-1)
        if confidence is None:
            conf = finite.to(dtype)
        else:
            conf = confidence.detach().to(dtype).transpose(0, 1)
        confident = finite & (conf >= min_confidence) & (conf > 0)
        weights = torch.where(confident, conf, 0.0)
        safe = torch.where(confident[..., None], pts, 0.0)
        enough = confident.sum(0) >= 2  # (B, K)
        points = triangulate(normalize(safe, cams), weights, cams, valid=enough)
        proj = project(points, cams)  # (V, B, K, 2)
        # against ``safe``: a NaN prediction must not reach the backward pass, even masked
        error = _safe_norm(proj - safe).transpose(0, 1)
        depth = camera_space(points.detach().reshape(-1, 3), cams)[..., 2]
        in_front = ((depth.reshape(confident.shape) > MIN_DEPTH) | ~confident).all(0)
        mask = (confident & enough & in_front).transpose(0, 1)
        per = torch.where(mask, torch.relu(error - margin_px), 0.0)
        count = mask.sum()
        loss = per.sum() / count.clamp_min(1)
        with torch.no_grad():
            error_px = torch.linalg.vector_norm(proj - pts, dim=-1).transpose(0, 1)
    return ReprojectionTerms(loss, per, mask, count, points, error_px)
