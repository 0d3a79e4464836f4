"""``vidpose predict``: predict keypoints on videos with a model or an ensemble, resumably, on
this machine or a Ray cluster (:func:`vidpose.predict.batch.predict_batch`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import (
    UsageError,
    add_3d_options,
    device_type,
    float_type,
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
        help="predict keypoints on videos (a model or an ensemble), on this machine or a Ray "
        "cluster",
        description="Predict every video; a video that cannot be read is reported at the end "
        "(exit code 1) and does not stop the others. The output folder keeps a ledger "
        "(.vidpose-ledger.jsonl): run the same command again and videos whose outputs are "
        "complete are skipped, the others predicted. OUT/predict_report.csv and .json list "
        "every video. Options not given take the model's predict.* config. A multi-camera "
        "model (trained on a project with views) writes each camera's video as a 2D table "
        "and, with its calibration, each session's videos (<session>_<view>.mp4, one per "
        "view) triangulated into OUT/<session>_3d.csv once they are all predicted; a session "
        "with a view missing is triangulated from the others (at least 2) and reported.",
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
        metavar="SOURCE",
        help="video files, folders of them (every .mp4/.avi/.mov/.mkv directly inside) or "
        "manifests (.txt/.list: one video path per line, relative to the manifest; # comments), "
        "e.g. sessions/2026-11-27/ or all_sessions.txt",
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
        help="videos decoded at once, e.g. 8 (default 4 threads; 8 decoder processes, at most half "
        "the cores, when PyAV feeds a GPU): their frames share the network's batches",
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
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine (one worker process per GPU when several are visible); "
        "ray: a Ray cluster, one worker per GPU (needs the extra vidpose[ray])",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="--engine ray: the cluster to join (auto: the one `ray start` made on this "
        "machine); default: start a local one",
    )
    p.add_argument(
        "--workers",
        type=int_type(1),
        default=None,
        help="most workers: GPUs used, or Ray actors (default one per GPU; a Ray cluster "
        "without GPUs: 1, each on one CPU slot)",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=float_type(0, lo_open=True),
        default=1.0,
        help="--engine ray: GPUs each worker holds (default 1; 0.5 puts two on a GPU)",
    )
    p.add_argument(
        "--smooth3d",
        action="store_true",
        help="multi-camera models: Kalman-smooth each session's 3D trajectories (as "
        "`vidpose triangulate --smooth`: each frame trusted by its reprojection error and "
        "number of views; gaps stay gaps)",
    )
    add_3d_options(p, "multi-camera models, 3D: ")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.model_dir, "MODEL_DIR")
    out = args.out or args.model_dir / "videos"
    writable_dir(out, "--out" if args.out else "MODEL_DIR/videos")
    if args.address is not None and args.engine != "ray":
        raise UsageError("--address is for --engine ray")
    report = vidpose.predict_batch(
        args.model_dir,
        args.videos,
        args.out,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        jobs=args.jobs,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        reader=args.reader,
        compile=args.compile,
        formats=args.format.split(","),
        dlc_names=args.dlc_names,
        smooth3d=args.smooth3d,
        outlier_px=args.outlier_px,
        min_confidence=args.min_confidence,
        progress=not args.no_progress,
        log=log,
    )
    ok, skipped, failed = (report.count(s) for s in ("ok", "skipped", "failed"))
    total = len(report.videos)
    summary = f"{ok} predicted, {skipped} skipped (done before), {failed} failed of {total} "
    summary += f"video(s) in {out}"
    if report.frames:
        summary += f"; {report.frames:,} frames in {report.seconds:,.1f} s ({report.fps:,.0f}/s)"
    if report.sessions:
        tables = sum(s.table is not None and s.status != "failed" for s in report.sessions)
        summary += f"; {tables} of {len(report.sessions)} session(s) in 3D"
    summary += f"; report: {report.report_csv}"
    for s in report.sessions:  # a session is a warning: its 2D tables are written
        if s.status in ("partial", "incomplete", "failed"):
            say(f"{s.label}: {s.reason}", "warning:", style="yellow")
    if args.smooth3d and not report.sessions:
        say(
            "--smooth3d: nothing was triangulated (the model has no views and calibration, "
            "or no video names a view)",
            "warning:",
            style="yellow",
        )
    if not failed:
        say(summary, "done")
        return 0
    print_error(f"{failed} of {total} video(s) could not be predicted:")
    for r in report.failed:
        print_err_plain(f"  {r.video}: {r.reason}")
    say(summary, "done", style="yellow")
    return 1
