"""``vidpose demo``: synthesize, train, predict and score an example project."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import console, log, say, writable_dir


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="synthesize, train, predict and score an example project")
    p.add_argument("--out", type=Path, default=Path("vidpose-demo"), help="demo folder")
    # the demo picks its training budget for a CPU or "the" GPU: no cuda:N
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where to train and predict; auto = a GPU when there is one",
    )
    p.add_argument("overrides", nargs="*", help="extra config overrides, key=value")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    writable_dir(args.out, "--out")
    t0 = time.perf_counter()
    res = vidpose.run_demo(
        args.out,
        device=args.device,
        overrides=args.overrides,
        progress=not args.no_progress,
        log=log,
    )
    total = time.perf_counter() - t0
    console.rule("vidpose demo")
    say(f"project:        {res.project_dir}")
    say(f"model:          {res.model_dir}")
    say(f"predictions:    {res.predictions}")
    say(f"train time:     {res.train_seconds:.1f} s   (whole demo {total:.1f} s)")
    say(f"test labels:    {res.test_pixel_error_mean:.2f} px mean error")
    say(
        f"held-out video: {res.video_frames} frames, error median "
        f"{res.video_error_median:.2f} px, 95th percentile {res.video_error_p95:.2f} px"
    )
    say(f"report:         {res.report}")
    say(f"labeled video:  {res.labeled_video}  (model o, ground truth square)")
    return 0
