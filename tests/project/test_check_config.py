"""``vidpose check`` validates vidpose.yaml's ``config:`` section as ``vidpose train`` does."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from vidpose.config import compose_config
from vidpose.errors import ConfigError
from vidpose.project import (
    CheckReport,
    Problem,
    check_project,
    load_project,
    load_settings,
    run_check,
)


def config_problems(report: CheckReport) -> list[Problem]:
    return [p for p in report.problems if p.code == "settings-config-invalid"]


def write_settings(project: Path, text: str) -> None:
    (project / "vidpose.yaml").write_text(text, encoding="utf-8")


def train_refuses(project: Path) -> str:
    """What composing the config the way train does says (the reference behaviour)."""
    with pytest.raises(ConfigError) as info:
        compose_config(
            load_settings(project).config, [], project_file=str(project / "vidpose.yaml")
        )
    return str(info.value)


def test_unknown_key(project: Path) -> None:
    write_settings(project, "config:\n  training: {max_epoch: 3}\n")
    assert "training.max_epoch" in train_refuses(project)
    report = check_project(project)
    (problem,) = config_problems(report)
    assert problem.severity == "error" and not report.usable
    assert problem.file == "vidpose.yaml" and problem.where == "config.training.max_epoch"
    assert "unknown config key 'training.max_epoch'" in problem.message
    assert "max_epochs" in problem.message  # the suggestion survives
    assert str(project) not in problem.message  # Problem.file names the file already
    # Reading the project (evaluate, smooth) still works while its training settings are wrong.
    assert load_project(project).settings.config == {"training": {"max_epoch": 3}}


def test_keys_of_an_earlier_vidpose_name_their_replacement(project: Path) -> None:
    write_settings(project, "config:\n  losses: {weights: {temporal: 0.1}}\n")
    (problem,) = config_problems(check_project(project))
    assert problem.where == "config.losses.weights"
    assert "earlier vidpose" in problem.message and "losses.temporal.weight" in problem.message


def test_wrong_type(project: Path) -> None:
    write_settings(project, "config:\n  training: {max_steps: abc}\n")
    train_refuses(project)
    (problem,) = config_problems(check_project(project))
    assert problem.where == "config.training.max_steps"
    assert "'abc'" in problem.message and "int" in problem.message


def test_inconsistent_values_name_their_key(project: Path) -> None:
    write_settings(project, "config:\n  data: {image_height: -5}\n")
    train_refuses(project)
    problems = config_problems(check_project(project))
    assert problems and all(p.severity == "error" for p in problems)
    assert any(p.where == "config.data.image_height" for p in problems), problems


def test_valid_config_section_passes(project: Path) -> None:
    write_settings(project, "config:\n  training: {max_epochs: 3, max_steps: 10}\n")
    assert check_project(project).problems == []


def test_vidpose_check_prints_the_key(project: Path) -> None:
    write_settings(project, "config:\n  training: {max_epoch: 3}\n")
    buf = io.StringIO()
    code = run_check(project, console=Console(file=buf, width=400, color_system=None))
    assert code == 1
    assert "error: vidpose.yaml:config.training.max_epoch: unknown config key" in buf.getvalue()
