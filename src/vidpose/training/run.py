"""``vidpose train``: from a project folder to a complete model directory.

A run is checked in full before it touches the disk: the project, the config, the network (and
its pretrained weights), the losses against the project, the device, the labeled images. Only
then is the model directory created (:class:`~vidpose.model_dir.ModelDir` for its layout) and
locked for this process. An existing model directory is never written to unless it is being
resumed; a first run that fails before its first checkpoint removes the directory it created,
one that fails later leaves it resumable with ``--resume``.

Resuming keeps the saved config; only the keys in :data:`RESUMABLE` may change (the training
budget, logging and checkpoint intervals, the kind of device), and the budget may only grow.

With ``training.devices`` N > 1 the run trains in N processes, one per device
(:mod:`vidpose.training.ddp`); this process checks, writes the config and record, holds the lock
and reports, exactly as for one device.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy

from vidpose import __version__
from vidpose._atomic import atomic_write_bytes, atomic_write_text
from vidpose._device import resolve_device
from vidpose.build import (
    build_losses,
    build_network_from_config,
    build_supervised_loss,
    loss_setup,
    optimizer_factory,
    schedule_from_config,
)
from vidpose.config import VidposeConfig, changed_keys, compose_config, load_config, to_yaml
from vidpose.config.compose import to_dict
from vidpose.data.augment import flip_permutation
from vidpose.data.geometry import input_to_orig
from vidpose.data.labeled import LabeledData, load_labeled, make_splits, read_split_file
from vidpose.data.unlabeled import ClipLoader
from vidpose.errors import ConfigError, ProjectError
from vidpose.io import write_poses
from vidpose.io.poses import Poses
from vidpose.model_dir import LP_SET_NAMES, ModelDir, ModelDirError, ModelRecord, write_json
from vidpose.models import PoseNetwork
from vidpose.project import Project, load_project
from vidpose.training.async_log import ProgressBar
from vidpose.training.best import BestWeights
from vidpose.training.checkpoint_io import AtomicCheckpointIO
from vidpose.training.concurrent import SEEDED_BUILD, trainer_accelerator
from vidpose.training.datamodule import LabeledDataModule
from vidpose.training.ddp import (
    ONE_DEVICE,
    STEP_SYNC_ENV,
    Ranks,
    StepSyncDDPStrategy,
    WorkerSpec,
    check_picklable,
    rank_seed,
    train_processes,
)
from vidpose.training.module import PoseModule

RESUMABLE = (
    "training.max_steps",
    "training.max_epochs",
    "training.early_stopping_patience",
    "training.log_every_n_steps",
    "training.checkpoint_every_n_steps",
    "training.val_every_n_epochs",
    "training.device",
    "training.cuda_graphs",
    "training.cudnn_benchmark",
    "training.ensemble_concurrency",
)
"""Config keys a resumed run may change; every other key keeps its saved value
(``training.devices`` too: it sets the global batch and so the steps of an epoch)."""

Log = Callable[[str], object]


@dataclass
class TrainResult:
    """What a finished training run produced."""

    model_dir: Path
    metrics: dict[str, Any]
    train_seconds: float
    steps: int

    @classmethod
    def of_finished(cls, md: ModelDir) -> TrainResult:
        """The result of a model directory whose training already finished."""
        metrics = md.read_metrics()
        return cls(md.path, metrics, metrics.get("train_seconds", 0.0), metrics.get("steps", 0))


def _quiet_lightning() -> None:
    """Keep the console to what a user needs: no accelerator banners, tips or deprecations."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # The step's update is part of the step (manual optimization): last.ckpt holds the weights
    # after it, which is what resuming at that step needs.
    warnings.filterwarnings("ignore", message=".*manual optimization and every_n_train_steps.*")
    # Validation metrics are summed over the processes before they are logged.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if accelerator == "cuda" else "32-true"


