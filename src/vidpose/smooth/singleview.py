"""Singleview ensemble Kalman smoother: ensemble statistics -> random-walk RTS smoother.

Every keypoint coordinate is an independent random-walk series (see :mod:`.kalman` for the
model and why) observed through the ensemble centre with noise variance equal to the ensemble's
confidence-aware variance (see :mod:`.ensemble`). x and y of one keypoint share their process
noise ``q`` (px^2 per frame).

``smoothing="auto"`` picks ``q`` per keypoint by maximising the log marginal likelihood of the
observations (summed over x and y): one forward pass evaluates a grid of 17 values, half a
decade apart, spanning 10^-6 .. 10^2 times the keypoint's median squared frame-to-frame step,
all as an extra batch dimension; a parabola through the best grid point and its neighbours (in
log q) refines it. A float fixes ``q`` for every keypoint.

The output ``likelihood`` is the posterior probability that the true position lies within
``likelihood_radius_px`` of the smoothed one: with
``s2 = (x_posterior_var + y_posterior_var) / 2`` the 2-D error is treated as isotropic
Gaussian, whose radius is Rayleigh distributed, so
``likelihood = 1 - exp(-radius^2 / (2 s2))``. It is 0.5 when the posterior std is
``radius / 1.18``, and falls towards 0 inside long gaps as the posterior variance grows. A
keypoint that no member predicted on any frame has NaN coordinates and likelihood 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidpose.io.poses import Poses
from vidpose.smooth.ensemble import EnsembleStats, align_members, ensemble_stats
from vidpose.smooth.kalman import kalman_smooth, log_likelihood

GRID_LOG10 = np.arange(-6.0, 2.0 + 1e-9, 0.5)  # candidate q / median squared step, log10
SCORER = "vidpose_eks"


@dataclass(eq=False)
class SmoothedEnsemble:
    """What the smoother produced, beyond the output table.

    Attributes:
        poses: the smoothed predictions (see :func:`smooth_poses`).
        process_var: (K,) float64 process noise variance used per keypoint, px^2 per frame.
        stats: the ensemble statistics the smoother observed.
        loglik: (K,) float64 log marginal likelihood per keypoint at ``process_var`` (nats).
    """

    poses: Poses
    process_var: np.ndarray
    stats: EnsembleStats
    loglik: np.ndarray


def _series(a: np.ndarray) -> np.ndarray:
    """(N, K, C) -> (N, CK) time-major series, coordinate c of keypoint k at column Ck + c."""
    return np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1] * a.shape[2]))


def select_process_var(y: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-keypoint process variance maximising the marginal likelihood.

    Args:
        y: (N, K, C) observations (C coordinates sharing a variance: x, y in px, or x, y, z
            in world units); NaN where missing.
        r: (N, K, C) observation variances, in y's units squared.

    Returns:
        (K,) process noise variance per frame, in y's units squared.
    """
    n, k, c = y.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # keypoints never observed
        step2 = np.nanmedian(np.diff(y, axis=0) ** 2, axis=(0, 2)) if n > 1 else np.ones(k)
    step2 = np.where(np.isfinite(step2) & (step2 > 0), step2, 1.0)
    log_q = np.log10(step2)[None, :] + GRID_LOG10[:, None]  # (G, K)
    q = np.repeat(10.0**log_q, c, axis=1)  # (G, CK)
    ll = log_likelihood(_series(y), _series(r), q)
    ll = ll.reshape(len(GRID_LOG10), k, c).sum(axis=2)  # (G, K)
    best = ll.argmax(axis=0)
    # Parabolic refinement in log q around interior maxima; edges keep the grid value.
    inner = np.clip(best, 1, len(GRID_LOG10) - 2)
    cols = np.arange(k)
    lo, mid, hi = ll[inner - 1, cols], ll[inner, cols], ll[inner + 1, cols]
    curv = lo - 2.0 * mid + hi
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curv < 0, 0.5 * (lo - hi) / curv, 0.0)
    step = GRID_LOG10[1] - GRID_LOG10[0]
    interior = (best == inner) & np.isfinite(shift)
    refined = log_q[inner, cols] + np.clip(shift, -0.5, 0.5) * step
    chosen = np.where(interior, refined, log_q[best, cols])
    return 10.0**chosen


