"""A label table that labels nothing is an error; rows that label nothing are a warning.

Before, a table whose every keypoint cell is empty loaded fine and ``vidpose train`` trained on
nothing and exited 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from project_builders import (
    COORDS,
    KEYPOINTS,
    N_FRAMES,
    csv_line,
    frame_name,
    write_labels_csv,
    write_png,
)

from vidpose.errors import ProjectError
from vidpose.io import Poses, write_poses
from vidpose.project import CheckReport, Problem, check_project, load_project


def of_kind(report: CheckReport, code: str) -> list[Problem]:
    return [p for p in report.problems if p.code == code]


def all_missing() -> np.ndarray:
    return np.full((N_FRAMES, 2 * len(KEYPOINTS)), np.nan)


def assert_no_coordinates_error(project: Path, label_file: str) -> None:
    report = check_project(project)
    (problem,) = of_kind(report, "labels-no-coordinates")
    assert problem.severity == "error"
    assert problem.file == label_file and problem.where is None
    assert f"no keypoint is labeled in any row: all {N_FRAMES} rows" in problem.message
    # the one error says it all: no per-keypoint or per-row notes on top
    assert of_kind(report, "keypoint-mostly-missing") == []
    assert of_kind(report, "labels-empty-row") == []
    with pytest.raises(ProjectError, match=f"{label_file}: no keypoint is labeled in any row"):
        load_project(project)


def test_every_cell_empty_is_an_error(project: Path) -> None:
    frames = [frame_name(i) for i in range(N_FRAMES)]
    write_labels_csv(project / "CollectedData.csv", frames, all_missing())
    text = (project / "CollectedData.csv").read_text()
    assert text.splitlines()[csv_line(0) - 1] == "labeled-data/img0.png,,,,,,"
    assert_no_coordinates_error(project, "CollectedData.csv")


def test_every_cell_nan_text_is_an_error(project: Path) -> None:
    csv = project / "CollectedData.csv"
    lines = csv.read_text().splitlines()
    for i in range(N_FRAMES):
        lines[csv_line(i) - 1] = ",".join([frame_name(i)] + ["NaN"] * (2 * len(KEYPOINTS)))
    csv.write_text("\n".join(lines) + "\n")
    assert_no_coordinates_error(project, "CollectedData.csv")


def test_all_nan_h5_table_is_an_error(project: Path) -> None:
    (project / "CollectedData.csv").unlink()
    poses = Poses(
        coords=np.full((N_FRAMES, len(KEYPOINTS), 2), np.nan),
        keypoints=list(KEYPOINTS),
        frames=np.array([frame_name(i) for i in range(N_FRAMES)], dtype=object),
        scorer="tester",
    )
    write_poses(poses, project / "CollectedData.h5")
    assert_no_coordinates_error(project, "CollectedData.h5")


def test_all_empty_per_video_tables_are_an_error(project: Path) -> None:
    (project / "CollectedData.csv").unlink()
    for name, idx in (("session_a", [0, 1, 2]), ("session_b", [3, 4, 5])):
        folder = project / "labeled-data" / name
        frames = []
        for i in idx:
            write_png(folder / f"img{i}.png")
            frames.append(f"labeled-data/{name}/img{i}.png")
        write_labels_csv(folder / "CollectedData_tester.csv", frames, all_missing()[idx])
    report = check_project(project)
    (problem,) = of_kind(report, "labels-no-coordinates")
    assert problem.file == "labeled-data" and "(in 2 label files)" in problem.message


def test_one_empty_row_is_a_warning_on_that_row(project: Path) -> None:
    coords = COORDS.reshape(N_FRAMES, -1).copy()
    coords[2] = np.nan
    write_labels_csv(project / "CollectedData.csv", [frame_name(i) for i in range(6)], coords)
    report = check_project(project)
    (problem,) = of_kind(report, "labels-empty-row")
    assert problem.severity == "warning"
    assert str(problem).startswith(
        f"CollectedData.csv:row {csv_line(2)}: no keypoint is labeled in this row"
    )
    assert report.usable
    assert load_project(project).labels.n_frames == N_FRAMES


def test_many_empty_rows_are_listed_capped(project: Path) -> None:
    n = 16
    frames = [frame_name(i) for i in range(n)]
    for i in range(N_FRAMES, n):
        write_png(project / frame_name(i))
    coords = np.tile(COORDS.reshape(N_FRAMES, -1)[:1], (n, 1))
    empty = [1, *range(3, 16)]  # 14 rows; rows 0 and 2 keep their labels
    coords[empty] = np.nan
    write_labels_csv(project / "CollectedData.csv", frames, coords)
    report = check_project(project)
    (problem,) = of_kind(report, "labels-empty-row")
    lines = [csv_line(i) for i in empty]
    listed = ", ".join(str(r) for r in lines[:10])
    assert problem.where is None
    assert problem.message.startswith(
        f"14 rows label no keypoint (every x and y cell is empty): rows {listed} and 4 more;"
    )
    assert report.usable


def test_empty_rows_in_per_video_tables_are_listed_per_table(project: Path) -> None:
    (project / "CollectedData.csv").unlink()
    for name, idx in (("session_a", [0, 1, 2]), ("session_b", [3, 4, 5])):
        folder = project / "labeled-data" / name
        frames = []
        folder.mkdir()
        for i in idx:
            (project / frame_name(i)).rename(folder / f"img{i}.png")
            frames.append(f"labeled-data/{name}/img{i}.png")
        coords = COORDS[idx].reshape(len(idx), -1).copy()
        coords[[0, 2]] = np.nan
        write_labels_csv(folder / "CollectedData_tester.csv", frames, coords)
    problems = of_kind(check_project(project), "labels-empty-row")
    assert [p.file for p in problems] == [
        "labeled-data/session_a/CollectedData_tester.csv",
        "labeled-data/session_b/CollectedData_tester.csv",
    ]
    assert all("rows 4 and 6" in p.message for p in problems)


def test_mirror_mouse_has_labels(mirror_mouse: Path) -> None:
    report = check_project(mirror_mouse)
    assert of_kind(report, "labels-no-coordinates") == []
    labels = pd.read_csv(mirror_mouse / "CollectedData.csv", header=[0, 1, 2], index_col=0)
    n_empty = int(labels.isna().all(axis=1).sum())
    assert len(of_kind(report, "labels-empty-row")) == (1 if n_empty else 0)


def test_train_refuses_a_table_with_no_coordinates(project: Path, tmp_path: Path, capsys) -> None:
    from vidpose.cli import main

    frames = [frame_name(i) for i in range(N_FRAMES)]
    write_labels_csv(project / "CollectedData.csv", frames, all_missing())
    argv = ["train", str(project), "--no-progress", "--model-dir", str(tmp_path / "model")]
    # small and offline, so that a regression trains one quick step instead of downloading
    tiny = ["model.backbone=resnet18", "model.pretrained=false", "training.max_steps=1"]
    assert main([*argv, *tiny]) == 2
    assert "no keypoint is labeled in any row" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
