"""``vidpose train``: train a model on a project; with ``--seeds`` an ensemble, with
``--folds`` a K-fold cross-validation, with ``--multirun`` one of these per combination of
swept values (``key=a,b``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import vidpose
from vidpose.cli._common import (
    UsageError,
    int_list_type,
    int_type,
    log,
    need_dir,
    print_error,
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
        "(see --help-config for every key). With --multirun, key=a,b / key=range(3) / "
        "key=choice(a,b) sweep the key: one model per combination.",
    )
    p.add_argument(
        "project_dir",
        type=Path,
        nargs="?",
        metavar="PROJECT_DIR",
        help="the project folder (labels, labeled-data/, videos/), e.g. my-project",
    )
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="where to write the model, ensemble, cross-validation or sweep "
        "(default PROJECT/models/<time>)",
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
        "finished members are kept and interrupted ones resumed. On one GPU the members train "
        "at once (training.ensemble_concurrency: null = all, N = at most N, 1 = one after "
        "another), each with the results it gets trained alone",
    )
    p.add_argument(
        "--folds",
        type=int_type(2),
        default=None,
        metavar="K",
        help="K-fold cross-validation: one model per fold under --model-dir, each tested on "
        "the labeled frames the others train on (split by data.split_seed); writes "
        "cv_summary.json/.csv. Run the same command again to continue an interrupted one",
    )
    p.add_argument(
        "--multirun",
        action="store_true",
        help="sweep: one model (or cross-validation, with --folds) per combination of the "
        "swept values (key=a,b  key=range(3)  key=choice(a,b)) under --model-dir, ranked in "
        "summary.csv and summary.html. Run the same command again to continue it",
    )
    p.add_argument(
        "--jobs",
        type=int_type(1),
        default=None,
        metavar="N",
        help="with --multirun: train N trials at once, each in its own process (one GPU each, "
        "round-robin, when there are GPUs); default 1",
    )
    p.add_argument("--help-config", action="store_true", help="list every config key and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handle=handle, parser=p)
    return p


def _check_combinations(args: argparse.Namespace) -> None:
    """Refuse options that cannot work together, saying why; before any work."""
    again = "run the same command again: finished {} are kept and interrupted ones resumed"
    if args.folds is not None and args.seeds:
        raise UsageError(
            "--folds and --seeds cannot be combined: a cross-validation trains one model per "
            "fold, an ensemble one per seed (sweep training.seed with --multirun instead)"
        )
    if args.folds is not None and args.resume:
        raise UsageError(f"--resume is for one model; to continue --folds, {again.format('folds')}")
    if args.multirun and args.seeds:
        raise UsageError(
            "--multirun and --seeds cannot be combined (sweep training.seed=0,1,2 instead)"
        )
    if args.multirun and args.resume:
        raise UsageError(
            f"--resume is for one model; to continue a --multirun sweep, {again.format('trials')}"
        )
    if args.jobs is not None and not args.multirun:
        raise UsageError("--jobs trains the trials of a sweep at once: it needs --multirun")


def _refuse_sweeps(overrides: list[str]) -> None:
    """A sweep override without --multirun: the config's own error, plus what to do."""
    from vidpose.config import compose_config, expand_sweep
    from vidpose.errors import ConfigError, VidposeError

    for text in overrides:
        try:
            runs = expand_sweep([text])
        except VidposeError:
            continue  # reported in full when the config is composed
        if len(runs) > 1 or runs[0] != [text]:
            try:
                compose_config(None, [text])
            except ConfigError as exc:
                raise ConfigError(f"{exc}; to train one model per value, add --multirun") from exc


def handle(args: argparse.Namespace) -> int:
    if args.help_config:
        print_plain(vidpose.config_help())
        return 0
    if args.project_dir is None:
        raise UsageError("vidpose train needs PROJECT_DIR (or --help-config)")
    need_dir(args.project_dir, "PROJECT_DIR")
    if args.model_dir is not None:
        writable_dir(args.model_dir, "--model-dir")
    _check_combinations(args)
    if not args.multirun:
        _refuse_sweeps(args.overrides)
    if args.folds is not None:
        n = vidpose.load_project(args.project_dir).labels.n_frames
        if args.folds > n:
            args.parser.error(
                f"argument --folds: expected at most {n} (the labeled frames of "
                f"{args.project_dir}; each fold holds out at least one), got {args.folds}"
            )
    progress = not args.no_progress
    out_dir = args.model_dir or vidpose.default_model_dir(args.project_dir.resolve())
    if args.multirun:
        return _sweep(args, out_dir, progress)
    if args.folds is not None:
        res = vidpose.train_folds(
            args.project_dir, args.folds, out_dir, args.overrides, progress=progress, log=log
        )
        _print_cv(res)
        return 0
    if args.seeds:
        results = vidpose.train_ensemble(
            args.project_dir, args.seeds, out_dir, args.overrides, progress=progress, log=log
        )
        for res in results:
            _print_metrics(res.model_dir, res.metrics, res.train_seconds)
        say(out_dir, f"ensemble of {len(args.seeds)} written to")
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


def _print_cv(res: Any) -> None:
    from vidpose.training.cv import format_summary

    say(f"{res.cv_dir}  ({len(res.folds)} folds)", "cross-validation written to")
    say("held-out pixel error (px) per fold, each model tested on the frames it never saw:")
    for line in format_summary(res.summary):
        say(f"  {line}")


def _sweep(args: argparse.Namespace, out_dir: Path, progress: bool) -> int:
    res = vidpose.run_sweep(
        args.project_dir,
        args.overrides,
        out_dir,
        folds=args.folds,
        jobs=args.jobs or 1,
        progress=progress,
        log=log,
    )
    page = vidpose.write_sweep_report(res.sweep_dir)
    done = len(res.trials) - len(res.failed)
    say(f"{res.sweep_dir}  ({done} of {len(res.trials)} trials finished)", "sweep written to")
    best = res.best
    if best is not None:
        error = best.row[res.rank_by]
        sd = best.row.get("cv_pixel_error_sd", math.nan) if res.rank_by.startswith("cv") else None
        spread = f" ± {sd:.2f}" if sd is not None and math.isfinite(sd) else ""
        say(
            f"{best.trial.name} ({best.trial.label()}): {res.rank_by} {error:.2f}{spread} px, "
            f"in {best.path}",
            "best",
        )
    say(res.summary_csv, "ranked table")
    say(page, "summary page")
    for t in res.failed:
        where = f" (log: {t.log})" if t.log is not None else ""
        print_error(f"{t.trial.name} ({t.trial.label()}): {t.error}{where}", "trial failed")
    if res.failed:
        print_error(
            f"{len(res.failed)} of {len(res.trials)} trials failed; to retry them, run the same "
            f"command with --model-dir {res.sweep_dir} (finished trials are kept)"
        )
        return 1
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
