"""Robust, confidence-weighted triangulation of 2D keypoints seen by calibrated cameras (numpy).

Each view's pixels are undistorted to normalized coordinates ``(x, y)``; a 3D point ``X`` seen
there satisfies the two linear equations (DLT) ``(x P_3 - P_1) X~ = 0`` and
``(y P_3 - P_2) X~ = 0``, with ``P = [R | t]`` and ``X~ = (X, 1)``. The point minimises
``sum_v c_v |A_v X~|^2`` over the views used, ``c_v`` the confidence: a 3 x 3 linear system per
point (the normal equations), solved for every (frame, keypoint) at once.

Robustness: while some used view reprojects further than ``outlier_px`` from its observation
and more than 2 views are used, the view whose removal leaves the smallest worst reprojection
error is dropped and the point solved again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.geometry.calibration import Calibration

MIN_VIEWS = 2


@dataclass(frozen=True)
class Triangulation:
    """3D points from V views; ``S`` is the shape of the input's (frames, keypoints, ...) axes.

    Attributes:
        points: (*S, 3) float64 world coordinates; NaN where fewer than 2 views were usable.
        error_px: (*S,) mean reprojection error over the views used, px; NaN where no point
            (or it lies behind a camera used).
        view_error_px: (V, *S) reprojection error in every view with an observation, used or
            not, px; NaN where the view has none or the point is behind that camera.
        used: (V, *S) bool, the views the point was solved from (outliers dropped).
    """

    points: np.ndarray
    error_px: np.ndarray
    view_error_px: np.ndarray
    used: np.ndarray


def dlt_basis(extrinsics: np.ndarray) -> np.ndarray:
    """(V, 4, 16) per-view terms of the normal matrix.

    With rows ``x P_3 - P_1`` and ``y P_3 - P_2``, view v adds to ``M = sum_v w_v A_v^T A_v``::

        w (x^2 + y^2) P_3 P_3^T - w x (P_3 P_1^T + P_1 P_3^T) - w y (P_3 P_2^T + P_2 P_3^T)
        + w (P_1 P_1^T + P_2 P_2^T)

    so the 4 x 4 ``M`` of every point is one matrix product of its coefficients
    ``(w (x^2 + y^2), w x, w y, w)`` per view with this basis.
    """
    p1, p2, p3 = extrinsics[:, 0], extrinsics[:, 1], extrinsics[:, 2]

    def outer(a, b):
        return a[:, :, None] * b[:, None, :]

    terms = [
        outer(p3, p3),
        -(outer(p3, p1) + outer(p1, p3)),
        -(outer(p3, p2) + outer(p2, p3)),
        outer(p1, p1) + outer(p2, p2),
    ]
    return np.stack(terms, 1).reshape(len(extrinsics), 4, 16)


def solve_weighted_dlt(
    normalized: np.ndarray, weights: np.ndarray, extrinsics: np.ndarray
) -> np.ndarray:
    """Weighted linear triangulation (module docstring).

    Args:
        normalized: (P, V, 2) undistorted normalized coordinates; ignored where weight is 0.
        weights: (P, V) >= 0; a point needs 2 views of positive weight.
        extrinsics: (V, 3, 4) ``[R | t]`` per view.

    Returns:
        (P, 3) points; NaN where fewer than 2 views have positive weight.
    """
    has = weights > 0
    x = np.where(has, normalized[..., 0], 0.0)
    y = np.where(has, normalized[..., 1], 0.0)
    w = np.where(has, weights, 0.0)
    coef = np.stack([w * (x * x + y * y), w * x, w * y, w], axis=-1)  # (P, V, 4)
    n_points, n_views = w.shape
    m = coef.reshape(n_points, 4 * n_views) @ dlt_basis(extrinsics).reshape(4 * n_views, 16)
    m = m.reshape(n_points, 4, 4)
    ok = has.sum(axis=1) >= MIN_VIEWS
    lhs = np.where(ok[:, None, None], m[:, :3, :3], np.eye(3))
    rhs = np.where(ok[:, None], -m[:, :3, 3], 0.0)
    try:
        out = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a degenerate point (parallel rays): solve one by one
        out = np.stack([_solve_or_nan(a, b) for a, b in zip(lhs, rhs)])
    out[~ok] = np.nan
    return out


def _solve_or_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.full(3, np.nan)


def _reprojection_errors(
    calibration: Calibration, points: np.ndarray, observed_px: np.ndarray
) -> np.ndarray:
    """(P, V) distance between each view's projection of ``points`` (P, 3) and its observation."""
    proj = np.stack([cam.project(points) for cam in calibration.cameras], axis=1)
    return np.linalg.norm(proj - observed_px, axis=-1)


