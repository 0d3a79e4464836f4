"""``vidpose check PATH`` where PATH is not a project folder: say what it is instead."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from project_builders import COORDS, KEYPOINTS, frame_name, write_labels_csv
from rich.console import Console

from vidpose.errors import ProjectError
from vidpose.io import Poses, write_poses
from vidpose.project import check_project, load_project, run_check

EXPECTED = "is a file, but a project folder is expected"


def only_error(path: Path) -> str:
    report = check_project(path)
    assert not report.usable
    (problem,) = report.problems
    assert problem.severity == "error" and problem.file == str(path.resolve())
    return problem.message


def test_labels_csv_suggests_its_folder(project: Path) -> None:
    message = only_error(project / "CollectedData.csv")
    assert message.startswith(EXPECTED)
    assert message.endswith(f"did you mean its folder {project.resolve()}?")
    assert "does not exist" not in message


def test_vidpose_yaml_suggests_its_folder(project: Path) -> None:
    (project / "vidpose.yaml").write_text("skeleton: []\n")
    assert only_error(project / "vidpose.yaml").endswith(f"its folder {project.resolve()}?")


def test_per_video_table_suggests_the_project(project: Path) -> None:
    table = project / "labeled-data" / "session_a" / "CollectedData_tester.csv"
    table.parent.mkdir()
    write_labels_csv(table, [frame_name(0)], COORDS[:1].reshape(1, -1))
    assert only_error(table).endswith(f"did you mean its folder {project.resolve()}?")


def test_pose_table_recognised_by_content(project: Path, tmp_path: Path) -> None:
    poses = Poses(coords=COORDS, keypoints=KEYPOINTS, frames=list(range(len(COORDS))))
    write_poses(poses, project / "predictions.h5")
    write_poses(poses, project / "session1.csv")
    for path in (project / "predictions.h5", project / "session1.csv"):
        assert only_error(path).endswith(f"did you mean its folder {project.resolve()}?")


def test_other_file_gets_no_suggestion(project: Path) -> None:
    for path in (project / frame_name(0), project / "videos" / "clip.avi"):
        message = only_error(path)
        assert message.startswith(EXPECTED) and "did you mean" not in message


def test_missing_path(tmp_path: Path) -> None:
    report = check_project(tmp_path / "nope")
    (problem,) = report.problems
    assert problem.code == "project-missing" and problem.message == "does not exist"
    assert str(problem) == f"{(tmp_path / 'nope').resolve()}: does not exist"


def test_cli_check_and_load_on_a_file(project: Path) -> None:
    path = project / "CollectedData.csv"
    buf = io.StringIO()
    code = run_check(path, console=Console(file=buf, width=400, color_system=None))
    assert code == 1
    assert f"error: {path.resolve()}: {EXPECTED}" in buf.getvalue()
    with pytest.raises(ProjectError, match=EXPECTED):
        load_project(path)
