"""Multiview smoothing on a synthetic two-view ensemble with a known 3-D trajectory.

Two orthographic views of 2 body parts: view "top" sees (X, Y) + (50, 0) px and view "side"
sees (X, Z) + (400, 0) px, so the x coordinates of the two views must differ by exactly 350 px.
The 3-D points follow random walks (variance 0.3 px^2/frame per axis); 4 members add 3 px
Gaussian noise independently per view. Labels: the noise-free truth on 60 evenly spaced frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import ConfigError
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses
from vidpose.smooth import multiview, run_smooth, smooth_poses
from vidpose.smooth.multiview import (
    fit_view_subspaces,
    multiview_kalman_smooth,
    smooth_multiview,
)

KEYPOINTS = ["nose_top", "paw_top", "nose_side", "paw_side", "tail"]
MATCHES = [["nose_top", "nose_side"], ["paw_top", "paw_side"]]


def _scene(n=800, seed=0):
    rng = np.random.default_rng(seed)
    xyz = 200.0 + np.cumsum(rng.normal(size=(n, 2, 3)) * np.sqrt(0.3), axis=0)
    truth = np.empty((n, 5, 2))
    truth[:, 0:2] = xyz[..., [0, 1]] + [50.0, 0.0]
    truth[:, 2:4] = xyz[..., [0, 2]] + [400.0, 0.0]
    truth[:, 4] = 100.0 + np.cumsum(rng.normal(size=(n, 2)), axis=0)
    members = []
    for _ in range(4):
        c = truth + rng.normal(size=truth.shape) * 3.0
        members.append(
            Poses(coords=c, keypoints=KEYPOINTS, frames=np.arange(n), likelihood=np.ones((n, 5)))
        )
    rows = np.linspace(0, n - 1, 60).astype(int)
    labels = Poses(coords=truth[rows], keypoints=KEYPOINTS, frames=rows)
    return truth, members, labels


def _disagreement(coords):
    """Mean |x_top - (x_side - 350)| over frames and body parts, px."""
    return np.abs(coords[:, 0:2, 0] - (coords[:, 2:4, 0] - 350.0)).mean()


def test_multiview_reduces_cross_view_disagreement_and_error():
    truth, members, labels = _scene()
    single = smooth_poses(members, smoothing="auto")
    multi = smooth_multiview(members, MATCHES, labels=labels, smoothing="auto").poses
    assert _disagreement(multi.coords) < 0.2 * _disagreement(single.coords)
    err_single = np.linalg.norm(single.coords[:, :4] - truth[:, :4], axis=2).mean()
    err_multi = np.linalg.norm(multi.coords[:, :4] - truth[:, :4], axis=2).mean()
    assert err_multi < err_single
    # the unmatched keypoint is smoothed singleview, unchanged
    np.testing.assert_allclose(multi.coords[:, 4], single.coords[:, 4])
    # without labels, the subspace comes from the ensemble centre and still helps
    auto_fit = smooth_multiview(members, MATCHES, smoothing="auto").poses
    assert _disagreement(auto_fit.coords) < 0.5 * _disagreement(single.coords)


def test_view_lost_in_one_camera_is_filled_from_the_other():
    truth, members, labels = _scene(n=300)
    for m in members:
        m.coords[100:140, 2] = np.nan  # nose invisible in the side view
    out = smooth_multiview(members, MATCHES, labels=labels, smoothing=0.3).poses
    assert np.isfinite(out.coords).all()
    # x of the side view is pinned by the top view (shared X): error stays small
    assert np.abs(out.coords[100:140, 2, 0] - truth[100:140, 2, 0]).max() < 5.0
    # y of the side view (Z) is unseen: its posterior variance grows inside the gap
    pv_y = out.keypoint_columns["y_posterior_var"][:, 2]
    assert pv_y[120] > 3 * pv_y[50]


def test_bad_matches_are_config_errors():
    _, members, _ = _scene(n=20)
    with pytest.raises(ConfigError, match="not in the predictions"):
        smooth_multiview(members, [["nose_top", "ear_side"]], smoothing=1.0)
    with pytest.raises(ConfigError, match="more than one place"):
        smooth_multiview(
            members, [["nose_top", "nose_side"], ["nose_top", "paw_side"]], smoothing=1.0
        )


def _reference_multiview(y, r, mean, a, q, prior_var):
    """Covariance-form Kalman filter + RTS for one body part, frame by frame, dropping the
    missing rows of the observation (y (N, D), r (N, D), mean (D,), a (D, L), q scalar)."""
    n, dim = len(y), a.shape[1]
    m, p = np.zeros(dim), np.eye(dim) * prior_var - q * np.eye(dim)
    mf, pf, pp_all = np.zeros((n, dim)), np.zeros((n, dim, dim)), np.zeros((n, dim, dim))
    for t in range(n):
        pp = p + q * np.eye(dim)
        obs = np.isfinite(y[t])
        h = a[obs]
        s = h @ pp @ h.T + np.diag(r[t, obs])
        k = pp @ h.T @ np.linalg.inv(s)
        m = m + k @ (y[t, obs] - mean[obs] - h @ m)
        p = (np.eye(dim) - k @ h) @ pp
        mf[t], pf[t], pp_all[t] = m, p, pp
    ms, ps = mf.copy(), pf.copy()
    for t in range(n - 2, -1, -1):
        g = pf[t] @ np.linalg.inv(pp_all[t + 1])
        ms[t] = mf[t] + g @ (ms[t + 1] - mf[t])
        ps[t] = pf[t] + g @ (ps[t + 1] - pp_all[t + 1]) @ g.T
    return mean + ms @ a.T, np.einsum("dl,nlm,dm->nd", a, ps, a)


def test_information_form_matches_covariance_form_reference(monkeypatch):
    # The textbook covariance form loses ~3 digits to cancellation under the package's 1e8 px^2
    # diffuse prior (the information form does not); compare both under a 1e4 px^2 prior.
    monkeypatch.setattr(multiview, "DIFFUSE_VAR", 1e4)
    _, members, labels = _scene(n=40, seed=3)
    c = members[0].coords
    c[5:9, 2] = np.nan
    matches = np.array([[0, 2], [1, 3]])
    sub = fit_view_subspaces(labels.coords, matches)
    y = c[:, matches].reshape(40, 2, 4)
    r = np.random.default_rng(0).uniform(1.0, 9.0, size=y.shape)
    q = np.array([0.3, 2.0])
    out, var = multiview_kalman_smooth(y, r, sub, q)
    for j in range(2):
        ref_out, ref_var = _reference_multiview(
            y[:, j], r[:, j], sub.mean[j], sub.components[j], q[j], prior_var=1e4
        )
        np.testing.assert_allclose(out[:, j], ref_out, atol=1e-6)
        np.testing.assert_allclose(var[:, j], ref_var, atol=1e-6)


def test_run_smooth_multiview_from_files(tmp_path):
    _, members, labels = _scene(n=120)
    paths = []
    for i, m in enumerate(members):
        paths.append(tmp_path / f"m{i}.csv")
        write_poses(m, paths[-1])
    write_poses(labels.select_frames(np.arange(60)), tmp_path / "CollectedData.csv")
    out = run_smooth(
        paths,
        tmp_path / "out.csv",
        smoothing="auto",
        mode="multiview",
        view_matches=MATCHES,
        labels=tmp_path / "CollectedData.csv",
    )
    assert read_poses(tmp_path / "out_ensemble.csv").equals(out)  # with the statistics
    plain = read_poses(tmp_path / "out.csv")
    assert not plain.keypoint_columns and np.array_equal(plain.coords, out.coords, equal_nan=True)
    single = smooth_poses(members)
    assert _disagreement(out.coords) < 0.2 * _disagreement(single.coords)
