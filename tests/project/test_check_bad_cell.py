"""``vidpose check`` on a label cell that is not a number: the real problem, on its row."""

from __future__ import annotations

import io
from pathlib import Path

from project_builders import COORDS, csv_line, frame_name, rewrite_csv_line
from rich.console import Console

from vidpose.project import check_project, run_check


def set_row(project: Path, i: int, cells: list[str]) -> None:
    rewrite_csv_line(project / "CollectedData.csv", csv_line(i), ",".join([frame_name(i), *cells]))


def test_abc_is_reported_as_not_a_number_on_its_row(project: Path) -> None:
    set_row(project, 2, ["abc", "5", "9", "7", "1", "1"])
    report = check_project(project)
    (problem,) = report.errors
    assert problem.code == "labels-unreadable"
    assert problem.file == "CollectedData.csv" and problem.where == f"row {csv_line(2)}"
    assert problem.message == (
        f"{frame_name(2)}: column 2 (keypoint 'nose', x): 'abc' is not a number; "
        "expected a number or an empty cell"
    )
    assert not any("but no" in str(p) for p in report.problems)
    # the rest of the table was read: the project's other checks ran
    assert report.scan is not None and report.scan.labels is not None
    assert report.scan.labels.n_frames == len(COORDS)


def test_vidpose_check_prints_it_with_the_row(project: Path) -> None:
    set_row(project, 3, ["1", "2", "3", "oops", "5", "6"])
    buf = io.StringIO()
    code = run_check(project, console=Console(file=buf, width=300, color_system=None))
    assert code == 1
    assert (
        f"error: CollectedData.csv:row {csv_line(3)}: {frame_name(3)}: column 5 (keypoint "
        "'ear_left', y): 'oops' is not a number; expected a number or an empty cell"
    ) in buf.getvalue().splitlines()


def test_bad_cell_and_a_half_pair_elsewhere_are_both_reported(project: Path) -> None:
    set_row(project, 1, ["abc", "5", "9", "7", "1", "1"])
    set_row(project, 4, ["", "5", "9", "7", "1", "1"])  # a genuine half pair
    report = check_project(project)
    found = {(p.where, "not a number" in p.message, "but no x" in p.message) for p in report.errors}
    assert found == {(f"row {csv_line(1)}", True, False), (f"row {csv_line(4)}", False, True)}
