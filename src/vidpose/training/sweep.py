"""Sweeps: one model (or, with ``folds``, one cross-validation) per combination of values.

    SWEEP_DIR/
      sweep.json          project, overrides as given, axes (key, values), folds, trials
      trial000/ ...       one per combination, in expand_sweep order:
        model/            its model directory (cv/: its cross-validation, with folds)
        train.log         its training process's output (jobs > 1), or its error (jobs = 1)
      summary.csv         one row per trial, ranked by validation error (CV error with folds)
      summary.html        the page of summary.csv (vidpose.viz.sweep, `vidpose train --multirun`)

The overrides use Hydra's sweep grammar (``training.lr=1e-3,3e-4``, ``training.seed=range(3)``,
``model.backbone=choice(resnet18,resnet50)``); their cartesian product gives the trials. Every
trial is checked (config, split, directory) before any trains. A sweep is resumable: the same
command again skips finished trials and resumes interrupted ones; other axes, folds or project
in the same SWEEP_DIR are refused once a trial has started.

With ``jobs`` > 1 the trials run as separate ``python -m vidpose.cli train`` processes, so that
one trial's crash cannot take the others down; on a machine with GPUs each is given one
(``CUDA_VISIBLE_DEVICES``, round-robin, several trials per GPU when jobs exceeds the GPUs).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidpose._atomic import atomic_path
from vidpose.config import VidposeConfig, compose_config, expand_sweep
from vidpose.errors import VidposeError
from vidpose.model_dir import ModelDir, ModelDirError, read_json, write_json
from vidpose.project import Project, load_project
from vidpose.training.cv import (
    cv_complete,
    describe_change,
    is_cv,
    plan_folds,
    read_cv_summary,
    same_config,
)
from vidpose.training.run import Log, labeled_split, train

SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_HTML = "summary.html"
TRIAL_LOG = "train.log"
RANK_METRICS = ("cv_pixel_error_mean", "val_pixel_error_mean", "test_pixel_error_mean")
"""What trials are ranked by: CV error with folds, else validation error (test error only
when no trial has validation frames)."""


@dataclass
class Axis:
    """One swept key and its values, as override text (``training.lr`` -> ["0.001", ...])."""

    key: str
    values: list[str]


@dataclass
class Trial:
    """One combination: its name, its plain overrides, its value of each axis, and its
    model (or cross-validation) directory relative to the sweep directory."""

    name: str
    overrides: list[str]
    values: dict[str, str]
    dir: str

    def label(self) -> str:
        """``key=value ...`` of the swept keys (what tells this trial from the others)."""
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "(no swept key)"


@dataclass
class SweepSpec:
    """What ``sweep.json`` holds."""

    project: str
    overrides: list[str]
    axes: list[Axis]
    folds: int | None
    trials: list[Trial]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> SweepSpec:
        try:
            return cls(
                project=data["project"],
                overrides=list(data["overrides"]),
                axes=[Axis(**a) for a in data["axes"]],
                folds=data["folds"],
                trials=[Trial(**t) for t in data["trials"]],
            )
        except (KeyError, TypeError) as exc:
            raise ModelDirError(f"{path}: not a sweep description ({exc}); damaged") from exc

    def same_run(self, other: SweepSpec) -> list[str]:
        """What differs from ``other`` in what the trials train (empty: the same sweep)."""
        diff = []
        if self.project != other.project:
            diff.append(f"project: saved {self.project}, now {other.project}")
        if self.folds != other.folds:
            diff.append(f"folds: saved {self.folds}, now {other.folds}")
        if [t.overrides for t in self.trials] != [t.overrides for t in other.trials]:
            diff.append(describe_change("overrides", self.overrides, other.overrides))
        return diff


def sweep_axes(overrides: Sequence[str]) -> list[Axis]:
    """The swept keys of ``overrides`` (those giving several values) with their values."""
    axes = []
    for text in overrides:
        runs = expand_sweep([text])
        if len(runs) > 1 or runs[0] != [text]:
            key = runs[0][0].split("=", 1)[0]
            axes.append(Axis(key, [r[0].split("=", 1)[1] for r in runs]))
    return axes


def read_sweep(sweep_dir: str | os.PathLike) -> SweepSpec:
    """The :class:`SweepSpec` of a sweep directory; ModelDirError when there is none."""
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        raise ModelDirError(
            f"{path} not found: {sweep_dir} is no sweep directory (make one with "
            "`vidpose train PROJECT --multirun key=a,b ...`)"
        )
    return SweepSpec.from_dict(read_json(path), path)


@dataclass
class TrialResult:
    """A trial after the sweep: ``status`` "done" or "failed"; ``ran``: trained (or resumed) by
    this call, not skipped as finished before; ``row``: its line of summary.csv."""

    trial: Trial
    path: Path
    status: str
    ran: bool
    row: dict[str, Any]
    error: str | None = None
    log: Path | None = None


@dataclass
class SweepResult:
    """What a sweep produced: every trial's result (trial order) and the ranked summary."""

    sweep_dir: Path
    spec: SweepSpec
    trials: list[TrialResult]
    table: pd.DataFrame
    rank_by: str
    summary_csv: Path

    @property
    def failed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.status != "done"]

    @property
    def best(self) -> TrialResult | None:
        """The trial of lowest ``rank_by`` error (None when no trial finished)."""
        ranked = self.table.dropna(subset=[self.rank_by])
        if ranked.empty:
            return None
        name = ranked.iloc[0]["trial"]
        return next(t for t in self.trials if t.trial.name == name)


