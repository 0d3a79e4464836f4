"""run_check: what ``vidpose check`` prints and the exit code it returns."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from project_builders import csv_line, frame_name
from rich.console import Console

from vidpose.project import run_check


def _run(project: Path, **kwargs) -> tuple[int, str]:
    buf = io.StringIO()
    code = run_check(project, console=Console(file=buf, width=300, color_system=None), **kwargs)
    return code, buf.getvalue()


def test_mirror_mouse_summary_and_exit_zero(mirror_mouse: Path) -> None:
    code, out = _run(mirror_mouse)
    assert code == 0
    assert "90 labeled frames x 17 keypoints from CollectedData.csv" in out
    assert "images: 396x406 (width x height)" in out
    assert "videos/test_vid.mp4: 994 frames, 250 fps, 396x406, h264" in out
    assert "3 images in labeled-data without labels" in out
    assert out.rstrip().endswith("0 errors, 0 warnings — project is usable")


def test_errors_print_one_line_each_and_exit_one(project: Path) -> None:
    (project / frame_name(1)).unlink()
    (project / "vidpose.yaml").write_text("skeleton:\n  - [nose, whisker]\n")
    code, out = _run(project)
    assert code == 1
    lines = out.splitlines()
    assert f"error: CollectedData.csv:row {csv_line(1)}: image {frame_name(1)} does not exist" in (
        lines
    )
    # rich markup characters in messages ("[0]") are printed literally
    assert any(
        line.startswith("error: vidpose.yaml:skeleton[0]: keypoint 'whisker'") for line in lines
    )
    assert lines[-1] == "2 errors, 0 warnings — project is NOT usable"


def test_warnings_alone_keep_exit_zero(project: Path) -> None:
    shutil.rmtree(project / "videos")
    code, out = _run(project)
    assert code == 0
    assert "warning: videos/: no videos folder" in out
    assert "videos: none usable" in out
    assert out.splitlines()[-1] == "0 errors, 1 warning — project is usable"


def test_many_problems_of_one_kind_are_capped(project: Path) -> None:
    for i in range(6):
        (project / frame_name(i)).unlink()
    code, out = _run(project, max_per_kind=2)
    assert code == 1
    assert out.count("does not exist") == 2
    assert "... and 4 more image-missing problems" in out
    assert out.splitlines()[-1].startswith("6 errors")
    _, full = _run(project, max_per_kind=None)
    assert full.count("does not exist") == 6


def test_errors_red_warnings_yellow(project: Path) -> None:
    (project / frame_name(0)).unlink()
    shutil.rmtree(project / "videos")
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=True, color_system="standard")
    run_check(project, console=console)
    out = buf.getvalue()
    red, yellow = "\x1b[31m", "\x1b[33m"
    error_line = next(line for line in out.splitlines() if "does not exist" in line)
    warning_line = next(line for line in out.splitlines() if "no videos folder" in line)
    assert red in error_line and yellow not in error_line
    assert yellow in warning_line and red not in warning_line
