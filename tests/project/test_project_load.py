"""load_project: the example project, the synthetic one, label-file layouts, and refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from project_builders import (
    COORDS,
    HEIGHT,
    KEYPOINTS,
    N_FRAMES,
    N_VIDEO_FRAMES,
    VIDEO_FPS,
    WIDTH,
    csv_line,
    frame_name,
    write_labels_csv,
)

from vidpose.errors import ProjectError
from vidpose.project import Project, find_label_files, load_project

MIRROR_KEYPOINTS = [
    *(f"{p}_top" for p in ("paw1LH", "paw2LF", "paw3RF", "paw4RH", "tailBase", "tailMid")),
    "nose_top",
    "obs_top",
    *(f"{p}_bot" for p in ("paw1LH", "paw2LF", "paw3RF", "paw4RH", "tailBase", "tailMid")),
    "nose_bot",
    "obsHigh_bot",
    "obsLow_bot",
]


def test_mirror_mouse_loads(mirror_mouse: Path) -> None:
    project = load_project(mirror_mouse)
    assert isinstance(project, Project)
    assert project.root == mirror_mouse
    assert project.labels.n_frames == 90
    assert project.labels.keypoints == MIRROR_KEYPOINTS
    # PNGs are 396 wide and 406 high; image_size is (height, width)
    assert project.image_size == (406, 396)
    assert len(project.image_paths) == 90
    assert all(p.is_file() and p.parent.name == "labeled-data" for p in project.image_paths)
    # img00, img91 and img92 exist but are not labels
    names = {p.name for p in project.image_paths}
    assert {"img00.png", "img91.png", "img92.png"}.isdisjoint(names)
    assert project.image_paths[0].name == "img01.png"
    assert [v.path.name for v in project.videos] == ["test_vid.mp4"]
    video = project.videos[0]
    assert video.n_frames == 994
    assert video.fps == pytest.approx(250)
    assert (video.width, video.height) == (396, 406)
    # first label row: paw1LH_top at (77.25, 36.25)
    np.testing.assert_allclose(project.labels.coords[0, 0], [77.25, 36.25])


def test_synthetic_project_loads_exact_labels(project: Path) -> None:
    loaded = load_project(project)
    assert loaded.labels.keypoints == KEYPOINTS
    np.testing.assert_array_equal(loaded.labels.coords, COORDS)
    assert list(loaded.labels.frames) == [frame_name(i) for i in range(N_FRAMES)]
    assert loaded.image_paths == [(project / frame_name(i)).resolve() for i in range(N_FRAMES)]
    assert loaded.image_size == (HEIGHT, WIDTH)
    assert len(loaded.videos) == 1
    assert loaded.videos[0].n_frames == N_VIDEO_FRAMES
    assert loaded.videos[0].fps == pytest.approx(VIDEO_FPS)
    assert loaded.label_files == [project.resolve() / "CollectedData.csv"]


def test_load_without_videos_folder(project: Path) -> None:
    shutil.rmtree(project / "videos")
    assert load_project(project).videos == []


def test_load_refuses_unusable_project_naming_every_error(project: Path) -> None:
    (project / frame_name(2)).unlink()
    (project / frame_name(4)).unlink()
    with pytest.raises(ProjectError) as err:
        load_project(project)
    text = str(err.value)
    assert "2 errors" in text
    assert f"CollectedData.csv:row {csv_line(2)}: image {frame_name(2)} does not exist" in text
    assert f"row {csv_line(4)}" in text


def test_load_refuses_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        load_project(tmp_path / "nope")


def test_load_refuses_folder_without_labels(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no labels found"):
        load_project(tmp_path)


def test_scorer_named_csv_at_top_level(project: Path) -> None:
    (project / "CollectedData.csv").rename(project / "CollectedData_alice.csv")
    loaded = load_project(project)
    assert loaded.labels.n_frames == N_FRAMES
    assert [p.name for p in loaded.label_files] == ["CollectedData_alice.csv"]


def test_two_scorer_tables_are_ambiguous(project: Path) -> None:
    shutil.copy(project / "CollectedData.csv", project / "CollectedData_alice.csv")
    shutil.copy(project / "CollectedData.csv", project / "CollectedData_bob.csv")
    (project / "CollectedData.csv").unlink()
    with pytest.raises(ProjectError, match="several label tables"):
        load_project(project)


def test_collected_data_h5_at_top_level(project: Path) -> None:
    from vidpose.io import read_poses, write_poses

    labels = read_poses(project / "CollectedData.csv")
    write_poses(labels, project / "CollectedData.h5")
    (project / "CollectedData.csv").unlink()
    assert find_label_files(project.resolve())[0] == [project.resolve() / "CollectedData.h5"]
    loaded = load_project(project)
    np.testing.assert_array_equal(loaded.labels.coords, COORDS)
    assert loaded.image_paths[3] == (project / frame_name(3)).resolve()


def _to_dlc_layout(project: Path) -> None:
    """Split the synthetic project into labeled-data/<video>/CollectedData_tester.csv tables:
    frames 0-2 in session_a, 3-5 in session_b (each table lists its own image paths)."""
    (project / "CollectedData.csv").unlink()
    for name, idx in (("session_a", [0, 1, 2]), ("session_b", [3, 4, 5])):
        folder = project / "labeled-data" / name
        folder.mkdir()
        frames = []
        for i in idx:
            target = folder / f"img{i}.png"
            (project / frame_name(i)).rename(target)
            frames.append(f"labeled-data/{name}/img{i}.png")
        coords = COORDS[idx].reshape(len(idx), -1)
        write_labels_csv(folder / "CollectedData_tester.csv", frames, coords)


def test_dlc_multi_folder_layout(project: Path) -> None:
    _to_dlc_layout(project)
    files, kind = find_label_files(project.resolve())
    assert kind == "folders"
    assert [f.parent.name for f in files] == ["session_a", "session_b"]
    loaded = load_project(project)
    assert loaded.labels.n_frames == N_FRAMES
    frames = sorted(loaded.labels.frames.tolist())
    assert frames[0] == "labeled-data/session_a/img0.png"
    for frame, path in zip(loaded.labels.frames, loaded.image_paths):
        assert path == (project / frame).resolve()
        assert path.is_file()


def test_dlc_multi_folder_errors_name_the_per_video_table(project: Path) -> None:
    _to_dlc_layout(project)
    (project / "labeled-data" / "session_b" / "img4.png").unlink()
    with pytest.raises(ProjectError) as err:
        load_project(project)
    # img4 is the 2nd data row of session_b's table: line 5
    assert (
        "labeled-data/session_b/CollectedData_tester.csv:row 5: image "
        "labeled-data/session_b/img4.png does not exist"
    ) in str(err.value)


def test_dlc_folder_with_bare_image_names_and_split_index(project: Path) -> None:
    """session_a's table names images bare (img0.png); session_b's uses DeepLabCut's 3-column
    index (labeled-data, session_b, img3.png). Both resolve, and rows point at the right line."""
    _to_dlc_layout(project)
    a = project / "labeled-data" / "session_a" / "CollectedData_tester.csv"
    write_labels_csv(a, ["img0.png", "img1.png", "img2.png"], COORDS[:3].reshape(3, -1))
    b = project / "labeled-data" / "session_b" / "CollectedData_tester.csv"
    lines = b.read_text().splitlines()
    split = [
        lines[i].replace(",", ",,,", 1) if i < 3 else lines[i].replace("/", ",", 2)
        for i in range(6)
    ]
    b.write_text("\n".join(split) + "\n")
    (project / "labeled-data" / "session_b" / "img5.png").unlink()
    (project / "labeled-data" / "session_a" / "img1.png").unlink()
    with pytest.raises(ProjectError) as err:
        load_project(project)
    text = str(err.value)
    assert "session_a/CollectedData_tester.csv:row 5: image labeled-data/session_a/img1" in text
    assert "session_b/CollectedData_tester.csv:row 6: image labeled-data/session_b/img5" in text


def test_windows_separators_in_image_paths(project: Path) -> None:
    frames = [frame_name(i).replace("/", "\\") for i in range(N_FRAMES)]
    write_labels_csv(project / "CollectedData.csv", frames, COORDS.reshape(N_FRAMES, -1))
    loaded = load_project(project)
    assert loaded.labels.frames[0] == "labeled-data/img0.png"
    assert loaded.image_paths[0] == (project / "labeled-data" / "img0.png").resolve()