def _worst(errors: np.ndarray, used: np.ndarray) -> np.ndarray:
    """(P,) largest error over the used views; inf when a used view has none (NaN)."""
    bad = np.where(used, np.nan_to_num(errors, nan=np.inf), -np.inf)
    return bad.max(axis=1)


def triangulate(
    calibration: Calibration,
    points_px: np.ndarray,
    confidence: np.ndarray | None = None,
    *,
    outlier_px: float | None = 20.0,
    min_confidence: float = 0.0,
) -> Triangulation:
    """Triangulate keypoints seen by the calibration's cameras.

    Args:
        calibration: V cameras, in the order of ``points_px``'s first axis.
        points_px: (V, *S, 2) pixels in each view (e.g. V pose tables' (frames, keypoints, 2)
            stacked); NaN where a view has no point.
        confidence: (V, *S) weights of the views (likelihoods); None weighs all views equally.
            Views with confidence below ``min_confidence``, or not positive, are not used.
        outlier_px: drop views reprojecting further than this (while more than 2 remain);
            None keeps every usable view.
        min_confidence: see ``confidence``.

    Returns:
        The points, their reprojection errors and the views used (:class:`Triangulation`).
    """
    points_px = np.asarray(points_px, dtype=np.float64)
    n_views = len(calibration)
    if points_px.shape[0] != n_views or points_px.shape[-1] != 2:
        raise ValueError(
            f"points_px must be (V={n_views}, ..., 2) for cameras {calibration.names}, "
            f"got {points_px.shape}"
        )
    shape = points_px.shape[1:-1]
    obs = np.moveaxis(points_px.reshape(n_views, -1, 2), 0, 1)  # (P, V, 2)
    if confidence is None:
        conf = np.ones(obs.shape[:2])
    else:
        conf = np.moveaxis(np.asarray(confidence, dtype=np.float64).reshape(n_views, -1), 0, 1)
    normalized = np.stack(
        [cam.normalized_from_pixels(obs[:, v]) for v, cam in enumerate(calibration.cameras)],
        axis=1,
    )
    usable = np.isfinite(normalized).all(-1) & (conf >= min_confidence) & (conf > 0)
    weights = np.where(usable, conf, 0.0)
    extrinsics = np.stack([cam.extrinsics for cam in calibration.cameras])

    used = usable.copy()
    points = solve_weighted_dlt(normalized, weights, extrinsics)
    errors = _reprojection_errors(calibration, points, obs)
    if outlier_px is not None:
        for _ in range(n_views - MIN_VIEWS):
            todo = np.flatnonzero((used.sum(1) > MIN_VIEWS) & (_worst(errors, used) > outlier_px))
            if len(todo) == 0:
                break
            best_score = np.full(len(todo), np.inf)
            best_drop = np.full(len(todo), -1)
            for v in range(n_views):  # leave each used view out in turn
                trial = used[todo].copy()
                trial[:, v] = False
                pts = solve_weighted_dlt(
                    normalized[todo], np.where(trial, weights[todo], 0.0), extrinsics
                )
                score = _worst(_reprojection_errors(calibration, pts, obs[todo]), trial)
                score[~used[todo, v]] = np.inf
                better = score < best_score
                best_score[better], best_drop[better] = score[better], v
            todo, drop = todo[best_drop >= 0], best_drop[best_drop >= 0]
            used[todo, drop] = False
            points[todo] = solve_weighted_dlt(
                normalized[todo], np.where(used[todo], weights[todo], 0.0), extrinsics
            )
            errors[todo] = _reprojection_errors(calibration, points[todo], obs[todo])

    has_point = np.isfinite(points).all(-1)
    used &= has_point[:, None]
    with np.errstate(invalid="ignore"):
        mean_err = np.where(used, errors, 0.0).sum(1) / used.sum(1)
    mean_err[~has_point] = np.nan
    return Triangulation(
        points=points.reshape(*shape, 3),
        error_px=mean_err.reshape(shape),
        view_error_px=np.moveaxis(errors, 1, 0).reshape(n_views, *shape),
        used=np.moveaxis(used, 1, 0).reshape(n_views, *shape),
    )
