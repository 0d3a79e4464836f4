"""Random-walk Kalman filter + RTS smoother, vectorised over many independent series.

Model, per series (one keypoint coordinate) and frame t::

    x[t] = x[t-1] + w[t],   w[t] ~ N(0, q)        (state: true position, px)
    y[t] = x[t]   + v[t],   v[t] ~ N(0, r[t])     (observation: ensemble centre, px)

Why a random walk and not constant velocity: animal keypoints start, stop and reverse within
a few frames (paw strikes, head turns). A constant-velocity model extrapolates momentum through
those events and overshoots, and its two-dimensional state costs a 2x2 Riccati update per step;
the random walk has one interpretable parameter (``q``, px^2 per frame: how far the keypoint
may move between frames beyond what the data say), a scalar recursion that vectorises cheaply
over thousands of series, and its smoothed mean is a data-adaptive local average whose
bandwidth shrinks wherever the ensemble is confident (small ``r``) and grows where it is not.

Missing observations (NaN ``y`` or non-finite ``r``) skip the update, so the filter predicts
through gaps and the posterior variance grows with the gap's length (by ``q`` per frame away
from the nearest observation) instead of the frame being dropped.

The prior on the first frame is diffuse (variance ``DIFFUSE_VAR``, mean at the first
observation), and the first observation of each series is left out of the log marginal
likelihood: that term would measure the prior, not ``q``.

All arrays are time-major, ``(N, B)``, so that the per-frame slice used by the recursion is
contiguous; the only Python loop is over frames, and each step is a handful of numpy ufuncs on
all ``B`` series (and all candidate ``q`` values, see :func:`log_likelihood`) at once. A
time-parallel (associative-scan) form exists (the variance update is a Moebius map, the mean
update affine), but in numpy its log2(N) full-array passes cost more than this loop's ~1 us
per ufunc for the batch widths met here (tens to hundreds of series); it would pay in compiled
or GPU code.

Two backends compute the same recursions in the same floating-point order: compiled scalar
kernels (numba; one pass over the frames, no temporaries) and the numpy loop above (the fallback,
and the reference the kernels are tested against). Pick one per call with ``backend=``. The
default (``backend=None``) chooses per call: ``BACKEND`` ("numba" where numba imports) when its
kernel is already compiled in this process or in numba's on-disk cache for this CPU
(:func:`kernel_ready`), or when the series have at least ``NUMBA_MIN_FRAMES`` frames; otherwise
numpy, because compiling the kernels costs seconds (2.3 s on a 2-core CPU, 7.9 s seen on a GPU
host) and the numpy loop is faster than that on shorter inputs. There is no warm-up: the disk
cache is filled by any call that runs a kernel with numba (an input of at least
``NUMBA_MIN_FRAMES`` frames, or an explicit ``backend="numba"``), after which this process and
later ones on this machine take numba for that kernel at any input size. ``vidpose`` users can
warm the cache once with explicit calls on any small input, e.g.
``kalman_smooth(y, r, q, backend="numba")`` and ``log_likelihood(y, r, q_grid, backend="numba")``
(one per kernel). Setting ``BACKEND = "numpy"`` makes the default always numpy.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

try:
    import numba
except ImportError:  # numba is a dependency, but keep a pure-numpy path for odd platforms
    numba = None

DIFFUSE_VAR = 1e10  # px^2: far above any image's squared size, so the first frame is uninformed
_LOG_2PI = float(np.log(2.0 * np.pi))
_CHUNK = 2048  # frames per buffered block when only the likelihood is needed (numpy)

Backend = Literal["numba", "numpy"]
BACKEND: Backend = "numba" if numba is not None else "numpy"  # preferred by ``backend=None``

# Below this many frames ``backend=None`` compiles nothing: it uses numpy unless the kernel is
# already compiled or cached (module docstring). Measured on a 2-core CPU (AMD EPYC, znver4),
# 34 series (17 keypoints x 2): numpy costs ~12 us/frame for the 17-value likelihood grid and
# ~8.5 us/frame for the smoother (0.12 s + 0.09 s at 9,940 frames; 1.2 s + 0.8 s at 100,000),
# the compiled kernels ~2 and ~0.3 us/frame once compiled, and compiling them cold costs 1.4-2.0
# s (likelihood) + 0.9 s (smoother) here, 7.9 s in all seen on a GPU host. The break-even is
# ~110,000-150,000 frames here and ~400,000 there; 200,000 frames (~2 h at 30 fps) costs at
# most ~1.5 s more than compiling here and saves seconds there.
NUMBA_MIN_FRAMES = 200_000


@dataclass(frozen=True)
class KalmanResult:
    """Posterior of a batch of random-walk series.

    Attributes:
        mean: (N, B) float64 smoothed posterior mean, px.
        var: (N, B) float64 smoothed posterior variance, px^2.
        loglik: (B,) float64 log marginal likelihood of each series' observations (nats; the
            first observation of each series excluded, see the module docstring).
    """

    mean: np.ndarray
    var: np.ndarray
    loglik: np.ndarray


def _prepare(y: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observations with missing entries zeroed, their precisions (0 = missing), first means.

    Returns ``y0 (N, B)``, ``w (N, B)`` = 1 / r where observed else 0, ``m0 (B,)`` = first
    observed value of each series (0 for a series with no observation at all).
    """
    y = np.asarray(y, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    observed = np.isfinite(y) & np.isfinite(r) & (r > 0)
    y0 = np.where(observed, y, 0.0)
    with np.errstate(divide="ignore"):
        w = np.where(observed, 1.0 / np.where(observed, r, 1.0), 0.0)
    first = observed.argmax(axis=0)
    m0 = y0[first, np.arange(y0.shape[1])]
    return y0, w, m0


def _loglik_mask(w: np.ndarray) -> np.ndarray:
    """(N, B) bool: observed frames that count in the likelihood (all but each first one)."""
    observed = w > 0
    counted = observed.copy()
    first = observed.argmax(axis=0)
    cols = np.arange(w.shape[1])
    counted[first, cols] = False
    return counted


def _check_backend(backend: Backend | None) -> Backend:
    backend = BACKEND if backend is None else backend
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    if backend == "numba" and numba is None:
        raise ValueError("backend='numba' but numba is not installed; use backend='numpy'")
    return backend


def _choose_backend(backend: Backend | None, kernel, n_frames: int) -> Backend:
    """The backend for one call of ``kernel`` on ``n_frames`` frames.

    An explicit ``backend`` is used as given; ``None`` chooses per call (module docstring).
    """
    if backend is not None:
        return _check_backend(backend)
    backend = _check_backend(BACKEND)
    if backend == "numpy" or n_frames >= NUMBA_MIN_FRAMES:
        return backend
    return "numba" if kernel_ready(kernel, _signature(kernel)) else "numpy"


def kalman_smooth(
    y: np.ndarray, r: np.ndarray, q: float | np.ndarray, backend: Backend | None = None
) -> KalmanResult:
    """Forward Kalman filter and RTS backward smoother for B random-walk series.

    Args:
        y: (N, B) observations, px; NaN where missing.
        r: (N, B) observation noise variances, px^2 (> 0; non-finite = missing).
        q: process noise variance per frame, px^2: a scalar or (B,).
        backend: "numba" or "numpy"; None (default) chooses per call (module docstring).

    Returns:
        The smoothed posterior mean and variance (N, B) and the log marginal likelihood (B,).
    """
    n, b = np.shape(y)
    backend = _choose_backend(backend, _smooth_kernel, n)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (b,)).copy()
    if n == 0:
        return KalmanResult(np.zeros((0, b)), np.zeros((0, b)), np.zeros(b))
    if backend == "numba":
        mean, var, loglik = np.empty((n, b)), np.empty((n, b)), np.empty(b)
        _call(_smooth_kernel, _f64(y), _f64(r), q, mean, var, loglik)
        return KalmanResult(mean=mean, var=var, loglik=loglik)
    return _smooth_numpy(y, r, q)


