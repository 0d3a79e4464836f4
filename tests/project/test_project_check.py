"""check_project: one deliberately broken copy of the synthetic project per kind of problem.

Every test asserts the problem's severity and that its printed line names the file and the
row / frame / key, as a user needs to fix it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from project_builders import (
    COORDS,
    HEIGHT,
    N_FRAMES,
    WIDTH,
    csv_line,
    frame_name,
    rewrite_csv_line,
    write_labels_csv,
    write_png,
    write_video,
)

from vidpose.errors import ProjectError
from vidpose.project import CheckReport, Problem, check_project, load_project


def only(report: CheckReport, code: str) -> Problem:
    """The single problem of kind ``code``; fails listing all problems otherwise."""
    found = [p for p in report.problems if p.code == code]
    assert len(found) == 1, [str(p) for p in report.problems]
    return found[0]


def test_clean_project_has_no_problems(project: Path) -> None:
    report = check_project(project)
    assert report.problems == []
    assert report.usable


def test_mirror_mouse_passes(mirror_mouse: Path) -> None:
    report = check_project(mirror_mouse)
    assert report.errors == [], [str(p) for p in report.errors]
    assert report.usable
    assert any("3 images in labeled-data without labels" in n for n in report.notes)


def test_missing_image(project: Path) -> None:
    (project / frame_name(2)).unlink()
    problem = only(check_project(project), "image-missing")
    assert problem.severity == "error"
    assert str(problem) == (
        f"CollectedData.csv:row {csv_line(2)}: image {frame_name(2)} does not exist"
    )


def test_unreadable_image(project: Path) -> None:
    (project / frame_name(1)).write_bytes(b"this is not a png at all")
    report = check_project(project)
    problem = only(report, "image-unreadable")
    assert problem.severity == "error"
    assert str(problem).startswith(
        f"CollectedData.csv:row {csv_line(1)}: image {frame_name(1)} cannot be read"
    )
    assert not report.usable


def test_truncated_image_found_by_check_only(project: Path) -> None:
    path = project / frame_name(3)
    write_png(path, value=0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])  # header intact, IDAT/IEND cut
    load_project(project)  # headers only: fast path does not see it
    problem = only(check_project(project), "image-corrupt")
    assert f"row {csv_line(3)}" in str(problem)
    assert frame_name(3) in str(problem)


def test_mixed_image_sizes_name_the_odd_one_and_the_majority(project: Path) -> None:
    write_png(project / frame_name(4), size=(HEIGHT + 10, WIDTH + 20))
    problem = only(check_project(project), "image-size-mismatch")
    assert problem.severity == "error"
    assert problem.file == "CollectedData.csv"
    assert problem.where == f"row {csv_line(4)}"
    assert f"{frame_name(4)} is {WIDTH + 20}x{HEIGHT + 10}" in problem.message
    assert f"5 of 6 labeled images are {WIDTH}x{HEIGHT}" in problem.message


def test_coordinate_outside_image(project: Path) -> None:
    coords = COORDS.copy()
    coords[5, 1] = [WIDTH + 3.5, 2.0]  # ear_left of frame 5 is past the right edge
    coords[0, 2] = [1.0, -0.25]  # ear_right of frame 0 above the top edge
    write_labels_csv(project / "CollectedData.csv", _frames(), coords.reshape(N_FRAMES, -1))
    report = check_project(project)
    found = [str(p) for p in report.problems if p.code == "coord-outside-image"]
    assert found == [
        f"CollectedData.csv:row {csv_line(0)}: keypoint ear_right at (x=1, y=-0.25) is outside "
        f"the {WIDTH}x{HEIGHT} (width x height) image {frame_name(0)}",
        f"CollectedData.csv:row {csv_line(5)}: keypoint ear_left at (x=35.5, y=2) is outside "
        f"the {WIDTH}x{HEIGHT} (width x height) image {frame_name(5)}",
    ]
    assert not report.usable


def test_coordinate_on_the_far_edge_is_inside(project: Path) -> None:
    coords = COORDS.copy()
    coords[2, 0] = [WIDTH, HEIGHT]
    write_labels_csv(project / "CollectedData.csv", _frames(), coords.reshape(N_FRAMES, -1))
    assert check_project(project).usable


def test_row_width_mismatch(project: Path) -> None:
    csv_path = project / "CollectedData.csv"
    line = csv_line(3)
    cells = csv_path.read_text().splitlines()[line - 1].split(",")
    rewrite_csv_line(csv_path, line, ",".join(cells[:-2]))  # drop one (x, y) pair
    problem = only(check_project(project), "labels-unreadable")
    assert problem.severity == "error"
    assert problem.file == "CollectedData.csv"
    assert problem.where == f"row {line}"
    assert frame_name(3) in problem.message
    assert "3 keypoints in the header but 2 coordinate pairs" in problem.message


def test_duplicate_rows_are_both_named(project: Path) -> None:
    frames = _frames()
    frames[4] = frames[1]
    write_labels_csv(project / "CollectedData.csv", frames, COORDS.reshape(N_FRAMES, -1))
    problem = only(check_project(project), "labels-duplicate-row")
    assert problem.severity == "error"
    assert str(problem) == (
        f"CollectedData.csv:row {csv_line(1)}: image {frame_name(1)} is labeled twice "
        f"(rows {csv_line(1)} and {csv_line(4)}); keep one row"
    )


def test_unknown_keypoint_in_settings(project: Path) -> None:
    (project / "vidpose.yaml").write_text(
        "skeleton:\n  - [nose, ear_left]\n  - [nose, tail]\n"
        "flip_pairs:\n  - [ear_left, ear_right]\n"
    )
    problem = only(check_project(project), "settings-unknown-keypoint")
    assert problem.severity == "error"
    assert problem.file == "vidpose.yaml"
    assert problem.where == "skeleton[1]"
    assert "'tail' is not in CollectedData.csv" in problem.message


def test_invalid_settings_file(project: Path) -> None:
    (project / "vidpose.yaml").write_text("skelton: []\n")
    problem = only(check_project(project), "settings-invalid")
    assert problem.file == "vidpose.yaml"
    assert "skelton" in problem.message


def test_csv_with_header_but_no_rows(project: Path) -> None:
    write_labels_csv(project / "CollectedData.csv", [], np.zeros((0, 6)))
    report = check_project(project)
    problem = only(report, "labels-empty")
    assert problem.severity == "error"
    assert str(problem).startswith("CollectedData.csv: no label rows")
    assert not report.usable


def test_zero_byte_csv(project: Path) -> None:
    (project / "CollectedData.csv").write_bytes(b"")
    problem = only(check_project(project), "labels-unreadable")
    assert problem.file == "CollectedData.csv"
    assert "empty" in problem.message


def test_undecodable_video(project: Path) -> None:
    (project / "videos" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    report = check_project(project)
    bad = [p for p in report.errors if p.file == "videos/broken.mp4"]
    assert len(bad) == 1, [str(p) for p in report.problems]
    assert str(bad[0]).startswith("videos/broken.mp4: ")
    # the good video is still listed
    assert [v.path.name for v in report.scan.videos] == ["clip.avi"]


def test_zero_frame_video(project: Path) -> None:
    write_video(project / "videos" / "empty.avi", n_frames=0)
    report = check_project(project)
    bad = [p for p in report.errors if p.file == "videos/empty.avi"]
    assert len(bad) == 1, [str(p) for p in report.problems]
    assert "frame" in bad[0].message
    assert str(project) not in bad[0].message  # the file is named once, relative


def test_video_whose_end_cannot_be_decoded(project: Path) -> None:
    """A container that claims more frames than it holds: the end-frame probe catches it."""
    path = project / "videos" / "clip.avi"
    data = bytearray(path.read_bytes())
    # AVI main header dwTotalFrames (offset 48) and stream header dwLength (offset 140)
    for offset in (48, 140):
        assert int.from_bytes(data[offset : offset + 4], "little") == 8
        data[offset : offset + 4] = (400).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    problem = only(check_project(project), "video-undecodable")
    assert problem.file == "videos/clip.avi"
    assert problem.where == "frame 399"


def test_video_of_another_size_than_the_labels_is_a_warning(project: Path) -> None:
    write_video(project / "videos" / "big.avi", size=(2 * HEIGHT, 2 * WIDTH))
    report = check_project(project)
    problem = only(report, "video-size-mismatch")
    assert problem.severity == "warning"
    assert problem.file == "videos/big.avi"
    assert f"frames are {2 * WIDTH}x{2 * HEIGHT} but labeled images are {WIDTH}x{HEIGHT}" in (
        problem.message
    )
    assert report.usable


def test_no_videos_folder_is_a_warning(project: Path) -> None:
    shutil.rmtree(project / "videos")
    report = check_project(project)
    problem = only(report, "videos-missing")
    assert problem.severity == "warning"
    assert report.usable


def test_non_utf8_label_file(project: Path) -> None:
    csv_path = project / "CollectedData.csv"
    text = csv_path.read_text().replace("scorer,tester", "scorer,t\u00e9ster", 1)
    csv_path.write_bytes(text.encode("latin-1"))
    problem = only(check_project(project), "labels-unreadable")
    assert problem.file == "CollectedData.csv"
    assert "not UTF-8" in problem.message
    assert "line 1" in problem.message


def test_label_file_that_is_not_a_csv(project: Path) -> None:
    shutil.copy(project / frame_name(0), project / "CollectedData.csv")
    report = check_project(project)
    problem = only(report, "labels-unreadable")
    assert problem.file == "CollectedData.csv"
    assert "not a text CSV" in problem.message
    assert not report.usable


def test_mostly_missing_keypoint_is_only_a_warning(project: Path) -> None:
    coords = COORDS.copy()
    coords[:4, 2] = np.nan  # ear_right missing in 4 of 6 frames
    coords[:, 1] = np.nan  # ear_left never labeled
    write_labels_csv(project / "CollectedData.csv", _frames(), coords.reshape(N_FRAMES, -1))
    report = check_project(project)
    assert report.usable
    found = {p.where: p for p in report.problems if p.code == "keypoint-mostly-missing"}
    assert set(found) == {"keypoint ear_left", "keypoint ear_right"}
    assert all(p.severity == "warning" for p in found.values())
    assert "missing in 4 of 6 labeled frames (67%)" in found["keypoint ear_right"].message
    assert "never labeled" in found["keypoint ear_left"].message
    assert str(found["keypoint ear_right"]).startswith("CollectedData.csv:keypoint ear_right: ")


def test_half_missing_keypoint_is_not_a_warning(project: Path) -> None:
    coords = COORDS.copy()
    coords[:3, 2] = np.nan  # exactly half: fine
    write_labels_csv(project / "CollectedData.csv", _frames(), coords.reshape(N_FRAMES, -1))
    assert check_project(project).problems == []


def test_every_problem_is_reported_at_once(project: Path) -> None:
    (project / frame_name(0)).unlink()
    (project / frame_name(1)).write_bytes(b"garbage")
    write_png(project / frame_name(2), size=(HEIGHT * 2, WIDTH))
    coords = COORDS.copy()
    coords[3, 0] = [-5.0, 1.0]
    frames = _frames()
    frames[5] = frames[4]
    write_labels_csv(project / "CollectedData.csv", frames, coords.reshape(N_FRAMES, -1))
    (project / "vidpose.yaml").write_text("flip_pairs:\n  - [ear_left, ear_rigth]\n")
    (project / "videos" / "bad.mp4").write_bytes(b"not a video")
    report = check_project(project)
    codes = sorted(p.code for p in report.errors)
    assert codes == sorted(
        [
            "image-missing",
            "image-unreadable",
            "image-size-mismatch",
            "coord-outside-image",
            "labels-duplicate-row",
            "settings-unknown-keypoint",
            "video-unreadable",
        ]
    ), [str(p) for p in report.problems]
    rows = {p.code: p.where for p in report.errors}
    assert rows["image-missing"] == f"row {csv_line(0)}"
    assert rows["image-unreadable"] == f"row {csv_line(1)}"
    assert rows["image-size-mismatch"] == f"row {csv_line(2)}"
    assert rows["coord-outside-image"] == f"row {csv_line(3)}"
    assert rows["labels-duplicate-row"] == f"row {csv_line(4)}"
    assert rows["settings-unknown-keypoint"] == "flip_pairs[0]"
    with pytest.raises(ProjectError, match="7 errors"):
        load_project(project)


def _frames() -> list[str]:
    return [frame_name(i) for i in range(N_FRAMES)]