# ---------------------------------------------------------------------------------------------
# Checking


@dataclass
class PlannedTrial:
    """A trial checked by :func:`plan_sweep`: its directory, config and state."""

    trial: Trial
    path: Path
    cfg: VidposeConfig
    done: bool
    started: bool


def _trial_error(trial: Trial, exc: VidposeError) -> VidposeError:
    """``exc`` of the same kind, its message prefixed with the trial and its swept values."""
    new = type(exc)(f"{trial.name} ({trial.label()}): {exc}")
    new.__cause__ = exc
    return new


def _plan_trial(project: Project, trial: Trial, path: Path, folds: int | None) -> PlannedTrial:
    project_file = project.root / "vidpose.yaml"
    try:
        if folds is not None:
            plan = plan_folds(project, folds, path, trial.overrides)
            cfg = plan.folds[0].cfg
            started = any(f.md.has_model() for f in plan.folds)
            return PlannedTrial(trial, path, cfg, cv_complete(path), started)
        cfg = compose_config(project.settings.config, trial.overrides, project_file=project_file)
        labeled_split(project, cfg)
        md = ModelDir(path)
        if path.exists() and not path.is_dir():
            raise ModelDirError(f"{path} is a file, not a model directory")
        if md.has_model():
            same_config(md, cfg)
        elif path.is_dir() and any(p.name != ".lock" for p in path.iterdir()):
            raise ModelDirError(f"{path} is not empty and holds no model; move it away")
        return PlannedTrial(trial, path, cfg, md.is_complete(), md.has_model())
    except VidposeError as exc:
        raise _trial_error(trial, exc) from exc


def plan_sweep(
    project: Project | str | Path,
    overrides: Sequence[str],
    sweep_dir: str | Path,
    folds: int | None = None,
) -> tuple[SweepSpec, list[PlannedTrial]]:
    """Expand the sweep and check every trial (config, split, folds, its directory) and the
    sweep directory; nothing is written.

    Raises:
        ConfigError, ProjectError: naming the trial and its swept values.
        ModelDirError: SWEEP_DIR holds something else, or another sweep that has started.
    """
    if not isinstance(project, Project):
        project = load_project(project)
    sweep_dir = Path(sweep_dir).resolve()
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ModelDirError(f"--model-dir {sweep_dir} is a file, not a folder")
    runs = expand_sweep(list(overrides))
    axes = sweep_axes(overrides)
    width = max(3, len(str(len(runs) - 1)))
    kind = "cv" if folds is not None else "model"
    trials = []
    for i, run in enumerate(runs):
        values = {}
        for ax in axes:
            given = [o.split("=", 1)[1] for o in run if o.split("=", 1)[0] == ax.key]
            values[ax.key] = given[-1] if given else ""
        name = f"trial{i:0{width}d}"
        trials.append(Trial(name, run, values, f"{name}/{kind}"))
    spec = SweepSpec(str(project.root.resolve()), list(overrides), axes, folds, trials)
    _check_sweep_dir(sweep_dir, spec)
    planned = [_plan_trial(project, t, sweep_dir / t.dir, folds) for t in trials]
    return spec, planned


