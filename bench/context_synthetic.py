"""Single-frame vs temporal-context model, supervised and semi-supervised, on occluded frames.

    uv run python bench/context_synthetic.py [--seeds 0 1 2] [--steps 1000] [--size 256]
        [--backbone resnet18] [--out JSON]
    uv run python bench/context_synthetic.py --merge A.json B.json ... --out JSON

For each seed: synthesize a "hard" project (passing occluders, blur, noise; labels from video 0
only), train the four variants with the same labels, seed and number of steps
(``heatmap_fpn`` or ``heatmap_context`` head x no unsupervised loss or temporal + PCA), predict
the held-out video 1 (never labeled) and compare every frame with the true positions in
``ground_truth/<video>_full.csv``. Keypoints are split into

- unoccluded: visible and inside the frame;
- occluded: inside the frame but hidden (behind an occluder or another body part), scored
  against where they truly are.

Reports, per variant, the median and 95th-percentile error of each group pooled over seeds
(and per seed), plus the fraction of frames with a spurious jump (> 20 px move while the truth
moved < 20 px). ``--merge`` pools the runs of several result files (e.g. one per seed, run
as separate GPU calls) into one table.
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
VARIANTS = {
    "single/supervised": ["model.head=heatmap_fpn"],
    "single/semi-supervised": ["model.head=heatmap_fpn", "model.losses=[temporal,pca_singleview]"],
    "context/supervised": ["model.head=heatmap_context"],
    "context/semi-supervised": [
        "model.head=heatmap_context",
        "model.losses=[temporal,pca_singleview]",
    ],
}


def errors(pred: np.ndarray, truth_path: Path) -> dict[str, np.ndarray]:
    """Per-keypoint errors split by occlusion, plus per-frame spurious-jump flags."""
    full = read_poses(truth_path)
    occluded = full.keypoint_columns["occluded"] > 0.5
    outside = full.keypoint_columns["outside"] > 0.5
    err = np.linalg.norm(pred - full.coords, axis=2)
    visible = ~occluded & ~outside
    move_pred = np.linalg.norm(np.diff(pred, axis=0), axis=2)
    move_true = np.linalg.norm(np.diff(full.coords, axis=0), axis=2)
    jumps = ((move_pred > JUMP_PX) & (move_true < JUMP_PX) & ~outside[1:]).any(axis=1)
    return {"unoccluded": err[visible], "occluded": err[occluded], "jumps": jumps}


def summarize(errs: dict[str, np.ndarray]) -> dict[str, float]:
    out: dict[str, float] = {}
    for group in ("unoccluded", "occluded"):
        e = errs[group][np.isfinite(errs[group])]
        out[f"{group}_median_px"] = float(np.median(e)) if e.size else float("nan")
        out[f"{group}_p95_px"] = float(np.percentile(e, 95)) if e.size else float("nan")
        out[f"{group}_n"] = int(e.size)
    out["jump_frame_fraction"] = float(np.mean(errs["jumps"]))
    return out


def table(runs: list[dict], pooled: dict[str, dict]) -> str:
    lines = [
        "| model | losses | unoccluded median / p95 (px) | occluded median / p95 (px) | "
        "jump frames | train s/run |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in pooled.items():
        model, losses = name.split("/")
        secs = np.mean([r["train_seconds"] for r in runs if r["variant"] == name])
        lines.append(
            f"| {model} | {losses} | {s['unoccluded_median_px']:.2f} / "
            f"{s['unoccluded_p95_px']:.2f} | {s['occluded_median_px']:.2f} / "
            f"{s['occluded_p95_px']:.2f} | {100 * s['jump_frame_fraction']:.1f}% | {secs:.0f} |"
        )
    return "\n".join(lines)


def pool(runs: list[dict], raw: dict[tuple[str, int], dict[str, np.ndarray]]) -> dict:
    pooled = {}
    for name in VARIANTS:
        keys = [k for k in raw if k[0] == name]
        if keys:
            pooled[name] = summarize(
                {g: np.concatenate([raw[k][g] for k in keys]) for g in raw[keys[0]]}
            )
    return pooled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--labeled", type=int, default=60)
    ap.add_argument("--difficulty", default="hard")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--merge", type=Path, nargs="+", help="pool these result files instead")
    ap.add_argument("--out", type=Path, default=Path("bench/results/context_synthetic.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        runs = [r for p in parts for r in p["runs"]]
        raw = {
            (r["variant"], r["seed"]): {k: np.asarray(v, dtype=float) for k, v in r["raw"].items()}
            for r in runs
        }
        out = {**parts[0], "runs": runs, "merged_from": [str(p) for p in args.merge]}
    else:
        out = run(args)
        runs, raw = out["runs"], out.pop("_raw")
    out["pooled_over_seeds"] = pool(runs, raw)
    out["table"] = table(runs, out["pooled_over_seeds"])
    print(out["table"])
    if args.merge:  # the pooled figures are computed; per-keypoint errors would only bloat it
        out["runs"] = [{k: v for k, v in r.items() if k != "raw"} for r in runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


def run(args: argparse.Namespace) -> dict:
    base = [
        f"model.backbone={args.backbone}",
        "model.pretrained=false",
        f"data.image_height={args.size}",
        f"data.image_width={args.size}",
        f"training.max_steps={args.steps}",
        "training.batch_size=16",
        *args.overrides,
    ]
    runs, raw = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            proj = synthesize_project(
                Path(tmp) / f"p{seed}",
                seed=seed,
                n_labeled=args.labeled,
                n_frames=args.frames,
                difficulty=args.difficulty,
            )
            for name in args.variants:
                t0 = time.perf_counter()
                res = train(
                    proj.project_dir,
                    [*base, f"training.seed={seed}", *VARIANTS[name]],
                    model_dir=Path(tmp) / f"m{seed}_{name.replace('/', '_')}",
                    progress=False,
                )
                model = load_model(res.model_dir)
                t1 = time.perf_counter()
                poses = model.predict_video(proj.videos[-1])
                predict_s = time.perf_counter() - t1
                errs = errors(poses.coords, proj.ground_truth_full[-1])
                raw[(name, seed)] = errs
                row = {
                    "seed": seed,
                    "variant": name,
                    "train_seconds": res.train_seconds,
                    "predict_fps": poses.n_frames / predict_s,
                    "seconds": time.perf_counter() - t0,
                    "test_pixel_error_mean": res.metrics.get("test", {}).get("pixel_error_mean"),
                    **summarize(errs),
                    "raw": {k: np.round(v.astype(float), 3).tolist() for k, v in errs.items()},
                }
                print(json.dumps({k: v for k, v in row.items() if k != "raw"}), flush=True)
                runs.append(row)
    return {
        "benchmark": "context_synthetic",
        "settings": {**vars(args), "out": str(args.out), "merge": None},
        "overrides": base,
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "runs": runs,
        "_raw": raw,
    }


if __name__ == "__main__":
    sys.exit(main())
