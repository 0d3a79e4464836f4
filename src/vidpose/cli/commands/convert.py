"""``vidpose convert``: a pose table from one format to another, by extension."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    UsageError,
    float_type,
    need_file,
    same_file,
    say,
    writable_file,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert a labels or predictions table between formats (by extension)",
        description="Read SRC in any format vidpose reads (recognised from its content) and "
        "write DST in the format of its extension, through the one format registry "
        "(`vidpose list formats`). Existing DST is replaced atomically; SRC is never changed. "
        "Formats with a time axis (NWB) need the video's frame rate: SRC's when it records "
        "one, else --fps.",
    )
    p.add_argument(
        "src", type=Path, metavar="SRC", help="the table to read, e.g. CollectedData_me.h5"
    )
    p.add_argument(
        "dst", type=Path, metavar="DST", help="the table to write, e.g. CollectedData_me.csv"
    )
    p.add_argument(
        "--fps",
        type=float_type(0, lo_open=True),
        default=None,
        help="the video's frames per second, e.g. 30 (overrides SRC's; needed for .nwb when "
        "SRC records none)",
    )
    p.add_argument(
        "--video", default=None, metavar="PATH", help="the source video to record in DST"
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_file(args.src, "SRC")
    writable_file(args.dst, "DST")
    if same_file(args.src, args.dst):
        raise UsageError(f"DST {args.dst}: is SRC; choose another name")
    fmt = vidpose.output_format(args.dst)  # an unknown extension fails before reading
    poses = vidpose.read_poses(args.src)
    if args.fps is not None:
        poses.fps = args.fps
    if args.video is not None:
        poses.video = args.video
    if fmt.needs_fps and poses.fps is None:
        raise UsageError(
            f"DST {args.dst}: the {fmt.name} format needs the video's frame rate and SRC "
            f"{args.src} records none: pass --fps, e.g. --fps 30"
        )
    vidpose.write_poses(poses, args.dst)
    kind = "labels" if poses.is_labels else "predictions"
    say(
        f"{args.dst}  ({poses.n_frames} frames x {poses.n_keypoints} keypoints of {kind})",
        "wrote",
    )
    return 0
