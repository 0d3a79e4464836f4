"""A cell that is not a number is reported as such: file, row, keypoint, x or y, the value.

Before, a label value like ``abc`` read by ``vidpose check`` (which collects row problems
instead of stopping) became a missing x, and the message was the misleading "keypoint 'nose'
has y (5.0) but no x".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidpose.errors import LabelsError
from vidpose.io import csv_format, read_poses
from vidpose.io.csv_format import load_csv

HEADER = "scorer,ann,ann,ann,ann\nbodyparts,nose,nose,paw,paw\ncoords,x,y,x,y\n"
PRED_HEADER = (
    "scorer,m,m,m,m,m,m\nbodyparts,nose,nose,nose,paw,paw,paw\n"
    "coords,x,y,likelihood,x,y,likelihood\n"
)


@pytest.fixture(params=["fast", "slow"])
def reader(request, monkeypatch):
    """Both CSV readers: pandas' parser (which falls back on bad cells) and row by row."""
    if request.param == "slow":
        monkeypatch.setattr(csv_format._DataReader, "read_fast", lambda self, text, line: False)
    return request.param


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("b.png,abc,5,3,4", "column 2 (keypoint 'nose', x): 'abc' is not a number"),
        ("b.png,1,5,3,4 px", "column 5 (keypoint 'paw', y): '4 px' is not a number"),
        ("b.png,1,5,3,\u2013", "column 5 (keypoint 'paw', y): '\u2013' is not a number"),
    ],
)
def test_read_poses_names_file_row_keypoint_column_and_value(tmp_path, reader, row, expected):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "a.png,1,2,3,4\n" + row + "\n", encoding="utf-8")
    with pytest.raises(LabelsError) as info:
        read_poses(path)
    assert str(info.value) == (
        f"{path} row 5 (b.png), {expected}; expected a number or an empty cell"
    )


def test_bad_likelihood_in_predictions(tmp_path, reader):
    path = tmp_path / "pred.csv"
    path.write_text(PRED_HEADER + "0,1,2,0.9,3,4,high\n", encoding="utf-8")
    with pytest.raises(
        LabelsError,
        match=r"row 4 \(0\), column 7 \(keypoint 'paw', likelihood\)"
        r": 'high' is not a number; expected a number or an empty cell",
    ):
        read_poses(path)


def test_collected_bad_cell_leaves_its_keypoint_missing_and_nothing_else(tmp_path, reader):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "a.png,1,2,3,4\nb.png,abc,5,6,7\n", encoding="utf-8")
    row_errors: list[str] = []
    poses = load_csv(path, row_errors=row_errors)  # no "has y but no x" raised
    assert row_errors == [
        f"{path} row 5 (b.png), column 2 (keypoint 'nose', x): 'abc' is not a number; "
        "expected a number or an empty cell"
    ]
    assert np.isnan(poses.coords[1, 0]).all()  # nose: both x and y missing
    np.testing.assert_array_equal(poses.coords[1, 1], [6, 7])  # paw untouched
    np.testing.assert_array_equal(poses.coords[0], [[1, 2], [3, 4]])


def test_half_pair_is_still_reported_as_such(tmp_path, reader):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "a.png,,5,3,4\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"keypoint 'nose' has y \(5.0\) but no x"):
        load_csv(path, row_errors=[])


@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")  # object columns
def test_h5_bad_cell_says_what_is_expected(tmp_path):
    columns = pd.MultiIndex.from_tuples(
        [("ann", "nose", "x"), ("ann", "nose", "y")], names=["scorer", "bodyparts", "coords"]
    )
    frame = pd.DataFrame([[1.0, 2.0], ["abc", 3.0]], index=["a.png", "b.png"], columns=columns)
    path = tmp_path / "bad.h5"
    frame.astype(object).to_hdf(path, key="df_with_missing", mode="w")
    with pytest.raises(LabelsError) as info:
        read_poses(path)
    assert str(info.value) == (
        f"{path} data row 2 (b.png), column ('ann', 'nose', 'x'): 'abc' is not a number; "
        "expected a number, or NaN for a missing value"
    )
