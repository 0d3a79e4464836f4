"""``vidpose triangulate`` and ``vidpose.triangulate_tables``: the 2D ground truth of a tiny
synthesized rig triangulates back to its 3D ground truth; mismatched tables are refused naming
the file; an outlier view is dropped and counted; 3D smoothing lowers the error of noisy input.

The project: 3 cameras of 80 x 64 px (width x height), one session of 30 frames, easy; its
``ground_truth/session00_camI.csv`` tables hold every keypoint's true pixel with likelihood 1
where a labeller would see it and 0 where hidden or outside (left out at --min-confidence 0.5).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import vidpose
from vidpose.cli import main
from vidpose.errors import LabelsError
from vidpose.geometry import project_to_views, read_calibration, ring_calibration
from vidpose.io import Poses, read_points_3d, read_poses, write_poses
from vidpose.smooth import smooth_points_3d
from vidpose.synthetic import MultiCameraProject, synthesize_multicamera_project
from vidpose.synthetic.multicamera import pose_animal

SESSION = "session00"


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> MultiCameraProject:
    out = tmp_path_factory.mktemp("tri") / "rig"
    return synthesize_multicamera_project(
        out,
        cameras=3,
        seed=3,
        n_labeled=2,
        n_videos=1,
        n_frames=30,
        size=(64, 80),
        difficulty="easy",
    )


def _truth_tables(proj: MultiCameraProject) -> list[Path]:
    return [proj.ground_truth(SESSION, v) for v in proj.views]


def test_ground_truth_2d_triangulates_to_the_3d_truth(proj, tmp_path, capsys):
    out = tmp_path / "s0_3d.csv"
    cam0, cam1, cam2 = _truth_tables(proj)
    # views named by the file names, and one explicitly
    argv = [str(proj.project_dir), str(cam0), str(cam1), f"cam2={cam2}", "--out", str(out)]
    assert main(["triangulate", *argv]) == 0
    got = read_points_3d(out)
    truth = read_points_3d(proj.ground_truth_3d(SESSION))
    seen = np.stack([read_poses(p).likelihood == 1 for p in _truth_tables(proj)], axis=-1)
    two = seen.sum(-1) >= 2
    assert got.units == "mm" and got.views == proj.views and got.keypoints == truth.keypoints
    np.testing.assert_array_equal(got.frames, truth.frames)
    assert 0.5 < two.mean() < 1.0  # the rig hides some keypoints: both cases are tested
    assert np.abs(got.points[two] - truth.points[two]).max() < 1e-3  # mm
    assert np.isnan(got.points[~two]).all()
    np.testing.assert_array_equal(got.views_used, seen & two[..., None])
    assert np.nanmax(got.error_px) < 1e-3
    text = capsys.readouterr().out
    few = float(re.search(r"seen by fewer than 2 views: ([\d.]+)%", text).group(1))
    assert few == pytest.approx(100 * (1 - two.mean()), abs=0.06)
    assert "disagree by > 10 px before outlier removal: 0.0%" in text
    assert "cam0 0.0%, cam1 0.0%, cam2 0.0%" in text


def _write(poses: Poses, path: Path) -> Path:
    write_poses(poses, path)
    return path


def test_mismatched_tables_are_refused_naming_the_file(proj, tmp_path, capsys):
    cam0, cam1, cam2 = _truth_tables(proj)
    t1 = read_poses(cam1)
    fewer_kp = _write(
        Poses(t1.coords[:, 1:], t1.keypoints[1:], t1.frames, t1.likelihood[:, 1:]),
        tmp_path / "kp_cam1.csv",
    )
    fewer_frames = _write(t1.select_frames(slice(0, 20)), tmp_path / "short_cam1.csv")
    shifted = Poses(t1.coords, t1.keypoints, t1.frames + 5, t1.likelihood)
    later = _write(shifted, tmp_path / "later_cam1.csv")
    out, cal = tmp_path / "out.csv", str(proj.calibration)
    cases = [
        (fewer_kp, ["kp_cam1.csv: keypoints differ from", "missing ['nose']"]),
        (fewer_frames, ["short_cam1.csv: 20 frames but", "has 30"]),
        (later, ["later_cam1.csv row 1: frame 5 but", "has frame 0"]),
    ]
    for bad, expected in cases:
        code = main(["triangulate", cal, str(cam0), str(bad), str(cam2), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "LabelsError" in err and all(e in err for e in expected), err
        assert not out.exists()
    code = main(["triangulate", cal, f"top={cam0}", str(cam1), "--out", str(out)])
    assert code == 2 and "'top' is not a camera of the calibration" in capsys.readouterr().err
    code = main(["triangulate", cal, str(cam0), "--out", str(out)])
    assert code == 2 and "at least 2 views" in capsys.readouterr().err


def test_an_outlier_view_is_dropped_and_counted(proj, tmp_path):
    tables = {v: read_poses(p) for v, p in zip(proj.views, _truth_tables(proj))}
    seen = np.stack([t.likelihood == 1 for t in tables.values()]).all(0)
    frame, kp = np.argwhere(seen)[3]  # a keypoint every camera sees
    tables["cam2"].coords[frame, kp] += [30.0, 40.0]  # 50 px off
    res = vidpose.triangulate_tables(proj.calibration, tables, tmp_path / "o.csv")
    truth = read_points_3d(proj.ground_truth_3d(SESSION)).points
    np.testing.assert_array_equal(res.points.views_used[frame, kp], [True, True, False])
    assert np.abs(res.points.points[frame, kp] - truth[frame, kp]).max() < 1e-3
    # without outlier removal the bad view is used and the point moves
    plain = vidpose.triangulate_tables(proj.calibration, tables, outlier_px=None)
    assert plain.points.views_used[frame, kp].all()
    assert np.linalg.norm(plain.points.points[frame, kp] - truth[frame, kp]) > 1.0
    n_cam2 = plain.points.views_used[..., 2].sum()  # cam2's observations in solved points
    assert res.summary.dropped == {"cam0": 0.0, "cam1": 0.0, "cam2": 1 / n_cam2}
    assert res.spread_px[frame, kp] > 20.0  # before outlier removal
    assert np.nanmax(np.delete(res.spread_px.ravel(), frame * seen.shape[1] + kp)) < 1e-3
    n_solved = plain.points.views_used.any(-1).sum()
    assert res.summary.disagree == pytest.approx(1 / n_solved)
    assert read_points_3d(tmp_path / "o.csv").equals(res.points)


def test_smoothing_lowers_the_error_of_noisy_input():
    """The synthetic animal (300 frames, mm) through 3 ring cameras of 160 x 128 px; every view
    gets 1 px Gaussian noise and 3% of its points 30 px off."""
    cal = ring_calibration(3, (0.0, 0.0, 10.0), 150.0, image_size=(160, 128), seed=1)
    truth = pose_animal(np.random.default_rng(0), 300, 30.0).keypoints
    views = project_to_views(cal, truth)
    rng = np.random.default_rng(1)
    names = [f"k{i}" for i in range(truth.shape[1])]
    tables = {}
    for v, name in enumerate(cal.names):
        px = views.coords_px[v] + rng.normal(0.0, 1.0, views.coords_px[v].shape)
        off = rng.random(px.shape[:2]) < 0.03
        px[off] += rng.normal(0.0, 30.0, (off.sum(), 2))
        tables[name] = Poses(px, names, np.arange(300), likelihood=np.ones(px.shape[:2]))
    res = vidpose.triangulate_tables(cal, tables, smoother=smooth_points_3d)
    raw = np.linalg.norm(res.raw.points - truth, axis=-1)
    smoothed = np.linalg.norm(res.points.points - truth, axis=-1)
    assert np.isfinite(smoothed).all()
    assert np.median(smoothed) < 0.8 * np.median(raw)
    assert np.percentile(smoothed, 95) < 0.6 * np.percentile(raw, 95)
    # the errors written are the smoothed points' in the views used
    assert not np.allclose(res.points.error_px, res.raw.error_px)
    with pytest.raises(ValueError, match="smoothing must be 'auto' or a positive number"):
        smooth_points_3d(res.raw, smoothing=-1.0)


def test_cli_smooth_writes_smoothed_points(proj, tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for path in _truth_tables(proj):
        t = read_poses(path)
        t.coords += rng.normal(0.0, 1.0, t.coords.shape)
        paths.append(_write(t, tmp_path / path.name))
    raw, smooth = tmp_path / "raw.csv", tmp_path / "smooth.csv"
    assert main(["triangulate", str(proj.calibration), *map(str, paths), "--out", str(raw)]) == 0
    args = ["triangulate", str(proj.calibration), *map(str, paths), "--out", str(smooth)]
    assert main([*args, "--smooth"]) == 0
    assert "smoothed in 3D" in capsys.readouterr().out
    a, b = read_points_3d(raw), read_points_3d(smooth)
    np.testing.assert_array_equal(np.isnan(a.points), np.isnan(b.points))
    np.testing.assert_array_equal(a.views_used, b.views_used)
    assert not np.allclose(a.points, b.points, equal_nan=True)
    assert main([*args, "--smoothing", "2"]) == 2
    assert "add --smooth" in capsys.readouterr().err


def test_label_tables_are_refused(proj):
    labels = {v: proj.labels[v] for v in proj.views}
    with pytest.raises(LabelsError, match="rows are images"):
        vidpose.triangulate_tables(read_calibration(proj.calibration), labels)


def test_the_3d_options_default_to_the_librarys_values():
    from vidpose.cli import _common
    from vidpose.geometry import tables

    assert (_common.OUTLIER_PX, _common.MIN_CONFIDENCE) == (
        tables.OUTLIER_PX,
        tables.MIN_CONFIDENCE,
    )
