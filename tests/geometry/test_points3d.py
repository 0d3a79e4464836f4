"""The 3D table (:mod:`vidpose.io.points3d`): exact round trips with and without views, the
layout on disk, ground truth without metadata, and errors naming file, line and column.

Tables here are built by hand: 3 frames x 2 keypoints (nose, tail), views top and side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidpose.errors import LabelsError
from vidpose.io import Points3D, read_points_3d, write_points_3d

HEADER = (
    "frame,nose_x,nose_y,nose_z,nose_error_px,nose_n_views,nose_views,"
    "tail_x,tail_y,tail_z,tail_error_px,tail_n_views,tail_views"
)


def _table() -> Points3D:
    """Frame 11's tail has no point (no view used); the others mix 1/3 and 0.1 (no short
    decimal) to check exact float text."""
    points = np.array(
        [
            [[1 / 3, -2.5, 40.0], [0.1, 0.2, 1e-7]],
            [[1e5, 2.0, -0.0], [7.0, 8.0, 9.0]],
            [[3.0, 2.0, 1.0], [np.nan, np.nan, np.nan]],
        ]
    )
    used = np.zeros((3, 2, 2), dtype=bool)
    used[0, 0] = [True, True]
    used[0, 1] = [True, True]
    used[1, 0] = [True, True]
    used[1, 1] = [False, True]  # side only: impossible for a triangulation, fine for a table
    used[2, 0] = [True, False]
    error = np.array([[0.25, 1 / 7], [3.0, 0.0], [12.5, np.nan]])
    return Points3D(points, ["nose", "tail"], [9, 10, 11], ["top", "side"], error, used, units="mm")


def test_round_trip_is_exact(tmp_path: Path):
    table = _table()
    path = tmp_path / "s0_3d.csv"
    write_points_3d(table, path)
    back = read_points_3d(path)
    assert back.equals(table)
    assert back.frames.dtype == np.int64 and back.views_used.dtype == bool
    np.testing.assert_array_equal(back.n_views, [[2, 2], [2, 1], [1, 0]])
    assert not back.equals(
        Points3D(
            table.points,
            table.keypoints,
            [9, 10, 12],
            table.views,
            table.error_px,
            table.views_used,
            "mm",
        )
    )


def test_layout_on_disk(tmp_path: Path):
    path = tmp_path / "s0_3d.csv"
    write_points_3d(_table(), path)
    lines = path.read_text().splitlines()
    assert lines[0] == '# vidpose points3d {"units": "mm", "views": ["top", "side"]}'
    assert lines[1] == HEADER
    assert lines[3] == "10,100000.0,2.0,-0.0,3.0,2,top+side,7.0,8.0,9.0,0.0,1,side"
    assert lines[4] == "11,3.0,2.0,1.0,12.5,1,top,nan,nan,nan,nan,0,"
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(path, comment="#")
    assert list(df["frame"]) == [9, 10, 11] and df["nose_views"].tolist()[1] == "top+side"


def test_ground_truth_has_no_views_and_reads_without_metadata(tmp_path: Path):
    truth = Points3D(np.arange(12.0).reshape(2, 2, 3), ["a", "b"], [0, 1], units="mm")
    path = tmp_path / "truth.csv"
    write_points_3d(truth, path)
    assert path.read_text().splitlines()[1] == "frame,a_x,a_y,a_z,b_x,b_y,b_z"
    assert read_points_3d(path).equals(truth)
    bare = tmp_path / "bare.csv"  # the ground truth of earlier versions
    bare.write_text("frame,a_x,a_y,a_z\n0,1.0,,3\n")
    got = read_points_3d(bare)
    assert got.units is None and got.views == [] and got.error_px is None
    np.testing.assert_array_equal(got.points, [[[1.0, np.nan, 3.0]]])
    with pytest.raises(ValueError, match="name them in views"):
        Points3D(truth.points, truth.keypoints, truth.frames, error_px=np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (HEADER, "frame,nose_x,nose_y", r"s_3d.csv line 2: expected 'frame' then"),
        ('"views"', '"cams"', r"s_3d.csv line 1: metadata must be an object with 'units'"),
        ('{"units"', "{oops", r"line 1: metadata .* is not JSON"),
        (
            "10,100000.0",
            "10,1e5x",
            r"s_3d.csv line 4: could not convert '1e5x' to a number \(column nose_x\)",
        ),
        (
            ",2,top+side",
            ",two,top+side",
            r"line 3: could not convert 'two' to an integer \(column nose_n_views\)",
        ),
        (
            ",2,top+side",
            ",2,side+top",
            r"line 3: column nose_views 'side\+top' must name 2 of the views \['top', 'side'\]",
        ),
        (",1,side", ",2,side", r"line 4: column tail_views 'side' must name 2 of the views"),
        ("\n11,", ",1\n11,", r"line 4: 14 cells, expected 13"),
        ("\n9,", "\nx9,", r"line 3: could not convert 'x9' .*column frame"),
    ],
)
def test_malformed_tables_name_file_line_and_column(tmp_path: Path, old, new, message):
    path = tmp_path / "s_3d.csv"
    write_points_3d(_table(), path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(LabelsError, match=message):
        read_points_3d(path)
    path.write_text(text.splitlines()[0] + "\n")
    with pytest.raises(LabelsError, match=r"s_3d\.csv: no header"):
        read_points_3d(path)


def test_missing_file_is_a_labels_error(tmp_path: Path):
    with pytest.raises(LabelsError, match=r"nope\.csv: no such file"):
        read_points_3d(tmp_path / "nope.csv")
