"""``vidpose train``: train a model (or, with ``--seeds``, an ensemble) on a project."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import vidpose
from vidpose.cli._common import (
    UsageError,
    int_list_type,
    log,
    need_dir,
    print_plain,
    say,
    writable_dir,
)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a pose model on a project",
        description="Train a pose model. Overrides are key=value pairs, e.g. "
        "training.max_epochs=50 model.backbone=resnet18 "
        "(see --help-config for every key).",
    )
    p.add_argument("project_dir", type=Path, nargs="?", metavar="PROJECT_DIR")
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
        type=int_list_type(0, unique=True),
        default=None,
        help="train an ensemble, one member per seed (e.g. 0,1,2,3) under --model-dir; "
        "finished members are kept and interrupted ones resumed",
    )
    p.add_argument("--help-config", action="store_true", help="list every config key and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    if args.help_config:
        print_plain(vidpose.config_help())
        return 0
    if args.project_dir is None:
        raise UsageError("vidpose train needs PROJECT_DIR (or --help-config)")
    need_dir(args.project_dir, "PROJECT_DIR")
    if args.model_dir is not None:
        writable_dir(args.model_dir, "--model-dir")
    progress = not args.no_progress
    if args.seeds:
        ensemble_dir = args.model_dir or vidpose.default_model_dir(args.project_dir.resolve())
        results = vidpose.train_ensemble(
            args.project_dir, args.seeds, ensemble_dir, args.overrides, progress=progress, log=log
        )
        for res in results:
            _print_metrics(res.model_dir, res.metrics, res.train_seconds)
        say(ensemble_dir, f"ensemble of {len(args.seeds)} written to")
        return 0
    res = vidpose.train(
        args.project_dir,
        args.overrides,
        model_dir=args.model_dir,
        resume=args.resume,
        progress=progress,
        log=log,
    )
    _print_metrics(res.model_dir, res.metrics, res.train_seconds)
    return 0


def _print_metrics(model_dir: Path, metrics: dict[str, Any], seconds: float) -> None:
    say(
        f"{model_dir}  (trained {seconds:.1f} s, {metrics.get('steps', '?')} steps)",
        "model written to",
    )
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if m:
            say(
                f"  {split:5s} pixel error: mean {m['pixel_error_mean']:.2f} px, "
                f"median {m['pixel_error_median']:.2f} px  ({m['frames']} frames)"
            )
