"""Poses <-> movement poses datasets (xarray)."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import LabelsError
from vidpose.io.movement import from_movement, to_movement
from vidpose.io.poses import Poses

xr = pytest.importorskip("xarray")


def _preds() -> Poses:
    rng = np.random.default_rng(0)
    coords = np.round(rng.uniform(0, 300, (5, 3, 2)), 4)
    coords[2, 1] = np.nan
    return Poses(
        coords=coords,
        keypoints=["nose", "ear", "tail"],
        frames=np.arange(10, 15),
        likelihood=np.round(rng.uniform(0, 1, (5, 3)), 5),
        scorer="vidpose",
    )


def test_round_trip_with_fps_puts_time_in_seconds():
    p = _preds()
    ds = to_movement(p, fps=50.0)
    assert ds.attrs["ds_type"] == "poses" and ds.attrs["fps"] == 50.0
    assert ds.attrs["time_unit"] == "seconds"
    assert dict(ds.sizes) == {"time": 5, "space": 2, "keypoints": 3, "individuals": 1}
    np.testing.assert_allclose(ds["time"].values, np.arange(10, 15) / 50.0)
    np.testing.assert_array_equal(ds["position"].sel(space="x", keypoints="ear").values[:, 0],
                                  p.coords[:, 1, 0])  # fmt: skip
    back = from_movement(ds, scorer="vidpose")
    assert back.equals(p)


def test_without_fps_time_is_frames_and_several_individuals_need_a_choice():
    p = _preds()
    ds = to_movement(p)
    assert ds.attrs["time_unit"] == "frames" and ds.attrs["fps"] is None
    assert from_movement(ds, scorer="vidpose").equals(p)
    two = xr.concat([ds, ds.assign_coords(individuals=["b"])], dim="individuals")
    with pytest.raises(LabelsError, match="2 individuals"):
        from_movement(two)
    assert from_movement(two, individual="b", scorer="vidpose").equals(p)
