"""Kalman smoothing of triangulated 3D trajectories (``vidpose triangulate --smooth``).

Every world coordinate of every keypoint is a random walk (:mod:`.kalman`) observed through the
triangulated point, in world units::

    x[t] = x[t-1] + w[t],   w[t] ~ N(0, q_k)
    y[t] = x[t]   + v[t],   v[t] ~ N(0, c_k s[t])

``s[t]`` says how much to trust frame t, from the triangulation's mean reprojection error ``e``
(px) over its ``n`` views: their 2n pixel coordinates fit 3 unknowns, so ``n e^2 / (2n - 3)``
estimates that frame's pixel noise variance. Two views leave one degree of freedom, so the
estimate is shrunk towards the keypoint's median with :data:`PRIOR_DOF` pseudo-observations,
then divided by ``n`` (more views, a better point). ``c_k`` turns px^2 into world units^2 (it
absorbs the cameras' distance and focal lengths). Per keypoint (x, y and z sharing them), ``c_k``
and ``q_k`` maximise the marginal likelihood: ``c`` on a grid of half decades below the
variance of the frame-to-frame steps (all noise, an upper bound), and for each ``c`` the
process variance as the singleview ``auto`` smoothing picks it
(:func:`~vidpose.smooth.singleview.select_process_var`), or the given one.

Only frames with a triangulated point get a smoothed one: gaps stay gaps. A table without
reprojection errors (ground truth) weighs every frame alike.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Literal

import numpy as np

from vidpose.io.points3d import Points3D
from vidpose.smooth.kalman import kalman_smooth, log_likelihood
from vidpose.smooth.singleview import _series, select_process_var

PRIOR_DOF = 4.0
"""Pseudo-degrees of freedom of the keypoint's median noise in each frame's estimate."""
SCALE_GRID_LOG10 = np.arange(-4.0, 0.5 + 1e-9, 0.5)
"""Candidate ``c``, log10 of the fraction of the all-noise upper bound."""
_FLOOR_PX2 = 1e-8  # exact inputs have ~0 reprojection error; keep every variance positive


def observation_weights(points: Points3D) -> np.ndarray:
    """(N, K) relative observation variance ``s`` of each point (module docstring), px^2; NaN
    where there is no point."""
    has = np.isfinite(points.points).all(-1)
    if not points.views:
        return np.where(has, 1.0, np.nan)
    n = points.n_views.astype(np.float64)
    dof = np.maximum(2.0 * n - 3.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = n * points.error_px**2 / dof
        frame = np.where(has & (n >= 2), frame, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # keypoints never triangulated
        typical = np.nanmedian(frame, axis=0)
    typical = np.where(np.isfinite(typical), np.maximum(typical, _FLOOR_PX2), 1.0)
    shrunk = (dof * np.nan_to_num(frame, nan=0.0) + PRIOR_DOF * typical) / (dof + PRIOR_DOF)
    return np.where(has, np.maximum(shrunk, _FLOOR_PX2) / np.maximum(n, 2.0), np.nan)


def smooth_points_3d(points: Points3D, smoothing: Literal["auto"] | float = "auto") -> Points3D:
    """Smooth every keypoint's 3D trajectory (module docstring).

    Args:
        points: a triangulated table (:func:`vidpose.geometry.triangulate_tables`).
        smoothing: "auto" (per-keypoint marginal likelihood) or a fixed process noise variance,
            world units^2 per frame (larger follows the data more closely).

    Returns:
        The table with smoothed points where it had points; errors and views as given.
    """
    if not (smoothing == "auto" or (isinstance(smoothing, float | int) and smoothing > 0)):
        raise ValueError(f"smoothing must be 'auto' or a positive number, got {smoothing!r}")
    y = points.points
    n_frames, k, _ = y.shape
    if n_frames < 2:
        return replace(points, points=y.copy())
    s = observation_weights(points)
    r_unit = np.repeat(s[..., None], 3, axis=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        step2 = np.nanmedian(np.diff(y, axis=0) ** 2, axis=(0, 2))
        s_mid = np.nanmedian(s, axis=0)
    upper = np.where(np.isfinite(step2) & (step2 > 0), step2, 1.0) / (
        2.0 * np.where(np.isfinite(s_mid) & (s_mid > 0), s_mid, 1.0)
    )
    best_ll = np.full(k, -np.inf)
    best_c, best_q = np.ones(k), np.ones(k)
    for log_c in SCALE_GRID_LOG10:
        c = upper * 10.0**log_c  # (K,)
        r = r_unit * c[None, :, None]
        q = select_process_var(y, r) if smoothing == "auto" else np.full(k, float(smoothing))
        ll = log_likelihood(_series(y), _series(r), np.repeat(q, 3)[None])[0]
        ll = ll.reshape(k, 3).sum(axis=1)
        better = ll > best_ll
        best_ll[better], best_c[better], best_q[better] = ll[better], c[better], q[better]
    r = r_unit * best_c[None, :, None]
    res = kalman_smooth(_series(y), _series(r), np.repeat(best_q, 3))
    mean = res.mean.reshape(n_frames, k, 3)
    has = np.isfinite(y).all(-1)
    return replace(points, points=np.where(has[..., None], mean, np.nan))
