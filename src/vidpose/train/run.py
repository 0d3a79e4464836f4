"""``vidpose train``: from a project folder to a complete model directory.

Model directory layout::

    MODEL_DIR/
      config.yaml               resolved config (everything needed to rebuild the network)
      model.json                keypoints, original image size, splits, project path
      checkpoints/best.ckpt     lowest validation pixel error
      checkpoints/last.ckpt     latest state, for --resume
      metrics.json              pixel error per split (mean, median, p95, per keypoint)
      predictions_labeled.csv   every labeled frame, predicted, with its split
      logs/                     TensorBoard and CSV logs
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from vidpose._atomic import atomic_write_text
from vidpose._device import resolve_device
from vidpose.config import (
    VidposeConfig,
    compose_config,
    load_config,
    to_yaml,
    validate_choices,
)
from vidpose.data.augment import AugmentSettings, flip_permutation, input_to_orig
from vidpose.data.labeled import LabeledData, load_labeled, make_splits
from vidpose.data.unlabeled import ClipLoader
from vidpose.errors import ConfigError
from vidpose.io import write_poses
from vidpose.io.poses import Poses
from vidpose.losses.registry import (
    UnsupervisedContext,
    available_unsupervised_losses,
    build_unsupervised_context,
    check_loss_prerequisites,
)
from vidpose.losses.supervised import list_supervised_losses
from vidpose.models import get_head_spec, list_backbones, list_heads
from vidpose.project import Project, load_project
from vidpose.train.checkpoint_io import AtomicCheckpointIO
from vidpose.train.datamodule import LabeledDataModule
from vidpose.train.module import PoseModule, check_head_losses


@dataclass
class TrainResult:
    """What a finished training run produced."""

    model_dir: Path
    metrics: dict[str, Any]
    train_seconds: float
    steps: int


def _quiet_lightning() -> None:
    """Keep the console to what a user needs: no accelerator banners, tips or deprecations."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if accelerator == "cuda" else "32-true"


