"""The default Kalman backend: numpy while the numba kernels are cold, numba once compiled/cached.

numba reads ``NUMBA_CACHE_DIR`` at import, so everything that needs a fresh cache runs in a
subprocess with its own cache directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vidpose.smooth import kalman
from vidpose.smooth.kalman import kalman_smooth, log_likelihood

needs_numba = pytest.mark.skipif(kalman.numba is None, reason="numba not installed")


PRELUDE = """
import numpy as np
from vidpose.smooth import kalman
y = np.cumsum(np.random.default_rng(0).normal(size=(50, 4)), axis=0)
r = np.ones((50, 4))
sm, ll = kalman._smooth_kernel, kalman._loglik_kernel
"""


def _run(code: str, cache_dir) -> None:
    """Run PRELUDE + ``code`` in a fresh interpreter with its own numba cache directory."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    script = PRELUDE + textwrap.dedent(code)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@needs_numba
def test_kernel_ready_fresh_cache_then_memory_then_disk(tmp_path):
    _run(
        """
        assert not kalman.kernel_ready(sm) and not kalman.kernel_ready(ll)
        assert not kalman.kernel_ready(sm, kalman._signature(sm))
        kalman.kalman_smooth(y, r, 1.0, backend="numba")  # compiles and caches the smoother
        assert kalman.kernel_ready(sm) and kalman.kernel_ready(sm, kalman._signature(sm))
        assert not kalman.kernel_ready(ll)
        """,
        tmp_path,
    )
    _run(  # a new process: the smoother is ready from the disk cache, before any call
        """
        assert not sm.overloads and kalman.kernel_ready(sm, kalman._signature(sm))
        assert not kalman.kernel_ready(ll)
        # the default choice: the cached smoother runs compiled, the cold likelihood in numpy
        kalman.kalman_smooth(y, r, 1.0)
        kalman.log_likelihood(y, r, np.ones((3, 4)))
        assert sm.overloads and not ll.overloads
        kalman.log_likelihood(y, r, np.ones((3, 4)), backend="numba")  # warms the likelihood
        """,
        tmp_path,
    )
    _run(  # the explicit call cached the likelihood for the signature the default checks
        """
        assert not ll.overloads and kalman.kernel_ready(ll, kalman._signature(ll))
        assert kalman._choose_backend(None, ll, len(y)) == "numba"
        """,
        tmp_path,
    )


def _gappy(seed: int = 0, n: int = 400, b: int = 6):
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(size=(n, b)), axis=0) + 50.0
    r = rng.uniform(0.2, 5.0, size=(n, b))
    y[100:140, 1] = np.nan
    y[:20, 2] = np.nan
    r[200:210, 3] = np.inf
    y[:, 4] = np.nan
    q = 10.0 ** rng.uniform(-2, 1, size=b)
    return y, r, q


@needs_numba
@pytest.mark.parametrize("ready", [False, True])
def test_default_choice_and_results(monkeypatch, ready):
    monkeypatch.setattr(kalman, "kernel_ready", lambda kernel, signature=None: ready)
    smooth, loglik = kalman._smooth_kernel, kalman._loglik_kernel
    short, long = 1000, kalman.NUMBA_MIN_FRAMES
    expect = "numba" if ready else "numpy"
    assert kalman._choose_backend(None, smooth, short) == expect
    assert kalman._choose_backend(None, loglik, short) == expect
    assert kalman._choose_backend(None, loglik, long) == "numba"
    for explicit in ("numba", "numpy"):  # an explicit backend ignores readiness and size
        assert kalman._choose_backend(explicit, smooth, short) == explicit
    monkeypatch.setattr(kalman, "BACKEND", "numpy")
    assert kalman._choose_backend(None, loglik, long) == "numpy"
    monkeypatch.setattr(kalman, "BACKEND", "numba")

    y, r, q = _gappy()
    grid = q[None] * 10.0 ** np.arange(-2.0, 2.5, 0.5)[:, None]
    default = kalman_smooth(y, r, q)
    default_ll = log_likelihood(y, r, grid)
    for backend in ("numpy", "numba"):
        res = kalman_smooth(y, r, q, backend=backend)
        np.testing.assert_allclose(default.mean, res.mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(default.var, res.var, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(default.loglik, res.loglik, rtol=1e-9, atol=1e-9)
        ll = log_likelihood(y, r, grid, backend=backend)
        np.testing.assert_allclose(default_ll, ll, rtol=1e-9, atol=1e-9)
