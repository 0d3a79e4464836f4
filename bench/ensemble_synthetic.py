"""Single model vs ensemble mean vs Kalman-smoothed ensemble, against synthetic ground truth.

    uv run python bench/ensemble_synthetic.py [--members 3] [--steps 300] [--size 128]
        [--backbone resnet18] [--seed 0] [--out bench/results/ensemble_synthetic.json]

Synthesizes the default project (labels from video 0), trains one member per seed with the same
labels and budget, predicts the held-out video with each, and reports the median and
95th-percentile error over every visible keypoint of every frame for: each single model, the
ensemble mean, the ensemble median and the smoothed ensemble (vidpose.smooth, auto).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidpose.io import read_poses
from vidpose.predict import load_model
from vidpose.smooth import smooth_poses
from vidpose.synthetic import synthesize_project
from vidpose.training.ensemble import train_ensemble


def errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = np.linalg.norm(pred - truth, axis=2)
    return {"median_px": float(np.nanmedian(err)), "p95_px": float(np.nanpercentile(err, 95))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic project")
    ap.add_argument("--out", type=Path, default=Path("bench/results/ensemble_synthetic.json"))
    args = ap.parse_args(argv)
    overrides = [
        f"model.backbone={args.backbone}",
        "model.pretrained=false",
        f"data.image_height={args.size}",
        f"data.image_width={args.size}",
        "training.batch_size=8",
        f"training.max_steps={args.steps}",
        "training.lr=2e-3",
        "training.scheduler=cosine",
    ]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        proj = synthesize_project(Path(tmp) / "project", seed=args.seed)
        truth = read_poses(proj.ground_truth[-1]).coords
        results = train_ensemble(
            proj.project_dir,
            list(range(args.members)),
            Path(tmp) / "ens",
            overrides,
            progress=False,
        )
        preds = [load_model(r.model_dir).predict_video(proj.videos[-1]) for r in results]
        t_smooth = time.perf_counter()
        smoothed = smooth_poses(preds, smoothing="auto")
        t_smooth = time.perf_counter() - t_smooth
    stack = np.stack([p.coords for p in preds])
    rows = {f"single_seed{i}": errors(p.coords, truth) for i, p in enumerate(preds)}
    rows["ensemble_mean"] = errors(np.nanmean(stack, axis=0), truth)
    rows["ensemble_median"] = errors(np.nanmedian(stack, axis=0), truth)
    rows["smoothed_ensemble"] = errors(smoothed.coords, truth)
    out = {
        "benchmark": "ensemble_synthetic",
        "settings": {**vars(args), "out": str(args.out)},
        "overrides": overrides,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "frames": int(truth.shape[0]),
        "smooth_seconds": t_smooth,
        "total_seconds": time.perf_counter() - t0,
        "errors": rows,
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