def use_cuda_graphs(cfg: VidposeConfig, accelerator: str) -> bool:
    """``training.cuda_graphs``, with null resolved: on for CUDA devices without
    ``training.compile`` (on several, the gradient all-reduce is captured with the step).
    Asking for graphs elsewhere is a config error."""
    t = cfg.training
    if t.cuda_graphs is None:
        return accelerator == "cuda" and not t.compile
    if t.cuda_graphs and accelerator != "cuda":
        raise ConfigError(
            f"training.cuda_graphs=true needs a CUDA device; this run trains on {accelerator} "
            "(set training.cuda_graphs=null or false)"
        )
    return bool(t.cuda_graphs)


def check_devices(devices: int, accelerator: str) -> None:
    """ConfigError unless there are ``training.devices`` GPUs to train on (on CPU, any number of
    processes)."""
    if accelerator != "cuda" or devices <= torch.cuda.device_count():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    limited = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    raise ConfigError(
        f"training.devices={devices} but {torch.cuda.device_count()} CUDA device(s) are "
        f"visible{limited}; set training.devices to at most that"
    )


def default_model_dir(project_root: Path) -> Path:
    return project_root / "models" / time.strftime("%Y-%m-%d_%H-%M-%S")


def _budget(cfg: VidposeConfig, steps_per_epoch: int) -> int:
    t = cfg.training
    return t.max_steps if t.max_steps > 0 else t.max_epochs * steps_per_epoch


