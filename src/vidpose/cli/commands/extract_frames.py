"""``vidpose extract-frames``: save video frames (e.g. outliers.csv) as PNGs for labeling."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    UsageError,
    int_list_type,
    int_type,
    need_dir,
    need_file,
    say,
    working,
    writable_dir,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "extract-frames", help="save video frames (e.g. outliers.csv) as PNGs for labeling"
    )
    p.add_argument(
        "project_dir",
        type=Path,
        metavar="PROJECT_DIR",
        help="the project whose labeled-data/ receives the frames, e.g. my-project",
    )
    p.add_argument(
        "outliers",
        type=Path,
        nargs="?",
        metavar="OUTLIERS.csv",
        help="outliers.csv from vidpose evaluate",
    )
    p.add_argument("--video", type=Path, default=None, help="with --frames: one video")
    p.add_argument(
        "--frames",
        type=int_list_type(0),
        default=None,
        help="comma-separated frame indices of --video (e.g. 3,17,250)",
    )
    p.add_argument(
        "--context",
        type=int_type(0),
        default=0,
        help="also save this many neighbouring frames each side (2 for a context model)",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.project_dir, "PROJECT_DIR")
    if args.outliers is not None:
        if args.video is not None or args.frames is not None:
            raise UsageError("give an outliers table or --video/--frames, not both")
        need_file(args.outliers, "OUTLIERS.csv")
    elif args.video is None and args.frames is None:
        raise UsageError("give an outliers table (OUTLIERS.csv) or --video V --frames 1,2,3")
    elif args.video is None:
        raise UsageError("--frames needs --video (the video the frames are from)")
    elif args.frames is None:
        raise UsageError("--video needs --frames (comma-separated frame indices)")
    else:
        need_file(args.video, "--video")
    writable_dir(args.project_dir, "PROJECT_DIR")

    if args.outliers is not None:
        table = vidpose.read_outliers(args.outliers)
    else:
        import pandas as pd

        frames = args.frames
        table = pd.DataFrame({"video": [str(args.video)] * len(frames), "frame": frames})
    with working("extracting frames"):
        res = vidpose.extract_frames(args.project_dir, table, context=args.context)
    for path in res.written:
        say(path, "wrote")
    say(
        f"{len(res.written)} frames to label, {len(res.neighbours)} context neighbours, "
        f"{len(res.existing)} already there (kept); lists: " + ", ".join(str(p) for p in res.lists)
    )
    return 0
