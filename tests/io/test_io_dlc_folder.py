"""DeepLabCut's labeled-data/<video>/CollectedData_<scorer>.{csv,h5} layout."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import LabelsError, ProjectError
from vidpose.io import Poses, read_labels_folder, read_poses, write_poses


def video_labels(names: list[str], keypoints: list[str], offset: float) -> Poses:
    """len(names) frames; keypoint j of frame i at (offset + i, offset + 10 j)."""
    n, k = len(names), len(keypoints)
    coords = np.zeros((n, k, 2))
    coords[..., 0] = offset + np.arange(n)[:, None]
    coords[..., 1] = offset + 10 * np.arange(k)[None, :]
    return Poses(coords=coords, keypoints=keypoints, frames=names, scorer="ann")


def test_folders_are_stacked_with_project_relative_paths(tmp_path):
    data = tmp_path / "labeled-data"
    # mouse1: csv with project-relative paths; mouse2: h5 only, bare image names, other order
    write_poses(
        video_labels(
            ["labeled-data/mouse1/img0.png", "labeled-data/mouse1/img1.png"], ["nose", "paw"], 0.0
        ),
        data / "mouse1" / "CollectedData_ann.csv",
    )
    write_poses(
        video_labels(["img5.png"], ["paw", "nose"], 100.0), data / "mouse2" / "CollectedData_ann.h5"
    )
    (data / "mouse2_labeled").mkdir()  # DLC's check_labels output: images only, skipped
    (data / "mouse3").mkdir()  # frames extracted, not labelled yet: skipped

    poses = read_labels_folder(tmp_path)

    assert poses.keypoints == ["nose", "paw"]
    assert poses.frames.tolist() == [
        "labeled-data/mouse1/img0.png",
        "labeled-data/mouse1/img1.png",
        "labeled-data/mouse2/img5.png",
    ]
    # mouse2 had paw first: after reordering, nose (its keypoint 1) has y = 100 + 10
    assert poses.coords[2].tolist() == [[100.0, 110.0], [100.0, 100.0]]
    assert poses.coords[1].tolist() == [[1.0, 0.0], [1.0, 10.0]]


def test_csv_preferred_over_h5_and_backslashes_normalised(tmp_path):
    folder = tmp_path / "labeled-data" / "m1"
    write_poses(
        video_labels(["labeled-data\\m1\\a.png"], ["nose"], 1.0), folder / "CollectedData_ann.csv"
    )
    write_poses(video_labels(["stale.png"], ["nose"], 9.0), folder / "CollectedData_ann.h5")
    poses = read_labels_folder(tmp_path)
    assert poses.frames.tolist() == ["labeled-data/m1/a.png"]


def test_keypoint_mismatch_names_the_folder(tmp_path):
    data = tmp_path / "labeled-data"
    write_poses(video_labels(["a.png"], ["nose", "paw"], 0.0), data / "m1" / "CollectedData_a.csv")
    write_poses(video_labels(["b.png"], ["nose", "tail"], 0.0), data / "m2" / "CollectedData_a.csv")
    with pytest.raises(
        LabelsError,
        match=r"m2/CollectedData_a.csv: keypoints differ .*missing \['paw'\], extra \['tail'\]",
    ):
        read_labels_folder(tmp_path)


def test_two_label_files_in_one_folder(tmp_path):
    folder = tmp_path / "labeled-data" / "m1"
    for scorer in ("ann", "bob"):
        write_poses(video_labels(["a.png"], ["nose"], 0.0), folder / f"CollectedData_{scorer}.csv")
    with pytest.raises(LabelsError, match=r"m1: 2 label files \(CollectedData_ann.csv, Collected"):
        read_labels_folder(tmp_path)


def test_bad_file_error_names_that_file(tmp_path):
    folder = tmp_path / "labeled-data" / "m1"
    folder.mkdir(parents=True)
    (folder / "CollectedData_ann.csv").write_text(
        "scorer,a,a\nbodyparts,n,n\ncoords,x,y\na.png,1\n"
    )
    with pytest.raises(LabelsError, match=r"m1/CollectedData_ann.csv row 4 \(a.png\)"):
        read_labels_folder(tmp_path)


def test_missing_layout_is_a_project_error(tmp_path):
    with pytest.raises(ProjectError, match="no labeled-data folder"):
        read_labels_folder(tmp_path)
    (tmp_path / "labeled-data" / "m1").mkdir(parents=True)
    with pytest.raises(ProjectError, match="no video folder holds a CollectedData"):
        read_labels_folder(tmp_path)


def test_result_round_trips_as_one_table(tmp_path):
    data = tmp_path / "labeled-data"
    write_poses(
        video_labels(["a.png", "b.png"], ["nose"], 0.5), data / "m1" / "CollectedData_a.csv"
    )
    poses = read_labels_folder(tmp_path)
    write_poses(poses, tmp_path / "CollectedData.csv")
    assert read_poses(tmp_path / "CollectedData.csv").equals(poses)