def checkpoint_step(path: Path) -> int:
    """The optimizer step a Lightning checkpoint was saved at; ModelDirError if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        return int(state["global_step"])
    except Exception as exc:  # truncated / not a checkpoint: torch raises many kinds
        raise ModelDirError(
            f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: {exc}); it is "
            "damaged. Delete it to restart the run from step 0 with the saved config"
        ) from exc


@dataclass
class _Run:
    """A run checked in full, nothing written yet."""

    project: Project
    cfg: VidposeConfig
    md: ModelDir
    resume: bool
    ckpt: Path | None
    notes: list[str]
    config_changed: bool


def _resolve(
    project: Project, overrides: Sequence[str], model_dir: str | Path | None, resume: bool
) -> _Run:
    """The config and model directory of a run, checked; nothing is written."""
    if not resume:
        cfg = compose_config(
            project.settings.config, list(overrides), project_file=project.root / "vidpose.yaml"
        )
        md = ModelDir(model_dir or cfg.output.dir or default_model_dir(project.root))
        if md.path.exists() and not md.path.is_dir():
            raise ModelDirError(f"--model-dir {md.path} is a file, not a folder")
        if md.has_model():
            raise ModelDirError(
                f"{md.path} already holds a model; continue it with --resume, or choose another "
                "--model-dir (an existing model directory is never overwritten)"
            )
        if md.path.is_dir() and any(p.name != ".lock" for p in md.path.iterdir()):
            raise ModelDirError(
                f"{md.path} is not empty and holds no model; choose a new or empty --model-dir"
            )
        return _Run(project, cfg, md, False, None, [], True)

    if model_dir is None:
        raise ConfigError("--resume needs the model directory of the run (--model-dir DIR)")
    md = ModelDir(model_dir)
    if not md.config.exists():
        raise ModelDirError(
            f"{md.config} not found: {md.path} holds no run to resume"
            + ("" if md.path.is_dir() else " (the folder does not exist)")
        )
    saved = load_config(md.config)
    cfg = compose_config(None, list(overrides), base=saved, base_source=str(md.config))
    changes = changed_keys(saved, cfg)
    frozen = [(k, a, b) for k, a, b in changes if k not in RESUMABLE]
    if frozen:
        listed = "; ".join(f"{k}: saved {a!r}, asked {b!r}" for k, a, b in frozen)
        raise ConfigError(
            f"--resume continues the run in {md.path} with its saved config; these keys cannot "
            f"change: {listed}. Only {', '.join(RESUMABLE)} may (train a new model to change "
            "the others)"
        )
    notes = [f"{k}: {a!r} -> {b!r}" for k, a, b in changes]
    ckpt = md.last_ckpt if md.last_ckpt.exists() else None
    return _Run(project, cfg, md, True, ckpt, notes, bool(changes))


def train(
    project_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    model_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
    log: Log | None = None,
) -> TrainResult:
    """Train a model on a project; returns where it was written and its metrics.

    Args:
        project_dir: the project folder.
        overrides: config overrides (``key=value``, Hydra grammar).
        model_dir: where to write the model (default ``output.dir``, else
            ``PROJECT/models/<time>``); must not hold a model unless ``resume``.
        resume: continue the run in ``model_dir`` from ``checkpoints/last.ckpt`` with its saved
            config (``overrides`` may change only :data:`RESUMABLE` keys).
        progress: show a progress bar.
        callbacks: extra Lightning callbacks (profiling, custom logging). With
            ``training.devices`` > 1 every training process gets its own copy, so they must be
            picklable.
        log: receives one-line notices (what a resumed run keeps and changes).

    Raises:
        ProjectError, ConfigError, ModelDirError: before anything is written.
    """
    say: Log = log or (lambda _m: None)
    project = load_project(project_dir)
    run = _resolve(project, overrides, model_dir, resume)
    cfg, md = run.cfg, run.md
    devices = cfg.training.devices
    if devices > 1:
        check_picklable(callbacks, devices)
    prepared = _prepare(run)
    if resume:
        done = checkpoint_step(run.ckpt) if run.ckpt is not None else 0
        total = _budget(cfg, prepared.steps_per_epoch)
        if md.is_complete() and total <= done:
            raise ConfigError(
                f"{md.path} finished training at step {done}; to train it further, resume with a "
                f"larger budget, e.g. training.max_steps={2 * done}"
            )
        if total < done:  # total == done: killed after its last checkpoint, only finishing left
            raise ConfigError(
                f"{md.path} is at step {done} but the budget is {total} steps; give more, e.g. "
                f"training.max_steps={done + max(1, done // 2)}"
            )
        where = f"step {done}" if run.ckpt is not None else "step 0 (no checkpoint was saved)"
        changed = f"; changed: {', '.join(run.notes)}" if run.notes else ""
        say(f"resuming {md.path} from {where} of {total}, with its saved config{changed}")

    existed = md.path.exists()
    with md.lock():
        if not resume and md.has_model():  # another run got here between the check and the lock
            raise ModelDirError(f"{md.path} already holds a model (written by another process)")
        try:
            if not resume:
                atomic_write_text(md.config, to_yaml(cfg))
                if project.cameras is not None and project.cameras.calibration_file is not None:
                    calibration = project.cameras.calibration_file.read_bytes()
                    atomic_write_bytes(md.calibration, calibration)
                md.write_record(_record(project, cfg, prepared.data, md))
            elif run.config_changed:
                atomic_write_text(md.config, to_yaml(cfg))
            if devices == 1:
                metrics = _fit(prepared, run, progress=progress, callbacks=callbacks)
                assert metrics is not None
            else:
                accelerator = prepared.accelerator
                del prepared  # each training process builds its own
                train_processes(
                    project=project.root,
                    model_dir=md.path,
                    resume=resume,
                    ckpt=run.ckpt,
                    accelerator=accelerator,
                    world_size=devices,
                    progress=progress,
                    callbacks=callbacks,
                )
                metrics = md.read_metrics()
        except BaseException:
            if not resume and not md.last_ckpt.exists() and not md.best_ckpt.exists():
                # Nothing worth resuming: leave no half model directory behind.
                if existed:
                    for p in md.path.iterdir():
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                else:
                    shutil.rmtree(md.path, ignore_errors=True)
            elif md.last_ckpt.exists():
                say(
                    f"training stopped; {md.path} keeps its last checkpoint: continue with "
                    f"`vidpose train {project.root} --model-dir {md.path} --resume`"
                )
            raise
    for warning in metrics.get("warnings", []):
        say(warning)
    return TrainResult(md.path, metrics, metrics["train_seconds"], metrics["steps"])


def train_rank(spec: WorkerSpec, rank: int) -> None:
    """One training process of a run on ``spec.world_size`` devices (see
    :mod:`vidpose.training.ddp`): the run rebuilt from the config saved in the model
    directory, trained in step with the others."""
    if spec.accelerator == "cuda":
        torch.cuda.set_device(rank)  # before anything: "cuda" means this process's GPU
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // spec.world_size))
    project = load_project(spec.project)
    md = ModelDir(spec.model_dir)
    ckpt = None if spec.ckpt is None else Path(spec.ckpt)
    run = _Run(project, load_config(md.config), md, spec.resume, ckpt, [], False)
    prep = _prepare(run)
    _fit(
        prep,
        run,
        progress=spec.progress and rank == 0,
        callbacks=spec.callbacks,
        ranks=Ranks(rank, spec.world_size),
    )
    # Not after a failure: with a process gone, NCCL's tear-down could wait for it. The step's
    # CUDA graphs hold the gradient all-reduce: they go first (else the tear-down hangs).
    prep.module.release_graphs()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def labeled_split(project: Project, cfg: VidposeConfig) -> np.ndarray:
    """The train/val/test split of the project's labeled frames: ``data.split_file`` (relative
    to the project) when given, else a random one from the fractions and ``data.split_seed``."""
    d = cfg.data
    cams = project.cameras
    if d.split_file is None:
        if cams is not None:  # by instant: every camera's image of an instant in one split
            return cams.expand(
                make_splits(cams.n_groups, d.val_fraction, d.test_fraction, d.split_seed)
            )
        return make_splits(project.labels.n_frames, d.val_fraction, d.test_fraction, d.split_seed)
    path = project.root / d.split_file
    split = read_split_file(path, [str(f) for f in project.labels.frames])
    if cams is not None:
        check_split_by_instant(path, split, project)
    return split


def check_split_by_instant(path: Path, split: np.ndarray, project: Project) -> None:
    """A multi-camera project's split must put every camera's image of an instant in the same
    split (else a test frame would be trained on from another camera)."""
    cams = project.cameras
    assert cams is not None
    first = np.flatnonzero(cams.view_of_row == 0)  # the first camera's row of each instant
    ref_row = np.empty(cams.n_groups, dtype=np.int64)
    ref_row[cams.group_of_row[first]] = first
    ref = ref_row[cams.group_of_row]
    bad = np.flatnonzero(split != split[ref])
    if len(bad):
        frames = project.labels.frames
        rows = [
            f"{frames[i]} is {split[i]!r} but {frames[ref[i]]} is {split[ref[i]]!r}"
            for i in bad[:5]
        ]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ProjectError(
            f"data.split_file {path}: every camera's image of one instant must be in the same "
            f"split: {'; '.join(rows)}{more}"
        )


def _record(project: Project, cfg: VidposeConfig, data: LabeledData, md: ModelDir) -> ModelRecord:
    return ModelRecord(
        keypoints=list(project.labels.keypoints),
        project=str(project.root),
        input_hw=[cfg.data.image_height, cfg.data.image_width],
        image_hw=list(project.image_size),
        flip_pairs=[list(p) for p in project.settings.flip_pairs],
        skeleton=[list(p) for p in project.settings.skeleton],
        split={
            s: [str(f) for f in project.labels.frames[data.indices(s)]]
            for s in ("train", "val", "test")
        },
        vidpose_version=__version__,
        views=[] if project.cameras is None else list(project.cameras.views),
        calibration=(
            None
            if project.cameras is None or project.cameras.calibration is None
            else md.calibration.name
        ),
    )


@dataclass
class _Prepared:
    """Everything built and checked before the model directory is touched."""

    data: LabeledData
    network: PoseNetwork
    module: PoseModule
    steps_per_epoch: int
    accelerator: str
    precision: str
    fitted: dict[str, Any]


def _prepare(run: _Run) -> _Prepared:
    """Build and check everything a run needs; raises before anything is written."""
    project, cfg = run.project, run.cfg
    t = cfg.training
    accelerator = resolve_device(t.device).type
    check_devices(t.devices, accelerator)
    precision = resolve_precision(t.precision, accelerator)
    split = labeled_split(project, cfg)
    supervised = build_supervised_loss(cfg)
    # One step for the global RNG: ensemble members may be preparing at once in other threads.
    with SEEDED_BUILD:
        L.seed_everything(t.seed, workers=True, verbose=False)
        network = build_network_from_config(cfg, project.labels.n_keypoints)
    setup = loss_setup(
        cfg, project.labels, np.flatnonzero(split == "train"), project.settings, project.cameras
    )
    has_clips = bool(project.videos if project.cameras is None else project.cameras.sessions)
    losses = build_losses(cfg, setup, network.context_frames, has_clips)
    data = load_labeled(
        project.labels,
        project.image_paths,
        (cfg.data.image_height, cfg.data.image_width),
        split,
        context_frames=network.context_frames,
        videos=[(v.path, v.n_frames) for v in project.videos],
    )
    n_train = len(data.indices("train"))
    global_batch = t.batch_size * t.devices
    steps_per_epoch = t.steps_per_epoch or max(1, math.ceil(n_train / global_batch))
    total_steps = _budget(cfg, steps_per_epoch)
    schedule = schedule_from_config(t, total_steps, steps_per_epoch)
    graphs = use_cuda_graphs(cfg, accelerator)
    module = PoseModule(
        network,
        supervised,
        losses,
        optimizer_factory(t, schedule, capturable=graphs),
        sigma=cfg.model.sigma,
        ramp_epochs=cfg.losses.ramp_epochs,
        steps_per_epoch=steps_per_epoch,
        compile=t.compile,
        cuda_graphs=graphs,
    )
    fitted: dict[str, Any] = {}
    for w in losses:
        fitted.update(w.loss.fitted())
    return _Prepared(data, network, module, steps_per_epoch, accelerator, precision, fitted)


def _fit(
    prep: _Prepared,
    run: _Run,
    *,
    progress: bool,
    callbacks: Sequence[L.Callback] = (),
    ranks: Ranks = ONE_DEVICE,
) -> dict[str, Any] | None:
    """Train; then, in the main process, evaluate the labeled frames and write
    ``metrics.json``. Returns the metrics (None in the other processes of a multi-device run)."""
    _quiet_lightning()
    project, cfg, md = run.project, run.cfg, run.md
    t = cfg.training
    data, module = prep.data, prep.module
    steps_per_epoch = prep.steps_per_epoch
    total_steps = _budget(cfg, steps_per_epoch)
    main = ranks.is_main
    if module.unsupervised and main:
        write_json(md.unsupervised, {"losses": list(cfg.model.losses), **prep.fitted})
    flip_perm = (
        flip_permutation(project.labels.keypoints, project.settings.flip_pairs)
        if project.settings.flip_pairs
        else None
    )
    clips = None
    if module.unsupervised:
        videos, groups = list(project.videos), None
        if project.cameras is not None:  # the same instants of every camera
            sessions = list(project.cameras.sessions.values())
            videos = [v for s in sessions for v in s]
            n = project.cameras.n_views
            groups = [list(range(i * n, (i + 1) * n)) for i in range(len(sessions))]
        clips = ClipLoader(
            videos,
            cfg.unlabeled.clip_length,
            data.input_hw,
            reader=cfg.unlabeled.reader,
            device="cuda" if prep.accelerator == "cuda" else "cpu",
            seed=rank_seed(t.seed, ranks.rank),
            steps_per_epoch=steps_per_epoch,
            groups=groups,
            augment=cfg.augment,
        )
    dm = LabeledDataModule(
        data,
        t.batch_size,
        steps_per_epoch,
        cfg.augment,
        flip_perm,
        seed=t.seed,
        clips=clips,
        rank=ranks.rank,
        world_size=ranks.world_size,
    )
    if prep.accelerator == "cuda":
        torch.set_float32_matmul_precision("high")
    has_val = len(data.indices("val")) > 0
    best_cb = BestWeights(md.best_ckpt)
    last_cb = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=md.checkpoints,
        save_top_k=0,
        save_last=True,
        every_n_train_steps=t.checkpoint_every_n_steps,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    all_callbacks: list[L.Callback] = [best_cb, last_cb, *callbacks]
    if t.early_stopping_patience is not None and has_val:
        all_callbacks.append(
            L.pytorch.callbacks.EarlyStopping(
                monitor="val/pixel_error",
                mode="min",
                patience=t.early_stopping_patience,
                check_on_train_epoch_end=False,
            )
        )
    if progress and main:
        shown = ("train/supervised", "val/pixel_error")
        all_callbacks.append(ProgressBar(module.metric_log, shown, leave=True))
    trainer = L.Trainer(
        accelerator=trainer_accelerator(prep.accelerator),
        devices=ranks.world_size,
        strategy=_strategy(prep.accelerator, ranks, prep.module.cuda_graphs),
        precision=prep.precision,
        max_steps=total_steps,
        max_epochs=math.ceil(total_steps / steps_per_epoch),
        check_val_every_n_epoch=t.val_every_n_epochs if has_val else None,
        limit_val_batches=1.0 if has_val else 0,
        num_sanity_val_steps=0,
        log_every_n_steps=min(t.log_every_n_steps, steps_per_epoch),
        callbacks=all_callbacks,
        logger=_loggers(md, cfg) if main else False,
        enable_progress_bar=progress and main,
        enable_model_summary=False,
        default_root_dir=md.path,
        plugins=[AtomicCheckpointIO()],
        # The data module shards the rows itself (RandomBatchSampler).
        use_distributed_sampler=False,
        deterministic=False,
        benchmark=t.cudnn_benchmark if prep.accelerator == "cuda" else None,
    )
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(run.ckpt) if run.ckpt else None)
    finally:
        if clips is not None:
            clips.close()
    train_seconds = time.perf_counter() - t0

    if not best_cb.has_weights:  # never validated: the last weights are the best there are
        trainer.save_checkpoint(md.best_ckpt)  # every process (a barrier); rank 0 writes
    if not main:
        return None
    if best_cb.has_weights:
        state = torch.load(md.best_ckpt, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    metrics = evaluate_labeled(module.network, data, md, project.labels, prep.accelerator)
    metrics["train_seconds"] = train_seconds
    metrics["steps"] = int(trainer.global_step)
    metrics["steps_per_epoch"] = steps_per_epoch
    metrics["seconds_per_epoch"] = train_seconds / max(1, trainer.current_epoch)
    metrics["devices"] = ranks.world_size
    metrics["global_batch_size"] = t.batch_size * ranks.world_size
    if module.unsupervised:
        metrics["unsupervised"] = module.activity_summary()
        metrics["warnings"] = inactive_loss_warnings(module)
    md.write_metrics(metrics)
    return metrics


def _strategy(accelerator: str, ranks: Ranks, graphs: bool) -> Any:
    """Lightning's default for one device; else DDP between processes started by
    :mod:`vidpose.training.ddp`, which set the environment that LightningEnvironment reads
    (naming it keeps Lightning from taking a SLURM or torchrun environment for ours). With CUDA
    graphs the gradient average is part of the captured step (:class:`StepSyncDDPStrategy`)."""
    if ranks.world_size == 1:
        return "auto"
    kind = StepSyncDDPStrategy if graphs or os.environ.get(STEP_SYNC_ENV) else DDPStrategy
    return kind(
        cluster_environment=LightningEnvironment(),
        process_group_backend="nccl" if accelerator == "cuda" else "gloo",
    )


def _loggers(md: ModelDir, cfg: VidposeConfig) -> list[Any]:
    """CSV (and TensorBoard, when installed) loggers under ``logs/``, the config logged."""
    # A resumed run logs into new folders: Lightning would otherwise delete the earlier logs.
    suffix = ""
    while (md.logs / f"csv{suffix}").exists():
        suffix = f"_{int(suffix[1:] or 0) + 1}"
    loggers: list = [L.pytorch.loggers.CSVLogger(md.logs, name="", version=f"csv{suffix}")]
    with contextlib.suppress(ModuleNotFoundError):
        loggers.append(L.pytorch.loggers.TensorBoardLogger(md.logs, name="", version=f"tb{suffix}"))
    for logger in loggers:
        logger.log_hyperparams(to_dict(cfg))
    return loggers


INACTIVE_FRACTION = 0.01
"""A requested unsupervised loss active on fewer of its terms than this is reported."""


def inactive_loss_warnings(module: PoseModule) -> list[str]:
    """One line per requested unsupervised loss whose hinge fired on < 1% of its terms over
    the run: training was, for that loss, supervised training plus its cost."""
    summary = module.activity_summary()
    out = []
    for w in module.unsupervised:
        s = summary.get(w.name)
        if s is None or s["active_fraction"] >= INACTIVE_FRACTION:
            continue
        out.append(
            f"model.losses includes {w.name} but it was active on only "
            f"{100 * s['active_fraction']:.2g}% of its terms ({100 * s['counted_fraction']:.2g}% "
            f"were counted at all): {w.loss.gates}. It barely trained the model; loosen those "
            "settings (or drop the loss)."
        )
    return out


@torch.no_grad()
def evaluate_labeled(
    network: PoseNetwork, data: LabeledData, md: ModelDir, labels: Poses, accelerator: str
) -> dict[str, Any]:
    """Predict every labeled frame; write predictions_labeled.csv and return error metrics."""
    device = torch.device("cuda" if accelerator == "cuda" else "cpu")
    network = network.to(device).eval()
    n = labels.n_frames
    coords = np.zeros((n, labels.n_keypoints, 2))
    conf = np.zeros((n, labels.n_keypoints))
    for start in range(0, n, 64):
        rows = torch.arange(start, min(n, start + 64))
        windows = data.windows[rows].to(device).float().div_(255.0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = network.forward_windows(windows).combined
        pred = input_to_orig(
            out.coords.float(), data.orig_hw[rows][:, None, :].to(device), data.input_hw
        )
        coords[rows.numpy()] = pred.cpu().numpy()
        conf[rows.numpy()] = out.confidence.float().cpu().numpy()
    preds = Poses(
        coords=coords,
        keypoints=labels.keypoints,
        frames=labels.frames,
        likelihood=conf,
        scorer="vidpose",
        # Lightning Pose's convention: a ("set", "", "") column of train / validation / test.
        frame_columns={"set": np.asarray([LP_SET_NAMES[s] for s in data.split], dtype=object)},
    )
    write_poses(preds, md.labeled_predictions)
    err = np.linalg.norm(coords - labels.coords, axis=2)  # NaN where label missing
    metrics: dict[str, Any] = {}
    for s in ("train", "val", "test"):
        rows = data.indices(s)
        e = err[rows]
        if rows.size == 0 or np.all(np.isnan(e)):
            continue
        metrics[s] = {
            "frames": int(rows.size),
            "pixel_error_mean": float(np.nanmean(e)),
            "pixel_error_median": float(np.nanmedian(e)),
            "pixel_error_p95": float(np.nanpercentile(e, 95)),
            "per_keypoint_mean": {
                k: (float(np.nanmean(e[:, j])) if np.any(~np.isnan(e[:, j])) else None)
                for j, k in enumerate(labels.keypoints)
            },
        }
    return metrics
