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
    from vidpose.data.synthetic import synthesize_project

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
    from vidpose.io import write_poses
    from vidpose.predict import PredictStats, load_model
    from vidpose.predict.metrics import write_video_metrics
    from vidpose.train.ensemble import ensemble_members, is_ensemble

    ensemble = is_ensemble(args.model_dir)
    members = ensemble_members(args.model_dir) if ensemble else [Path(args.model_dir)]
    out_dir = Path(args.out or (Path(args.model_dir) / "videos"))
    outputs: dict[str, list[Path]] = {}
    for member in members:
        model = load_model(member, device=args.device, precision=args.precision)
        if args.compile:
            model.compile()
        member_out = out_dir / member.name if ensemble else out_dir
        for video in args.videos:
            stats: list[PredictStats] = []
            poses = model.predict_video(
                video,
                batch_size=args.batch_size,
                reader=args.reader,
                progress=not args.no_progress,
                stats=stats,
            )
            out = member_out / f"{Path(video).stem}.csv"
            write_poses(poses, out)
            write_video_metrics(poses, member, member_out, Path(video).stem)
            outputs.setdefault(Path(video).stem, []).append(out)
            st = stats[0]
            console.print(f"[green]wrote[/] {out}  ({st.frames} frames, {st.fps:,.0f} frames/s)")
    if ensemble:
        from vidpose.smooth import run_smooth

        for stem, paths in outputs.items():
            out = out_dir / f"{stem}.csv"
            run_smooth(paths, out, smoothing="auto")
            console.print(f"[green]wrote[/] {out}  (ensemble of {len(paths)}, Kalman-smoothed)")
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

    p = sub.add_parser("demo", help="synthesize, train, predict and score an example project")
    p.add_argument("--out", type=Path, default=Path("vidpose-demo"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("overrides", nargs="*", help="extra config overrides, key=value")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