def _smooth_numpy(y: np.ndarray, r: np.ndarray, q: np.ndarray) -> KalmanResult:
    """The numpy path of :func:`kalman_smooth`; ``q`` (B,) float64, at least one frame."""
    n, b = np.shape(y)
    y0, w, m0 = _prepare(y, r)

    m_f = np.empty((n, b))  # filtered mean
    p_f = np.empty((n, b))  # filtered variance
    p_p = np.empty((n, b))  # predicted variance (before the update at t)
    m = m0.copy()
    p = np.full(b, DIFFUSE_VAR) - q  # so that the first prediction is exactly DIFFUSE_VAR
    gain_num = np.empty(b)
    denom = np.empty(b)
    innov = np.empty(b)
    for t in range(n):
        pp = p_p[t]
        np.add(p, q, out=pp)
        np.multiply(pp, w[t], out=gain_num)  # pp / r, 0 when missing
        np.add(gain_num, 1.0, out=denom)
        # pp / (1 + pp / r) is the updated variance without the cancellation of pp - K pp
        p = np.divide(pp, denom, out=p_f[t])
        np.divide(gain_num, denom, out=gain_num)  # Kalman gain
        np.subtract(y0[t], m, out=innov)
        np.multiply(gain_num, innov, out=innov)
        m = np.add(m, innov, out=m_f[t])

    # Log likelihood: innovation y[t] - m_f[t-1] with variance p_p[t] + r[t].
    counted = _loglik_mask(w)
    m_prev = np.concatenate([m0[None], m_f[:-1]], axis=0)
    loglik = _loglik_terms(y0, w, m_prev, p_p, counted).sum(axis=0)

    # RTS for a random walk: J = p_f[t] / p_p[t+1]; the predicted mean equals m_f[t], so
    # m_s[t] = (1 - J) m_f[t] + J m_s[t+1] and p_s[t] = J q + J^2 p_s[t+1] (the stable form of
    # p_f + J^2 (p_s - p_p), using J p_p[t+1] = p_f[t]).
    gain = p_f[:-1] / p_p[1:]
    b_mean = (1.0 - gain) * m_f[:-1]
    b_var = gain * q
    gain2 = gain * gain
    m_s = m_f  # reuse storage: row t of the filtered arrays is read before it is overwritten
    p_s = p_f
    for t in range(n - 2, -1, -1):
        np.multiply(gain[t], m_s[t + 1], out=m_s[t])
        np.add(m_s[t], b_mean[t], out=m_s[t])
        np.multiply(gain2[t], p_s[t + 1], out=p_s[t])
        np.add(p_s[t], b_var[t], out=p_s[t])
    return KalmanResult(mean=m_s, var=p_s, loglik=loglik)


