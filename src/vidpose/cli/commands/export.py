"""``vidpose export``: the network as an ONNX model, checked against PyTorch on real frames."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import UsageError, int_type, need_dir, need_file, say, writable_file


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="write the network as ONNX, or compile it for CPU prediction (aoti); checked "
        "against PyTorch (max difference, px)",
    )
    p.add_argument(
        "model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="the model directory to export, e.g. my-project/models/2026-11-27_10-00-00",
    )
    p.add_argument(
        "--format",
        choices=["onnx", "aoti"],
        default="onnx",
        help="onnx (default), or aoti: compiled ahead of time (AOTInductor) into "
        "MODEL_DIR/export/model_cpu.pt2, which `vidpose predict` then uses on CPU",
    )
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
        if args.format == "aoti":
            raise UsageError("--out: a compiled network goes to MODEL_DIR/export/model_cpu.pt2")
        writable_file(args.out, "--out")
    t0 = time.perf_counter()
    if args.format == "aoti":
        return _compile(args, t0)
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


def _compile(args: argparse.Namespace, t0: float) -> int:
    """``--format aoti``: the model, or each member of an ensemble, compiled for CPU."""
    from vidpose.export import compile_model
    from vidpose.model_dir import ensemble_members, is_ensemble

    dirs = (
        [m.path for m in ensemble_members(args.model_dir)]
        if is_ensemble(args.model_dir)
        else [args.model_dir]
    )
    for d in dirs:
        res = compile_model(
            d,
            check_video=args.check_video,
            check_frames=args.check_frames,
            tolerance_px=args.tolerance_px,
        )
        say(f"{res.path}  (CPU, float32; `vidpose predict` on CPU uses it)", "wrote")
        say(
            f"parity on {res.check_source}: max |compiled - PyTorch| {res.max_abs_px:.2g} px, "
            f"confidence {res.max_abs_confidence:.2g}; CPU: compiled {res.compiled_fps:.0f} "
            f"frames/s, PyTorch {res.torch_fps:.0f} (network only); compiling "
            f"{res.compile_seconds:.1f} s"
        )
    say(f"export took {time.perf_counter() - t0:.1f} s")
    return 0
