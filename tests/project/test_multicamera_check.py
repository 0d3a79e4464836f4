"""`vidpose check` on multi-camera projects: each layout error found and named, all at once.

The project is a synthetic one: cameras cam0 and cam1 of 32 x 32 px, sessions session00 and
session01 of 10 frames, 4 labeled frames in the same rows of both tables (CSV lines 4-5 of
session00, 6-7 of session01), calibration.toml naming cam0 and cam1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vidpose.errors import ProjectError
from vidpose.project import check_project, load_project
from vidpose.project.check import run_check
from vidpose.project.multicamera import frame_key, split_view
from vidpose.project.settings import load_calibration, load_settings
from vidpose.synthetic import synthesize_multicamera_project
from vidpose.video import VideoWriter


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mc") / "proj"
    synthesize_multicamera_project(
        out, cameras=2, seed=1, n_videos=2, n_frames=10, n_labeled=4, size=(32, 32)
    )
    return out


@pytest.fixture
def proj(tmp_path: Path, _pristine: Path) -> Path:
    """A fresh copy, free to break."""
    return Path(shutil.copytree(_pristine, tmp_path / "proj"))


def _problems(root: Path, code: str) -> list:
    return [p for p in check_project(root).problems if p.code == code]


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


def test_the_synthetic_project_is_a_valid_layout(proj: Path, capsys):
    report = check_project(proj)
    assert report.errors == []
    assert report.scan is not None and list(report.scan.cameras) == ["cam0", "cam1"]
    assert report.scan.calibration is not None
    assert report.scan.calibration.names == ["cam0", "cam1"]
    assert run_check(proj) == 0
    out = capsys.readouterr().out
    assert "cam1: 4 labeled frames x 12 keypoints from CollectedData_cam1.csv" in out
    assert "multi-camera layout is valid" in out


def test_load_project_stacks_the_views(proj: Path):
    """Every view's rows one after another, with the layout saying which row is which."""
    project = load_project(proj)
    cams = project.cameras
    assert cams is not None and cams.views == ["cam0", "cam1"]
    assert project.labels.n_frames == 8 and cams.n_groups == 4
    assert cams.view_of_row.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert cams.group_of_row.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    frames = [str(f) for f in project.labels.frames]
    assert all("_cam0/" in f for f in frames[:4]) and all("_cam1/" in f for f in frames[4:])
    # the same instant in both views: same session and image name
    assert [f.replace("_cam0/", "_cam1/") for f in frames[:4]] == frames[4:]
    assert [p.name for p in project.image_paths[:4]] == [Path(f).name for f in frames[:4]]
    assert sorted(cams.sessions) == ["session00", "session01"]
    assert [v.path.name for v in cams.sessions["session01"]] == [
        "session01_cam0.mp4",
        "session01_cam1.mp4",
    ]
    assert cams.calibration is not None and cams.calibration.names == ["cam0", "cam1"]
    assert cams.calibration_file == proj / "calibration.toml"
    assert cams.image_sizes == {"cam0": (32, 32), "cam1": (32, 32)}
    wide = cams.wide(project.labels.coords)
    k = project.labels.n_keypoints
    assert wide.shape == (4, 2 * k, 2)
    np.testing.assert_array_equal(wide[2, k:], project.labels.coords[6])
    np.testing.assert_array_equal(wide[2, :k], project.labels.coords[2])


def test_load_project_refuses_a_broken_layout(proj: Path):
    # with only one view's table: not mistaken for a single-view project
    (proj / "CollectedData_cam1.csv").unlink()
    with pytest.raises(ProjectError, match=r"CollectedData_cam1\.csv"):
        load_project(proj)


def test_missing_view_table(proj: Path):
    (proj / "CollectedData_cam1.csv").unlink()
    (problem,) = _problems(proj, "camera-table-missing")
    assert problem.file == "CollectedData_cam1.csv"
    assert "views ['cam0', 'cam1']" in problem.message and "['cam0']" in problem.message


def test_frame_labeled_in_one_view_only(proj: Path):
    _edit_lines(proj / "CollectedData_cam1.csv", lambda lines: lines[:5] + lines[6:])
    (problem,) = _problems(proj, "camera-frame-unmatched")
    frame = (proj / "CollectedData_cam0.csv").read_text().splitlines()[5].split(",")[0]
    assert (problem.file, problem.where) == ("CollectedData_cam0.csv", "row 6")
    number = int(frame.rsplit("img", 1)[1][:5])
    assert f"session 'session01' frame {number} ({frame})" in problem.message
    assert "labeled in view(s) cam0 but not in cam1 (CollectedData_cam1.csv)" in problem.message


def test_rows_in_another_order(proj: Path):
    _edit_lines(
        proj / "CollectedData_cam1.csv", lambda lines: [*lines[:3], lines[4], lines[3], *lines[5:]]
    )
    (problem,) = _problems(proj, "camera-row-order")
    assert (problem.file, problem.where) == ("CollectedData_cam1.csv", "row 4")
    assert "another order than in CollectedData_cam0.csv" in problem.message
    assert _problems(proj, "camera-frame-unmatched") == []


def test_image_in_another_views_folder(proj: Path):
    _edit_lines(
        proj / "CollectedData_cam1.csv",
        lambda lines: [*lines[:3], lines[3].replace("_cam1/", "_cam0/"), *lines[4:]],
    )
    (problem,) = _problems(proj, "camera-frame-view")
    assert (problem.file, problem.where) == ("CollectedData_cam1.csv", "row 4")
    assert "not in a folder of view cam1 (it is in view cam0's folder)" in problem.message