def _check_sweep_dir(sweep_dir: Path, spec: SweepSpec) -> None:
    if not sweep_dir.is_dir():
        return
    if not (sweep_dir / SWEEP_FILE).exists():
        if any(p.name != ".lock" for p in sweep_dir.iterdir()):
            raise ModelDirError(
                f"{sweep_dir} is not empty and holds no sweep ({SWEEP_FILE}); choose a new or "
                "empty --model-dir"
            )
        return
    saved = read_sweep(sweep_dir)
    diff = saved.same_run(spec)
    started = [t.name for t in saved.trials if _started(sweep_dir / t.dir)]
    if diff and started:
        axes = "; ".join(f"{a.key}={','.join(a.values)}" for a in saved.axes) or "none"
        raise ModelDirError(
            f"{sweep_dir} holds another sweep (axes {axes}; {len(saved.trials)} trials, "
            f"{len(started)} started) and this command differs: {'; '.join(diff)}. Run the "
            "command it was started with to continue it, or choose another --model-dir"
        )


def _started(path: Path) -> bool:
    """Whether a trial's model or cross-validation directory holds any training."""
    if is_cv(path):
        return any(ModelDir(p).has_model() for p in path.glob("fold*") if p.is_dir())
    return ModelDir(path).has_model()


# ---------------------------------------------------------------------------------------------
# Running


def run_sweep(
    project_dir: str | Path,
    overrides: Sequence[str],
    sweep_dir: str | Path,
    *,
    folds: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    log: Log | None = None,
) -> SweepResult:
    """Train one model (or ``folds``-fold cross-validation) per combination of the swept values
    into ``sweep_dir/trialNNN`` and write ``summary.csv`` ranked by validation error.

    Every trial is checked before any trains (:func:`plan_sweep`). Finished trials are kept and
    interrupted ones resumed. A trial that fails is recorded (status, error, ``train.log``) and
    the others go on; see :attr:`SweepResult.failed`. The HTML page of the summary is
    :func:`vidpose.viz.sweep.write_sweep_report`.

    Args:
        project_dir: the project folder.
        overrides: config overrides in Hydra sweep grammar (``a=1,2 b=range(3)``).
        sweep_dir: where to write the sweep.
        folds: cross-validate every trial with this many folds (None: one model per trial).
        jobs: trials trained at once, each in its own process when > 1.
        progress: progress bars (jobs = 1 only).
        log: receives one line per trial started, finished or failed.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    say: Log = log or (lambda _m: None)
    project = load_project(project_dir)
    spec, planned = plan_sweep(project, overrides, sweep_dir, folds)
    sweep_dir = Path(sweep_dir).resolve()
    with ModelDir(sweep_dir).lock():
        write_json(sweep_dir / SWEEP_FILE, spec.to_dict())
        todo = [p for p in planned if not p.done]
        if len(todo) < len(planned):
            say(f"{len(planned) - len(todo)} of {len(planned)} trials finished before: kept")
        if jobs == 1:
            outcome = _run_in_process(project, todo, folds, progress, say)
        else:
            outcome = _run_processes(project, todo, folds, jobs, say)
        results = []
        for p in planned:
            ran = p.trial.name in outcome
            error = outcome.get(p.trial.name)
            done = _trial_done(p.path, folds)
            if done:
                error = None
            elif error is None:
                error = "did not finish"
            row = trial_row(spec, p.trial, p.path, "done" if done else "failed", error)
            log_path = p.path.parent / TRIAL_LOG
            results.append(
                TrialResult(
                    p.trial,
                    p.path,
                    row["status"],
                    ran,
                    row,
                    error,
                    log_path if log_path.exists() else None,
                )
            )
        table, rank_by = summary_table(spec, [r.row for r in results])
        summary = sweep_dir / SUMMARY_CSV
        with atomic_path(summary) as tmp:
            table.to_csv(tmp, index=False)
    return SweepResult(sweep_dir, spec, results, table, rank_by, summary)


def _trial_done(path: Path, folds: int | None) -> bool:
    return cv_complete(path) if folds is not None else ModelDir(path).is_complete()


def _run_in_process(
    project: Project, todo: list[PlannedTrial], folds: int | None, progress: bool, say: Log
) -> dict[str, str | None]:
    """Train each trial here, one after the other; trial name -> error (None: done)."""
    from vidpose.training.cv import train_folds

    outcome: dict[str, str | None] = {}
    for i, p in enumerate(todo):
        md = ModelDir(p.path)
        resume = folds is None and md.has_model()
        say(f"{p.trial.name} ({i + 1} of {len(todo)} to train): {p.trial.label()}")
        try:
            if folds is not None:
                train_folds(
                    project.root, folds, p.path, p.trial.overrides, progress=progress, log=say
                )
            else:
                train(
                    project.root,
                    [] if resume else p.trial.overrides,
                    model_dir=p.path,
                    resume=resume,
                    progress=progress,
                    log=say,
                )
            outcome[p.trial.name] = None
        except Exception as exc:  # one trial's failure must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            log_path = p.path.parent / TRIAL_LOG
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {p.trial.label()}\n")
                fh.write("".join(traceback.format_exception(exc)))
            outcome[p.trial.name] = error
            say(f"{p.trial.name} failed: {error} (see {log_path})")
    return outcome


def visible_gpus() -> list[str]:
    """The GPUs trials may be given: CUDA_VISIBLE_DEVICES' entries when set, else every CUDA
    device torch sees (none on a machine without)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def trial_command(project_root: Path, p: PlannedTrial, folds: int | None) -> list[str]:
    """The ``vidpose train`` command line of a trial (resuming a started single model)."""
    cmd = [sys.executable, "-m", "vidpose.cli", "train", str(project_root)]
    if folds is None and ModelDir(p.path).has_model():
        return [*cmd, "--model-dir", str(p.path), "--resume", "--no-progress"]
    cmd += [*p.trial.overrides, "--model-dir", str(p.path), "--no-progress"]
    return cmd if folds is None else [*cmd, "--folds", str(folds)]


