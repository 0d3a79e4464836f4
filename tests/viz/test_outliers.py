"""Outlier selection on synthetic predictions with injected, known faults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidpose.errors import VidposeError
from vidpose.io.poses import Poses
from vidpose.viz.outliers import (
    frame_scores,
    read_outliers,
    select_outliers,
    spike_magnitude,
    write_outliers,
)


def _smooth_poses(n=400, k=4, seed=0) -> Poses:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    base = np.stack(
        [100 + 40 * np.sin(t / 40 + np.arange(k)), 100 + 30 * np.cos(t / 55 + np.arange(k))],
        axis=2,
    )
    coords = base + rng.normal(0, 0.5, base.shape)
    return Poses(
        coords=coords,
        likelihood=np.full((n, k), 0.95) + rng.uniform(-0.02, 0.02, (n, k)),
        keypoints=[f"kp{j}" for j in range(k)],
        frames=np.arange(n),
        is_labels=False,
    )


def test_spike_magnitude_scores_the_frame_that_jumped_not_its_neighbours():
    coords = np.zeros((6, 1, 2))
    coords[3, 0] = [30.0, 40.0]  # frame 3 jumps 50 px away and back
    s = spike_magnitude(coords)[:, 0]
    assert s[3] == pytest.approx(50.0)
    assert s[2] == 0 and s[4] == 0  # neighbours moved once only
    step = np.zeros((6, 1, 2))
    step[3:, 0] = [50.0, 0.0]  # a real step: one move, no return
    assert np.nanmax(spike_magnitude(step)[1:-1]) == 0


def test_injected_jumps_and_low_confidence_are_selected_with_reasons():
    poses = _smooth_poses()
    jumps = [50, 200, 330]
    for f in jumps:
        poses.coords[f, 2] += [45.0, -20.0]
    poses.likelihood[120, 1] = 0.1
    table = select_outliers({"v.mp4": frame_scores(poses)}, n=10)
    assert set(jumps) | {120} <= set(table["frame"])
    # The injected frames come first: nothing else in this smooth track is extreme.
    assert set(table["frame"][:4]) == set(jumps) | {120}
    row = table[table["frame"] == 200].iloc[0]
    assert row["criteria"].startswith("jump") and "kp2" in row["reason"]
    jumped = float(row["reason"].split("temporal jump: kp2 ")[1].split(" px")[0])
    assert jumped == pytest.approx(49.2, abs=4.0)  # |(45, -20)| = 49.2, plus the real motion
    assert "low confidence: kp1 likelihood 0.10" in table[table["frame"] == 120].iloc[0]["reason"]


def test_clean_track_gives_no_outliers_and_min_gap_spreads_picks():
    poses = _smooth_poses(seed=1)
    assert len(select_outliers({"v": frame_scores(poses)})) == 0
    for f in range(100, 106):  # one event spanning 6 frames
        poses.coords[f, 0] += [60.0 * (-1) ** f, 0]
    table = select_outliers({"v": frame_scores(poses)}, n=10, min_gap=10)
    assert len(table) == 1 and 100 <= table["frame"].iloc[0] <= 105


def test_pca_and_ensemble_criteria_are_used_when_present():
    poses = _smooth_poses()
    var = np.full(poses.coords.shape[:2], 1.0)
    var[77, 3] = 400.0  # members disagree by ~20 px there
    poses.keypoint_columns = {"ens_var_x": var, "ens_var_y": var}
    pca = pd.DataFrame(np.full((poses.n_frames, 2), 1.0), columns=["kp0", "kp1"])
    pca.iloc[250, 1] = 30.0
    scores = frame_scores(poses, {"pca_singleview_error": pca})
    assert {"jump", "pca_singleview", "ensemble_std", "low_confidence"} == set(scores.z)
    table = select_outliers({"v": scores})
    reasons = dict(zip(table["frame"], table["reason"], strict=True))
    assert "ensemble disagrees: kp3 20.0 px" in reasons[77]
    assert "off the pose subspace: kp1 30.0 px" in reasons[250]


def test_outliers_csv_round_trip_and_bad_rows(tmp_path):
    poses = _smooth_poses()
    poses.coords[10, 0] += 80
    path = write_outliers(select_outliers({"a.mp4": frame_scores(poses)}), tmp_path / "o.csv")
    back = read_outliers(path)
    assert list(back["frame"]) == [10] and back["video"][0] == "a.mp4"
    (tmp_path / "bad.csv").write_text("video,frame\na.mp4,12\na.mp4,x3\n")
    with pytest.raises(VidposeError, match=r"bad.csv: row 3: frame 'x3' is not a frame index"):
        read_outliers(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("clip,frame\na,1\n")
    with pytest.raises(VidposeError, match="missing video"):
        read_outliers(tmp_path / "cols.csv")


def test_a_jump_that_stays_is_flagged_at_its_first_frame():
    poses = _smooth_poses(seed=2)
    poses.coords[150:170, 1] += [90.0, 0.0]  # jumps to another place for 20 frames
    table = select_outliers({"v": frame_scores(poses)}, n=5)
    assert 150 in set(table["frame"]) or 170 in set(table["frame"])
    row = table[table["frame"].isin([150, 170])].iloc[0]
    assert "temporal jump: kp1" in row["reason"]
