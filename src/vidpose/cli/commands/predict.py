"""``vidpose predict``: predict keypoints on videos with a model or an ensemble."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    device_type,
    int_type,
    log,
    need_dir,
    print_err_plain,
    print_error,
    reader_type,
    say,
    writable_dir,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="predict keypoints on videos (a model or an ensemble)",
        description="Predict every video; a video that cannot be read is reported at the end "
        "(exit code 1) and does not stop the others. Options not given take the model's "
        "predict.* config.",
    )
    p.add_argument(
        "model_dir",
        type=Path,
        metavar="MODEL_DIR",
        help="a model or ensemble directory, e.g. my-project/models/2026-11-27_10-00-00",
    )
    p.add_argument(
        "videos",
        type=Path,
        nargs="+",
        metavar="VIDEO",
        help="video files or folders of them (every .mp4/.avi/.mov/.mkv directly inside), "
        "e.g. sessions/2026-11-27/",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL/videos)")
    p.add_argument("--batch-size", type=int_type(1), default=None, help="frames per batch")
    p.add_argument("--device", type=device_type, default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--precision",
        choices=["auto", "32", "bf16"],
        default=None,
        help="numeric precision; auto = bf16 on a GPU, 32 on a CPU",
    )
    p.add_argument(
        "--reader",
        type=reader_type,
        default=None,
        metavar="READER",
        help="video reader: auto or a name from `vidpose list readers`",
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    p.add_argument(
        "--jobs",
        type=int_type(1),
        default=None,
        help="videos decoded at once, e.g. 8 (default 6): their frames share the network's batches",
    )
    p.add_argument(
        "--format",
        default="csv",
        help="table formats, comma-separated: csv (DeepLabCut / Lightning Pose layout), h5 "
        "(DeepLabCut's), nwb (NWB with ndx-pose) or another extension of `vidpose list "
        "formats`, e.g. csv,nwb",
    )
    p.add_argument(
        "--dlc-names",
        action="store_true",
        help="name tables <video>DLC_<scorer>.csv/.h5, as DeepLabCut's tools look for them",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.model_dir, "MODEL_DIR")
    out = args.out or args.model_dir / "videos"
    writable_dir(out, "--out" if args.out else "MODEL_DIR/videos")
    from vidpose.video import expand_videos

    videos = expand_videos(args.videos)
    res = vidpose.predict_videos(
        args.model_dir,
        videos,
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        reader=args.reader,
        compile=args.compile,
        jobs=args.jobs,
        formats=args.format.split(","),
        dlc_names=args.dlc_names,
        progress=not args.no_progress,
        log=log,
    )
    done = len({res.names[v] for v in res.outputs})
    if not res.failed:
        say(f"{done} video(s) into {out}", "predicted")
        return 0
    total = done + len(res.failed)
    print_error(f"{len(res.failed)} of {total} video(s) could not be predicted:")
    for line in res.failure_lines():
        print_err_plain(f"  {line}")
    if done:
        say(f"{done} of {total} video(s) into {out}", "predicted")
    return 1
