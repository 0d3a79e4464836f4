"""From the typed config to built objects: the network, its losses, the optimizer and schedule.

The config is read here and nowhere deeper: training (:mod:`vidpose.training`) and
:func:`vidpose.predict.load_model` both build the network with :func:`build_network_from_config`,
and the training module receives the built losses and optimizer factory, never the config
(as lightning-hydra-template's ``train.py`` hands built objects to its LightningModule).
Lightning-free, so that prediction does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from vidpose.config.schema import TrainingConfig, VidposeConfig
from vidpose.errors import ConfigError
from vidpose.io.poses import Poses
from vidpose.losses.registry import LossSetup, WeightedLoss, build_unsupervised_losses
from vidpose.losses.supervised import SupervisedLoss, check_supervised_loss
from vidpose.models import HEADS, PoseNetwork, build_network
from vidpose.project.settings import ProjectSettings

if TYPE_CHECKING:
    from vidpose.project.load import CameraLayout

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, wd, cap: torch.optim.Adam(
        params, lr=lr, weight_decay=wd, capturable=cap
    ),
    "adamw": lambda params, lr, wd, cap: torch.optim.AdamW(
        params, lr=lr, weight_decay=wd, capturable=cap
    ),
    "sgd": lambda params, lr, wd, cap: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=wd
    ),
}
"""``training.optimizer`` -> ``factory(params, lr, weight_decay, capturable)``; the schema's
choices. ``capturable``: the update may be captured in a CUDA graph (its step count stays on
the device)."""


def build_network_from_config(
    cfg: VidposeConfig, n_keypoints: int, *, pretrained: bool | None = None
) -> PoseNetwork:
    """The network ``cfg.model`` describes, for ``n_keypoints`` keypoints.

    ``model.*`` keys named like one of the head's options (``context_frames``) are passed to
    the head. ``pretrained`` None follows ``model.pretrained`` (loading a trained model passes
    False: its weights come from the checkpoint). Weights and inputs are channels_last when
    ``training.channels_last`` is set.
    """
    m = cfg.model
    spec = HEADS.get(m.head)
    options = {k: getattr(m, k) for k in spec.options if k != "heatmap_stride" and hasattr(m, k)}
    network = build_network(
        m.backbone,
        m.head,
        n_keypoints,
        pretrained=m.pretrained if pretrained is None else pretrained,
        heatmap_stride=m.heatmap_stride,
        **options,
    )
    if cfg.training.channels_last:
        network.use_channels_last()
    return network


def build_supervised_loss(cfg: VidposeConfig) -> SupervisedLoss:
    """``model.supervised_loss``, checked against what the head produces."""
    return check_supervised_loss(
        cfg.model.supervised_loss, HEADS.get(cfg.model.head).produces_heatmaps
    )


def loss_setup(
    cfg: VidposeConfig,
    labels: Poses,
    train_rows: np.ndarray,
    settings: ProjectSettings,
    cameras: CameraLayout | None = None,
) -> LossSetup:
    """What the unsupervised losses may need: training labels, keypoint groups, the head; for
    a multi-camera project (``cameras``) the labels of each instant with every camera's
    labels side by side (wide), every keypoint matched across cameras, and the calibration."""
    common = {
        "keypoints": list(labels.keypoints),
        "pca_keypoint_idx": (
            labels.keypoint_index(settings.pca_keypoints) if settings.pca_keypoints else None
        ),
        "head_has_heatmaps": HEADS.get(cfg.model.head).produces_heatmaps,
        "heatmap_sigma": cfg.model.sigma,
    }
    if cameras is not None:
        n_kp, n_cam = labels.n_keypoints, cameras.n_views
        instants = np.unique(cameras.group_of_row[train_rows])
        return LossSetup(
            labels_px=np.asarray(cameras.wide(labels.coords)[instants], dtype=np.float64),
            view_matches=np.array([[c * n_kp + k for c in range(n_cam)] for k in range(n_kp)]),
            cameras=tuple(cameras.views),
            calibration=cameras.calibration,
            **common,
        )
    return LossSetup(
        labels_px=np.asarray(labels.coords[train_rows], dtype=np.float64),
        view_matches=(
            np.asarray([labels.keypoint_index(row) for row in settings.view_matches])
            if settings.view_matches
            else None
        ),
        **common,
    )


def build_losses(
    cfg: VidposeConfig, setup: LossSetup, context_frames: int, has_videos: bool
) -> list[WeightedLoss]:
    """The unsupervised losses of ``model.losses``, each with its weight; ConfigError when one
    cannot work here (no videos, clips shorter than the network's window, too few labels...)."""
    names = list(cfg.model.losses)
    if not names:
        return []
    if not has_videos:
        raise ConfigError(
            f"model.losses={names} needs unlabeled videos, but the project's videos/ folder "
            "has none"
        )
    clip = cfg.unlabeled.clip_length
    if clip < context_frames:
        raise ConfigError(
            f"model.head={cfg.model.head} with model.losses={names}: unlabeled.clip_length="
            f"{clip} is shorter than the network's window of {context_frames} frames; a clip of "
            f"T frames gives T - {context_frames - 1} predictions, so set "
            f"unlabeled.clip_length >= {context_frames} (e.g. {context_frames + 11})"
        )
    return build_unsupervised_losses(names, cfg.losses, setup)


@dataclass(frozen=True)
class Schedule:
    """The learning-rate factor of every optimizer step (a pure function of the step).

    Attributes:
        total_steps: steps of the whole run.
        warmup_steps: steps of linear warm-up, the factor going (step + 1) / warmup_steps.
        scheduler: "none", "multistep" or "cosine".
        milestones: multistep: fractions of ``total_steps`` where the factor is multiplied by
            ``gamma``.
        gamma: multistep factor.
    """

    total_steps: int
    warmup_steps: int = 0
    scheduler: str = "none"
    milestones: Sequence[float] = ()
    gamma: float = 1.0

    def factor(self, step: int) -> float:
        total = max(1, self.total_steps)
        w = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.scheduler == "cosine":
            return w * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        if self.scheduler == "multistep":
            n = sum(step >= round(f * total) for f in self.milestones)
            return w * self.gamma**n
        return w


def schedule_from_config(t: TrainingConfig, total_steps: int, steps_per_epoch: int) -> Schedule:
    return Schedule(
        total_steps=total_steps,
        warmup_steps=round(t.warmup_epochs * steps_per_epoch),
        scheduler=t.scheduler,
        milestones=tuple(t.milestones),
        gamma=t.gamma,
    )


OptimizerFactory = Callable[
    [Iterable[torch.nn.Parameter]],
    tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
]


def optimizer_factory(
    t: TrainingConfig, schedule: Schedule, *, capturable: bool = False
) -> OptimizerFactory:
    """``factory(parameters) -> (optimizer, per-step LR scheduler)`` for ``training.*``;
    ``capturable`` for an update inside a CUDA graph."""
    make = OPTIMIZERS[t.optimizer]

    def factory(params: Iterable[torch.nn.Parameter]):
        opt = make([p for p in params if p.requires_grad], t.lr, t.weight_decay, capturable)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule.factor)

    return factory
