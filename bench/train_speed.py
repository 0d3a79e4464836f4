"""Training speed on the mirror-mouse example: fit time, ms per step and how busy the GPU is.

    python bench/train_speed.py --mode supervised|semi [--graphs true|false|null] [--seeds 0,1]
        [--project DIR] [--out JSON] [key=value ...]

Budgets as in Lightning Pose's mirror-mouse figures: ResNet-50 from scratch at 256x256, batch
16; supervised 100 epochs x 5 steps = 500 steps, semi-supervised (temporal + pca_singleview,
clips of 16 frames) 100 epochs x 10 steps = 1,000 steps; validation every epoch. Split: seed 0,
80/10/10.

"fit" is ``trainer.fit`` (from the first training batch to the end of the last validation,
vidpose's ``train_seconds``); "GPU busy" is the mean of ``nvidia-smi``'s utilization (the
fraction of time a kernel was running), sampled every 200 ms over the fit window only.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_busy import Sampler
from train_mirror_mouse import DEFAULT_PROJECT, lp_overrides, project_with_settings
from vidpose.training import train


class Window(L.Callback):
    """Wall-clock times of the fit's start and end."""

    def on_train_start(self, trainer, module):
        self.start = time.time()

    def on_train_end(self, trainer, module):
        self.end = time.time()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("supervised", "semi"), default="supervised")
    ap.add_argument("--graphs", default="null", help="training.cuda_graphs")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    ap.add_argument("--losses", default="temporal,pca_singleview")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile every seed (slower runs); the last seed's stats -> this text file",
    )
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    semi = args.mode == "semi"
    overrides = [
        *lp_overrides(10 if semi else 5),
        f"training.cuda_graphs={args.graphs}",
        *([f"model.losses=[{args.losses}]"] if semi else []),
        *args.overrides,
    ]
    sampler = Sampler() if torch.cuda.is_available() else None
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        project = project_with_settings(args.project, Path(tmp) / "project")
        for seed in [int(s) for s in args.seeds.split(",")]:
            window = Window()
            t0 = time.time()
            prof = cProfile.Profile() if args.profile else None
            if prof:
                prof.enable()
            res = train(
                project,
                [*overrides, f"training.seed={seed}"],
                model_dir=Path(tmp) / f"model{seed}",
                progress=False,
                callbacks=[window],
            )
            if prof:
                prof.disable()
                with open(args.profile, "w") as f:
                    pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(45)
            total = time.time() - t0
            busy, n = sampler.busy(window.start, window.end) if sampler else (float("nan"), 0)
            m = res.metrics
            run = {
                "seed": seed,
                "steps": res.steps,
                "fit_seconds": res.train_seconds,
                "ms_per_step": 1000 * res.train_seconds / max(1, res.steps),
                "train_call_seconds": total,
                "gpu_busy_percent": busy,
                "gpu_samples": n,
                **{
                    f"{s}_pixel_error_{k}": m[s][f"pixel_error_{k}"]
                    for s in ("val", "test")
                    if s in m
                    for k in ("mean", "median")
                },
            }
            print(json.dumps(run), flush=True)
            runs.append(run)
    if sampler:
        sampler.stop()
    out = {
        "benchmark": "train_speed",
        "mode": args.mode,
        "cuda_graphs": args.graphs,
        "overrides": overrides,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "runs": runs,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
