"""From the typed config to built objects: network options, optimizer, schedule."""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.build import (
    OPTIMIZERS,
    Schedule,
    build_network_from_config,
    optimizer_factory,
    schedule_from_config,
)
from vidpose.config import compose_config
from vidpose.config.schema import OPTIMIZERS as OPTIMIZER_CHOICES

SMALL = ["model.backbone=resnet18", "model.pretrained=false"]


def test_every_optimizer_the_schema_allows_is_built():
    assert set(OPTIMIZERS) == set(OPTIMIZER_CHOICES)
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    params = [torch.nn.Parameter(torch.zeros(2))]
    for name in OPTIMIZER_CHOICES:
        cfg = compose_config(None, [f"training.optimizer={name}", "training.weight_decay=0.1"])
        opt, sched = optimizer_factory(cfg.training, Schedule(10))(params)
        assert type(opt) is kinds[name] and opt.param_groups[0]["weight_decay"] == 0.1
        assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)


def test_schedules():
    assert [Schedule(8, warmup_steps=4).factor(s) for s in range(6)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
        1.0,
    ]
    multistep = Schedule(100, scheduler="multistep", milestones=(0.5, 0.75), gamma=0.1)
    assert [multistep.factor(s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    cosine = Schedule(100, scheduler="cosine")
    assert cosine.factor(0) == 1.0 and cosine.factor(50) == pytest.approx(0.5)
    assert cosine.factor(100) == pytest.approx(0.0, abs=1e-12)
    warm_cosine = Schedule(100, warmup_steps=10, scheduler="cosine")
    assert warm_cosine.factor(4) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.04)))


def test_schedule_from_config_turns_warmup_epochs_into_steps():
    cfg = compose_config(None, ["training.warmup_epochs=1.5", "training.scheduler=none"])
    assert schedule_from_config(cfg.training, 100, 10).warmup_steps == 15


def test_network_from_config_passes_model_keys_that_the_head_takes():
    cfg = compose_config(None, [*SMALL, "model.head=heatmap_context", "model.context_frames=3"])
    net = build_network_from_config(cfg, 4)
    assert net.context_frames == 3 and net.n_keypoints == 4 and net.channels_last
    plain = build_network_from_config(
        compose_config(None, [*SMALL, "training.channels_last=false"]), 4
    )
    assert plain.context_frames == 1 and not plain.channels_last
