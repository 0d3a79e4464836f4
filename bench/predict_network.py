"""The prediction network alone on one GPU: frames/s of the captured graph per set-up.

    python bench/predict_network.py --model MODEL_DIR --video VIDEO \\
        --configs plain:64,fold:64,plain:256,fold:256,fold:256:compile --out OUT.json

Each config is ``FOLD:BATCH[:OPTION...]``: ``plain`` loads the network as trained
(``fold=False``), ``fold`` with its batch normalisations folded into the convolutions
(``vidpose.models.folding``; done in float32 only since it measured slower in bf16, so
``fold`` in bf16 is ``plain`` now); option ``fp32`` predicts in float32 (default bf16),
``compile`` compiles the backbone (``predict.compile``), and the first call's seconds
(compilation and capture) are reported as ``first_call_s``. Each set-up is what
``vidpose predict`` runs on a batch of decoded frames (``_Members.infer``: the I420 planes of
the video's size -> the network's input, network, keypoints in original px, on one captured
CUDA graph), on one batch that stays on the GPU (no decoding, no upload). Also reported: the
largest difference in px between each set-up's keypoints and the first set-up's on a batch of
the video's real frames.
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


def run(model_dir: Path, frames, fold: bool, compile_: bool, precision: str, seconds: float):
    model = load_model(model_dir, device="cuda", fold=fold, precision=precision)
    if compile_:
        model.compile()
    members = _Members([model])
    n = frames.shape[0]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    coords, _ = members.infer(frames, n)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    ref = coords.clone()
    fps = replay_fps(members, frames, seconds)
    return {"fps": fps, "first_call_s": first, "folded_pairs": len(model.folded)}, ref


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--configs", default="plain:64,fold:64,plain:256,fold:256")
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
    first_ref: torch.Tensor | None = None
    for cfg in args.configs.split(","):
        parts = cfg.split(":")
        fold, bs = parts[0] == "fold", int(parts[1])
        compile_ = "compile" in parts[2:]
        precision = "32" if "fp32" in parts[2:] else "bf16"
        if bs not in cache:
            cache[bs] = frames_of(args.video, bs)
        row, coords = run(args.model, cache[bs], fold, compile_, precision, args.seconds)
        row.update(batch_size=bs, fold=fold, compile=compile_, precision=precision)
        m = min(coords.shape[1], 64)
        if first_ref is None:
            first_ref = coords[:, :m]
        row["max_px_vs_first"] = float((coords[:, :m] - first_ref[:, :m]).abs().max())
        out["runs"][cfg] = row
        print(json.dumps({cfg: row}), flush=True)
        if args.out:
            args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
