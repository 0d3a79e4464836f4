"""K-fold cross-validation: one model per fold, each tested on the frames the others train on.

    CV_DIR/
      cv.json                  folds, split seed, val fraction, overrides, member names
      splits/fold<k>.csv       fold k's split file (image,split): its test frames are fold k
      fold0/ fold1/ ...        complete model directories, trained with data.split_file=...
      cv_summary.json, .csv    held-out pixel error per fold, and mean and sd over folds

The labeled frames are shuffled with ``data.split_seed`` and cut into K folds of nearly equal
size. Model k is tested on fold k; of the other frames ``data.val_fraction`` validate
(checkpoint selection) and the rest train. Every labeled frame is thus held out exactly once.

Like an ensemble, a cross-validation is restartable: finished folds are kept, an interrupted
one is resumed from its last checkpoint, so an interrupted run is simply started again.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from vidpose._atomic import atomic_write_text
from vidpose.config import VidposeConfig, changed_keys, compose_config, load_config
from vidpose.errors import ConfigError
from vidpose.model_dir import ModelDir, ModelDirError, read_json, write_json
from vidpose.project import Project, load_project
from vidpose.training.run import Log, TrainResult, train

CV_FILE = "cv.json"
SUMMARY_JSON = "cv_summary.json"
SUMMARY_CSV = "cv_summary.csv"
SPLITS_DIR = "splits"
METRICS = ("pixel_error_mean", "pixel_error_median", "pixel_error_p95")
"""Held-out (test split) metrics summarised over folds, from each fold's metrics.json."""
REFUSED_KEYS = {
    "data.split_file": "each fold gets its own split file",
    "data.test_fraction": "each fold's held-out frames are the fold itself (1/K of the frames)",
}
"""Keys a cross-validation sets itself, with why a user's value would be ignored."""


def fold_splits(n: int, k: int, val_fraction: float, seed: int) -> list[np.ndarray]:
    """The split of ``n`` labeled frames for each of ``k`` folds: (n,) arrays of "train" /
    "val" / "test". Fold ``i``'s test rows are the i-th of ``k`` nearly equal parts of a
    permutation drawn with ``seed``; ``val_fraction`` of the other rows (rounded) validate.

    Raises:
        ConfigError: ``k`` < 2 or > ``n``, or no frame would be left to train on.
    """
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {k}")
    if k > n:
        raise ConfigError(
            f"{k} folds need at least {k} labeled frames (one held out per fold); the project "
            f"has {n}: give at most {n} folds"
        )
    order = np.random.default_rng(seed).permutation(n)
    splits = []
    for i, held_out in enumerate(np.array_split(order, k)):
        rest = np.setdiff1d(order, held_out)
        n_val = round(len(rest) * val_fraction)
        if n_val >= len(rest):
            raise ConfigError(
                f"data.val_fraction={val_fraction:g} leaves no training frame in fold {i} "
                f"({len(rest)} frames outside the fold); lower data.val_fraction or the folds"
            )
        val = np.random.default_rng([seed, i]).choice(rest, n_val, replace=False)
        split = np.full(n, "train", dtype=object)
        split[val] = "val"
        split[held_out] = "test"
        splits.append(split)
    return splits


def split_csv(frames: Sequence[str], split: np.ndarray) -> str:
    """The text of a split file (``data.split_file``) assigning ``frames`` to ``split``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "split"])
    writer.writerows(zip(frames, split, strict=True))
    return buf.getvalue()


@dataclass
class FoldScore:
    """One fold's held-out (test split) error and training cost."""

    name: str
    frames: int
    pixel_error_mean: float | None
    pixel_error_median: float | None
    pixel_error_p95: float | None
    train_seconds: float
    steps: int


