"""The random-walk filter / smoother (both backends) against a plain per-series loop, and gaps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vidpose.smooth import kalman
from vidpose.smooth.kalman import DIFFUSE_VAR, kalman_smooth, log_likelihood

BACKENDS = [
    "numpy",
    pytest.param(
        "numba", marks=pytest.mark.skipif(kalman.numba is None, reason="numba not installed")
    ),
]


def _reference(y: np.ndarray, r: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Textbook Kalman filter + RTS smoother for one random-walk series, one frame at a time.

    Same prior as the package: mean at the first observation, variance DIFFUSE_VAR; the first
    observation is left out of the log likelihood.
    """
    n = len(y)
    obs = np.isfinite(y)
    m = y[obs][0]
    p = DIFFUSE_VAR
    mf, pf, pp_all = np.zeros(n), np.zeros(n), np.zeros(n)
    ll, seen = 0.0, False
    for t in range(n):
        m_pred = m
        p_pred = p + q if t > 0 else DIFFUSE_VAR
        if obs[t]:
            s = p_pred + r[t]
            v = y[t] - m_pred
            if seen:
                ll += -0.5 * (np.log(2 * np.pi * s) + v * v / s)
            seen = True
            k = p_pred / s
            m = m_pred + k * v
            p = (1 - k) * p_pred
        else:
            m, p = m_pred, p_pred
        mf[t], pf[t], pp_all[t] = m, p, p_pred
    ms, ps = mf.copy(), pf.copy()
    for t in range(n - 2, -1, -1):
        j = pf[t] / pp_all[t + 1]
        ms[t] = mf[t] + j * (ms[t + 1] - mf[t])
        ps[t] = pf[t] + j * j * (ps[t + 1] - pp_all[t + 1])
    return ms, ps, ll


