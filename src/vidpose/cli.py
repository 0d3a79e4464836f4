"""The ``vidpose`` command line: parses arguments and calls the public API, nothing more."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from vidpose.errors import VidposeError

console = Console(stderr=False)
err_console = Console(stderr=True)


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from vidpose.synthetic import synthesize_project

    t0 = time.perf_counter()
    proj = synthesize_project(
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
    )
    dt = time.perf_counter() - t0
    console.print(f"[green]wrote synthetic project[/] {proj.project_dir} in {dt:.1f} s")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from vidpose.project import run_check

    return run_check(args.project_dir, console=console)


def _cmd_train(args: argparse.Namespace) -> int:
    from vidpose.train import train

    if args.help_config:
        from vidpose.config import config_help

        console.print(config_help(), highlight=False)
        return 0
    if args.project_dir is None:
        raise VidposeError("vidpose train needs PROJECT_DIR")
    if args.seeds:
        from vidpose.train.ensemble import train_ensemble
        from vidpose.train.run import default_model_dir

        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        ensemble_dir = args.model_dir or default_model_dir(Path(args.project_dir).resolve())
        for res in train_ensemble(
            args.project_dir, seeds, ensemble_dir, args.overrides, progress=not args.no_progress
        ):
            _print_metrics(res.model_dir, res.metrics, res.train_seconds)
        console.print(f"[green]ensemble of {len(seeds)} written to[/] {ensemble_dir}")
        return 0
    res = train(
        args.project_dir,
        args.overrides,
        model_dir=args.model_dir,
        resume=args.resume,
        progress=not args.no_progress,
    )
    _print_metrics(res.model_dir, res.metrics, res.train_seconds)
    return 0


def _print_metrics(model_dir: Path, metrics: dict, seconds: float) -> None:
    console.print(
        f"[green]model written to[/] {model_dir}  (trained {seconds:.1f} s, "
        f"{metrics.get('steps', '?')} steps)"
    )
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if m:
            console.print(
                f"  {split:5s} pixel error: mean {m['pixel_error_mean']:.2f} px, "
                f"median {m['pixel_error_median']:.2f} px  ({m['frames']} frames)"
            )


def _cmd_predict(args: argparse.Namespace) -> int:
    from vidpose.predict.run import predict_videos

    predict_videos(
        args.model_dir,
        args.videos,
        args.out,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        reader=args.reader,
        compile=args.compile,
        progress=not args.no_progress,
        log=console.print,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidpose.demo import run_demo

    t0 = time.perf_counter()
    res = run_demo(
        args.out,
        device=args.device,
        overrides=args.overrides,
        progress=not args.no_progress,
        log=console.print,
    )
    total = time.perf_counter() - t0
    console.rule("vidpose demo")
    console.print(f"project:        {res.project_dir}")
    console.print(f"model:          {res.model_dir}")
    console.print(f"predictions:    {res.predictions}")
    console.print(f"train time:     {res.train_seconds:.1f} s   (whole demo {total:.1f} s)")
    console.print(f"test labels:    {res.test_pixel_error_mean:.2f} px mean error")
    console.print(
        f"held-out video: {res.video_frames} frames, error median "
        f"{res.video_error_median:.2f} px, 95th percentile {res.video_error_p95:.2f} px"
    )
    console.print(f"report:         {res.report}")
    console.print(f"labeled video:  {res.labeled_video}  (model o, ground truth square)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidpose.viz.evaluate import evaluate

    t0 = time.perf_counter()
    res = evaluate(
        args.model_dir,
        args.video or None,
        n_outliers=args.outliers,
        z_threshold=args.z_threshold,
        min_likelihood=args.min_likelihood,
        device=args.device,
        log=console.print,
    )
    console.print(f"[green]wrote[/] {res.report}  ({len(res.figures)} figures)")
    console.print(
        f"[green]wrote[/] {res.outliers}  ({res.n_outliers} frames to label next; "
        f"`vidpose extract-frames PROJECT {res.outliers}` saves them as PNGs)"
    )
    console.print(f"evaluation took {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_extract_frames(args: argparse.Namespace) -> int:
    import pandas as pd

    from vidpose.viz.extract import extract_frames
    from vidpose.viz.outliers import read_outliers

    if args.outliers is not None:
        table = read_outliers(args.outliers)
    elif args.video is not None and args.frames:
        frames = [int(f) for f in args.frames.split(",") if f.strip()]
        table = pd.DataFrame({"video": [str(args.video)] * len(frames), "frame": frames})
    else:
        raise VidposeError("give an outliers table (OUTLIERS.csv) or --video V --frames 1,2,3")
    res = extract_frames(args.project_dir, table, context=args.context)
    for path in res.written:
        console.print(f"[green]wrote[/] {path}")
    console.print(
        f"{len(res.written)} frames to label, {len(res.neighbours)} context neighbours, "
        f"{len(res.existing)} already there (kept); lists: " + ", ".join(str(p) for p in res.lists)
    )
    return 0


def _cmd_smooth(args: argparse.Namespace) -> int:
    from vidpose.smooth import run_smooth

    view_matches, labels = None, None
    if args.mode == "multiview":
        if args.project is None:
            raise VidposeError("--mode multiview needs --project PROJECT_DIR (for view_matches)")
        from vidpose.project import load_project

        project = load_project(args.project)
        view_matches = project.settings.view_matches
        labels = project.labels
    t0 = time.perf_counter()
    poses = run_smooth(
        args.predictions,
        args.out,
        smoothing=args.smoothing,
        mode=args.mode,
        center=args.center,
        view_matches=view_matches,
        labels=labels,
    )
    console.print(
        f"[green]wrote[/] {args.out}  ({len(args.predictions)} members, "
        f"{poses.n_frames} frames, {time.perf_counter() - t0:.1f} s)"
    )
    return 0


def _cmd_label_video(args: argparse.Namespace) -> int:
    from vidpose.viz.labeled_video import find_settings_file, label_video, load_skeleton

    predictions, video = args.predictions, args.video
    skeleton = None
    if args.skeleton == "auto":
        found = find_settings_file([video, *predictions])
        if found is None:
            raise VidposeError(
                f"--skeleton: no vidpose.yaml in the folders above {video} or the predictions; "
                "give the project: --skeleton PROJECT_DIR"
            )
        skeleton = load_skeleton(found)
    elif args.skeleton is not None:
        skeleton = load_skeleton(args.skeleton)
    stats = label_video(
        predictions,
        video,
        args.out,
        min_likelihood=args.min_likelihood,
        low_confidence=args.low_confidence,
        skeleton=skeleton,
        frame_counter=not args.no_frame_counter,
        labels=args.label,
        marker_size=args.marker_size,
        crf=args.crf,
        preset=args.preset,
        progress=not args.no_progress,
    )
    console.print(
        f"[green]wrote[/] {stats.out}  ({stats.frames} frames, {stats.seconds:.1f} s, "
        f"{stats.fps:.0f} frames/s)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidpose",
        description="Video-centric, semi-supervised animal pose estimation.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synthesize", help="write a synthetic example project with ground truth")
    p.add_argument("out_dir", type=Path, help="project folder to create")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--labeled", type=int, default=60, help="labeled frames (default 60)")
    p.add_argument("--videos", type=int, default=2, help="number of videos (default 2)")
    p.add_argument("--frames", type=int, default=600, help="frames per video (default 600)")
    p.add_argument("--height", type=int, default=256, help="frame height in pixels")
    p.add_argument("--width", type=int, default=256, help="frame width in pixels")
    p.add_argument("--keypoints", type=int, default=None, help="number of keypoints (subset)")
    p.add_argument("--view", choices=["top", "side"], default="top", help="camera angle")
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    p.add_argument(
        "--views",
        type=int,
        choices=[1, 2],
        default=1,
        help="2: two synchronized views side by side (multiview)",
    )
    p.set_defaults(func=_cmd_synthesize)

    p = sub.add_parser("check", help="validate a project and list every problem")
    p.add_argument("project_dir", type=Path)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser(
        "train",
        help="train a pose model on a project",
        description="Train a pose model. Overrides are key=value pairs, e.g. "
        "training.max_epochs=50 model.backbone=resnet18 "
        "(see --help-config for every key).",
    )
    p.add_argument("project_dir", type=Path, nargs="?")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="where to write the model (default PROJECT/models/<time>)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from MODEL_DIR/checkpoints/last.ckpt",
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="train an ensemble, one member per seed (e.g. 0,1,2,3) under --model-dir",
    )
    p.add_argument("--help-config", action="store_true", help="list every config key and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="predict keypoints on videos (a model or an ensemble)")
    p.add_argument("model_dir", type=Path)
    p.add_argument("videos", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=None, help="output folder (default MODEL/videos)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", default="auto", help="auto | 32 | bf16")
    p.add_argument("--reader", default="auto", help="video reader: auto | pyav | nvdec | dali")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("smooth", help="ensemble several predictions and Kalman-smooth them")
    p.add_argument(
        "predictions", type=Path, nargs="+", help="predictions of one video, one per model"
    )
    p.add_argument("--out", type=Path, required=True, help="output table (.csv or .h5)")
    p.add_argument(
        "--smoothing",
        default="auto",
        help="auto (max. marginal likelihood per keypoint) or a process variance px^2",
    )
    p.add_argument("--mode", choices=["singleview", "multiview"], default="singleview")
    p.add_argument("--center", choices=["median", "mean"], default="median")
    p.add_argument(
        "--project",
        type=Path,
        default=None,
        help="project whose vidpose.yaml view_matches and labels multiview mode uses",
    )
    p.set_defaults(func=_cmd_smooth)

    p = sub.add_parser(
        "evaluate", help="figures, outliers.csv and report.html beside a model or ensemble"
    )
    p.add_argument("model_dir", type=Path)
    p.add_argument(
        "--video",
        type=Path,
        action="append",
        default=[],
        help="video (or predictions table) to include; repeat for several; default: every "
        "predictions table in MODEL_DIR/videos. Videos without predictions are predicted.",
    )
    p.add_argument("--outliers", type=int, default=20, help="rows of outliers.csv (default 20)")
    p.add_argument(
        "--z-threshold",
        type=float,
        default=5.0,
        help="robust z-score above which a frame is flagged (default 5)",
    )
    p.add_argument("--min-likelihood", type=float, default=0.9)
    p.add_argument("--device", default="auto", help="for videos that must be predicted first")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "extract-frames", help="save video frames (e.g. outliers.csv) as PNGs for labeling"
    )
    p.add_argument("project_dir", type=Path)
    p.add_argument("outliers", type=Path, nargs="?", help="outliers.csv from vidpose evaluate")
    p.add_argument("--video", type=Path, default=None, help="with --frames: one video")
    p.add_argument("--frames", default="", help="comma-separated frame indices")
    p.add_argument(
        "--context",
        type=int,
        default=0,
        help="also save this many neighbouring frames each side (2 for a context model)",
    )
    p.set_defaults(func=_cmd_extract_frames)

    p = sub.add_parser(
        "label-video",
        help="draw predicted keypoints (and skeleton) on a video",
        description="Draw one or more prediction tables of VIDEO on every frame and encode "
        "an H.264 video. Put --skeleton after the positional arguments (or use "
        "--skeleton=PATH), as it takes an optional value.",
    )
    p.add_argument("predictions", type=Path, nargs="+", help="prediction tables of VIDEO")
    p.add_argument("video", type=Path, help="the video the predictions were made on")
    p.add_argument("--out", type=Path, required=True, help="labeled video (.mp4, .mkv, ...)")
    p.add_argument(
        "--min-likelihood", type=float, default=0.9, help="low confidence below it (default 0.9)"
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
        "--label", action="append", default=None, help="legend name per PRED (repeat, in order)"
    )
    p.add_argument("--marker-size", type=int, default=None, help="marker radius in pixels")
    p.add_argument("--crf", type=int, default=18, help="x264 quality (18 visually lossless)")
    p.add_argument("--preset", default="veryfast", help="x264 speed preset (default veryfast)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_label_video)

    p = sub.add_parser("demo", help="synthesize, train, predict and score an example project")
    p.add_argument("--out", type=Path, default=Path("vidpose-demo"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("overrides", nargs="*", help="extra config overrides, key=value")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; key=value overrides may also follow options
    (``vidpose train P --no-progress a.b=1``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [t for t in extra if t.startswith("-") or "=" not in t]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VidposeError as exc:
        err_console.print(f"[bold red]{type(exc).__name__}:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