@dataclass
class CVSummary:
    """Per-fold scores and their mean and sample sd (ddof=1) over folds (None where no fold
    has the metric)."""

    folds: list[FoldScore]
    mean: dict[str, float | None] = field(default_factory=dict)
    sd: dict[str, float | None] = field(default_factory=dict)

    @classmethod
    def of(cls, folds: list[FoldScore]) -> CVSummary:
        mean, sd = {}, {}
        for key in (*METRICS, "train_seconds"):
            v = np.array([np.nan if (x := getattr(f, key)) is None else x for f in folds])
            v = v[np.isfinite(v)]
            mean[key] = float(v.mean()) if v.size else None
            sd[key] = float(v.std(ddof=1)) if v.size > 1 else None
        return cls(folds, mean, sd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "held_out": "the test split of each fold's model: frames it never trained on",
            "folds": [asdict(f) for f in self.folds],
            "mean": self.mean,
            "sd": self.sd,
        }

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> CVSummary:
        try:
            return cls([FoldScore(**f) for f in data["folds"]], data["mean"], data["sd"])
        except (KeyError, TypeError) as exc:
            raise ModelDirError(f"{path}: not a cross-validation summary ({exc}); damaged") from exc

    def to_csv(self) -> str:
        """One row per fold, then ``mean`` and ``sd`` rows."""
        cols = ["fold", "frames", *METRICS, "train_seconds", "steps"]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for f in self.folds:
            writer.writerow([_cell(getattr(f, c if c != "fold" else "name")) for c in cols])
        for name, row in (("mean", self.mean), ("sd", self.sd)):
            writer.writerow([name, "", *(_cell(row.get(c)) for c in cols[2:-1]), ""])
        return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


@dataclass
class CVResult:
    """What a cross-validation produced: one training result per fold and their summary."""

    cv_dir: Path
    folds: list[TrainResult]
    summary: CVSummary


def fold_score(name: str, metrics: dict[str, Any]) -> FoldScore:
    """A fold's :class:`FoldScore` from its ``metrics.json``."""
    test = metrics.get("test") or {}
    return FoldScore(
        name=name,
        frames=int(test.get("frames", 0)),
        **{k: test.get(k) for k in METRICS},
        train_seconds=float(metrics.get("train_seconds", 0.0)),
        steps=int(metrics.get("steps", 0)),
    )


