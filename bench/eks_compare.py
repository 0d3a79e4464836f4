"""Time the ``ensemble-kalman-smoother`` package (``eks``) on an ensemble saved by smooth_speed.py.

Runs INSIDE the benchmark's own environment (never vidpose's; this script does not import
vidpose)::

    uv venv /tmp/eks-env --python 3.11
    uv pip install --python /tmp/eks-env/bin/python ensemble-kalman-smoother
    /tmp/eks-env/bin/python bench/eks_compare.py IN.npz OUT.npz OUT.json
        [--auto-frames N] [--no-auto] [--repeats 2] [--x64]

``IN.npz`` holds ``coords`` (M, N, K, 2) px, ``likelihood`` (M, N, K) and ``smoothing`` (the
fixed smoothing parameter ``s``). The ensemble goes into eks as an in-memory ``MarkerArray``
(no CSV reading), through its public single-camera entry point
``eks.singlecam_smoother.ensemble_kalman_smoother_singlecam`` (ensemble median,
confidence-weighted variance, the default of ``fit_eks_singlecam``):

* fixed: ``smooth_param=s``, timed ``--repeats`` times; the first call includes JAX's
  compilation ("cold"), the best later call does not ("warm").
* auto: ``smooth_param=None`` (eks optimises ``s`` per keypoint with Adam on the filter's
  negative log likelihood, then smooths), one call, on the first ``--auto-frames`` frames
  (default all).

eks's model, per keypoint (2-D state x, y; ``A = C = I``): ``x[t] = x[t-1] + w``,
``w ~ N(0, s I)``; ``y[t] = x[t] + v``, ``v ~ N(0, diag(ensemble var at t))``; prior on the
first frame ``N(time-mean of the ensemble median, diag(its variance over time))``. So ``s``
is a process variance in px^2 per frame, like vidpose's ``smoothing``.

``OUT.npz``: the fixed run's smoothed ``coords`` (N, K, 2), ``post_var`` (N, K, 2),
``ens_center`` / ``ens_var`` (N, K, 2) (what the Kalman smoother observed), ``prior_mean`` /
``prior_var`` (K, 2) (its first-frame prior), and, when auto ran, ``auto_coords``,
``auto_post_var`` (n_auto, K, 2) and ``auto_s`` (K,). ``OUT.json``: timings and versions.
``--x64`` turns on JAX float64 (eks computes in float32 by default).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def _marker_array(coords: np.ndarray, likelihood: np.ndarray, dtype):
    from eks.marker_array import MarkerArray

    # (M, N, K, 2) + (M, N, K) -> (M, 1 camera, N, K, 3 fields x, y, likelihood)
    arr = np.concatenate([coords, likelihood[..., None]], axis=-1)[:, None].astype(dtype)
    return MarkerArray(arr, data_fields=["x", "y", "likelihood"])


def _run(coords, likelihood, smooth_param, dtype):
    from eks.singlecam_smoother import ensemble_kalman_smoother_singlecam

    k = coords.shape[2]
    names = [f"kp{i}" for i in range(k)]
    t0 = time.perf_counter()
    df, s_finals = ensemble_kalman_smoother_singlecam(
        marker_array=_marker_array(coords, likelihood, dtype),
        keypoint_names=names,
        smooth_param=smooth_param,
    )
    seconds = time.perf_counter() - t0
    # columns per keypoint: x, y, likelihood, x/y_ens_median, x/y_ens_var, x/y_posterior_var
    a = df.to_numpy().reshape(len(df), k, 9)
    return seconds, a, np.asarray(s_finals, dtype=np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inp", type=Path)
    ap.add_argument("out_npz", type=Path)
    ap.add_argument("out_json", type=Path)
    ap.add_argument("--repeats", type=int, default=2, help="fixed-s calls (first is cold)")
    ap.add_argument("--auto-frames", type=int, default=None, help="frames for the auto run")
    ap.add_argument("--no-auto", action="store_true")
    ap.add_argument("--x64", action="store_true", help="JAX float64 (eks default: float32)")
    args = ap.parse_args()

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    dtype = np.float64 if args.x64 else np.float32

    d = np.load(args.inp)
    coords, likelihood, s = d["coords"], d["likelihood"], float(d["smoothing"])
    m, n, k, _ = coords.shape

    times = []
    for _ in range(max(args.repeats, 1)):
        t, a, _ = _run(coords, likelihood, s, dtype)
        times.append(t)
    out = {
        "coords": a[..., 0:2].astype(np.float64),
        "ens_center": a[..., 3:5].astype(np.float64),
        "ens_var": a[..., 5:7].astype(np.float64),
        "post_var": a[..., 7:9].astype(np.float64),
    }
    # eks's first-frame prior (initialize_kalman_filter on the centred ensemble median): mean
    # = time-mean of the median, variance = its variance over time (per keypoint coordinate).
    centre = a[..., 3:5].astype(dtype)
    mean = centre.mean(axis=0)
    out["prior_mean"] = mean.astype(np.float64)
    out["prior_var"] = np.nanvar(centre - mean, axis=0).astype(np.float64)

    result = {
        "eks_version": importlib.metadata.version("ensemble-kalman-smoother"),
        "jax_version": importlib.metadata.version("jax"),
        "dtype": np.dtype(dtype).name,
        "frames": n,
        "keypoints": k,
        "members": m,
        "smooth_param": s,
        "seconds_fixed_cold": times[0],
        "seconds_fixed_warm": min(times[1:]) if len(times) > 1 else None,
        "seconds_fixed_all": times,
    }
    if not args.no_auto:
        na = n if args.auto_frames is None else min(args.auto_frames, n)
        t, a, s_auto = _run(coords[:, :na], likelihood[:, :na], None, dtype)
        out["auto_coords"] = a[..., 0:2].astype(np.float64)
        out["auto_post_var"] = a[..., 7:9].astype(np.float64)
        out["auto_s"] = s_auto
        result.update(
            auto_frames=na,
            seconds_auto_cold=t,
            auto_s={
                "median": float(np.median(s_auto)),
                "min": float(s_auto.min()),
                "max": float(s_auto.max()),
            },
        )
    result["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "jax_devices": [str(dv) for dv in jax.devices()],
    }
    np.savez(args.out_npz, **out)
    args.out_json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