def _loglik_terms(
    y0: np.ndarray, w: np.ndarray, m_prev: np.ndarray, p_pred: np.ndarray, counted: np.ndarray
) -> np.ndarray:
    """Per-frame Gaussian log densities of the innovations (0 where not counted).

    Shapes broadcast: ``y0``, ``w``, ``counted`` (C, B); ``m_prev``, ``p_pred`` (C, ..., B).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w > 0, 1.0 / np.where(w > 0, w, 1.0), 1.0)
        s = p_pred + _expand(r, p_pred)
        v = _expand(y0, m_prev) - m_prev
        terms = -0.5 * (_LOG_2PI + np.log(s) + v * v / s)
    return np.where(_expand(counted, terms), terms, 0.0)


def _expand(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """(C, B) -> (C, 1, ..., B) so that it broadcasts against ``like`` (C, ..., B)."""
    return a.reshape(a.shape[:1] + (1,) * (like.ndim - a.ndim) + a.shape[1:])


def log_likelihood(
    y: np.ndarray, r: np.ndarray, q: np.ndarray, backend: Backend | None = None
) -> np.ndarray:
    """Log marginal likelihood of B series under G candidate process variances each.

    Runs only the forward filter, with the candidates as an extra batch dimension, so a grid
    search over ``q`` costs one pass over the frames; memory stays at ``O(_CHUNK * G * B)``.

    Args:
        y: (N, B) observations, px; NaN where missing.
        r: (N, B) observation noise variances, px^2.
        q: (G, B) candidate process variances per frame, px^2.
        backend: "numba" or "numpy"; None (default) chooses per call (module docstring).

    Returns:
        (G, B) log marginal likelihoods (nats).
    """
    n, b = np.shape(y)
    backend = _choose_backend(backend, _loglik_kernel, n)
    q = np.asarray(q, dtype=np.float64)
    g = q.shape[0]
    if n == 0:
        return np.zeros((g, b))
    if backend == "numba":
        loglik = np.empty((b, g))
        _call(_loglik_kernel, _f64(y), _f64(r), np.ascontiguousarray(q.T), loglik)
        return np.ascontiguousarray(loglik.T)
    return _log_likelihood_numpy(y, r, q)


def _log_likelihood_numpy(y: np.ndarray, r: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The numpy path of :func:`log_likelihood`; ``q`` (G, B) float64, at least one frame."""
    n, b = np.shape(y)
    g = q.shape[0]
    y0, w, m0 = _prepare(y, r)
    counted = _loglik_mask(w)
    loglik = np.zeros((g, b))
    m = np.broadcast_to(m0, (g, b)).copy()
    p = DIFFUSE_VAR - q
    buf_m = np.empty((_CHUNK, g, b))  # mean before the update at t
    buf_p = np.empty((_CHUNK, g, b))  # predicted variance at t
    gain = np.empty((g, b))
    innov = np.empty((g, b))
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        for i, t in enumerate(range(start, stop)):
            buf_m[i] = m
            pp = np.add(p, q, out=buf_p[i])
            np.multiply(pp, w[t], out=gain)
            np.add(gain, 1.0, out=innov)
            np.divide(pp, innov, out=p)
            np.divide(gain, innov, out=gain)
            np.subtract(y0[t], m, out=innov)
            np.multiply(gain, innov, out=innov)
            np.add(m, innov, out=m)
        c = stop - start
        terms = _loglik_terms(
            y0[start:stop], w[start:stop], buf_m[:c], buf_p[:c], counted[start:stop]
        )
        loglik += terms.sum(axis=0)
    return loglik


