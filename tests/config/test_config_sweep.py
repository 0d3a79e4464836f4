"""Expanding command-line sweeps into runs, and composing every run up front."""

from __future__ import annotations

import pytest

from vidpose.config import compose_config, compose_sweep, expand_sweep
from vidpose.errors import ConfigError


def test_two_by_two_sweep_gives_four_runs():
    runs = expand_sweep(["training.lr=1e-3,1e-4", "model.backbone=resnet18,resnet50"])
    assert len(runs) == 4
    assert {tuple(r) for r in runs} == {
        ("training.lr=0.001", "model.backbone=resnet18"),
        ("training.lr=0.001", "model.backbone=resnet50"),
        ("training.lr=0.0001", "model.backbone=resnet18"),
        ("training.lr=0.0001", "model.backbone=resnet50"),
    }
    lrs_backbones = set()
    for run in runs:
        cfg = compose_config(None, run)
        lrs_backbones.add((cfg.training.lr, cfg.model.backbone))
    assert lrs_backbones == {(a, b) for a in (1e-3, 1e-4) for b in ("resnet18", "resnet50")}


def test_plain_overrides_repeat_unchanged_and_lists_are_not_sweeps():
    runs = expand_sweep(
        ["model.losses=[temporal,pca_singleview]", "data.split_seed=range(3)", "output.dir=/x y"]
    )
    assert [r[1] for r in runs] == ["data.split_seed=0", "data.split_seed=1", "data.split_seed=2"]
    assert all(r[0] == "model.losses=[temporal,pca_singleview]" for r in runs)
    assert compose_config(None, runs[2]).output.dir == "/x y"


def test_no_overrides_is_one_run():
    assert expand_sweep([]) == [[]]


def test_sweep_of_lists():
    runs = expand_sweep(["model.losses=[temporal],[temporal,unimodal]"])
    assert [compose_config(None, r).model.losses for r in runs] == [
        ["temporal"],
        ["temporal", "unimodal"],
    ]


def test_interval_sweep_cannot_be_expanded():
    with pytest.raises(ConfigError, match="interval"):
        expand_sweep(["training.lr=interval(1e-4,1e-3)"])


def test_compose_sweep_fails_before_any_run_when_one_is_invalid():
    pairs = compose_sweep(None, ["training.batch_size=4,8"])
    assert [cfg.training.batch_size for _, cfg in pairs] == [4, 8]
    with pytest.raises(ConfigError, match=r"training\.batch_size"):
        compose_sweep(None, ["training.batch_size=4,abc"])
