"""Fixtures of the prediction tests: one tiny trained model for the whole folder."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=4",
]


@pytest.fixture(scope="session")
def tiny_model(tiny_project_src, tmp_path_factory) -> Path:
    """A resnet18 model trained for 4 steps on the tiny project (near-random weights: tests
    check shapes, files and bookkeeping, not accuracy). Read-only: copy it to change it."""
    from vidpose.training import train

    d = tmp_path_factory.mktemp("model") / "m"
    train(tiny_project_src, TINY, model_dir=d, progress=False)
    return d


@pytest.fixture(scope="session")
def tiny_video(tiny_project_src) -> Path:
    """The tiny project's one video: 48 frames of 64 x 64."""
    return next((tiny_project_src / "videos").glob("*.mp4"))
