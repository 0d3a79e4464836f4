"""The singleview ensemble smoother end to end on synthetic ensembles with known truth.

Synthetic ensemble (``_ensemble``): 5 members, 3 keypoints, a ground-truth random walk per
coordinate (process variance ``q_true`` px^2/frame, starting at 200 px); each member adds
independent Gaussian noise of std ``noise_px`` and, on 2% of frame/keypoints, a 40 px outlier.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import ConfigError
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses
from vidpose.smooth import (
    posterior_likelihood,
    run_smooth,
    select_process_var,
    smooth_ensemble,
    smooth_poses,
)

KEYPOINTS = ["nose", "paw", "tail"]


def _ensemble(n=1500, q_true=0.3, noise_px=3.0, members=5, seed=0):
    rng = np.random.default_rng(seed)
    k = len(KEYPOINTS)
    truth = 200.0 + np.cumsum(rng.normal(size=(n, k, 2)) * np.sqrt(q_true), axis=0)
    out = []
    for _ in range(members):
        c = truth + rng.normal(size=truth.shape) * noise_px
        outlier = rng.random((n, k)) < 0.02
        c[outlier] += 40.0
        lik = np.where(outlier, 0.3, 0.9)
        out.append(Poses(coords=c, keypoints=KEYPOINTS, frames=np.arange(n), likelihood=lik))
    return truth, out


def _err(a, truth):
    return np.linalg.norm(a - truth, axis=2)


def test_smoothed_error_below_ensemble_mean_error():
    truth, members = _ensemble()
    mean = np.mean([m.coords for m in members], axis=0)
    out = smooth_poses(members, smoothing="auto")
    e_mean, e_smooth = _err(mean, truth), _err(out.coords, truth)
    assert np.median(e_smooth) < 0.6 * np.median(e_mean)
    assert np.percentile(e_smooth, 95) < np.percentile(e_mean, 95)
    single = _err(members[0].coords, truth)
    assert np.median(e_smooth) < np.median(single)


def test_auto_recovers_known_process_noise():
    # Simulated straight from the model: per-keypoint q, observations with known variance.
    rng = np.random.default_rng(4)
    n, q_true = 3000, np.array([0.05, 1.0, 20.0])
    x = np.cumsum(rng.normal(size=(n, 3, 2)) * np.sqrt(q_true)[None, :, None], axis=0)
    r = rng.uniform(0.5, 4.0, size=(n, 3, 2))
    y = x + rng.normal(size=x.shape) * np.sqrt(r)
    q_hat = select_process_var(y, r)
    assert np.all(q_hat / q_true < 2.0) and np.all(q_hat / q_true > 0.5), q_hat


def test_fixed_smoothing_is_used_and_larger_q_follows_data_more():
    _, members = _ensemble(n=400)
    res_lo = smooth_ensemble(members, smoothing=0.01)
    res_hi = smooth_ensemble(members, smoothing=100.0)
    assert np.all(res_lo.process_var == 0.01)
    centre = res_lo.stats.center
    dev_lo = np.abs(res_lo.poses.coords - centre).mean()
    dev_hi = np.abs(res_hi.poses.coords - centre).mean()
    assert dev_hi < dev_lo
    with pytest.raises(ValueError, match="positive"):
        smooth_poses(members, smoothing=-1.0)


def test_all_members_missing_gap_is_bridged():
    truth, members = _ensemble(n=600)
    for m in members:
        m.coords[300:330, 1] = np.nan
    out = smooth_poses(members, smoothing="auto")
    assert np.isfinite(out.coords).all()
    pv = out.keypoint_columns["x_posterior_var"][:, 1]
    assert pv[315] > 3 * np.median(pv)
    assert (np.diff(pv[299:315]) > 0).all()
    assert np.isnan(out.keypoint_columns["x_ens_median"][300:330, 1]).all()
    # the likelihood drops in the gap: the posterior is less sure there
    assert out.likelihood[315, 1] < np.median(out.likelihood[:, 1])
    assert np.abs(out.coords[300:330, 1] - truth[300:330, 1]).max() < 30.0


def test_posterior_likelihood_is_rayleigh_probability():
    var = np.full((1, 1, 2), 4.0)  # std 2 px
    p = posterior_likelihood(var, radius_px=2.0)
    assert p[0, 0] == pytest.approx(1 - np.exp(-0.5))
    # Monte Carlo: fraction of isotropic Gaussian errors within the radius
    rng = np.random.default_rng(0)
    e = rng.normal(size=(200_000, 2)) * 2.0
    assert np.mean(np.linalg.norm(e, axis=1) < 2.0) == pytest.approx(p[0, 0], abs=0.01)


def test_output_columns_and_csv_round_trip(tmp_path):
    _, members = _ensemble(n=50)
    paths = []
    for i, m in enumerate(members[:3]):
        paths.append(tmp_path / f"m{i}.csv")
        write_poses(m, paths[-1])
    out_path = tmp_path / "smooth.csv"
    out = run_smooth(paths, out_path, smoothing="2.5", mode="singleview")
    assert set(out.keypoint_columns) == {
        "x_ens_median",
        "y_ens_median",
        "x_ens_var",
        "y_ens_var",
        "x_posterior_var",
        "y_posterior_var",
    }
    assert not out.is_labels
    assert ((out.likelihood >= 0) & (out.likelihood <= 1)).all()
    assert read_poses(tmp_path / "smooth_ensemble.csv").equals(out)
    assert not read_poses(out_path).keypoint_columns  # the table movement and others load
    with pytest.raises(ConfigError, match="view_matches"):
        run_smooth(paths, out_path, mode="multiview")
    with pytest.raises(ConfigError, match="--mode"):
        run_smooth(paths, out_path, mode="3d")
    with pytest.raises(ConfigError, match="smoothing"):
        run_smooth(paths, out_path, smoothing="lots")


def test_posterior_variance_is_calibrated():
    # Honest uncertainty: standardised errors of the smoothed output have unit spread, and
    # about 95% of the truth lies within 1.96 posterior standard deviations.
    truth, members = _ensemble(n=1500, seed=1)
    out = smooth_poses(members, smoothing="auto")
    z = (out.coords[..., 0] - truth[..., 0]) / np.sqrt(out.keypoint_columns["x_posterior_var"])
    assert 0.8 < z.std() < 1.25
    assert 0.9 < np.mean(np.abs(z) < 1.96) < 0.99


def test_keypoint_never_predicted_is_nan_with_zero_likelihood():
    _, members = _ensemble(n=30)
    for m in members:
        m.coords[:, 2] = np.nan
    out = smooth_poses(members, smoothing=1.0)
    assert np.isnan(out.coords[:, 2]).all() and (out.likelihood[:, 2] == 0).all()
    assert np.isfinite(out.coords[:, :2]).all()
