"""``vidpose evaluate``: figures, outliers.csv and report.html beside a model or ensemble."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    device_type,
    float_type,
    int_type,
    log,
    need_dir,
    need_file,
    say,
    working,
    writable_dir,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="figures, outliers.csv and report.html beside a model or ensemble"
    )
    p.add_argument(
        "model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="a model or ensemble directory, e.g. my-project/models/2026-11-27_10-00-00",
    )
    p.add_argument(
        "--video",
        type=Path,
        action="append",
        default=[],
        help="video, folder of videos, or predictions table to include, e.g. --video "
        "sessions/day1/; repeat for several; default: every predictions table in "
        "MODEL_DIR/videos. Videos without predictions are predicted.",
    )
    p.add_argument(
        "--outliers", type=int_type(0), default=20, help="rows of outliers.csv (default 20)"
    )
    p.add_argument(
        "--z-threshold",
        type=float_type(0, lo_open=True),
        default=5.0,
        help="robust z-score above which a frame is flagged (default 5)",
    )
    p.add_argument(
        "--min-likelihood",
        type=float_type(0, 1),
        default=0.9,
        help="confidence threshold of the confidence figures (default 0.9)",
    )
    p.add_argument(
        "--device",
        type=device_type,
        default="auto",
        help="for videos that must be predicted first: auto | cpu | cuda | cuda:N",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.model_dir, "MODEL_DIR")
    writable_dir(args.model_dir, "MODEL_DIR")
    from vidpose.video import expand_videos

    args.video = expand_videos(args.video)  # folders (and video lists) to their videos
    for video in args.video:
        need_file(video, "--video")
    t0 = time.perf_counter()
    with working("evaluating (figures, outliers, report)"):
        res = vidpose.evaluate(
            args.model_dir,
            args.video or None,
            n_outliers=args.outliers,
            z_threshold=args.z_threshold,
            min_likelihood=args.min_likelihood,
            device=args.device,
            log=log,
        )
    say(f"{res.report}  ({len(res.figures)} figures)", "wrote")
    say(
        f"{res.outliers}  ({res.n_outliers} frames to label next; "
        f"`vidpose extract-frames PROJECT {res.outliers}` saves them as PNGs)",
        "wrote",
    )
    say(f"evaluation took {time.perf_counter() - t0:.1f} s")
    return 0
