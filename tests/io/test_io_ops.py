"""Pure table operations: duplicate detection, keypoint reordering, stacking."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.io import Poses, concat_poses, duplicate_frames
from vidpose.io.ops import reorder_keypoints


def test_duplicate_frames_lists_every_repeat_after_the_first():
    poses = Poses(coords=np.zeros((5, 1, 2)), keypoints=["a"], frames=["x", "y", "x", "z", "x"])
    assert duplicate_frames(poses) == [(2, "x"), (4, "x")]
    assert duplicate_frames(poses.select_frames([0, 1, 3])) == []


def test_reorder_keypoints_moves_every_per_keypoint_array(predictions_with_extras):
    p = predictions_with_extras
    r = reorder_keypoints(p, ["tail base", "nose"])
    assert r.keypoints == ["tail base", "nose"]
    np.testing.assert_array_equal(r.coords[:, 0], p.coords[:, 1])
    np.testing.assert_array_equal(r.likelihood[:, 1], p.likelihood[:, 0])
    np.testing.assert_array_equal(
        r.keypoint_columns["ens_var_x"][:, 0], p.keypoint_columns["ens_var_x"][:, 1]
    )


def test_concat_stacks_rows_and_refuses_mismatches(predictions_with_extras, labels_table):
    p = predictions_with_extras
    both = concat_poses([p.select_frames([0, 1]), p.select_frames([2, 3, 4])])
    assert both.equals(p)
    with pytest.raises(ValueError, match="keypoints"):
        concat_poses([p, reorder_keypoints(p, ["tail base", "nose"])])
    as_predictions = Poses(
        coords=labels_table.coords,
        keypoints=labels_table.keypoints,
        frames=labels_table.frames,
        likelihood=np.ones(labels_table.likelihood.shape),
    )
    with pytest.raises(ValueError, match="kind"):
        concat_poses([labels_table, as_predictions])