@dataclass
class _Running:
    planned: PlannedTrial
    proc: subprocess.Popen
    log: Any
    start: int
    gpu: str | None
    t0: float = field(default_factory=time.perf_counter)


def _run_processes(
    project: Project, todo: list[PlannedTrial], folds: int | None, jobs: int, say: Log
) -> dict[str, str | None]:
    """Train the trials in up to ``jobs`` processes at once; trial name -> error (None: done)."""
    if not todo:
        return {}
    gpus = visible_gpus()
    load = dict.fromkeys(gpus, 0)
    base_env = dict(os.environ, PYTHONUNBUFFERED="1")
    if "OMP_NUM_THREADS" not in base_env:  # share the cores instead of oversubscribing them
        base_env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // min(jobs, len(todo))))
    pending = deque(todo)
    running: list[_Running] = []
    outcome: dict[str, str | None] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                p = pending.popleft()
                env = dict(base_env)
                t = p.cfg.training
                gpu = None
                if gpus and t.device != "cpu" and t.devices == 1:
                    gpu = min(gpus, key=lambda g: load[g])
                    load[gpu] += 1
                    env["CUDA_VISIBLE_DEVICES"] = gpu
                log_path = p.path.parent / TRIAL_LOG
                log_path.parent.mkdir(parents=True, exist_ok=True)
                fh = log_path.open("ab")
                cmd = trial_command(project.root, p, folds)
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
                fh.flush()
                start = fh.tell()
                proc = subprocess.Popen(
                    cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
                )
                running.append(_Running(p, proc, fh, start, gpu))
                where = f" on GPU {gpu}" if gpu is not None else ""
                say(f"{p.trial.name} started{where}: {p.trial.label()}")
            time.sleep(0.2)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                r.log.close()
                if r.gpu is not None:
                    load[r.gpu] -= 1
                name, rc = r.planned.trial.name, r.proc.returncode
                log_path = r.planned.path.parent / TRIAL_LOG
                if rc == 0:
                    outcome[name] = None
                    say(f"{name} done ({time.perf_counter() - r.t0:.0f} s)")
                else:
                    outcome[name] = _failure(log_path, r.start, rc)
                    say(f"{name} failed: {outcome[name]} (see {log_path})")
    except BaseException:
        # Interrupted: stop the trials as Ctrl-C would (each stays resumable), then re-raise.
        for r in running:
            with contextlib.suppress(OSError):
                r.proc.send_signal(signal.SIGINT)
        for r in running:
            try:
                r.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
            r.log.close()
        raise
    return outcome


