"""Fixtures of the command-line tests: one tiny trained model for the whole folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "data.image_height=64",
    "data.image_width=64",
    "training.max_steps=2",
    "training.batch_size=4",
]


@pytest.fixture(scope="session")
def cli_model(tiny_project_src, tmp_path_factory) -> Path:
    """A model trained for 2 steps on the tiny project (weights are near random; the tests
    check files and messages, not accuracy). Read-only: copy it to change it."""
    import vidpose

    model_dir = tmp_path_factory.mktemp("cli_model") / "model"
    vidpose.train(tiny_project_src, TINY, model_dir=model_dir, progress=False)
    return model_dir


@pytest.fixture(scope="session")
def cli_video(tiny_project_src) -> Path:
    return tiny_project_src / "videos" / "session00.mp4"


@pytest.fixture(scope="session")
def broken_model(cli_model, tmp_path_factory) -> Path:
    """A copy of ``cli_model`` whose checkpoints/best.ckpt is cut to a few bytes."""
    model_dir = tmp_path_factory.mktemp("broken_model") / "model"
    shutil.copytree(cli_model, model_dir)
    ckpt = model_dir / "checkpoints" / "best.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:64])
    return model_dir
