"""Poses' descriptive fields (fps, video, skeleton) and its pandas DataFrame conversion."""

import numpy as np
import pandas as pd
import pytest

from vidpose.errors import LabelsError
from vidpose.io import Poses


def _poses(**kw) -> Poses:
    rng = np.random.default_rng(0)
    return Poses(
        coords=rng.random((4, 3, 2)) * 100,
        keypoints=["nose", "ear", "tail"],
        frames=np.arange(4),
        likelihood=rng.random((4, 3)),
        frame_columns={"set": np.array(["train", "test", "train", "validation"], dtype=object)},
        **kw,
    )


def test_dataframe_round_trip_keeps_every_value_and_takes_meta():
    p = _poses(fps=30, skeleton=[("nose", "ear")])
    df = p.to_dataframe()
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert df[("vidpose", "ear", "likelihood")].tolist() == p.likelihood[:, 1].tolist()
    assert df[("set", "", "")].tolist() == ["train", "test", "train", "validation"]
    q = Poses.from_dataframe(df, fps=30, video="v.mp4")
    assert q.equals(p)
    assert (q.fps, q.video, q.skeleton) == (30.0, "v.mp4", None)


def test_from_dataframe_names_the_bad_cell():
    df = _poses().to_dataframe()
    col = df.columns[0]
    df[col] = df[col].astype(object)
    df.loc[2, col] = "oops"
    with pytest.raises(LabelsError, match="row 3"):
        Poses.from_dataframe(df)
    with pytest.raises(LabelsError, match="3 column levels"):
        Poses.from_dataframe(pd.DataFrame({"a": [1.0]}))


def test_meta_is_checked_and_survives_selection():
    with pytest.raises(ValueError, match="fps"):
        _poses(fps=0)
    with pytest.raises(ValueError, match="unknown keypoints"):
        _poses(skeleton=[("nose", "paw")])
    p = _poses(fps=25.0, video="a.mp4", skeleton=[("ear", "tail")]).select_frames([1, 2])
    assert (p.fps, p.video, p.skeleton, p.n_frames) == (25.0, "a.mp4", [("ear", "tail")], 2)


def test_rounded_keeps_1e4_px_and_everything_else():
    p = _poses(fps=30, video="v.mp4")
    p.keypoint_columns["ens_var_x"] = np.full((4, 3), 0.123456789)
    r = p.rounded()
    np.testing.assert_array_equal(r.coords, np.round(p.coords, 4))
    np.testing.assert_array_equal(r.likelihood, np.round(p.likelihood, 5))
    assert r.keypoint_columns["ens_var_x"][0, 0] == 0.1235
    assert (r.fps, r.video, r.keypoints) == (30.0, "v.mp4", p.keypoints)
    assert not np.array_equal(r.coords, p.coords)  # the random values had more digits
