"""Ensembles of predictions and the ensemble Kalman smoother.

Public API::

    ensemble_stats(poses_list, center="median", min_likelihood=0.0) -> EnsembleStats
    smooth_poses(poses_list, smoothing="auto" | float, center="median") -> Poses
    smooth_ensemble(...) -> SmoothedEnsemble      # the Poses plus q per keypoint, stats
    kalman_smooth(y (N, B), r (N, B), q) -> KalmanResult(mean, var, loglik)
    smooth_multiview(poses_list, view_matches, labels=None, smoothing="auto") -> SmoothedEnsemble
    run_smooth(paths, out, smoothing="auto", mode="singleview"|"multiview",
               view_matches=None, labels=None) -> Poses                    # for the CLI
    smooth_points_3d(points3d, smoothing="auto") -> Points3D  # triangulated 3D trajectories

Modules: :mod:`.ensemble` (centre and confidence-aware variance), :mod:`.kalman` (vectorised
random-walk filter / RTS smoother and marginal likelihood), :mod:`.singleview` (the smoother
and ``auto`` smoothing), :mod:`.multiview` (views share a 3-D latent per body part),
:mod:`.points3d` (triangulated 3D tables), :mod:`.run` (files in, file out).
"""

from vidpose.smooth.ensemble import EnsembleStats, align_members, ensemble_stats
from vidpose.smooth.kalman import KalmanResult, kalman_smooth, log_likelihood
from vidpose.smooth.multiview import (
    ViewSubspaces,
    fit_view_subspaces,
    multiview_kalman_smooth,
    smooth_multiview,
)
from vidpose.smooth.points3d import smooth_points_3d
from vidpose.smooth.run import parse_smoothing, run_smooth
from vidpose.smooth.singleview import (
    SmoothedEnsemble,
    posterior_likelihood,
    select_process_var,
    smooth_ensemble,
    smooth_poses,
)

__all__ = [
    "EnsembleStats",
    "KalmanResult",
    "SmoothedEnsemble",
    "ViewSubspaces",
    "align_members",
    "ensemble_stats",
    "fit_view_subspaces",
    "kalman_smooth",
    "log_likelihood",
    "multiview_kalman_smooth",
    "parse_smoothing",
    "posterior_likelihood",
    "run_smooth",
    "select_process_var",
    "smooth_ensemble",
    "smooth_multiview",
    "smooth_points_3d",
    "smooth_poses",
]
