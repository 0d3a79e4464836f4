"""DeepLabCut .h5 tables: files as DeepLabCut writes them, and malformed ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidpose.errors import LabelsError
from vidpose.io import read_poses, write_poses

COLUMNS = pd.MultiIndex.from_tuples(
    [("ann", "nose", "x"), ("ann", "nose", "y"), ("ann", "paw", "x"), ("ann", "paw", "y")],
    names=["scorer", "bodyparts", "coords"],
)
VALUES = np.array([[1.5, 2.5, np.nan, np.nan], [3.25, 4.0, 5.0, 6.0]])


def dlc_frame(index) -> pd.DataFrame:
    return pd.DataFrame(VALUES, index=index, columns=COLUMNS)


@pytest.mark.parametrize("storage", ["fixed", "table"])
def test_reads_older_dlc_labels_with_path_index(storage, tmp_path):
    path = tmp_path / "CollectedData_ann.h5"
    frame = dlc_frame(pd.Index(["labeled-data/m1/img0.png", "labeled-data/m1/img1.png"]))
    frame.to_hdf(path, key="df_with_missing", mode="w", format=storage)
    poses = read_poses(path)
    assert poses.is_labels and poses.scorer == "ann" and poses.keypoints == ["nose", "paw"]
    assert poses.frames.tolist() == ["labeled-data/m1/img0.png", "labeled-data/m1/img1.png"]
    np.testing.assert_array_equal(poses.coords.reshape(2, 4), VALUES)


def test_reads_newer_dlc_labels_with_multiindex_rows(tmp_path):
    path = tmp_path / "CollectedData_ann.h5"
    index = pd.MultiIndex.from_tuples(
        [("labeled-data", "m1", "img0.png"), ("labeled-data", "m1", "img1.png")]
    )
    dlc_frame(index).to_hdf(path, key="df_with_missing", mode="w")
    poses = read_poses(path)
    assert poses.frames.tolist() == ["labeled-data/m1/img0.png", "labeled-data/m1/img1.png"]


def test_reads_predictions_with_likelihood_and_other_key(tmp_path):
    path = tmp_path / "videoDLC_resnet50.h5"
    cols = pd.MultiIndex.from_product(
        [["DLC_resnet50"], ["nose"], ["x", "y", "likelihood"]],
        names=["scorer", "bodyparts", "coords"],
    )
    frame = pd.DataFrame([[1.0, 2.0, 0.9], [3.0, 4.0, 0.1]], columns=cols)
    frame.to_hdf(path, key="predictions", mode="w", format="table")
    poses = read_poses(path)
    assert not poses.is_labels and poses.frames.tolist() == [0, 1]
    assert poses.frames.dtype == np.int64
    assert poses.likelihood[:, 0].tolist() == [0.9, 0.1]


def test_frame_column_dtypes_survive(predictions_with_extras, tmp_path):
    path = tmp_path / "p.h5"
    write_poses(predictions_with_extras, path)
    stored = pd.read_hdf(path, key="df_with_missing")
    assert stored.columns.names == ["scorer", "bodyparts", "coords"]
    assert ("split", "", "") in stored.columns  # as Lightning Pose names its set column
    back = read_poses(path)
    assert back.frame_columns["train_step"].dtype == np.int64
    assert back.frame_columns["in_train"].dtype == bool
    assert back.equals(predictions_with_extras)


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "CollectedData_ann.h5"
    path.write_text("scorer,a\n")
    with pytest.raises(LabelsError, match=r"CollectedData_ann.h5: cannot read it as a pandas HDF5"):
        read_poses(path, format="dlc_h5")


def test_two_tables_without_the_dlc_key(tmp_path):
    path = tmp_path / "two.h5"
    dlc_frame(pd.Index(["a.png", "b.png"])).to_hdf(path, key="one", mode="w")
    dlc_frame(pd.Index(["a.png", "b.png"])).to_hdf(path, key="two", mode="a")
    with pytest.raises(
        LabelsError, match=r"two.h5: expected one pandas table .* found: /one, /two"
    ):
        read_poses(path)


def test_multi_animal_is_refused(tmp_path):
    path = tmp_path / "ma.h5"
    cols = pd.MultiIndex.from_product(
        [["ann"], ["mouse1"], ["nose"], ["x", "y"]],
        names=["scorer", "individuals", "bodyparts", "coords"],
    )
    pd.DataFrame([[1.0, 2.0]], columns=cols).to_hdf(path, key="df_with_missing", mode="w")
    with pytest.raises(LabelsError, match=r"ma.h5: multi-animal DeepLabCut .* not supported"):
        read_poses(path)


@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")  # pickled object cells
def test_non_numeric_cell_names_row_and_column(tmp_path):
    path = tmp_path / "bad.h5"
    frame = dlc_frame(pd.Index(["a.png", "b.png"])).astype(object)
    frame.iloc[1, 2] = "oops"
    frame.to_hdf(path, key="df_with_missing", mode="w")
    with pytest.raises(
        LabelsError, match=r"bad.h5 data row 2 \(b.png\), column \('ann', 'paw', 'x'\): 'oops'"
    ):
        read_poses(path)


def test_x_without_y_names_row(tmp_path):
    path = tmp_path / "half.h5"
    frame = dlc_frame(pd.Index(["a.png", "b.png"]))
    frame.iloc[1, 3] = np.nan
    frame.to_hdf(path, key="df_with_missing", mode="w")
    with pytest.raises(LabelsError, match=r"half.h5 data row 2 \(b.png\): keypoint 'paw' has x"):
        read_poses(path)


def test_writes_fixed_storage_that_pandas_2_reads(tmp_path):
    """pandas 2 (DeepLabCut 3 pins it) cannot read a pandas-3 "table" file; "fixed" reads in
    both (checked across versions by bench/h5_pandas_compat.py)."""
    from vidpose.io.poses import Poses

    poses = Poses(
        coords=np.arange(12, dtype=float).reshape(2, 3, 2),
        keypoints=["a", "b", "c"],
        frames=np.arange(2),
        likelihood=np.full((2, 3), 0.5),
        scorer="vidpose",
    )
    path = tmp_path / "p.h5"
    write_poses(poses, path)
    with pd.HDFStore(path, mode="r") as store:
        assert not store.get_storer("df_with_missing").is_table
    back = read_poses(path)
    assert np.array_equal(back.coords, poses.coords) and back.frames.tolist() == [0, 1]
