"""``vidpose export``: the network as an ONNX model, checked against PyTorch on real frames."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import int_type, need_dir, need_file, say, writable_file


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="write the network as ONNX, checked against PyTorch (max difference, px)"
    )
    p.add_argument(
        "model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="the model directory to export, e.g. my-project/models/2026-11-27_10-00-00",
    )
    p.add_argument("--format", choices=["onnx"], default="onnx", help="only onnx for now")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the .onnx file (default MODEL_DIR/export/model.onnx)",
    )
    p.add_argument(
        "--check-video",
        type=Path,
        default=None,
        help="compare ONNX Runtime with PyTorch on this video's first frames (default: the "
        "model's labeled images)",
    )
    p.add_argument(
        "--check-frames", type=int_type(1), default=64, help="frames to compare (default 64)"
    )
    p.add_argument(
        "--tolerance-px",
        type=float,
        default=0.01,
        help="refuse the export when the coordinates differ by more (default 0.01 px)",
    )
    p.add_argument("--opset", type=int_type(17), default=18, help="ONNX opset (default 18)")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.model_dir, "MODEL_DIR")
    if args.check_video is not None:
        need_file(args.check_video, "--check-video")
    if args.out is not None:
        writable_file(args.out, "--out")
    t0 = time.perf_counter()
    res = vidpose.export_model(
        args.model_dir,
        args.out,
        format=args.format,
        check_video=args.check_video,
        check_frames=args.check_frames,
        opset=args.opset,
        tolerance_px=args.tolerance_px,
    )
    say(f"{res.path}  (input {res.input_name} {res.input_shape}, float32 in [0, 1])", "wrote")
    say(
        f"parity on {res.check_source}: max |ONNX - PyTorch| {res.max_abs_px:.2g} px, "
        f"confidence {res.max_abs_confidence:.2g}",
    )
    say(
        f"CPU: onnxruntime {res.onnxruntime_fps:.0f} frames/s, PyTorch {res.torch_fps:.0f} "
        f"frames/s (network only); how to run it: {res.info_path}"
    )
    say(f"export took {time.perf_counter() - t0:.1f} s")
    return 0
