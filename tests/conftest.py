"""Fixtures shared across the test suite.

``tiny_project``: a synthetic project of 64x64 frames — 1 video of 48 frames, 16 labeled frames,
12 keypoints, seed 0, easy difficulty — with ground truth for every frame. Built once per
session into a temporary folder; tests that modify a project must copy it first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MIRROR_MOUSE = SHARED / "data" / "mirror-mouse-example"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_project_src(tmp_path_factory) -> Path:
    from vidpose.synthetic import synthesize_project

    out = tmp_path_factory.mktemp("tiny") / "project"
    synthesize_project(
        out, seed=0, n_labeled=16, n_videos=1, n_frames=48, size=(64, 64), difficulty="easy"
    )
    return out


@pytest.fixture
def tiny_project(tiny_project_src, tmp_path) -> Path:
    """A private copy of the tiny synthetic project (safe to modify)."""
    dst = tmp_path / "project"
    shutil.copytree(tiny_project_src, dst)
    return dst


@pytest.fixture(scope="session")
def mirror_mouse() -> Path:
    if not MIRROR_MOUSE.exists():
        pytest.skip(f"example project not found at {MIRROR_MOUSE}")
    return MIRROR_MOUSE