def test_keypoint_mismatch(proj: Path):
    _edit_lines(
        proj / "CollectedData_cam1.csv",
        lambda lines: [lines[0], lines[1].replace("tail_tip", "tail_end"), *lines[2:]],
    )
    (problem,) = _problems(proj, "camera-keypoints-mismatch")
    assert problem.file == "CollectedData_cam1.csv"
    assert "missing ['tail_tip'], not in CollectedData_cam0.csv ['tail_end']" in problem.message


def _rewrite_video(path: Path, n_frames: int, fps: float) -> None:
    path.unlink()
    with VideoWriter(path, fps, 32, 32, crf=23, gop=16) as writer:
        writer.write(np.zeros((n_frames, 32, 32, 3), dtype=np.uint8))


def test_frame_count_mismatch_between_views(proj: Path):
    _rewrite_video(proj / "videos" / "session01_cam1.mp4", 7, 30.0)
    (problem,) = _problems(proj, "camera-video-frames")
    assert problem.file == "videos/session01_cam1.mp4"
    assert "7 frames but videos/session01_cam0.mp4 has 10" in problem.message


def test_fps_mismatch_between_views(proj: Path):
    _rewrite_video(proj / "videos" / "session00_cam1.mp4", 10, 25.0)
    (problem,) = _problems(proj, "camera-video-fps")
    assert problem.file == "videos/session00_cam1.mp4"
    assert "25 fps but videos/session00_cam0.mp4 has 30" in problem.message


def test_missing_and_unnamed_videos(proj: Path):
    (proj / "videos" / "session01_cam1.mp4").rename(proj / "videos" / "session01_side.mp4")
    report = check_project(proj)
    (missing,) = [p for p in report.problems if p.code == "camera-video-missing"]
    assert missing.file == "videos/session01_cam1.mp4"
    assert "session 'session01' has videos of cam0 but not of view cam1" in missing.message
    (unnamed,) = [p for p in report.problems if p.code == "camera-video-unnamed"]
    assert unnamed.file == "videos/session01_side.mp4"


def test_calibration_names_are_not_the_views(proj: Path):
    path = proj / "calibration.toml"
    path.write_text(path.read_text().replace('name = "cam1"', 'name = "cam7"'))
    (problem,) = _problems(proj, "calibration-views-mismatch")
    assert problem.file == "calibration.toml"
    assert "camera names ['cam0', 'cam7']" in problem.message
    assert "views ['cam0', 'cam1']" in problem.message
    assert "views without a camera ['cam1'], cameras that are not views ['cam7']" in (
        problem.message
    )
    with pytest.raises(ProjectError, match=r"calibration.toml: camera names \['cam0', 'cam7'\]"):
        load_calibration(proj, load_settings(proj))


def test_malformed_calibration_names_section_and_key(proj: Path):
    path = proj / "calibration.toml"
    path.write_text(path.read_text().replace("size = [32, 32]", "size = [32]", 1))
    (problem,) = _problems(proj, "calibration-invalid")
    assert problem.file == "calibration.toml"
    assert problem.message.startswith("[cam_0] size: expected [width, height]")


def test_calibration_of_another_image_size(proj: Path):
    path = proj / "calibration.toml"
    path.write_text(path.read_text().replace("size = [32, 32]", "size = [64, 48]", 1))
    problems = _problems(proj, "camera-size-mismatch")
    assert {p.file for p in problems} == {
        "CollectedData_cam0.csv",
        "videos/session00_cam0.mp4",
        "videos/session01_cam0.mp4",
    }
    assert "camera cam0 in calibration.toml is 64x48" in problems[0].message


def test_every_problem_at_once(proj: Path):
    (proj / "videos" / "session00_cam1.mp4").unlink()
    _edit_lines(proj / "CollectedData_cam1.csv", lambda lines: lines[:-1])
    path = proj / "calibration.toml"
    path.write_text(path.read_text().replace('name = "cam0"', 'name = "top"'))
    codes = {p.code for p in check_project(proj).errors}
    assert {"camera-video-missing", "camera-frame-unmatched", "calibration-views-mismatch"} <= (
        codes
    )


def test_names_map_to_sessions_and_frames():
    views = ["cam1", "cam10", "top"]
    assert split_view("s1_cam1", views) == ("s1", "cam1")
    assert split_view("s1_cam10", views) == ("s1", "cam10")
    assert split_view("top-mouse3", views) == ("mouse3", "top")
    assert split_view("m3_top_day2", views) == ("m3_day2", "top")
    assert split_view("laptop", views) is None
    assert frame_key("labeled-data/s1_cam10/img0042.png", views) == ("cam10", "s1", 42)
    assert frame_key("labeled-data/s1/img0042.png", views) is None


def test_calibration_key_must_be_a_path(proj: Path):
    path = proj / "vidpose.yaml"
    path.write_text(path.read_text().replace("calibration: calibration.toml", "calibration: 3"))
    (problem,) = _problems(proj, "settings-invalid")
    assert "'calibration' must be the path of a calibration.toml" in problem.message
    assert "got 3" in problem.message


def test_per_view_tables_without_views_get_a_hint(proj: Path):
    path = proj / "vidpose.yaml"
    path.write_text(path.read_text().replace("views: [cam0, cam1]\n", ""))
    report = check_project(proj)
    assert report.scan is not None and not report.scan.cameras
    (problem,) = [p for p in report.problems if p.code == "labels-ambiguous"]
    assert "name them in vidpose.yaml: 'views: [cam0, cam1]'" in problem.message