def is_cv(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a cross-validation directory (holds cv.json)."""
    return (Path(path) / CV_FILE).exists()


def read_cv_summary(cv_dir: str | os.PathLike) -> CVSummary:
    path = Path(cv_dir) / SUMMARY_JSON
    return CVSummary.from_dict(read_json(path), path)


def cv_complete(cv_dir: str | os.PathLike) -> bool:
    """Whether every fold finished and the summary was written."""
    cv_dir = Path(cv_dir)
    if not (cv_dir / CV_FILE).exists() or not (cv_dir / SUMMARY_JSON).exists():
        return False
    info = read_json(cv_dir / CV_FILE)
    return all(ModelDir(cv_dir / m).is_complete() for m in info.get("members", []))


@dataclass
class _Fold:
    name: str
    md: ModelDir
    split_path: Path
    split_text: str
    overrides: list[str]
    cfg: VidposeConfig


@dataclass
class CVPlan:
    """A cross-validation checked in full; nothing written yet (:func:`plan_folds`)."""

    project: Project
    cv_dir: Path
    k: int
    overrides: list[str]
    info: dict[str, Any]
    folds: list[_Fold]


def _override_key(text: str) -> str:
    return text.split("=", 1)[0].lstrip("~+")


def _quote(value: str) -> str:
    """``value`` as a single-quoted override value (Hydra grammar)."""
    return "'" + value.replace("'", "\\'") + "'"


def _split_path_value(path: Path, project_root: Path) -> str:
    """The data.split_file value of ``path``: relative to the project when inside it (so that
    a project moved with its models keeps working), else absolute; '/' separators."""
    try:
        return path.relative_to(project_root).as_posix()
    except ValueError:
        return path.as_posix()


def plan_folds(
    project: Project | str | Path,
    k: int,
    cv_dir: str | Path,
    overrides: Sequence[str] = (),
) -> CVPlan:
    """Check a cross-validation in full without writing anything: the folds, every fold's
    config, and that ``cv_dir`` is new, empty, or this same cross-validation (then the folds
    already started must have been trained with the config asked now).

    Raises:
        ConfigError: bad ``k``; an override of a key the folds set themselves
            (:data:`REFUSED_KEYS`); a config error (naming the key and where it came from).
        ModelDirError: ``cv_dir`` holds something else, or other folds or settings.
    """
    if not isinstance(project, Project):
        project = load_project(project)
    overrides = list(overrides)
    project_file = project.root / "vidpose.yaml"
    given = {_override_key(text): text for text in overrides}
    if "data.test_fraction" in given:
        raise ConfigError(
            f"override {given['data.test_fraction']!r} cannot be combined with cross-validation "
            f"(--folds): {REFUSED_KEYS['data.test_fraction']}"
        )
    base = compose_config(project.settings.config, overrides, project_file=project_file)
    if base.data.split_file is not None:
        what = (
            f"override {given['data.split_file']!r}"
            if "data.split_file" in given
            else f"data.split_file={base.data.split_file!r} ({project_file}, config section)"
        )
        hint = "" if "data.split_file" in given else "; override it with data.split_file=null"
        raise ConfigError(
            f"{what} cannot be combined with cross-validation (--folds): "
            f"{REFUSED_KEYS['data.split_file']}{hint}"
        )
    frames = [str(f).replace("\\", "/") for f in project.labels.frames]
    d = base.data
    cams = project.cameras
    if cams is None:
        splits = fold_splits(len(frames), k, d.val_fraction, d.split_seed)
    else:  # by instant: every camera's image of an instant in the same fold
        splits = [
            cams.expand(s) for s in fold_splits(cams.n_groups, k, d.val_fraction, d.split_seed)
        ]

    cv_dir = Path(cv_dir).resolve()
    if cv_dir.exists() and not cv_dir.is_dir():
        raise ModelDirError(f"--model-dir {cv_dir} is a file, not a folder")
    members = [f"fold{i}" for i in range(k)]
    folds: list[_Fold] = []
    for name, split in zip(members, splits, strict=True):
        split_path = cv_dir / SPLITS_DIR / f"{name}.csv"
        value = _split_path_value(split_path, project.root.resolve())
        fold_overrides = [*overrides, f"data.split_file={_quote(value)}"]
        cfg = compose_config(project.settings.config, fold_overrides, project_file=project_file)
        if cfg.data.split_file != value:
            raise ConfigError(
                f"{split_path}: this path cannot be given as data.split_file (it reads back as "
                f"{cfg.data.split_file!r}); choose a --model-dir without quotes or backslashes"
            )
        md = ModelDir(cv_dir / name)
        folds.append(_Fold(name, md, split_path, split_csv(frames, split), fold_overrides, cfg))
    info = {
        "folds": k,
        "split_seed": d.split_seed,
        "val_fraction": d.val_fraction,
        "overrides": overrides,
        "project": str(project.root.resolve()),
        "members": members,
        "splits": [f.split_path.relative_to(cv_dir).as_posix() for f in folds],
    }
    _check_cv_dir(cv_dir, info, folds)
    for fold in folds:
        if fold.md.has_model():
            same_config(fold.md, fold.cfg)
    return CVPlan(project, cv_dir, k, overrides, info, folds)


def same_config(md: ModelDir, cfg: VidposeConfig) -> None:
    """A started model directory must have been trained with ``cfg`` (but its split file)."""
    saved = load_config(md.config)
    changes = [c for c in changed_keys(saved, cfg) if c[0] != "data.split_file"]
    if changes:
        listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in changes)
        raise ModelDirError(
            f"{md.path} was trained with another config ({listed}); run with the settings it "
            "was started with (vidpose.yaml and overrides), or choose another --model-dir"
        )


def _check_cv_dir(cv_dir: Path, info: dict[str, Any], folds: list[_Fold]) -> None:
    if not cv_dir.is_dir():
        return
    started = [f for f in folds if f.md.has_model()]
    if not (cv_dir / CV_FILE).exists():
        if any(p.name != ".lock" for p in cv_dir.iterdir()):
            raise ModelDirError(
                f"{cv_dir} is not empty and holds no cross-validation ({CV_FILE}); choose a "
                "new or empty --model-dir"
            )
        return
    saved = read_json(cv_dir / CV_FILE)
    if not isinstance(saved, dict):
        raise ModelDirError(f"{cv_dir / CV_FILE}: expected a JSON object; the file is damaged")
    keys = ("folds", "split_seed", "val_fraction", "overrides", "project")
    differ = [k for k in keys if saved.get(k) != info[k]]
    if differ and (started or _other_folds(cv_dir, info)):
        listed = "; ".join(describe_change(k, saved.get(k), info[k]) for k in differ)
        raise ModelDirError(
            f"{cv_dir} holds another cross-validation ({listed}); run the command it was "
            "started with to continue it, or choose another --model-dir"
        )
    for f in started:
        if f.split_path.exists() and f.split_path.read_text(encoding="utf-8") != f.split_text:
            raise ModelDirError(
                f"{f.split_path} no longer matches the project's labeled frames (labels were "
                f"added or removed since {f.name} was trained); choose another --model-dir"
            )


def describe_change(key: str, saved: Any, now: Any) -> str:
    """``key: saved X, now Y``; for lists of overrides, only what was added and dropped."""
    if isinstance(saved, list) and isinstance(now, list):
        added = [x for x in now if x not in saved]
        dropped = [x for x in saved if x not in now]
        parts = [
            f"added {' '.join(added)}" if added else "",
            f"dropped {' '.join(dropped)}" if dropped else "",
        ]
        return f"{key}: " + ("; ".join(p for p in parts if p) or "same, in another order")
    return f"{key}: saved {saved!r}, now {now!r}"


def _other_folds(cv_dir: Path, info: dict[str, Any]) -> bool:
    """Whether ``cv_dir`` holds started folds this cross-validation would not train."""
    return any(
        ModelDir(p).has_model()
        for p in cv_dir.glob("fold*")
        if p.is_dir() and p.name not in info["members"]
    )


def train_folds(
    project_dir: str | Path,
    k: int,
    cv_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
    log: Log | None = None,
) -> CVResult:
    """K-fold cross-validation of a config on a project: train ``cv_dir/fold<i>`` for each of
    ``k`` folds and write ``cv_summary.json`` / ``.csv`` (held-out error per fold, mean, sd).

    Everything is checked before anything is written (:func:`plan_folds`). Finished folds are
    kept and interrupted ones resumed, so an interrupted run can simply be started again.

    Args:
        project_dir: the project folder.
        k: folds, from 2 to the number of labeled frames.
        cv_dir: where to write the folds.
        overrides: config overrides for every fold (not ``data.split_file`` or
            ``data.test_fraction``: the folds set the split).
        progress, callbacks, log: as for :func:`vidpose.train`.
    """
    say: Log = log or (lambda _m: None)
    plan = plan_folds(project_dir, k, cv_dir, overrides)
    cv_dir = plan.cv_dir
    with ModelDir(cv_dir).lock():
        write_json(cv_dir / CV_FILE, plan.info)
        for fold in plan.folds:
            if not (fold.split_path.exists() and fold.md.has_model()):
                atomic_write_text(fold.split_path, fold.split_text)
        results = []
        for i, fold in enumerate(plan.folds):
            md = fold.md
            if md.is_complete():
                results.append(TrainResult.of_finished(md))
                continue
            resume = md.has_model()
            say(f"fold {i + 1} of {k}: {'resuming ' if resume else ''}{md.path}")
            results.append(
                train(
                    plan.project.root,
                    [] if resume else fold.overrides,
                    model_dir=md.path,
                    resume=resume,
                    progress=progress,
                    callbacks=callbacks,
                    log=log,
                )
            )
        summary = CVSummary.of([fold_score(f.name, r.metrics) for f, r in zip(plan.folds, results)])
        atomic_write_text(cv_dir / SUMMARY_CSV, summary.to_csv())
        write_json(cv_dir / SUMMARY_JSON, summary.to_dict())
    return CVResult(cv_dir, results, summary)


def format_summary(summary: CVSummary) -> list[str]:
    """A short plain-text table of a :class:`CVSummary`: held-out px error per fold, then the
    mean and sd over folds."""

    def num(v: float | None, digits: int = 2) -> str:
        return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    def row(name: str, frames: str, values: dict[str, float | None]) -> str:
        errors = "".join(f"{num(values.get(k)):>9}" for k in METRICS)
        return f"{name:<8}{frames:>7}{errors}{num(values.get('train_seconds'), 1):>10}"

    lines = [f"{'fold':<8}{'frames':>7}{'mean':>9}{'median':>9}{'p95':>9}{'train s':>10}"]
    for f in summary.folds:
        lines.append(row(f.name, str(f.frames), asdict(f)))
    lines.append(row("mean", str(sum(f.frames for f in summary.folds)), summary.mean))
    lines.append(row("sd", "", summary.sd))
    return lines