# --- compiled backend -----------------------------------------------------------------------
# The kernels repeat the numpy recursions operation for operation (same order, no fastmath), so
# the two backends agree to rounding. The smoother walks frames in the outer loop and series in
# the inner one (contiguous rows); the likelihood, G times the work per frame, gives each
# thread whole series (on 2 cores ~2.6x faster than serial; the smoother gains ~10%, not kept).


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _call(kernel, *args) -> None:
    # numba warns (NumbaWarning) when it cannot write its cache next to the module or in the
    # user cache directory (read-only installs); the compiled code is correct either way.
    with warnings.catch_warnings():
        if numba is not None:
            warnings.simplefilter("ignore", numba.NumbaWarning)
        kernel(*args)


def _jit(fn=None, *, parallel: bool = False):
    """Compile lazily on first call, caching the machine code where a cache can live.

    ``parallel=True`` runs ``numba.prange`` loops on all cores.
    """
    if fn is None:
        return lambda f: _jit(f, parallel=parallel)
    if numba is None:
        return fn
    try:
        return numba.njit(cache=True, fastmath=False, parallel=parallel)(fn)
    except (RuntimeError, OSError):  # no writable cache location
        return numba.njit(cache=False, fastmath=False, parallel=parallel)(fn)


@_jit
def _first_observed(y, r, m0):  # pragma: no cover - compiled
    n, b = y.shape
    for j in range(b):
        m0[j] = 0.0
        for t in range(n):
            if _is_observed(y[t, j], r[t, j]):
                m0[j] = y[t, j]
                break


@_jit
def _is_observed(y, r):  # pragma: no cover - compiled
    return math.isfinite(y) and math.isfinite(r) and r > 0.0


