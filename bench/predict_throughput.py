"""Prediction throughput: end-to-end (decode -> CSV) and model-only frames/s.

    uv run python bench/predict_throughput.py --video VIDEO [--model-dir MODEL_DIR]
        [--precision 32 bf16] [--batch-size 64] [--compile] [--out bench/results/predict.json]

Without --model-dir an untrained network of the given --backbone / --input-size is used: speed
does not depend on the weights. Writes JSON with the device, library versions and settings.
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

from vidpose import __version__
from vidpose._device import resolve_device
from vidpose.build import build_network_from_config
from vidpose.config import default_config
from vidpose.io import write_poses
from vidpose.predict import PoseModel, PredictStats, load_model
from vidpose.video import probe_video


def untrained_model(
    backbone: str, size: int, n_keypoints: int, device: torch.device, precision: str
) -> PoseModel:
    cfg = default_config()
    cfg.model.backbone = backbone
    cfg.model.pretrained = False
    cfg.data.image_height = cfg.data.image_width = size
    net = build_network_from_config(cfg, n_keypoints)
    return PoseModel(net, cfg, [f"kp{i}" for i in range(n_keypoints)], device, precision)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_only_fps(
    model: PoseModel, batch_size: int, frame_hw: tuple[int, int], seconds: float = 5.0
) -> float:
    """Frames/s of resize + forward + coordinate decoding on frames already on the device."""
    frames = torch.randint(
        0, 255, (batch_size, *frame_hw, 3), dtype=torch.uint8, device=model.device
    )
    for _ in range(3):
        model._infer(frames)
    sync(model.device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        coords, _ = model._infer(frames)
        n += batch_size
    coords.cpu()
    sync(model.device)
    return n / (time.perf_counter() - t0)


def end_to_end_fps(model: PoseModel, video: Path, batch_size: int, reader: str) -> dict:
    """Decode, infer and write the CSV for the whole video; frames/s over all of it."""
    model.predict_video(video, batch_size=batch_size, reader=reader)  # warm-up (cudnn, compile)
    stats: list[PredictStats] = []
    t0 = time.perf_counter()
    poses = model.predict_video(video, batch_size=batch_size, reader=reader, stats=stats)
    with tempfile.TemporaryDirectory() as tmp:
        write_poses(poses, Path(tmp) / "pred.csv")
    total = time.perf_counter() - t0
    return {
        "frames": poses.n_frames,
        "seconds": total,
        "fps": poses.n_frames / total,
        "fps_without_csv": stats[0].fps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--input-size", type=int, default=256)
    ap.add_argument("--keypoints", type=int, default=17)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", nargs="+", default=["32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reader", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--model-seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/predict_throughput.json"))
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    info = probe_video(args.video)
    results = []
    for precision in args.precision:
        if args.model_dir:
            model = load_model(args.model_dir, device=str(device), precision=precision)
        else:
            model = untrained_model(
                args.backbone, args.input_size, args.keypoints, device, precision
            )
        if args.compile:
            model.compile()
        row = {
            "precision": precision,
            "compile": args.compile,
            "model_only_fps": model_only_fps(
                model, args.batch_size, (info.height, info.width), args.model_seconds
            ),
            "end_to_end": end_to_end_fps(model, args.video, args.batch_size, args.reader),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    out = {
        "benchmark": "predict_throughput",
        "video": str(args.video),
        "video_frames": info.n_frames,
        "video_size": [info.width, info.height],
        "model_dir": str(args.model_dir) if args.model_dir else None,
        "backbone": args.backbone if not args.model_dir else model.cfg.model.backbone,
        "input_size": list(model.input_hw),
        "batch_size": args.batch_size,
        "reader": args.reader,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "versions": {
            "vidpose": __version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
