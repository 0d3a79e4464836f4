"""``vidpose convert``: a pose table from one format to another, by extension."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import UsageError, need_file, same_file, say, writable_file


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert a labels or predictions table between formats (by extension)",
        description="Read SRC in any format vidpose reads (recognised from its content) and "
        "write DST in the format of its extension, through the one format registry "
        "(`vidpose list formats`). Existing DST is replaced atomically; SRC is never changed.",
    )
    p.add_argument(
        "src", type=Path, metavar="SRC", help="the table to read, e.g. CollectedData_me.h5"
    )
    p.add_argument(
        "dst", type=Path, metavar="DST", help="the table to write, e.g. CollectedData_me.csv"
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_file(args.src, "SRC")
    writable_file(args.dst, "DST")
    if same_file(args.src, args.dst):
        raise UsageError(f"DST {args.dst}: is SRC; choose another name")
    vidpose.output_format(args.dst)  # an unknown extension fails before reading
    poses = vidpose.read_poses(args.src)
    vidpose.write_poses(poses, args.dst)
    kind = "labels" if poses.is_labels else "predictions"
    say(
        f"{args.dst}  ({poses.n_frames} frames x {poses.n_keypoints} keypoints of {kind})",
        "wrote",
    )
    return 0