@_jit
def _smooth_kernel(y, r, q, mean, var, loglik):  # pragma: no cover - compiled
    n, b = y.shape
    m = np.empty(b)
    _first_observed(y, r, m)
    p = np.empty(b)
    seen = np.zeros(b, dtype=np.bool_)
    for j in range(b):
        p[j] = DIFFUSE_VAR - q[j]
        loglik[j] = 0.0
    for t in range(n):
        for j in range(b):
            pp = p[j] + q[j]
            yt = y[t, j]
            rt = r[t, j]
            if _is_observed(yt, rt):
                gain_num = pp * (1.0 / rt)
                denom = gain_num + 1.0
                innov = yt - m[j]
                if seen[j]:
                    s = pp + rt
                    loglik[j] += -0.5 * (_LOG_2PI + math.log(s) + innov * innov / s)
                seen[j] = True
                p[j] = pp / denom
                m[j] = m[j] + gain_num / denom * innov
            else:
                p[j] = pp
            mean[t, j] = m[j]
            var[t, j] = p[j]
    # RTS in place, as in the numpy path, with the predicted variance p_p[t+1] = p_f[t] + q.
    for t in range(n - 2, -1, -1):
        for j in range(b):
            gain = var[t, j] / (var[t, j] + q[j])
            mean[t, j] = gain * mean[t + 1, j] + (1.0 - gain) * mean[t, j]
            var[t, j] = gain * gain * var[t + 1, j] + gain * q[j]


@_jit(parallel=True)
def _loglik_kernel(y, r, q, loglik):  # pragma: no cover - compiled
    # q, loglik: (B, G). One thread per series; its G candidates share the frame's y and r.
    n, b = y.shape
    g = q.shape[1]
    m0 = np.empty(b)
    _first_observed(y, r, m0)
    for j in numba.prange(b):
        m = np.full(g, m0[j])
        p = np.empty(g)
        for i in range(g):
            p[i] = DIFFUSE_VAR - q[j, i]
            loglik[j, i] = 0.0
        seen = False
        for t in range(n):
            yt = y[t, j]
            rt = r[t, j]
            if not _is_observed(yt, rt):
                for i in range(g):
                    p[i] = p[i] + q[j, i]
                continue
            w = 1.0 / rt
            for i in range(g):
                pp = p[i] + q[j, i]
                gain_num = pp * w
                denom = gain_num + 1.0
                innov = yt - m[i]
                if seen:
                    s = pp + rt
                    loglik[j, i] += -0.5 * (_LOG_2PI + math.log(s) + innov * innov / s)
                p[i] = pp / denom
                m[i] = m[i] + gain_num / denom * innov
            seen = True


# --- default backend choice -----------------------------------------------------------------


def _example_args(kernel) -> tuple[np.ndarray, ...]:
    """Tiny arguments with the types the real calls pass (float64, C-contiguous, writable)."""
    y, r = np.zeros((2, 1)), np.ones((2, 1))
    if kernel is _smooth_kernel:
        return y, r, np.ones(1), np.empty((2, 1)), np.empty((2, 1)), np.empty(1)
    return y, r, np.ones((1, 1)), np.empty((1, 1))


def _signature(kernel) -> tuple:
    """The numba argument types of the real calls of ``kernel``."""
    return tuple(numba.typeof(a) for a in _example_args(kernel))


def kernel_ready(kernel, signature: tuple | None = None) -> bool:
    """Whether calling a numba kernel would run without compiling.

    True when the kernel (a numba ``Dispatcher``) has compiled code in this process, or when
    numba's on-disk cache holds code for it that numba would load on this machine: an index
    entry for the same triple, CPU name and CPU features (numba's own key; the index is empty
    when the source or numba's version changed) whose data file exists. ``signature`` (a
    tuple of numba types) restricts both to that signature. Reads numba's private cache index
    (``kernel._cache._cache_file``); anything unexpected, including a kernel compiled without
    a cache, counts as not ready. Never compiles.
    """
    try:
        if signature is None and kernel.overloads:
            return True
        if signature is not None and tuple(signature) in kernel.overloads:
            return True
        cache = kernel._cache
        cache_file = cache._cache_file
        codegen = kernel.targetctx.codegen()
        host = codegen.magic_tuple()  # (triple, CPU name, CPU features), as in numba's keys
        wanted = None if signature is None else cache._index_key(tuple(signature), codegen)
        for key, data_name in cache_file._load_index().items():
            if key[1] != host or (wanted is not None and key != wanted):
                continue
            if os.path.isfile(os.path.join(cache_file._cache_path, data_name)):
                return True
        return False
    except Exception:
        return False
