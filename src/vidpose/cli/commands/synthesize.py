"""``vidpose synthesize``: write a synthetic example project with ground truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import UsageError, int_type, say, writable_dir


def _even_size(text: str) -> int:
    value = int_type(32, 4096)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(
            f"expected an even number of pixels from 32 to 4096, got {text!r}"
        )
    return value


_even_size.__name__ = "an even size in pixels"


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("synthesize", help="write a synthetic example project with ground truth")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="project folder to create")
    p.add_argument(
        "--seed", type=int_type(0), default=0, help="random seed (same seed, same bytes)"
    )
    p.add_argument("--labeled", type=int_type(1), default=60, help="labeled frames (default 60)")
    p.add_argument("--videos", type=int_type(1), default=2, help="number of videos (default 2)")
    p.add_argument("--frames", type=int_type(1), default=600, help="frames per video (default 600)")
    p.add_argument(
        "--height", type=_even_size, default=256, help="frame height in pixels (even, 32-4096)"
    )
    p.add_argument(
        "--width", type=_even_size, default=256, help="frame width in pixels (even, 32-4096)"
    )
    p.add_argument(
        "--keypoints", type=int_type(1), default=None, help="number of keypoints (subset)"
    )
    p.add_argument("--view", choices=["top", "side"], default="top", help="camera angle")
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    p.add_argument(
        "--views",
        type=int,
        choices=[1, 2],
        default=1,
        help="2: two synchronized views side by side (multiview)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty OUT_DIR, replacing files of the same names",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    from vidpose.synthetic import CONTEXT_FRAMES, select_keypoints

    writable_dir(args.out_dir, "OUT_DIR")
    most = args.frames - 2 * CONTEXT_FRAMES
    if args.labeled > most:
        raise UsageError(
            f"--labeled {args.labeled}: at most --frames - {2 * CONTEXT_FRAMES} = {most} "
            f"(each labeled frame keeps {CONTEXT_FRAMES} neighbours on each side)"
        )
    n_keypoints = len(select_keypoints(None))
    if args.keypoints is not None and args.keypoints > n_keypoints:
        raise UsageError(
            f"--keypoints {args.keypoints}: the synthetic animal has {n_keypoints} keypoints"
        )
    t0 = time.perf_counter()
    proj = vidpose.synthesize_project(
        args.out_dir,
        seed=args.seed,
        n_labeled=args.labeled,
        n_videos=args.videos,
        n_frames=args.frames,
        size=(args.height, args.width),
        n_keypoints=args.keypoints,
        view=args.view,
        difficulty=args.difficulty,
        views=args.views,
        overwrite=args.overwrite,
    )
    say(f"{proj.project_dir} in {time.perf_counter() - t0:.1f} s", "wrote synthetic project")
    return 0
