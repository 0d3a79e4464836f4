"""ONNX export of a model: parity with PyTorch and CPU throughput, PyTorch vs ONNX Runtime.

    uv run python bench/export_onnx.py MODEL_DIR VIDEO [--frames N] [--batch 16] --out JSON

Exports with ``vidpose.export_model`` (parity on the video's first ``--check-frames`` frames),
then runs the whole video (or its first ``--frames``) end to end on this machine's CPU both ways:
PyAV decode -> resize -> network -> coordinates in original px, with the same batches, and
compares the two sets of coordinates over every frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vidpose import __version__
from vidpose.data.geometry import input_to_orig
from vidpose.export import export_model
from vidpose.predict import load_model
from vidpose.video import open_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("video", type=Path)
    ap.add_argument("--frames", type=int, default=None, help="first N frames (default all)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--check-frames", type=int, default=64)
    ap.add_argument("--onnx", type=Path, default=None, help="where to write the .onnx")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    t0 = time.perf_counter()
    res = export_model(
        args.model_dir, args.onnx, check_video=args.video, check_frames=args.check_frames
    )
    export_s = time.perf_counter() - t0
    model = load_model(args.model_dir, device="cpu", precision="32")
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    if model.network.context_frames != 1:
        raise SystemExit("end-to-end timing here is for single-frame models")

    def run(kind: str) -> tuple[np.ndarray, float, int]:
        coords, n = [], 0
        t = time.perf_counter()
        with open_video(args.video, reader="pyav", device="cpu") as vr:
            for batch in vr.iter_batches(args.batch, stop=args.frames):
                x, orig_hw = model._prepare(torch.from_numpy(batch.frames))
                if kind == "onnxruntime":
                    c = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
                else:
                    with torch.inference_mode():
                        c = model.network(x).coords.float()
                coords.append(input_to_orig(c, orig_hw, model.input_hw).numpy())
                n += len(x)
        return np.concatenate(coords), time.perf_counter() - t, n

    c_t, s_t, n = run("torch")
    c_o, s_o, _ = run("onnxruntime")
    out = {
        "benchmark": "export_onnx",
        "note": args.note,
        "model_dir": str(args.model_dir),
        "video": str(args.video),
        "vidpose": __version__,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "export_seconds": export_s,
        "export": {k: str(v) if isinstance(v, Path) else v for k, v in vars(res).items()},
        "frames": n,
        "batch": args.batch,
        "end_to_end_fps": {"torch": n / s_t, "onnxruntime": n / s_o},
        "max_abs_px_all_frames": float(np.abs(c_t - c_o).max()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("frames", "end_to_end_fps", "max_abs_px_all_frames")}))
    print(f"parity on {res.frames_checked} frames: {res.max_abs_px:.3g} px; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
