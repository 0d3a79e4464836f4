"""``vidpose import-sleap``: a vidpose project from SLEAP labels (.slp or .pkg.slp)."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import UsageError, need_dir, need_file, say, working, writable_dir


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "import-sleap",
        help="make a vidpose project from SLEAP labels (.slp or .pkg.slp)",
        description="Write PROJECT_DIR/CollectedData.csv from the user-labeled instances of "
        "LABELS, each labeled frame as labeled-data/<video>/img<frame>.png (the images a "
        ".pkg.slp embeds, else decoded from its video), vidpose.yaml with the skeleton's edges "
        "and symmetries (flip_pairs), and a link to each video found in videos/. Everything is "
        "checked before PROJECT_DIR is touched. Needs sleap-io: uv pip install 'vidpose[sleap]'.",
    )
    p.add_argument(
        "labels",
        type=Path,
        metavar="LABELS",
        help="the SLEAP labels file, e.g. labels.v001.slp or labels.v001.pkg.slp",
    )
    p.add_argument(
        "project_dir",
        type=Path,
        metavar="PROJECT_DIR",
        help="the project folder to create (new or empty), e.g. my-project",
    )
    p.add_argument(
        "--videos",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="look for the videos by file name in DIR (repeatable), e.g. --videos "
        "/data/sessions: after their recorded path, before the folder of LABELS",
    )
    p.add_argument(
        "--copy-videos",
        action="store_true",
        help="copy the videos into PROJECT_DIR/videos/ instead of linking them, e.g. to move "
        "the project to another machine",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="import into a non-empty PROJECT_DIR, e.g. to update its labels: its "
        "CollectedData.csv, vidpose.yaml skeleton and the imported videos' labeled-data/ "
        "folders are replaced, other files (models, other videos) kept",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_file(args.labels, "LABELS")
    if not args.labels.name.lower().endswith(".slp"):
        raise UsageError(f"LABELS {args.labels}: expected a SLEAP .slp or .pkg.slp file")
    for folder in args.videos:
        need_dir(folder, "--videos")
    writable_dir(args.project_dir, "PROJECT_DIR")
    with working("importing SLEAP labels"):
        result = vidpose.import_sleap(
            args.labels,
            args.project_dir,
            force=args.force,
            video_dirs=args.videos,
            copy_videos=args.copy_videos,
        )
    how = "copied" if args.copy_videos else "linked"
    say(
        f"{result.project}  ({result.n_labeled} labeled frames, {len(result.images)} images, "
        f"{len(result.videos)} videos {how})",
        "wrote",
    )
    for name in result.not_found:
        say(f"video {name} not found: its labeled frames came from LABELS, videos/ lacks it")
    say(f"check it with: vidpose check {args.project_dir}")
    return 0
