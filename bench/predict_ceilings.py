"""What bounds prediction throughput on a GPU: the network's variants and the decoders'.

    python bench/predict_ceilings.py --video VIDEO [--copies 16] [--out JSON]

- ``model``: frames/s of the captured prediction graph (``_Members.infer``: resize, network,
  decoding) on one uint8 batch already on the device, for memory format (NCHW / channels_last),
  cuDNN benchmarking and batch size; and with ``torch.compile`` (compile seconds reported).
- ``decode``: frames/s decoding ``--copies`` links of the video to host arrays with the PyAV
  reader, ``jobs`` threads in one process against ``jobs`` processes.
An untrained ResNet-50 / heatmap_fpn at 256x256 with 17 keypoints: speed does not depend on
the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_throughput import untrained_model
from vidpose.predict.predictor import _Members
from vidpose.video import open_video, probe_video


def model_fps(channels_last: bool, benchmark: bool, bs: int, hw, compile_=False, seconds=4.0):
    torch.backends.cudnn.benchmark = benchmark
    model = untrained_model("resnet50", 256, 17, torch.device("cuda"), "bf16")
    if channels_last:  # (not vidpose's default: it measured no faster on an H100)
        model.network = model.network.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    if compile_:
        model.compile()
    members = _Members([model])
    frames = torch.randint(0, 255, (bs, *hw, 3), dtype=torch.uint8, device="cuda")
    for _ in range(3):
        members.infer(frames, bs)
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        members.infer(frames, bs)
        n += bs
    torch.cuda.synchronize()
    return {
        "channels_last": channels_last,
        "cudnn_benchmark": benchmark,
        "batch_size": bs,
        "compile": compile_,
        "warmup_seconds": warm,
        "fps": n / (time.perf_counter() - t0),
    }


def decode_one(path: str) -> int:
    n = 0
    with open_video(path, reader="pyav") as vr:
        for batch in vr.iter_batches(256):
            n += len(batch.indices)
    return n


def decode_fps(videos: list[str], jobs: int, processes: bool) -> dict:
    pool = ProcessPoolExecutor(jobs) if processes else ThreadPoolExecutor(jobs)
    t0 = time.perf_counter()
    with pool:
        frames = sum(pool.map(decode_one, videos))
    wall = time.perf_counter() - t0
    return {"jobs": jobs, "processes": processes, "frames": frames, "fps": frames / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    info = probe_video(args.video)
    hw = (info.height, info.width)
    out: dict = {
        "benchmark": "predict_ceilings",
        "device": torch.cuda.get_device_name(),
        "cpus": os.cpu_count(),
        "video": args.video.name,
        "frame_hw": hw,
        "model": [],
        "decode": [],
    }
    variants = [
        (False, False, 256),
        (True, False, 256),
        (True, True, 256),
        (True, False, 512),
        (True, True, 512),
    ]
    for cl, bench, bs in variants:
        row = model_fps(cl, bench, bs, hw)
        out["model"].append(row)
        print("model", json.dumps(row), flush=True)
    if not args.skip_compile:
        row = model_fps(True, False, 256, hw, compile_=True)
        out["model"].append(row)
        print("model", json.dumps(row), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        videos = []
        for i in range(args.copies):
            v = Path(tmp) / f"v{i:02d}{args.video.suffix}"
            v.symlink_to(args.video.resolve())
            videos.append(str(v))
        for jobs, procs in [(8, False), (16, False), (8, True), (16, True)]:
            row = decode_fps(videos, jobs, procs)
            out["decode"].append(row)
            print("decode", json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
