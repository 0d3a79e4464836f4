"""A labels table's ``visible`` column (Lightning Pose / SLEAP visibility flags) is honoured."""

from __future__ import annotations

import numpy as np

from vidpose.io import read_poses, write_poses
from vidpose.project import load_project
from vidpose.project.load import scan_project


def _with_flags(project, flags_of):
    table = project / "CollectedData.csv"
    labels = read_poses(table)
    flags = flags_of(labels)
    labels.keypoint_columns["visible"] = flags
    write_poses(labels, table)
    return read_poses(table).coords  # positions as written (every one still there)


def test_hidden_keypoints_become_missing_labels(tiny_project):
    def flags_of(labels):
        flags = np.ones((labels.n_frames, labels.n_keypoints))
        flags[0, 1] = 0.0
        flags[3, 0] = 0.0
        flags[2, 2] = np.nan  # no flag: kept
        return flags

    written = _with_flags(tiny_project, flags_of)
    assert np.isfinite(written[[0, 3], [1, 0]]).all()
    project = load_project(tiny_project)
    coords = project.labels.coords
    assert np.isnan(coords[0, 1]).all() and np.isnan(coords[3, 0]).all()
    keep = np.ones(coords.shape[:2], bool)
    keep[0, 1] = keep[3, 0] = False
    np.testing.assert_array_equal(coords[keep], written[keep])
    assert "visible" not in project.labels.keypoint_columns


def test_a_flag_other_than_0_or_1_is_an_error_naming_row_and_keypoint(tiny_project):
    def flags_of(labels):
        flags = np.ones((labels.n_frames, labels.n_keypoints))
        flags[4, 2] = 2.0
        return flags

    _with_flags(tiny_project, flags_of)
    labels = read_poses(tiny_project / "CollectedData.csv")
    problems = [p for p in scan_project(tiny_project).problems if p.code == "labels-visible-flag"]
    assert len(problems) == 1
    p = problems[0]
    assert p.severity == "error" and p.file == "CollectedData.csv"
    assert p.where.startswith("row 8") and labels.keypoints[2] in p.message
    assert "expected 1" in p.message