def _simulate(rng, n: int, q: np.ndarray, r_lo: float = 0.5, r_hi: float = 4.0):
    """Random walks with process variance q (B,), observed with known per-frame variance r."""
    b = len(q)
    x = np.cumsum(rng.normal(size=(n, b)) * np.sqrt(q), axis=0) + 100.0
    r = rng.uniform(r_lo, r_hi, size=(n, b))
    y = x + rng.normal(size=(n, b)) * np.sqrt(r)
    return x, y, r


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_per_series_loop_reference(backend):
    rng = np.random.default_rng(0)
    q = np.array([0.05, 0.5, 3.0, 20.0])
    _, y, r = _simulate(rng, 60, q)
    y[10:14, 1] = np.nan  # a gap
    y[:3, 2] = np.nan  # leading gap
    y[-5:, 3] = np.nan  # trailing gap
    res = kalman_smooth(y, r, q, backend=backend)
    for b in range(len(q)):
        ms, ps, ll = _reference(y[:, b], r[:, b], q[b])
        np.testing.assert_allclose(res.mean[:, b], ms, rtol=0, atol=1e-6)
        np.testing.assert_allclose(res.var[:, b], ps, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res.loglik[b], ll, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_loglik_matches_smoother_loglik(backend):
    rng = np.random.default_rng(1)
    q = np.array([0.1, 2.0, 5.0])
    _, y, r = _simulate(rng, 5000, q)  # longer than one likelihood chunk
    y[100:130, 0] = np.nan
    grid = np.stack([q * 0.1, q, q * 10.0])  # (G=3, B)
    ll = log_likelihood(y, r, grid, backend=backend)
    for g in range(3):
        res = kalman_smooth(y, r, grid[g], backend=backend)
        np.testing.assert_allclose(ll[g], res.loglik, rtol=1e-10)
    # the true q should be the most likely of the three
    assert (ll.argmax(axis=0) == 1).all()


def test_smoothing_beats_raw_observations():
    rng = np.random.default_rng(2)
    q = np.array([0.05, 0.5])
    x, y, r = _simulate(rng, 2000, q)
    res = kalman_smooth(y, r, q)
    err_obs = np.sqrt(np.mean((y - x) ** 2, axis=0))
    err_smooth = np.sqrt(np.mean((res.mean - x) ** 2, axis=0))
    assert (err_smooth < 0.7 * err_obs).all()


def test_gap_bridged_with_growing_variance():
    rng = np.random.default_rng(3)
    q = np.array([1.0])
    _, y, r = _simulate(rng, 200, q)
    y[80:120] = np.nan
    res = kalman_smooth(y, r, q)
    assert np.isfinite(res.mean).all()
    v = res.var[:, 0]
    mid = 80 + int(np.argmax(v[80:120]))
    # variance rises from each edge of the gap to a peak near its middle, much larger there
    assert 95 <= mid <= 105
    assert (np.diff(v[79 : mid + 1]) > 0).all()
    assert (np.diff(v[mid:121]) < 0).all()
    assert v[mid] > 5 * v[60]
    # the bridge stays between the observations on either side (a random walk interpolates)
    lo, hi = sorted([res.mean[79, 0], res.mean[120, 0]])
    assert (res.mean[80:120, 0] >= lo - 1e-9).all() and (res.mean[80:120, 0] <= hi + 1e-9).all()


def test_unobserved_series_stays_finite():
    y = np.full((10, 2), np.nan)
    y[:, 1] = np.arange(10.0)
    res = kalman_smooth(y, np.ones((10, 2)), 1.0)
    assert np.isfinite(res.mean).all() and np.isfinite(res.var).all()
    assert res.loglik[0] == 0.0


def _gappy_series(seed: int, n: int = 3000, b: int = 9):
    """Random walks (q in 0.01 .. 10) with every kind of missing observation.

    Column 1: a 200-frame gap; 2: the first 50 frames missing; 3: the last 50 missing;
    4: infinite r on 30 frames; 5: r = 0 on 30 frames; 6: never observed; 7: observed on
    frame 1000 only; 8: 30% of frames missing at random.
    """
    rng = np.random.default_rng(seed)
    q = 10.0 ** rng.uniform(-2, 1, size=b)
    _, y, r = _simulate(rng, n, q, r_lo=0.1, r_hi=50.0)
    y[1000:1200, 1] = np.nan
    y[:50, 2] = np.nan
    y[-50:, 3] = np.nan
    r[400:430, 4] = np.inf
    r[400:430, 5] = 0.0
    y[:, 6] = np.nan
    y[:1000, 7] = np.nan
    y[1001:, 7] = np.nan
    y[rng.random(n) < 0.3, 8] = np.nan
    return y, r, q


@pytest.mark.skipif(kalman.numba is None, reason="numba not installed")
@pytest.mark.parametrize("seed", [0, 1])
def test_numba_smoother_matches_numpy(seed):
    y, r, q = _gappy_series(seed)
    ref = kalman_smooth(y, r, q, backend="numpy")
    res = kalman_smooth(y, r, q, backend="numba")
    np.testing.assert_allclose(res.mean, ref.mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res.var, ref.var, rtol=1e-10, atol=0)
    np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-10, atol=1e-10)
    scalar = kalman_smooth(y, r, 0.7, backend="numba")
    np.testing.assert_allclose(
        scalar.mean, kalman_smooth(y, r, 0.7, backend="numpy").mean, rtol=1e-10, atol=1e-10
    )


@pytest.mark.skipif(kalman.numba is None, reason="numba not installed")
@pytest.mark.parametrize("seed", [0, 1])
def test_numba_grid_loglik_matches_numpy(seed):
    y, r, q = _gappy_series(seed)
    grid = q[None, :] * 10.0 ** np.arange(-3.0, 3.5, 0.5)[:, None]  # (G=13, B)
    ref = log_likelihood(y, r, grid, backend="numpy")
    res = log_likelihood(y, r, grid, backend="numba")
    assert res.shape == ref.shape
    np.testing.assert_allclose(res, ref, rtol=1e-10, atol=1e-10)


def test_default_backend_and_bad_backend():
    default = kalman.BACKEND
    assert default == ("numpy" if kalman.numba is None else "numba")
    with pytest.raises(ValueError, match="backend"):
        kalman_smooth(np.zeros((3, 1)), np.ones((3, 1)), 1.0, backend="jax")


def test_numpy_fallback_without_numba():
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from vidpose.smooth import kalman\n"
        "assert kalman.BACKEND == 'numpy'\n"
        "res = kalman.kalman_smooth(np.arange(5.0)[:, None], np.ones((5, 1)), 1.0)\n"
        "assert np.isfinite(res.mean).all()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
