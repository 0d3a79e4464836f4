"""Ensemble centre and confidence-aware variance; member alignment errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vidpose.errors import LabelsError
from vidpose.io.poses import Poses
from vidpose.smooth import ensemble
from vidpose.smooth.ensemble import align_members, ensemble_stats


def _member(coords, lik=None, keypoints=("a", "b"), frames=None) -> Poses:
    coords = np.asarray(coords, dtype=float)
    n, k = coords.shape[:2]
    lik = np.ones((n, k)) if lik is None else np.asarray(lik, dtype=float)
    frames = np.arange(n) if frames is None else frames
    return Poses(coords=coords, keypoints=list(keypoints), frames=frames, likelihood=lik)


def test_median_variance_and_nan_members():
    # 3 members, 2 frames, 2 keypoints. Frame 0: members at x = 0, 2, 10 for keypoint a.
    c = np.zeros((3, 2, 2, 2))
    c[:, 0, 0, 0] = [0.0, 2.0, 10.0]
    c[2, 1, 1] = np.nan  # member 2 lost keypoint b on frame 1
    c[:, 1, 0] = np.nan  # every member lost keypoint a on frame 1
    st = ensemble_stats([_member(m) for m in c], center="median", var_floor_px2=0.25)
    assert st.center[0, 0, 0] == 2.0
    assert st.spread[0, 0, 0] == pytest.approx(np.var([0.0, 2.0, 10.0]))
    assert st.variance[0, 0, 0] == pytest.approx(np.var([0.0, 2.0, 10.0]))
    assert st.variance[0, 0, 1] == 0.25  # members agree exactly: the floor
    assert st.n_valid.tolist() == [[3, 3], [0, 2]]
    assert np.isnan(st.center[1, 0]).all() and np.isnan(st.variance[1, 0]).all()
    # one of three members missing: variance inflated by 3 / 2
    assert st.variance[1, 1, 0] == pytest.approx(0.25 * 1.5)
    st_mean = ensemble_stats([_member(m) for m in c], center="mean")
    assert st_mean.center[0, 0, 0] == pytest.approx(4.0)


def test_low_likelihood_members_dropped_and_inflate():
    c = np.zeros((3, 1, 2, 2))
    c[:, 0, 0, 0] = [0.0, 1.0, 50.0]
    lik = np.ones((3, 1, 2))
    lik[2, 0, 0] = 0.01  # the outlier is unsure of itself
    lik[:, 0, 1] = 0.5  # everyone half-sure of keypoint b
    members = [_member(c[i], lik[i]) for i in range(3)]
    st = ensemble_stats(members, min_likelihood=0.1, var_floor_px2=1.0)
    assert st.center[0, 0, 0] == pytest.approx(0.5)
    assert st.n_valid[0, 0] == 2
    assert st.variance[0, 1, 0] == pytest.approx(1.0 / 0.5)  # floor x 1 / mean likelihood
    sure = ensemble_stats([_member(c[i]) for i in range(3)], var_floor_px2=1.0)
    assert st.variance[0, 1, 0] > sure.variance[0, 1, 0]


def test_single_valid_member_uses_keypoint_median_spread():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(3, 20, 2, 2)) * 2.0
    c[1:, 5, 0] = np.nan  # only member 0 sees keypoint a on frame 5
    st = ensemble_stats([_member(m) for m in c], var_floor_px2=0.01)
    typical = np.nanmedian(st.spread[:, 0, 0])
    assert st.variance[5, 0, 0] == pytest.approx(typical * 3.0)


def test_members_with_reordered_keypoints_are_aligned():
    a = _member(np.arange(8.0).reshape(2, 2, 2))
    b = _member(np.arange(8.0).reshape(2, 2, 2)[:, ::-1], keypoints=("b", "a"))
    out = align_members([a, b])
    np.testing.assert_array_equal(out[1].coords, a.coords)


def test_mismatched_members_raise_named_errors():
    a = _member(np.zeros((2, 2, 2)))
    with pytest.raises(LabelsError, match=r"run2\.csv: keypoints differ.*extra \['c'\]"):
        align_members(
            [a, _member(np.zeros((2, 2, 2)), keypoints=("a", "c"))], names=["run1.csv", "run2.csv"]
        )
    with pytest.raises(LabelsError, match=r"member 1: 3 frames .* same frames"):
        align_members([a, _member(np.zeros((3, 2, 2)))])
    with pytest.raises(LabelsError, match="at least one"):
        align_members([])


def test_centre_and_spread_match_numpy_nan_functions():
    rng = np.random.default_rng(5)
    c = rng.normal(size=(4, 30, 2, 2)) * 5.0
    drop = rng.random((4, 30, 2)) < 0.3
    drop[:, 0, 0] = True
    c[drop] = np.nan
    c[:, 0, 0] = np.nan  # a frame/keypoint no member saw
    members = [_member(m) for m in c]
    st = ensemble_stats(members, center="median")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref_med = np.nanmedian(c, axis=0)
        ref_var = np.nanvar(c, axis=0)
        ref_mean = np.nanmean(c, axis=0)
    np.testing.assert_allclose(st.center, ref_med, equal_nan=True)
    n_valid = (~drop).sum(axis=0)
    ref_var[n_valid < 2] = np.nan
    np.testing.assert_allclose(st.spread, ref_var, equal_nan=True, atol=1e-12)
    np.testing.assert_allclose(
        ensemble_stats(members, center="mean").center, ref_mean, equal_nan=True
    )


def _random_members(seed: int, m: int, nan: bool, n: int = 400, k: int = 3) -> list[Poses]:
    """M members of N frames x K keypoints: normal coords (rounded in member 0 to make ties),
    uniform likelihoods with some NaN (label-like); with ``nan`` also ~10% missing keypoints,
    one keypoint no member ever sees and frames where only one member is valid."""
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(m, n, k, 2)) * rng.uniform(0.1, 10.0)
    coords[0] = np.round(coords[0])
    coords[1, :10] = coords[0, :10]  # exact agreement: the variance floor
    lik = rng.uniform(0.0, 1.0, size=(m, n, k))
    lik[:, ::7] = np.nan
    if nan:
        coords[rng.random((m, n, k)) < 0.1] = np.nan
        coords[:, :, k - 1] = np.nan
        coords[1:, 20:30, 0] = np.nan
    return [_member(coords[i], lik[i], keypoints=[f"k{j}" for j in range(k)]) for i in range(m)]


@pytest.mark.parametrize("m", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("center", ["median", "mean"])
@pytest.mark.parametrize("nan", [False, True])
def test_all_valid_fast_path_matches_general_path(monkeypatch, m, center, nan):
    members = _random_members(m * 10 + nan, m, nan)
    fast = ensemble_stats(members, center=center, min_likelihood=0.0)
    monkeypatch.setattr(ensemble, "_all_valid", lambda *_: False)
    general = ensemble_stats(members, center=center, min_likelihood=0.0)
    for field in ("center", "variance", "spread", "n_valid"):
        a, b = getattr(fast, field), getattr(general, field)
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, equal_nan=True)


def test_fast_path_only_when_every_member_is_valid():
    members = _random_members(0, 5, nan=False)
    assert ensemble._all_valid(members, 0.0)
    assert not ensemble._all_valid(members, 0.5)  # some likelihoods below the threshold
    assert not ensemble._all_valid(members, 1.5)  # NaN likelihoods count as 1
    members[2].coords[7, 1, 0] = np.inf
    assert not ensemble._all_valid(members, 0.0)
