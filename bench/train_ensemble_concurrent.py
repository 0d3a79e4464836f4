"""An ensemble trained at once on one GPU against one member (and members one after another).

    python bench/train_ensemble_concurrent.py [--project ../shared/data/mirror-mouse-example]
        [--members 5] [--steps 500] [--backbone resnet50] [--size 256] [--batch-size 16]
        [--at-once N] [--sequential] [--no-warmup] [--out JSON] [key=value ...]

What ``vidpose train --seeds 0,...,M-1`` costs against training one model. Each run is a call
of ``train_ensemble`` (what the command runs) into a fresh folder, in this one process:

- one:        one member (seed 0);
- sequential: M members, ``training.ensemble_concurrency=1`` (only with --sequential: slow);
- concurrent: M members, ``training.ensemble_concurrency`` null (all at once on one GPU) or
  --at-once N.

Budget as in ``bench/train_speed.py --mode supervised``: ResNet-50 from scratch at 256 x 256,
batch 16, 5 steps an epoch (validation each epoch), 500 steps, split seed 0, 80/10/10; CUDA
graphs and bf16 as the defaults resolve them. First a warm-up run (one member, 10 steps, not
reported), so that no timed run pays CUDA's start, cuDNN's and cuBLAS's set-up or lazy imports.

Reported per run: wall seconds of the call (start-up, training, the labeled frames' evaluation,
as a user waits for them), its ratio to one member's, each member's fit seconds, steps and
val/test pixel error, the peak GPU memory and how busy the GPU was (nvidia-smi
utilization.gpu every 200 ms over the call). Members of the same seed should reach the same
errors whichever way they were trained (on a GPU not to the last bit: bf16, cuDNN's atomics).

On CPU it runs too, with tiny settings, to show it works (not what it measures):

    python bench/train_ensemble_concurrent.py --steps 4 --backbone resnet18 --size 64 \\
        --members 2 --at-once 2 --sequential \\
        --out bench/results/train_ensemble_concurrent_cpu_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_mirror_mouse import DEFAULT_PROJECT, project_with_settings, split_overrides
from train_speed import Sampler
from vidpose.training.ensemble import train_ensemble


def overrides_for(args: argparse.Namespace) -> list[str]:
    return [
        *split_overrides(args.backbone, args.size, args.batch_size),
        f"training.steps_per_epoch={args.steps_per_epoch}",
        f"training.max_steps={args.steps}",
        *args.overrides,
    ]


def timed(
    project: Path,
    out_dir: Path,
    seeds: list[int],
    overrides: list[str],
    sampler: Sampler | None,
) -> dict[str, Any]:
    """One ``train_ensemble`` call, timed; what it cost and what each member reached."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    lines: list[str] = []
    t0 = time.time()
    results = train_ensemble(project, seeds, out_dir, overrides, progress=False, log=lines.append)
    wall = time.time() - t0
    busy, samples = sampler.busy(t0, t0 + wall) if sampler else (float("nan"), 0)
    members = []
    for seed, res in zip(seeds, results):
        m = res.metrics
        members.append(
            {
                "seed": seed,
                "steps": res.steps,
                "fit_seconds": res.train_seconds,
                "ms_per_step": 1000 * res.train_seconds / max(1, res.steps),
                **{
                    f"{s}_pixel_error_{k}": m[s][f"pixel_error_{k}"]
                    for s in ("val", "test")
                    if s in m
                    for k in ("mean", "median")
                },
            }
        )
    return {
        "seeds": seeds,
        "wall_seconds": wall,
        "peak_gpu_memory_gib": (
            torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        ),
        "gpu_busy_percent": busy,
        "gpu_samples": samples,
        "members": members,
        "log": lines,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--steps-per-epoch", type=int, default=5)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--at-once",
        type=int,
        default=None,
        help="training.ensemble_concurrency of the concurrent run (default null: all)",
    )
    ap.add_argument(
        "--sequential", action="store_true", help="also train the members one after another"
    )
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument(
        "--out", type=Path, default=Path("bench/results/train_ensemble_concurrent.json")
    )
    ap.add_argument("overrides", nargs="*", help="more config overrides, key=value")
    args = ap.parse_args(argv)
    overrides = overrides_for(args)
    seeds = list(range(args.members))
    at_once = "null" if args.at_once is None else str(args.at_once)
    sampler = Sampler() if torch.cuda.is_available() else None
    runs: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = project_with_settings(args.project, Path(tmp) / "project")
            if not args.no_warmup:
                warm = [*overrides, "training.max_steps=10"]
                train_ensemble(project, [0], Path(tmp) / "warmup", warm, progress=False)
            plan = [("one", [0], "1")]
            if args.sequential:
                plan.append(("sequential", seeds, "1"))
            plan.append(("concurrent", seeds, at_once))
            for name, run_seeds, concurrency in plan:
                run = timed(
                    project,
                    Path(tmp) / name,
                    run_seeds,
                    [*overrides, f"training.ensemble_concurrency={concurrency}"],
                    sampler,
                )
                run["ensemble_concurrency"] = concurrency
                runs[name] = run
                print(
                    f"{name}: {run['wall_seconds']:.1f} s, test px "
                    + ", ".join(
                        f"{m.get('test_pixel_error_mean', float('nan')):.2f}"
                        for m in run["members"]
                    ),
                    flush=True,
                )
    finally:
        if sampler:
            sampler.stop()
    one = runs["one"]["wall_seconds"]
    for run in runs.values():
        run["ratio_to_one"] = run["wall_seconds"] / one
    out = {
        "benchmark": "train_ensemble_concurrent",
        "device": (
            torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else platform.processor() or "cpu"
        ),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "members": args.members,
        "overrides": overrides,
        "runs": runs,
        "summary": {
            name: {"wall_seconds": r["wall_seconds"], "ratio_to_one": r["ratio_to_one"]}
            for name, r in runs.items()
        },
    }
    print(json.dumps(out["summary"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
