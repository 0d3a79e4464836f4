"""Ensemble Kalman smoother speed: a 5-member ensemble of 100,000 frames x 17 keypoints.

    uv run python bench/smooth_speed.py [--frames 100000] [--keypoints 17] [--members 5]
        [--smoothing 1.0] [--repeats 1] [--view-pairs 8]
        [--eks-python /tmp/eks-env/bin/python] [--eks-auto-frames N] [--eks-x64]
        [--out bench/results/smooth_speed_cpu.json]

Times ``vidpose.smooth.smooth_ensemble`` with a fixed process variance and with
``smoothing="auto"`` (and, alone, the ensemble statistics and the auto selection), and
``smooth_multiview`` with ``--view-pairs`` two-view body parts (timing only: the synthetic
views are not 3-D consistent); reports accuracy against the synthetic ground truth (median
and 95th-percentile error of one member, the ensemble mean and the smoothed output).

Synthetic input: per keypoint coordinate a random walk (process variance 0.5 px^2/frame) seen
by each member with 3 px Gaussian noise and 2% of 40 px outliers (likelihood 0.3 there, 0.9
elsewhere).

Comparison with the ``ensemble-kalman-smoother`` package (``eks``), which lives in its own
environment and is never a vidpose dependency::

    uv venv /tmp/eks-env --python 3.11
    uv pip install --python /tmp/eks-env/bin/python ensemble-kalman-smoother
    uv run python bench/smooth_speed.py --eks-python /tmp/eks-env/bin/python

With ``--eks-python`` the same synthetic input is written to a temporary .npz and
``bench/eks_compare.py`` runs under that interpreter (see its docstring): eks's single-camera
smoother with ``smooth_param = --smoothing`` (timed cold, i.e. with JAX compilation, and warm)
and with its own ``s`` optimisation (on the first ``--eks-auto-frames`` frames; vidpose's auto
is then timed on the same frames too). eks's ``s`` is the process variance of the same
random-walk model (``Q = s I`` px^2/frame, ``R_t`` = ensemble variance), so it is compared with
vidpose at ``smoothing = s``. Differences reported (px, px^2):

* ``same_input``: vidpose's ``kalman_smooth`` fed eks's own ensemble centre and variance and
  eks's first-frame prior (mean / variance of the centre over time, entered as a pseudo
  observation before frame 0) vs eks's output: the same model on the same numbers, so what
  remains is eks's float32 arithmetic (``--eks-x64`` adds an eks run in float64 to show it).
* ``pipeline``: vidpose's full ``smooth_ensemble`` vs eks's, each with its own ensemble
  statistics and prior: vidpose floors the ensemble variance at 0.25 px^2 and starts from a
  diffuse prior, eks does neither, which moves the first frames and low-spread frames.
* ``auto``: the two automatic choices differ in method (eks: Adam on a likelihood with a
  time-constant R, the median ensemble variance; vidpose: grid + parabola on the exact
  likelihood with the time-varying R), so the chosen values and outputs are reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from vidpose.io.poses import Poses
from vidpose.smooth import (
    ensemble_stats,
    kalman_smooth,
    select_process_var,
    smooth_ensemble,
    smooth_multiview,
)

EKS_SCRIPT = Path(__file__).with_name("eks_compare.py")


def synthetic_ensemble(
    n: int, k: int, members: int, seed: int = 0
) -> tuple[np.ndarray, list[Poses]]:
    rng = np.random.default_rng(seed)
    truth = 300.0 + np.cumsum(rng.normal(size=(n, k, 2)) * np.sqrt(0.5), axis=0)
    names = [f"kp{i}" for i in range(k)]
    out = []
    for _ in range(members):
        c = truth + rng.normal(size=truth.shape) * 3.0
        outlier = rng.random((n, k)) < 0.02
        c[outlier] += 40.0
        lik = np.where(outlier, 0.3, 0.9)
        out.append(Poses(coords=c, keypoints=names, frames=np.arange(n), likelihood=lik))
    return truth, out


def _timed(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _errors(coords: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    e = np.linalg.norm(coords - truth, axis=2)
    return {"median_px": float(np.median(e)), "p95_px": float(np.percentile(e, 95))}


def _diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    d = np.abs(a - b)
    return {
        "max_abs": float(d.max()),
        "median_abs": float(np.median(d)),
        "max_abs_from_frame_10": float(d[10:].max()) if len(d) > 10 else float("nan"),
    }


def kalman_with_prior(
    y: np.ndarray, r: np.ndarray, q: float | np.ndarray, m0: np.ndarray, p0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """vidpose's random-walk smoother under eks's first-frame prior ``N(m0, p0)``.

    The prior enters as a pseudo observation ``m0`` with variance ``p0 - q`` one frame before
    frame 0 (the diffuse prior there leaves ``N(m0, p0 - q)``, one prediction step gives
    ``N(m0, p0)``); that frame is dropped from the output.

    Args:
        y, r: (N, K, 2) observations and their variances, px and px^2.
        q: process variance, px^2/frame: a scalar or (K,).
        m0, p0: (K, 2) prior mean and variance at frame 0.

    Returns:
        Smoothed mean and variance, (N, K, 2) each.
    """
    n, k, _ = y.shape
    q2 = np.broadcast_to(np.repeat(np.broadcast_to(q, (k,)), 2), (2 * k,))
    yy = np.concatenate([m0[None], y]).reshape(n + 1, 2 * k)
    rr = np.concatenate([p0[None] - q2.reshape(k, 2)[None], r]).reshape(n + 1, 2 * k)
    res = kalman_smooth(yy, rr, q2)
    return res.mean[1:].reshape(n, k, 2), res.var[1:].reshape(n, k, 2)


def compare_eks(
    args: argparse.Namespace, members: list, t_fixed: float, t_auto: float, fixed, auto
) -> dict:
    """Run bench/eks_compare.py under ``args.eks_python`` on the same input (module docstring)."""
    coords = np.stack([m.coords for m in members])
    lik = np.stack([m.likelihood for m in members])
    n = coords.shape[1]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.npz"
        np.savez(inp, coords=coords, likelihood=lik, smoothing=args.smoothing)
        variants = [("float32", [])]
        if args.eks_x64:
            variants.append(("float64", ["--x64", "--no-auto"]))
        for name, extra in variants:
            out_npz, out_json = Path(tmp) / f"{name}.npz", Path(tmp) / f"{name}.json"
            cmd = [args.eks_python, str(EKS_SCRIPT), str(inp), str(out_npz), str(out_json)]
            cmd += ["--repeats", str(args.eks_repeats), *extra]
            if args.eks_auto_frames is not None:
                cmd += ["--auto-frames", str(args.eks_auto_frames)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            with np.load(out_npz) as d:
                runs[name] = (json.loads(out_json.read_text()), {x: d[x] for x in d.files})

    info, eks = runs["float32"]
    t0 = time.perf_counter()
    same_mean, same_var = kalman_with_prior(
        eks["ens_center"], eks["ens_var"], args.smoothing, eks["prior_mean"], eks["prior_var"]
    )
    t_kalman = time.perf_counter() - t0
    t_eks_cold, t_eks_warm = info["seconds_fixed_cold"], info["seconds_fixed_warm"]
    result = {
        "eks_version": info["eks_version"],
        "jax_version": info["jax_version"],
        "smooth_param": args.smoothing,
        "seconds": {
            "eks_fixed_cold": t_eks_cold,
            "eks_fixed_warm": t_eks_warm,
            "vidpose_fixed_total": t_fixed,
            "vidpose_kalman_only_same_input": t_kalman,
        },
        "speedup_fixed": {
            "vs_eks_cold": t_eks_cold / t_fixed,
            "vs_eks_warm": t_eks_warm / t_fixed if t_eks_warm else None,
        },
        "diff_fixed_px": {
            "same_input_coords": _diff(same_mean, eks["coords"]),
            "same_input_post_var_px2": _diff(same_var, eks["post_var"]),
            "pipeline_coords": _diff(fixed.poses.coords, eks["coords"]),
            "pipeline_post_var_px2": _diff(
                np.stack(
                    [fixed.poses.keypoint_columns[c] for c in ("post_var_x", "post_var_y")],
                    axis=-1,
                ),
                eks["post_var"],
            ),
            "ensemble_center": _diff(fixed.stats.center, eks["ens_center"]),
            "ensemble_var_px2": _diff(fixed.stats.variance, eks["ens_var"]),
        },
    }
    if "float64" in runs:
        info64, eks64 = runs["float64"]
        m64, v64 = kalman_with_prior(
            eks64["ens_center"],
            eks64["ens_var"],
            args.smoothing,
            eks64["prior_mean"],
            eks64["prior_var"],
        )
        result["seconds"]["eks_fixed_float64_cold"] = info64["seconds_fixed_cold"]
        result["seconds"]["eks_fixed_float64_warm"] = info64["seconds_fixed_warm"]
        result["diff_fixed_px"]["same_input_coords_eks_float64"] = _diff(m64, eks64["coords"])
        result["diff_fixed_px"]["same_input_post_var_px2_eks_float64"] = _diff(
            v64, eks64["post_var"]
        )
    if "auto_s" in eks:
        na = info["auto_frames"]
        if na < n:
            sub = [
                Poses(
                    coords=m.coords[:na],
                    keypoints=m.keypoints,
                    frames=m.frames[:na],
                    likelihood=m.likelihood[:na],
                )
                for m in members
            ]
            t_auto, auto = _timed(lambda: smooth_ensemble(sub, smoothing="auto"), args.repeats)
        s_auto = eks["auto_s"]
        c = eks["ens_center"][:na]
        m0 = c.mean(axis=0)
        same_auto, _ = kalman_with_prior(
            c, eks["ens_var"][:na], s_auto, m0, ((c - m0) ** 2).mean(axis=0)
        )
        result["auto"] = {
            "frames": na,
            "seconds": {"eks_auto_cold": info["seconds_auto_cold"], "vidpose_auto_total": t_auto},
            "speedup": info["seconds_auto_cold"] / t_auto,
            "eks_s": info["auto_s"],
            "vidpose_q": {
                "median": float(np.median(auto.process_var)),
                "min": float(auto.process_var.min()),
                "max": float(auto.process_var.max()),
            },
            "diff_px": {
                "pipeline_coords": _diff(auto.poses.coords, eks["auto_coords"]),
                "same_input_at_eks_s_coords": _diff(same_auto, eks["auto_coords"]),
            },
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--keypoints", type=int, default=17)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--smoothing", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--view-pairs",
        type=int,
        default=8,
        help="multiview timing: pair keypoint i with i + PAIRS as two views (0 = skip)",
    )
    ap.add_argument(
        "--eks-python",
        default=None,
        help="python of an environment with ensemble-kalman-smoother: compare (docstring)",
    )
    ap.add_argument("--eks-repeats", type=int, default=2, help="eks fixed-s calls (1st cold)")
    ap.add_argument(
        "--eks-auto-frames", type=int, default=None, help="frames for eks's auto (default all)"
    )
    ap.add_argument("--eks-x64", action="store_true", help="also run eks in float64")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    truth, members = synthetic_ensemble(args.frames, args.keypoints, args.members)
    t_stats, stats = _timed(lambda: ensemble_stats(members), args.repeats)
    t_select, q_auto = _timed(
        lambda: select_process_var(stats.center, stats.variance), args.repeats
    )
    t_fixed, fixed = _timed(
        lambda: smooth_ensemble(members, smoothing=args.smoothing), args.repeats
    )
    t_auto, auto = _timed(lambda: smooth_ensemble(members, smoothing="auto"), args.repeats)
    pairs = [[f"kp{i}", f"kp{i + args.view_pairs}"] for i in range(args.view_pairs)]
    t_multi = float("nan")
    if pairs:
        t_multi, _ = _timed(
            lambda: smooth_multiview(members, pairs, smoothing=args.smoothing), args.repeats
        )
    mean = np.mean([m.coords for m in members], axis=0)
    result = {
        "input": {
            "frames": args.frames,
            "keypoints": args.keypoints,
            "members": args.members,
            "true_process_var": 0.5,
        },
        "seconds": {
            "ensemble_stats": t_stats,
            "auto_selection_only": t_select,
            "smooth_fixed_total": t_fixed,
            "smooth_auto_total": t_auto,
            "multiview_fixed_total": t_multi,
        },
        "multiview_body_parts": len(pairs),
        "auto_process_var": {
            "median": float(np.median(q_auto)),
            "min": float(q_auto.min()),
            "max": float(q_auto.max()),
        },
        "error_vs_truth": {
            "single_member": _errors(members[0].coords, truth),
            "ensemble_mean": _errors(mean, truth),
            "ensemble_median": _errors(stats.center, truth),
            "smoothed_fixed": _errors(fixed.poses.coords, truth),
            "smoothed_auto": _errors(auto.poses.coords, truth),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    if args.eks_python:
        result["eks_comparison"] = compare_eks(args, members, t_fixed, t_auto, fixed, auto)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
