"""check_project sees what read_image_rgb would do with each labeled image.

An image mode that training refuses is an error on the image's label row; a 16-bit image that
uses a small part of the 16-bit range (it would read almost black) is a warning that says the
brightest value found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from project_builders import HEIGHT, WIDTH, csv_line, frame_name, rewrite_csv_line

from vidpose.project import CheckReport, Problem, check_project


def of_kind(report: CheckReport, code: str) -> list[Problem]:
    return [p for p in report.problems if p.code == code]


def point_row_at(project: Path, i: int, frame: str) -> None:
    """Make label row i name ``frame`` instead of its PNG, keeping its coordinates."""
    csv = project / "CollectedData.csv"
    line = csv.read_text(encoding="utf-8").splitlines()[csv_line(i) - 1]
    rewrite_csv_line(csv, csv_line(i), ",".join([frame, *line.split(",")[1:]]))


def write_16bit(path: Path, brightest: int) -> None:
    values = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    values[3, 5] = brightest
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16"


def test_float_image_is_an_error_on_its_row(project: Path) -> None:
    frame = "labeled-data/img1.tif"
    Image.fromarray(np.full((HEIGHT, WIDTH), 0.25, dtype=np.float32)).save(project / frame)
    point_row_at(project, 1, frame)
    report = check_project(project)
    (problem,) = of_kind(report, "image-mode-unsupported")
    assert problem.severity == "error"
    assert problem.file == "CollectedData.csv" and problem.where == f"row {csv_line(1)}"
    assert str(problem).startswith(
        f"CollectedData.csv:row {csv_line(1)}: image {frame} cannot be used: image mode 'F'"
    )
    assert "supported: " in problem.message
    assert not report.usable


def test_cmyk_jpeg_is_an_error(project: Path) -> None:
    frame = "labeled-data/img2.jpg"
    Image.new("CMYK", (WIDTH, HEIGHT), (0, 200, 0, 0)).save(project / frame)
    point_row_at(project, 2, frame)
    (problem,) = of_kind(check_project(project), "image-mode-unsupported")
    assert problem.where == f"row {csv_line(2)}" and "'CMYK'" in problem.message


def test_mode_I_outside_16bit_range_is_an_error(project: Path) -> None:
    frame = "labeled-data/img3.tif"
    values = np.full((HEIGHT, WIDTH), 100, dtype=np.int32)
    values[0, 0] = 70000
    Image.fromarray(values).save(project / frame)
    point_row_at(project, 3, frame)
    (problem,) = of_kind(check_project(project), "image-mode-unsupported")
    assert problem.where == f"row {csv_line(3)}" and "100..70000" in problem.message


@pytest.mark.parametrize("brightest", [0, 255, 4095])
def test_dim_16bit_image_is_a_warning_naming_its_maximum(project: Path, brightest: int) -> None:
    write_16bit(project / frame_name(4), brightest)
    report = check_project(project)
    (problem,) = of_kind(report, "image-16bit-dim")
    assert problem.severity == "warning"
    assert str(problem).startswith(f"CollectedData.csv:row {csv_line(4)}: image {frame_name(4)}")
    assert f"brightest pixel is {brightest} of 65535" in problem.message
    assert ("12-bit camera" in problem.message) == (brightest == 4095)
    assert report.usable
    assert report.errors == []


@pytest.mark.parametrize("brightest", [4096, 40000, 65535])
def test_16bit_image_using_the_range_passes(project: Path, brightest: int) -> None:
    write_16bit(project / frame_name(4), brightest)
    report = check_project(project)
    assert report.problems == [], [str(p) for p in report.problems]
