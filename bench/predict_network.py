"""The prediction network alone on one GPU: frames/s of the captured graph per set-up.

    python bench/predict_network.py --model MODEL_DIR --video VIDEO \\
        --configs plain:64,fuse:64,plain:256,fuse:256,plain:256:compile --out OUT.json

Each config is ``MODE:BATCH[:OPTION...]``: ``plain`` loads the network as trained
(``fold=False, fuse=False``), ``fold`` with its batch normalisations folded into the
convolutions (``vidpose.models.folding``; done in float32 only since it measured slower in
bf16, so ``fold`` in bf16 is ``plain``), ``fuse`` folded and each convolution fused with the
ReLU (and residual sum) after it in cuDNN (``vidpose.models.fusion``, the default on a GPU);
option ``fp32`` predicts in float32 (default bf16), ``compile`` compiles the backbone
(``predict.compile``), and the first call's seconds (compilation and capture) are reported as
``first_call_s``. Each set-up is what ``vidpose predict`` runs on a batch of decoded frames
(``_Members.infer``: the I420 planes of the video's size -> the network's input, network,
keypoints in original px, on one captured CUDA graph), on one batch that stays on the GPU (no
decoding, no upload).

Accuracy: each set-up's keypoints on the batch's real frames (the video's first BATCH frames)
against the network as trained in float32 (``plain``, ``fp32``), in original px: the median,
99th percentile and largest difference over all keypoints, and over the confident ones (the
float32 network's confidence >= 0.9; where a heatmap is flat, its peak can move far for any
change of rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_many import replay_fps
from vidpose.predict.predictor import _Members, load_model
from vidpose.video import open_video


def frames_of(video: Path, n: int) -> torch.Tensor:
    """The first ``n`` frames of ``video`` as packed I420 planes (B, 3H/2, W) uint8 on the GPU
    (repeated when the video is shorter)."""
    with open_video(video, reader="pyav", planar=True) as vr:
        batch = next(iter(vr.iter_batches(n, 0, n)))
    f = torch.as_tensor(np.asarray(batch.frames))
    if f.shape[0] < n:
        f = f.repeat((n + f.shape[0] - 1) // f.shape[0], *([1] * (f.dim() - 1)))[:n]
    return f.cuda()


def run(model_dir: Path, frames, mode: str, compile_: bool, precision: str, seconds: float):
    model = load_model(
        model_dir,
        device="cuda",
        fold=mode != "plain",
        fuse=mode == "fuse",
        precision=precision,
    )
    if compile_:
        model.compile()
    members = _Members([model])
    n = frames.shape[0]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    coords, conf = members.infer(frames, n)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    ref = coords.clone(), conf.clone()
    fps = replay_fps(members, frames, seconds)
    row = {
        "fps": fps,
        "first_call_s": first,
        "folded_pairs": len(model.folded),
        "fused_convolutions": len(model.fused),
    }
    return row, ref


def px_differences(coords: torch.Tensor, ref: torch.Tensor, ref_conf: torch.Tensor) -> dict:
    """Median, 99th percentile and largest distance (px) of ``coords`` from ``ref``, over all
    keypoints and over those the reference is confident of (>= 0.9)."""
    d = (coords.float() - ref.float()).norm(dim=-1).flatten().cpu().numpy()
    sure = (ref_conf.flatten() >= 0.9).cpu().numpy()
    out = {}
    for name, v in (("all", d), ("confident", d[sure])):
        if v.size:
            out[name] = {
                "keypoints": int(v.size),
                "median_px": float(np.median(v)),
                "p99_px": float(np.percentile(v, 99)),
                "max_px": float(v.max()),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--configs", default="plain:64,fuse:64,plain:256,fuse:256")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out: dict = {
        "benchmark": "predict_network",
        "device": torch.cuda.get_device_name(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "video": args.video.name,
        "runs": {},
    }
    cache: dict[int, torch.Tensor] = {}
    refs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for cfg in args.configs.split(","):
        parts = cfg.split(":")
        mode, bs = parts[0], int(parts[1])
        if mode not in ("plain", "fold", "fuse"):
            ap.error(f"{cfg}: the mode must be plain, fold or fuse")
        compile_ = "compile" in parts[2:]
        precision = "32" if "fp32" in parts[2:] else "bf16"
        if bs not in cache:
            cache[bs] = frames_of(args.video, bs)
            model = load_model(args.model, device="cuda", fold=False, fuse=False, precision="32")
            c, p = _Members([model]).infer(cache[bs], bs)
            refs[bs] = c.clone(), p.clone()  # a captured graph's outputs: kept apart
        row, (coords, _) = run(args.model, cache[bs], mode, compile_, precision, args.seconds)
        row.update(batch_size=bs, mode=mode, compile=compile_, precision=precision)
        row["vs_float32"] = px_differences(coords, *refs[bs])
        out["runs"][cfg] = row
        print(json.dumps({cfg: row}), flush=True)
        if args.out:
            args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
