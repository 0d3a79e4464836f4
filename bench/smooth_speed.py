"""Ensemble Kalman smoother speed: a 5-member ensemble of 100,000 frames x 17 keypoints.

    uv run python bench/smooth_speed.py [--frames 100000] [--keypoints 17] [--members 5]
        [--smoothing 1.0] [--repeats 1] [--view-pairs 8]
        [--out bench/results/smooth_speed_cpu.json]

Times ``vidpose.smooth.smooth_ensemble`` with a fixed process variance and with
``smoothing="auto"`` (and, alone, the ensemble statistics and the auto selection), and
``smooth_multiview`` with ``--view-pairs`` two-view body parts (timing only: the synthetic
views are not 3-D consistent); reports accuracy against the synthetic ground truth (median
and 95th-percentile error of one member, the ensemble mean and the smoothed output).

Synthetic input: per keypoint coordinate a random walk (process variance 0.5 px^2/frame) seen
by each member with 3 px Gaussian noise and 2% of 40 px outliers (likelihood 0.3 there, 0.9
elsewhere). The comparison with the ``ensemble-kalman-smoother`` package belongs to a separate
environment and is not done here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from vidpose.io.poses import Poses
from vidpose.smooth import (
    ensemble_stats,
    select_process_var,
    smooth_ensemble,
    smooth_multiview,
)


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
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
