"""``vidpose label-video``: draw predicted keypoints (and skeleton) on a video."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    X264_CRF,
    X264_PRESETS,
    UsageError,
    float_type,
    int_type,
    log,
    need_file,
    same_file,
    say,
    writable_file,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "label-video",
        help="draw predicted keypoints (and skeleton) on a video",
        description="Draw one or more prediction tables of VIDEO on every frame and encode "
        "an H.264 video. Put --skeleton after the positional arguments (or use "
        "--skeleton=PATH), as it takes an optional value. With --points3d and --calibration, "
        "the 3D points are also drawn as the video's camera sees them (lens included), e.g. "
        "vidpose label-video preds/s0_cam0.csv videos/s0_cam0.mp4 --points3d s0_3d.csv "
        "--calibration calibration.toml --out s0_cam0_3d.mp4",
    )
    p.add_argument(
        "predictions", type=Path, nargs="+", metavar="PRED", help="prediction tables of VIDEO"
    )
    p.add_argument(
        "video", type=Path, metavar="VIDEO", help="the video the predictions were made on"
    )
    p.add_argument("--out", type=Path, required=True, help="labeled video (.mp4, .mkv, ...)")
    p.add_argument(
        "--min-likelihood",
        type=float_type(0, 1),
        default=None,
        help="low confidence below it (0-1), e.g. 0.6; default: the pcutoff of a DeepLabCut "
        "config.yaml in the folders above the video or predictions, else 0.9",
    )
    p.add_argument(
        "--low-confidence",
        choices=["hollow", "hide"],
        default="hollow",
        help="draw low-confidence points as rings (default) or not at all",
    )
    p.add_argument(
        "--skeleton",
        nargs="?",
        const="auto",
        default=None,
        metavar="PROJECT_DIR|YAML",
        help="draw the skeleton of vidpose.yaml: given, or found above the video/predictions",
    )
    p.add_argument("--no-frame-counter", action="store_true", help="no frame index in the corner")
    p.add_argument(
        "--label",
        action="append",
        default=None,
        help="legend name per PRED (repeat, once per PRED, in order)",
    )
    p.add_argument(
        "--marker-size", type=int_type(1), default=None, help="marker radius in pixels (>= 1)"
    )
    p.add_argument(
        "--crf",
        type=int_type(*X264_CRF),
        default=18,
        help="x264 quality, 0 (lossless) to 51; 18 is visually lossless (default)",
    )
    p.add_argument(
        "--preset",
        choices=X264_PRESETS,
        default="veryfast",
        metavar="PRESET",
        help=f"x264 speed preset: {', '.join(X264_PRESETS)} (default veryfast)",
    )
    p.add_argument(
        "--points3d",
        type=Path,
        default=None,
        metavar="S_3D.csv",
        help="also draw this 3D table (vidpose triangulate's, or 3D ground truth) reprojected "
        "into the view, another marker shape; needs --calibration, e.g. --points3d s0_3d.csv",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="PROJECT_OR_CALIBRATION",
        help="with --points3d: the cameras, an Anipose calibration.toml or a multi-camera "
        "project folder whose vidpose.yaml names it, e.g. --calibration my-rig/calibration.toml",
    )
    p.add_argument(
        "--view",
        default=None,
        help="with --points3d: the camera that filmed VIDEO (default: the camera named in "
        "its file name, videos/s0_cam0.mp4 is cam0), e.g. --view cam0",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    from vidpose.video.writer import CONTAINER_FORMATS

    predictions, video, out = args.predictions, args.video, args.out
    for path in predictions:
        need_file(path, "PRED")
    need_file(video, "VIDEO")
    if args.label is not None and len(args.label) != len(predictions):
        raise UsageError(
            f"--label given {len(args.label)} time(s) for {len(predictions)} prediction "
            "table(s); give one --label per PRED, in order"
        )
    writable_file(out, "--out")
    if out.suffix.lower() not in CONTAINER_FORMATS:
        raise UsageError(
            f"--out {out}: no video container for the extension {out.suffix!r}; use one of "
            + ", ".join(CONTAINER_FORMATS)
        )
    if same_file(out, video) or any(same_file(out, p) for p in predictions):
        raise UsageError(f"--out {out}: is one of the inputs; choose a new name")
    calibration = None
    if args.points3d is not None:
        from vidpose.cli.commands.triangulate import read_cameras

        need_file(args.points3d, "--points3d")
        if args.calibration is None:
            raise UsageError("--points3d: give the cameras with --calibration calibration.toml")
        calibration = read_cameras(args.calibration, "--calibration")
    elif args.calibration is not None or args.view is not None:
        raise UsageError("--calibration and --view place 3D points: add --points3d S_3D.csv")
    skeleton = None
    if args.skeleton == "auto":
        found = vidpose.find_settings_file([video, *predictions])
        if found is None:
            raise UsageError(
                f"--skeleton: no vidpose.yaml in the folders above {video} or the predictions; "
                "give the project: --skeleton PROJECT_DIR"
            )
        skeleton = vidpose.load_skeleton(found)
    elif args.skeleton is not None:
        skeleton = vidpose.load_skeleton(args.skeleton)
    min_likelihood = args.min_likelihood
    if min_likelihood is None:
        from vidpose.viz.labeled_video import default_min_likelihood

        min_likelihood, source = default_min_likelihood([video, *predictions])
        if source is not None:
            log(f"--min-likelihood {min_likelihood:g}: the pcutoff of {source}")
    stats = vidpose.label_video(
        predictions,
        video,
        out,
        min_likelihood=min_likelihood,
        low_confidence=args.low_confidence,
        skeleton=skeleton,
        frame_counter=not args.no_frame_counter,
        labels=args.label,
        marker_size=args.marker_size,
        crf=args.crf,
        preset=args.preset,
        progress=not args.no_progress,
        points3d=args.points3d,
        calibration=calibration,
        view=args.view,
    )
    say(
        f"{stats.out}  ({stats.frames} frames, {stats.seconds:.1f} s, {stats.fps:.0f} frames/s)",
        "wrote",
    )
    return 0
