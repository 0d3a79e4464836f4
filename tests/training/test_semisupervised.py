"""Semi-supervised training end to end on the tiny synthetic project (CPU, pyav clips)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vidpose.cli import main as cli_main
from vidpose.errors import ConfigError
from vidpose.training import train

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=6",
    "training.log_every_n_steps=1",
    "unlabeled.reader=pyav",
    "unlabeled.clip_length=4",
    "losses.ramp_epochs=0",
]


def test_semisupervised_run_logs_every_loss_and_writes_metrics(tiny_project, tmp_path):
    losses = ["temporal", "pca_singleview", "unimodal", "equivariance"]
    res = train(
        tiny_project,
        [*TINY, f"model.losses=[{','.join(losses)}]"],
        model_dir=tmp_path / "m",
        progress=False,
    )
    assert res.steps == 6
    log = pd.read_csv(res.model_dir / "logs" / "csv" / "metrics.csv")
    for name in losses:
        values = log[f"train/{name}"].dropna()
        assert len(values) > 0 and np.isfinite(values).all(), name
    assert (log["train/ramp"].dropna() == 1.0).all()
    info = json.loads((res.model_dir / "unsupervised.json").read_text())
    assert info["losses"] == losses and info["pose_pca"] is not None

    video = next((tiny_project / "videos").glob("*.mp4"))
    rc = cli_main(
        [
            "predict",
            str(res.model_dir),
            str(video),
            "--out",
            str(tmp_path / "pred"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert rc == 0
    tn = pd.read_csv(tmp_path / "pred" / f"{video.stem}_temporal_norm.csv", index_col=0)
    pe = pd.read_csv(tmp_path / "pred" / f"{video.stem}_pca_singleview_error.csv", index_col=0)
    assert len(tn) == len(pe) == 48
    assert np.isnan(tn.iloc[0]).all() and np.isfinite(tn.iloc[1:].to_numpy()).all()
    assert (pe.to_numpy() >= 0).all()


def test_multiview_without_view_matches_is_a_config_error(tiny_project, tmp_path):
    with pytest.raises(ConfigError, match="view_matches"):
        train(
            tiny_project,
            [*TINY, "model.losses=[pca_multiview]"],
            model_dir=tmp_path / "m",
            progress=False,
        )


def test_unknown_unsupervised_loss_is_named(tiny_project, tmp_path):
    with pytest.raises(ConfigError, match="temporall"):
        train(
            tiny_project,
            [*TINY, "model.losses=[temporall]"],
            model_dir=tmp_path / "m",
            progress=False,
        )


def test_loss_activity_is_logged_recorded_and_an_inactive_loss_is_reported(tiny_project, tmp_path):
    """Two settings of the temporal loss on the same run: gated off by confidence (a model this
    young is never 100% sure) it is inactive and the user is told why; with no gate and no
    margin every counted pair is active."""
    said: list[str] = []
    gated = train(
        tiny_project,
        [*TINY, "model.losses=[temporal]", "losses.temporal.min_confidence=1.0"],
        model_dir=tmp_path / "gated",
        progress=False,
        log=said.append,
    )
    act = gated.metrics["unsupervised"]["temporal"]
    assert act["active_fraction"] == 0.0 and act["counted_fraction"] == 0.0
    assert len(act["per_epoch"]) == 2  # 4 steps per epoch (13 training labels), then 2
    (warning,) = gated.metrics["warnings"]
    assert "temporal" in warning and "losses.temporal.min_confidence" in warning
    assert warning in said

    open_ = train(
        tiny_project,
        [
            *TINY,
            "model.losses=[temporal]",
            "losses.temporal.min_confidence=0",
            "losses.temporal.epsilon_px=0",
        ],
        model_dir=tmp_path / "open",
        progress=False,
    )
    act = open_.metrics["unsupervised"]["temporal"]
    assert act["counted_fraction"] == 1.0 and act["active_fraction"] > 0.9
    assert act["relative_size"] > 0 and "warnings" in open_.metrics
    assert open_.metrics["warnings"] == []
    log = pd.read_csv(open_.model_dir / "logs" / "csv" / "metrics.csv")
    assert (log["train/temporal_active"].dropna() > 0.9).all()
    assert (log["train/temporal_relative"].dropna() > 0).all()


def test_equivariance_trains_a_context_model_and_is_active(tiny_project, tmp_path):
    """The second view runs through the context network's sequence path (frames trimmed
    alike in both views); with no margin almost every keypoint inside both views costs."""
    res = train(
        tiny_project,
        [
            *TINY,
            "model.head=heatmap_context",
            "model.context_frames=3",
            "model.losses=[equivariance]",
            "losses.equivariance.epsilon_px=0",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    act = res.metrics["unsupervised"]["equivariance"]
    assert act["counted_fraction"] > 0.5 and act["active_fraction"] > 0.5
    assert act["relative_size"] > 0
