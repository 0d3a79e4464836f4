"""``vidpose smooth``: ensemble several predictions of one video and Kalman-smooth them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    UsageError,
    need_dir,
    need_file,
    same_file,
    say,
    smoothing_type,
    working,
    writable_file,
)
from vidpose.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("smooth", help="ensemble several predictions and Kalman-smooth them")
    p.add_argument(
        "predictions",
        type=Path,
        nargs="+",
        metavar="PRED",
        help="predictions of one video, one per model",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output table (see `vidpose list formats`)"
    )
    p.add_argument(
        "--smoothing",
        type=smoothing_type,
        default="auto",
        help="auto (max. marginal likelihood per keypoint) or a process variance px^2 (> 0)",
    )
    p.add_argument(
        "--mode",
        choices=["singleview", "multiview"],
        default="singleview",
        help="singleview: each keypoint on its own; multiview: views linked through a shared "
        "3-D latent (needs --project with views)",
    )
    p.add_argument(
        "--center",
        choices=["median", "mean"],
        default="median",
        help="how the members are combined before smoothing",
    )
    p.add_argument(
        "--project",
        type=Path,
        default=None,
        help="project whose vidpose.yaml view_matches and labels multiview mode uses",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    for path in args.predictions:
        need_file(path, "PRED")
    writable_file(args.out, "--out")
    try:
        vidpose.output_format(args.out)
    except ConfigError as exc:
        raise UsageError(f"--out {exc}") from None
    clobbered = [p for p in args.predictions if same_file(p, args.out)]
    if clobbered:
        raise UsageError(f"--out {args.out}: is one of the input predictions; choose a new name")
    view_matches, labels = None, None
    if args.mode == "multiview":
        if args.project is None:
            raise UsageError("--mode multiview needs --project PROJECT_DIR (for view_matches)")
        need_dir(args.project, "--project")
        project = vidpose.load_project(args.project)
        view_matches = project.settings.view_matches
        labels = project.labels
    t0 = time.perf_counter()
    with working("smoothing the ensemble"):
        poses = vidpose.run_smooth(
            args.predictions,
            args.out,
            smoothing=args.smoothing,
            mode=args.mode,
            center=args.center,
            view_matches=view_matches,
            labels=labels,
        )
    say(
        f"{args.out}  ({len(args.predictions)} members, {poses.n_frames} frames, "
        f"{time.perf_counter() - t0:.1f} s)",
        "wrote",
    )
    return 0