def _failure(log_path: Path, start: int, rc: int) -> str:
    """The error a failed trial printed (its last ``error:`` line onwards), else its exit."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        head = lines[i].split(":", 1)[0]
        if ":" in lines[i] and (head.endswith("Error") or head in ("error", "internal error")):
            message = " ".join(ln.strip() for ln in lines[i:])
            return message if len(message) <= 600 else message[:597] + "..."
    if rc < 0:
        return f"killed by signal {-rc}"
    return lines[-1] if lines else f"exit code {rc}"


# ---------------------------------------------------------------------------------------------
# Summary


def _get(d: dict[str, Any] | None, *keys: str) -> float:
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return math.nan
        d = d[k]
    return float(d)  # type: ignore[arg-type]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def trial_row(
    spec: SweepSpec, trial: Trial, path: Path, status: str, error: str | None = None
) -> dict[str, Any]:
    """A trial's line of summary.csv: its swept values, errors (NaN where absent), cost."""
    row: dict[str, Any] = {"trial": trial.name, **trial.values}
    metrics: dict[str, float] = {}
    if status == "done" and spec.folds is not None:
        cv = read_cv_summary(path)
        folds = [ModelDir(path / f.name).read_metrics() for f in cv.folds]
        metrics = {
            "cv_pixel_error_mean": _get(cv.mean, "pixel_error_mean"),
            "cv_pixel_error_sd": _get(cv.sd, "pixel_error_mean"),
            "cv_pixel_error_median": _get(cv.mean, "pixel_error_median"),
            "val_pixel_error_mean": _mean([_get(m, "val", "pixel_error_mean") for m in folds]),
            "train_seconds": sum(f.train_seconds for f in cv.folds),
        }
    elif status == "done":
        m = ModelDir(path).read_metrics()
        metrics = {
            "val_pixel_error_mean": _get(m, "val", "pixel_error_mean"),
            "val_pixel_error_median": _get(m, "val", "pixel_error_median"),
            "test_pixel_error_mean": _get(m, "test", "pixel_error_mean"),
            "train_seconds": _get(m, "train_seconds"),
            "steps": _get(m, "steps"),
        }
    row.update(metrics)
    row.update({"status": status, "dir": trial.dir, "error": error or ""})
    return row


def metric_columns(folds: int | None) -> list[str]:
    if folds is not None:
        return [
            "cv_pixel_error_mean",
            "cv_pixel_error_sd",
            "cv_pixel_error_median",
            "val_pixel_error_mean",
            "train_seconds",
        ]
    return [
        "val_pixel_error_mean",
        "val_pixel_error_median",
        "test_pixel_error_mean",
        "train_seconds",
        "steps",
    ]


def summary_table(spec: SweepSpec, rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, str]:
    """The summary: one row per trial, best first (trials without the error last, in trial
    order), with a ``rank`` column; and the column it is ranked by."""
    cols = ["trial", *(a.key for a in spec.axes), *metric_columns(spec.folds)]
    cols += ["status", "dir", "error"]
    table = pd.DataFrame(rows).reindex(columns=cols)
    for c in metric_columns(spec.folds):
        table[c] = pd.to_numeric(table[c], errors="coerce")
    if "steps" in table:
        table["steps"] = table["steps"].round().astype("Int64")
    rank_by = rank_metric(table)
    table = table.sort_values(rank_by, kind="stable", na_position="last").reset_index(drop=True)
    ok = table[rank_by].notna()
    table.insert(0, "rank", pd.array([i + 1 if o else pd.NA for i, o in enumerate(ok)], "Int64"))
    return table, rank_by


def rank_metric(table: pd.DataFrame) -> str:
    """The first of :data:`RANK_METRICS` the table has values of (validation error unless
    cross-validated; test error only when no trial has validation frames)."""
    for c in RANK_METRICS:
        if c in table.columns and table[c].notna().any():
            return c
    return next((c for c in RANK_METRICS if c in table.columns), RANK_METRICS[1])


def read_summary(sweep_dir: str | os.PathLike) -> pd.DataFrame:
    """summary.csv of a sweep directory, swept values as text."""
    path = Path(sweep_dir) / SUMMARY_CSV
    if not path.exists():
        raise ModelDirError(f"{path} not found: the sweep has not been summarised yet")
    spec = read_sweep(sweep_dir)
    text_cols = ["trial", *(a.key for a in spec.axes), "status", "dir", "error"]
    table = pd.read_csv(path, dtype=dict.fromkeys(text_cols, str), keep_default_na=False)
    for c in table.columns:
        if c not in text_cols:
            table[c] = pd.to_numeric(table[c].replace("", np.nan), errors="coerce")
    return table