def posterior_likelihood(post_var: np.ndarray, radius_px: float) -> np.ndarray:
    """Probability that the truth lies within ``radius_px`` of the estimate (module docstring).

    Args:
        post_var: (N, K, 2) posterior variances, px^2.
        radius_px: the radius, px.

    Returns:
        (N, K) float64 in [0, 1].
    """
    s2 = post_var.mean(axis=2)
    with np.errstate(divide="ignore"):
        return -np.expm1(-(radius_px**2) / (2.0 * s2))


def smooth_ensemble(
    poses_list: Sequence[Poses],
    smoothing: Literal["auto"] | float = "auto",
    center: Literal["median", "mean"] = "median",
    min_likelihood: float = 0.0,
    likelihood_radius_px: float = 5.0,
) -> SmoothedEnsemble:
    """Ensemble M predictions of one video and smooth them (module docstring).

    Args:
        poses_list: M predictions of the same frames and keypoints (any tool's layout).
        smoothing: "auto" (per-keypoint marginal likelihood) or a fixed process noise
            variance, px^2 per frame (larger = follows the data more closely).
        center: ensemble centre, "median" or "mean".
        min_likelihood: member predictions below this likelihood count as missing.
        likelihood_radius_px: radius for the output likelihood (module docstring), px.
    """
    members = align_members(poses_list)
    stats = ensemble_stats(members, center=center, min_likelihood=min_likelihood)
    n, k, _ = stats.center.shape
    if isinstance(smoothing, str):
        if smoothing != "auto":
            raise ValueError(f"smoothing must be 'auto' or a positive number, got {smoothing!r}")
        q_k = select_process_var(stats.center, stats.variance)
    else:
        if not smoothing > 0:
            raise ValueError(f"smoothing must be a positive number (px^2/frame), got {smoothing}")
        q_k = np.full(k, float(smoothing))
    res = kalman_smooth(_series(stats.center), _series(stats.variance), np.repeat(q_k, 2))
    mean = res.mean.reshape(n, k, 2)
    var = res.var.reshape(n, k, 2)
    loglik = res.loglik.reshape(k, 2).sum(axis=1)
    # A keypoint no member ever saw has no estimate at all, only the diffuse prior.
    never = (stats.n_valid == 0).all(axis=0)
    mean[:, never] = np.nan
    var[:, never] = np.nan
    ref = members[0]
    # Named as Lightning Pose and the ensemble-kalman-smoother package name them.
    columns = {
        f"x_ens_{center}": stats.center[..., 0],
        f"y_ens_{center}": stats.center[..., 1],
        "x_ens_var": stats.variance[..., 0],
        "y_ens_var": stats.variance[..., 1],
        "x_posterior_var": var[..., 0],
        "y_posterior_var": var[..., 1],
    }
    poses = Poses(
        coords=mean,
        keypoints=list(ref.keypoints),
        frames=ref.frames.copy(),
        likelihood=np.nan_to_num(posterior_likelihood(var, likelihood_radius_px), nan=0.0),
        scorer=SCORER,
        is_labels=False,
        keypoint_columns=columns,
    )
    return SmoothedEnsemble(poses=poses, process_var=q_k, stats=stats, loglik=loglik)


def smooth_poses(
    poses_list: Sequence[Poses],
    smoothing: Literal["auto"] | float = "auto",
    center: Literal["median", "mean"] = "median",
    min_likelihood: float = 0.0,
    likelihood_radius_px: float = 5.0,
) -> Poses:
    """Smoothed predictions of an ensemble, as a :class:`Poses` (see :func:`smooth_ensemble`).

    Returns:
        Poses with ``coords`` = posterior mean (N, K, 2) px, ``likelihood`` = probability of
        being within ``likelihood_radius_px`` of the truth, and ``keypoint_columns``
        ``x/y_ens_<center>`` (px), ``x/y_ens_var`` and ``x/y_posterior_var`` (px^2), as
        Lightning Pose and the ensemble-kalman-smoother package name them.
    """
    return smooth_ensemble(
        poses_list,
        smoothing=smoothing,
        center=center,
        min_likelihood=min_likelihood,
        likelihood_radius_px=likelihood_radius_px,
    ).poses
