"""Fixtures for project tests: fresh copies of the synthetic project, and mirror-mouse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from project_builders import MIRROR_MOUSE, make_project


@pytest.fixture(scope="session")
def _pristine_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("pristine") / "proj")


@pytest.fixture
def project(tmp_path: Path, _pristine_project: Path) -> Path:
    """A fresh copy of the synthetic project, free to break."""
    return Path(shutil.copytree(_pristine_project, tmp_path / "proj"))


@pytest.fixture
def mirror_mouse() -> Path:
    if not (MIRROR_MOUSE / "CollectedData.csv").is_file():
        pytest.skip(f"example project not found at {MIRROR_MOUSE}")
    return MIRROR_MOUSE