def default_model_dir(project_root: Path) -> Path:
    return project_root / "models" / time.strftime("%Y-%m-%d_%H-%M-%S")


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def train(
    project_dir: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    model_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Train a model on a project; returns where it was written and its metrics.

    ``resume=True`` continues from ``MODEL_DIR/checkpoints/last.ckpt`` (the config saved there
    wins over ``overrides``, so the resumed run is the same run). ``callbacks`` are extra
    Lightning callbacks (profiling, custom logging).
    """
    project = load_project(project_dir)
    if resume:
        if model_dir is None:
            raise ConfigError("--resume needs the model directory (--model-dir) of the run")
        model_dir = Path(model_dir)
        saved = model_dir / "config.yaml"
        if not saved.exists():
            raise ConfigError(f"{saved} not found: nothing to resume")
        cfg = load_config(saved)
    else:
        cfg = compose_config(
            project.settings.config,
            list(overrides),
            project_file=str(project.root / "vidpose.yaml"),
        )
        _validate_against_registries(cfg)
        model_dir = Path(model_dir or cfg.output.dir or default_model_dir(project.root))
    model_dir.mkdir(parents=True, exist_ok=True)
    return _fit(project, cfg, model_dir, resume=resume, progress=progress, callbacks=callbacks)


def _validate_against_registries(cfg: VidposeConfig) -> None:
    validate_choices(
        cfg,
        backbones=list_backbones(),
        heads=list_heads(),
        losses=available_unsupervised_losses(),
        supervised_losses=list_supervised_losses(),
    )


def _fit(
    project: Project,
    cfg: VidposeConfig,
    model_dir: Path,
    *,
    resume: bool,
    progress: bool,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    _quiet_lightning()
    t = cfg.training
    L.seed_everything(t.seed, workers=True, verbose=False)
    split = make_splits(
        project.labels.n_frames, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed
    )
    input_hw = (cfg.data.image_height, cfg.data.image_width)
    check_head_losses(
        cfg.model.head, cfg.model.losses, cfg.model.context_frames, cfg.unlabeled.clip_length
    )
    context = "context_frames" in get_head_spec(cfg.model.head).options
    data = load_labeled(
        project.labels,
        project.image_paths,
        input_hw,
        split,
        context_frames=cfg.model.context_frames if context else 1,
        videos=[(v.path, v.n_frames) for v in project.videos],
    )
    n_train = len(data.indices("train"))
    steps_per_epoch = t.steps_per_epoch or max(1, math.ceil(n_train / t.batch_size))
    total_steps = t.max_steps if t.max_steps > 0 else t.max_epochs * steps_per_epoch
    max_epochs = math.ceil(total_steps / steps_per_epoch)

    atomic_write_text(model_dir / "config.yaml", to_yaml(cfg))
    _write_json(
        model_dir / "model.json",
        {
            "keypoints": project.labels.keypoints,
            "project": str(project.root),
            "input_hw": list(input_hw),
            "image_hw": list(project.image_size),
            "flip_pairs": [list(p) for p in project.settings.flip_pairs],
            "skeleton": [list(p) for p in project.settings.skeleton],
            "split": {
                s: [str(f) for f in project.labels.frames[data.indices(s)]]
                for s in ("train", "val", "test")
            },
        },
    )

    flip_perm = (
        flip_permutation(project.labels.keypoints, project.settings.flip_pairs)
        if project.settings.flip_pairs
        else None
    )
    accelerator = resolve_device(t.device).type
    precision = resolve_precision(t.precision, accelerator)
    unsup_ctx, clips = None, None
    if cfg.model.losses:
        unsup_ctx = build_unsupervised(project, cfg, data, model_dir)
        clips = ClipLoader(
            project.videos,
            cfg.unlabeled.clip_length,
            input_hw,
            reader=cfg.unlabeled.reader,
            device="cuda" if accelerator == "cuda" else "cpu",
            seed=t.seed,
            steps_per_epoch=steps_per_epoch,
            augment=AugmentSettings(**asdict(cfg.augment)),
        )
    dm = LabeledDataModule(
        data,
        t.batch_size,
        steps_per_epoch,
        AugmentSettings(**asdict(cfg.augment)),
        flip_perm,
        seed=t.seed,
        clips=clips,
    )
    cfg_dict = asdict(cfg)
    module = PoseModule(cfg_dict, project.labels.keypoints, total_steps, steps_per_epoch, unsup_ctx)

    if accelerator == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    ckpt_dir = model_dir / "checkpoints"
    has_val = len(data.indices("val")) > 0
    best_cb = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val/pixel_error",
        mode="min",
        save_top_k=1,
        save_last=False,
        save_weights_only=True,
        enable_version_counter=False,
    )
    last_cb = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir,
        save_top_k=0,
        save_last=True,
        every_n_train_steps=t.checkpoint_every_n_steps,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    all_callbacks: list[L.Callback] = [best_cb, last_cb, *callbacks]
    if progress:
        all_callbacks.append(L.pytorch.callbacks.RichProgressBar(leave=True))
    # A resumed run logs into new folders: Lightning would otherwise delete the earlier logs.
    suffix = ""
    while (model_dir / "logs" / f"csv{suffix}").exists():
        suffix = f"_{int(suffix[1:] or 0) + 1}"
    loggers: list = [
        L.pytorch.loggers.CSVLogger(model_dir / "logs", name="", version=f"csv{suffix}")
    ]
    with contextlib.suppress(ModuleNotFoundError):
        loggers.append(
            L.pytorch.loggers.TensorBoardLogger(model_dir / "logs", name="", version=f"tb{suffix}")
        )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=t.devices if accelerator == "cuda" else 1,
        precision=precision,
        max_steps=total_steps,
        max_epochs=max_epochs,
        check_val_every_n_epoch=t.val_every_n_epochs if has_val else None,
        limit_val_batches=1.0 if has_val else 0,
        num_sanity_val_steps=0,
        log_every_n_steps=min(t.log_every_n_steps, steps_per_epoch),
        callbacks=all_callbacks,
        logger=loggers,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=model_dir,
        plugins=[AtomicCheckpointIO()],
        deterministic=False,
    )
    ckpt_path = None
    if resume:
        last = ckpt_dir / "last.ckpt"
        ckpt_path = str(last) if last.exists() else None
    t0 = time.perf_counter()
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    finally:
        if clips is not None:
            clips.close()
    train_seconds = time.perf_counter() - t0

    best = ckpt_dir / "best.ckpt"
    if best.exists() and has_val:
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    elif not best.exists():
        trainer.save_checkpoint(best)
    metrics = evaluate_labeled(module, data, model_dir, project.labels, accelerator)
    metrics["train_seconds"] = train_seconds
    metrics["steps"] = int(trainer.global_step)
    metrics["steps_per_epoch"] = steps_per_epoch
    metrics["seconds_per_epoch"] = train_seconds / max(1, trainer.current_epoch)
    _write_json(model_dir / "metrics.json", metrics)
    return TrainResult(model_dir, metrics, train_seconds, int(trainer.global_step))


def build_unsupervised(
    project: Project, cfg: VidposeConfig, data: LabeledData, model_dir: Path
) -> UnsupervisedContext:
    """Check the unsupervised losses fit this project, fit their subspaces, save them."""
    if not project.videos:
        raise ConfigError(
            f"model.losses={cfg.model.losses} needs unlabeled videos, but {project.root}/videos "
            "has none"
        )
    labels = project.labels
    settings = project.settings
    pca_idx = labels.keypoint_index(settings.pca_keypoints) if settings.pca_keypoints else None
    view_matches = (
        [labels.keypoint_index(row) for row in settings.view_matches]
        if settings.view_matches
        else None
    )
    train_rows = data.indices("train")
    check_loss_prerequisites(
        cfg.model.losses,
        n_train_labels=len(train_rows),
        n_keypoints=len(pca_idx) if pca_idx is not None else labels.n_keypoints,
        has_view_matches=bool(view_matches),
        head_has_heatmaps=get_head_spec(cfg.model.head).produces_heatmaps,
    )
    lc = cfg.losses
    ctx = build_unsupervised_context(
        cfg.model.losses,
        labels_px=labels.coords[train_rows],
        pca_keypoint_idx=pca_idx,
        view_matches=view_matches,
        keypoint_names=labels.keypoints,
        pca_variance=lc.pca_variance,
        pca_components=lc.pca_components,
        pca_epsilon_percentile=lc.pca_epsilon_percentile,
        pca_epsilon_px=lc.pca_epsilon_px,
        temporal_epsilon_px=lc.temporal_epsilon_px,
        temporal_min_confidence=lc.temporal_min_confidence,
        heatmap_sigma=cfg.model.sigma,
    )
    _write_json(
        model_dir / "unsupervised.json",
        {
            "losses": list(cfg.model.losses),
            "pose_pca": ctx.pose_pca.to_dict() if ctx.pose_pca is not None else None,
            "multiview_pca": ctx.multiview_pca.to_dict() if ctx.multiview_pca is not None else None,
        },
    )
    return ctx


@torch.no_grad()
def evaluate_labeled(
    module: PoseModule, data: LabeledData, model_dir: Path, labels: Poses, accelerator: str
) -> dict[str, Any]:
    """Predict every labeled frame; write predictions_labeled.csv and return error metrics."""
    device = torch.device("cuda" if accelerator == "cuda" else "cpu")
    module = module.to(device).eval()
    n = labels.n_frames
    coords = np.zeros((n, labels.n_keypoints, 2))
    conf = np.zeros((n, labels.n_keypoints))
    for start in range(0, n, 64):
        rows = torch.arange(start, min(n, start + 64))
        cache = data.windows if data.windows is not None else data.images
        images = cache[rows].to(device).float().div_(255.0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = module(module._images(images))
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
        frame_columns={"split": np.asarray(data.split, dtype=object)},
    )
    write_poses(preds, model_dir / "predictions_labeled.csv")
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
