"""Training end to end on a tiny synthetic project (CPU, seconds)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.io import read_poses
from vidpose.training import train

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "data.val_fraction=0.125",
    "data.test_fraction=0.125",
    "training.batch_size=4",
]


def test_train_writes_complete_model_dir(tiny_project, tmp_path):
    res = train(
        tiny_project, [*TINY, "training.max_steps=6"], model_dir=tmp_path / "m", progress=False
    )
    d = res.model_dir
    for name in (
        "config.yaml",
        "model.json",
        "metrics.json",
        "predictions_labeled.csv",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ):
        assert (d / name).exists(), name
    assert res.steps == 6
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["steps"] == 6
    assert {"train", "val", "test"} <= set(metrics)
    assert metrics["train"]["frames"] + metrics["val"]["frames"] + metrics["test"]["frames"] == 16
    preds = read_poses(d / "predictions_labeled.csv")
    assert preds.n_frames == 16 and not preds.is_labels
    assert sorted(set(preds.frame_columns["set"])) == ["test", "train", "validation"]
    header = (d / "predictions_labeled.csv").read_text().splitlines()[:3]
    assert [row.split(",")[-1] for row in header] == ["set", "", ""]  # as Lightning Pose writes it
    info = json.loads((d / "model.json").read_text())
    assert len(info["split"]["test"]) == 2  # 16 * 0.125


def test_splits_are_deterministic_by_seed(tiny_project, tmp_path):
    from vidpose.data.labeled import make_splits

    a = make_splits(90, 0.1, 0.1, seed=0)
    assert (a == make_splits(90, 0.1, 0.1, seed=0)).all()
    assert not (a == make_splits(90, 0.1, 0.1, seed=1)).all()
    assert [int((a == s).sum()) for s in ("train", "val", "test")] == [72, 9, 9]


def test_training_learns(tiny_project, tmp_path):
    """A tiny model fits the labeled frames well below the error of an untrained one."""
    res = train(
        tiny_project,
        [
            *TINY,
            "training.max_steps=150",
            "training.lr=3e-3",
            "augment.enabled=false",
            "data.val_fraction=0",
            "data.test_fraction=0",
            "training.scheduler=cosine",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    err = res.metrics["train"]["pixel_error_median"]
    assert err < 3.0, res.metrics["train"]


def test_unknown_config_key_is_named(tiny_project, tmp_path):
    with pytest.raises(ConfigError, match=r"training\.max_epoch\b.*max_epochs"):
        train(tiny_project, ["training.max_epoch=3"], model_dir=tmp_path / "m", progress=False)


def test_unknown_backbone_is_named(tiny_project, tmp_path):
    with pytest.raises(ConfigError, match="resnet5000"):
        train(tiny_project, ["model.backbone=resnet5000"], model_dir=tmp_path / "m", progress=False)


def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def test_resume_after_kill_finishes_same_steps(tiny_project, tmp_path):
    """kill -9 mid-run, then --resume: the run ends at exactly max_steps."""
    model_dir = tmp_path / "m"
    steps = 150
    cmd = [
        sys.executable,
        "-m",
        "vidpose.cli",
        "train",
        str(tiny_project),
        *TINY,
        f"training.max_steps={steps}",
        "training.steps_per_epoch=7",
        "training.checkpoint_every_n_steps=7",
        "--model-dir",
        str(model_dir),
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = model_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if last.exists() and _ckpt_step(last) >= 7:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _ckpt_step(last)
    assert 0 < killed_at < steps
    assert not (model_dir / "metrics.json").exists()
    res = train(tiny_project, model_dir=model_dir, resume=True, progress=False)
    assert res.steps == steps
    assert json.loads((model_dir / "metrics.json").read_text())["steps"] == steps
    assert np.isfinite(res.metrics["train"]["pixel_error_mean"])
