"""Supervised vs semi-supervised on synthetic projects with ground truth for every frame.

    uv run python bench/semisupervised_synthetic.py [--seeds 0 1 2] [--steps 1000]
        [--backbone resnet18] [--size 256] [--losses temporal,pca_singleview] [--out JSON]

For each seed: synthesize a project (labels from video 0 only), train a supervised and a
semi-supervised model with the same labels and the same number of steps, predict the held-out
video (never labeled) and compare every frame with the ground truth. Reports the median and
95th-percentile error over visible keypoints of all frames, and the fraction of frames with a
jump: some keypoint moving > 20 px between consecutive frames while the truth moved < 20 px.
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
from vidpose.synthetic import synthesize_project
from vidpose.training import train

JUMP_PX = 20.0


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Errors of predictions (N, K, 2) against ground truth (N, K, 2, NaN where not visible)."""
    err = np.linalg.norm(pred - truth, axis=2)
    move_pred = np.linalg.norm(np.diff(pred, axis=0), axis=2)
    move_true = np.linalg.norm(np.diff(truth, axis=0), axis=2)
    spurious = (move_pred > JUMP_PX) & ~(move_true >= JUMP_PX)
    return {
        "error_median_px": float(np.nanmedian(err)),
        "error_p95_px": float(np.nanpercentile(err, 95)),
        "error_mean_px": float(np.nanmean(err)),
        "jump_frame_fraction": float(np.mean(spurious.any(axis=1))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--labeled", type=int, default=60)
    ap.add_argument("--difficulty", default="hard")
    ap.add_argument("--losses", default="temporal,pca_singleview")
    ap.add_argument("--out", type=Path, default=Path("bench/results/semisupervised_synthetic.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    base = [
        f"model.backbone={args.backbone}",
        "model.pretrained=false",
        f"data.image_height={args.size}",
        f"data.image_width={args.size}",
        f"training.max_steps={args.steps}",
        "training.batch_size=16",
        "unlabeled.reader=pyav",
        *args.overrides,
    ]
    variants = {"supervised": [], "semi-supervised": [f"model.losses=[{args.losses}]"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            proj = synthesize_project(
                Path(tmp) / f"p{seed}",
                seed=seed,
                n_labeled=args.labeled,
                n_frames=args.frames,
                difficulty=args.difficulty,
            )
            truth = read_poses(proj.ground_truth[-1]).coords
            for name, extra in variants.items():
                t0 = time.perf_counter()
                res = train(
                    proj.project_dir,
                    [*base, f"training.seed={seed}", *extra],
                    model_dir=Path(tmp) / f"m{seed}_{name}",
                    progress=False,
                )
                poses = load_model(res.model_dir).predict_video(proj.videos[-1])
                row = {
                    "seed": seed,
                    "variant": name,
                    "train_seconds": res.train_seconds,
                    "seconds": time.perf_counter() - t0,
                    **score(poses.coords, truth),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = {}
    for name in variants:
        rs = [r for r in rows if r["variant"] == name]
        summary[name] = {
            k: float(np.mean([r[k] for r in rs]))
            for k in ("error_median_px", "error_p95_px", "jump_frame_fraction", "train_seconds")
        }
    out = {
        "benchmark": "semisupervised_synthetic",
        "settings": {**vars(args), "out": str(args.out)},
        "overrides": base,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "runs": rows,
        "mean_over_seeds": summary,
    }
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
