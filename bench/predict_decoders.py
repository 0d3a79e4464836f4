"""Which decoder set-up feeds one GPU fastest: ``vidpose.predict_batch`` over the same videos
for each ``predict.decoders`` / jobs / batch size / compile setting, in one process.

    python bench/predict_decoders.py --model MODEL_DIR --video long.mp4 --copies 8 \
        --configs threads:6,threads:6,processes:4,processes:6,processes:8,processes:8:256:c \
        [--out bench/results/predict_decoders.json]

A config is ``DECODERS:JOBS[:BATCH[:c]]`` (BATCH 0 or absent: the model's; ``c``: compiled).
The first run pays CUDA's start-up and graph capture: repeat the first config to see both.
Each row: frames/s over the batch (``report.fps``), seconds, videos ok, and the mean
``nvidia-smi`` utilization.gpu while it ran (300 ms samples). The model's ``config.yaml`` is
edited in place (``predict.decoders``) and left at the last config's value.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch

import vidpose
from gpu_busy import Sampler
from predict_many import set_decoders


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--copies", type=int, default=8, help="links to --video, each a video")
    ap.add_argument("--configs", default="threads:6,threads:6,processes:6")
    ap.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval for the whole run (Python's default: 0.005 s)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    out: dict = {
        "benchmark": "predict_decoders",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpus": os.cpu_count(),
        "video": args.video.name,
        "copies": args.copies,
        "switch_interval_s": sys.getswitchinterval(),
        "runs": [],
    }
    sampler = Sampler(300) if torch.cuda.is_available() else None
    with tempfile.TemporaryDirectory() as tmp:
        videos = []
        for i in range(args.copies):
            link = Path(tmp) / f"v{i:03d}.mp4"
            link.symlink_to(args.video.resolve())
            videos.append(link)
        for k, config in enumerate(args.configs.split(",")):
            decoders, jobs, *rest = config.split(":")
            batch = int(rest[0]) if rest and rest[0] else 0
            compiled = len(rest) > 1 and rest[1] == "c"
            set_decoders(args.model, decoders)
            started = time.time()
            t0 = time.perf_counter()
            row = {"config": config, "decoders": decoders, "jobs": int(jobs)}
            row.update(batch_size=batch or None, compile=compiled)
            try:
                report = vidpose.predict_batch(
                    args.model,
                    videos,
                    Path(tmp) / f"out{k}",
                    jobs=int(jobs),
                    batch_size=batch or None,
                    compile=True if compiled else None,
                )
                row.update(
                    fps=round(report.fps),
                    seconds=round(report.seconds, 2),
                    ok=report.count("ok"),
                    frames=report.frames,
                )
            except Exception as exc:  # recorded; the next config still runs
                row["error"] = f"{type(exc).__name__}: {exc}"
            row["wall_s"] = round(time.perf_counter() - t0, 2)
            busy, n = sampler.busy(started, time.time()) if sampler else (float("nan"), 0)
            row["gpu_busy"] = round(busy, 1) if n else None
            out["runs"].append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(out, indent=1))
    if sampler:
        sampler.stop()
    return 0


if __name__ == "__main__":  # decoder processes re-import this module: keep it guarded
    sys.exit(main())
