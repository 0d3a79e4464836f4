"""3D points reprojected onto a view's labeled video, and the 3D figure of `vidpose triangulate`.

The project: ``vidpose synthesize --cameras 3``, tiny: cameras cam0..cam2 of 96 x 72 px (width x
height), one session ``session00`` of 12 frames, 3 labeled frames, 5 keypoints, "easy". Its
``ground_truth/session00_<view>.csv`` (2D) is the projection of ``session00_3d.csv`` (mm)
through each camera, lens included. Videos are labeled at crf 0 with markers of radius 3, so a
marker's centre pixel keeps the keypoint colour through 4:2:0 chroma subsampling; a pixel
counts as a colour when every channel is within ``TOL``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidpose.cli import main
from vidpose.errors import ConfigError, LabelsError, VideoError
from vidpose.geometry import Calibration, read_calibration
from vidpose.io import read_poses
from vidpose.io.points3d import Points3D, read_points_3d, write_points_3d
from vidpose.synthetic import MultiCameraProject, synthesize_multicamera_project
from vidpose.video import open_video
from vidpose.viz.colors import keypoint_colors_u8
from vidpose.viz.labeled_video import label_video, reprojected_poses
from vidpose.viz.plots3d import pose_frames

WIDTH, HEIGHT, R, TOL = 96, 72, 3, 24
SESSION, VIEW = "session00", "cam1"


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> MultiCameraProject:
    out = tmp_path_factory.mktemp("mc3d") / "rig"
    return synthesize_multicamera_project(
        out,
        cameras=3,
        seed=3,
        difficulty="easy",
        n_videos=1,
        n_frames=12,
        n_labeled=3,
        n_keypoints=5,
        size=(HEIGHT, WIDTH),
    )


def read_all(path: Path) -> np.ndarray:
    with open_video(path, reader="pyav") as r:
        return r.read_clip(0, r.info.n_frames).frames.astype(int)


def test_reprojection_is_the_camera_projection(proj):
    points = read_points_3d(proj.ground_truth_3d(SESSION))
    camera = read_calibration(proj.calibration)[VIEW]
    truth = read_poses(proj.ground_truth(SESSION, VIEW))
    got = reprojected_poses(points, camera)
    assert got.keypoints == points.keypoints and got.scorer == f"3D reprojected ({VIEW})"
    np.testing.assert_array_equal(got.coords, camera.project(points.points))
    np.testing.assert_allclose(got.coords, truth.coords, atol=1e-6)  # the 2D truth, lens too


def test_overlay_drawn_where_the_camera_sees_the_points(proj, tmp_path):
    video, truth = proj.video(SESSION, VIEW), proj.ground_truth(SESSION, VIEW)
    points = read_points_3d(proj.ground_truth_3d(SESSION))
    camera = read_calibration(proj.calibration)[VIEW]
    # Move the 3D points 15 mm so their markers leave the 2D ones, and keep one keypoint of one
    # frame well inside the image: its marker is the only 3D one, drawn on top of everything.
    moved = points.points + np.array([15.0, 0.0, 0.0])
    px = camera.project(moved)
    inside = (
        (px[..., 0] > 8) & (px[..., 0] < WIDTH - 8) & (px[..., 1] > 8) & (px[..., 1] < HEIGHT - 8)
    )
    f, k = np.argwhere(inside)[0]
    only = np.full_like(moved, np.nan)
    only[f, k] = moved[f, k]
    shifted = tmp_path / "moved_3d.csv"
    write_points_3d(Points3D(only, points.keypoints, points.frames, units="mm"), shifted)

    kw = {"marker_size": R, "crf": 0, "frame_counter": False}
    plain, over = tmp_path / "plain.mp4", tmp_path / "over.mp4"
    label_video(truth, video, plain, labels=["truth"], **kw)
    stats = label_video(truth, video, over, points3d=shifted, calibration=proj.calibration, **kw)
    a, b = read_all(plain), read_all(over)
    assert stats.frames == len(b) == 12
    x, y = np.rint(px[f, k]).astype(int)
    color = keypoint_colors_u8(points.keypoints)[k].astype(int)
    assert np.all(np.abs(b[f, y, x] - color) <= TOL)
    others = [i for i in range(len(b)) if i != f]
    # The 3D line widens the legend: compare below it.
    assert np.abs(a[others, 40:] - b[others, 40:]).max() <= TOL  # no 3D marker elsewhere
    assert np.abs(a[f] - b[f]).max() > 60


def test_full_overlay_changes_every_frame(proj, tmp_path):
    kw = {"marker_size": R, "crf": 0, "labels": ["truth"]}
    video, truth = proj.video(SESSION, VIEW), proj.ground_truth(SESSION, VIEW)
    plain, over = tmp_path / "plain.mp4", tmp_path / "over.mp4"
    label_video(truth, video, plain, **kw)
    gt3d = proj.ground_truth_3d(SESSION)
    label_video(truth, video, over, points3d=gt3d, calibration=proj.calibration, view=VIEW, **kw)
    a, b = read_all(plain), read_all(over)
    assert all(np.abs(a[i] - b[i]).max() > 60 for i in range(len(a)))


def test_errors_before_any_frame(proj, tmp_path):
    video, truth = proj.video(SESSION, VIEW), proj.ground_truth(SESSION, VIEW)
    gt3d = proj.ground_truth_3d(SESSION)
    points = read_points_3d(gt3d)
    out = tmp_path / "x.mp4"
    kw = {"points3d": gt3d, "calibration": proj.calibration}
    with pytest.raises(ConfigError, match=r"calibration\.toml: no camera named 'top'"):
        label_video(truth, video, out, view="top", **kw)
    cal = read_calibration(proj.calibration)
    wide = [replace(c, size=(100, HEIGHT)) if c.name == VIEW else c for c in cal]
    with pytest.raises(
        VideoError, match=r"session00_cam1\.mp4 is 96x72 px but camera cam1 .* 100x72"
    ):
        label_video(truth, video, out, points3d=gt3d, calibration=Calibration(wide, {}, cal.source))
    fewer = tmp_path / "fewer_3d.csv"
    write_points_3d(Points3D(points.points[:10], points.keypoints, points.frames[:10]), fewer)
    with pytest.raises(LabelsError, match=r"fewer_3d\.csv: 10 frames \(0\.\.9\), but .* 12 frames"):
        label_video(truth, video, out, points3d=fewer, calibration=proj.calibration)
    renamed = tmp_path / "renamed_3d.csv"
    names = [*points.keypoints[:-1], "tail_tip"]
    write_points_3d(Points3D(points.points, names, points.frames), renamed)
    with pytest.raises(LabelsError, match=r"renamed_3d\.csv: keypoints differ .*'tail_tip'"):
        label_video(truth, video, out, points3d=renamed, calibration=proj.calibration)
    anonymous = tmp_path / "videos" / "session.mp4"
    anonymous.parent.mkdir()
    anonymous.write_bytes(video.read_bytes())
    with pytest.raises(ConfigError, match=r"session\.mp4: its name names no camera"):
        label_video(truth, anonymous, out, **kw)
    assert not out.exists()


def test_cli_label_video_and_triangulate_figure(proj, tmp_path):
    video, truth = proj.video(SESSION, VIEW), proj.ground_truth(SESSION, VIEW)
    gt3d = proj.ground_truth_3d(SESSION)
    out = tmp_path / "cli.mp4"
    args = [str(truth), str(video), "--out", str(out), "--no-progress"]
    rc = main(
        ["label-video", *args, "--points3d", str(gt3d), "--calibration", str(proj.project_dir)]
    )
    assert rc == 0 and len(read_all(out)) == 12
    assert (
        main(
            [
                "label-video",
                *args,
                "--points3d",
                str(gt3d),
                "--calibration",
                str(proj.calibration),
                "--view",
                "cam7",
            ]
        )
        == 2
    )

    tables = [f"{v}={proj.ground_truth(SESSION, v)}" for v in proj.views]
    fig = tmp_path / "figs" / "s0_3d.png"
    fig.parent.mkdir()
    rc = main(
        [
            "triangulate",
            str(proj.project_dir),
            *tables,
            "--out",
            str(tmp_path / "s0_3d.csv"),
            "--figure",
            str(fig),
        ]
    )
    assert rc == 0 and fig.stat().st_size > 10_000
    assert Image.open(fig).size[0] > 500
    assert sorted(p.name for p in fig.parent.iterdir()) == ["s0_3d.png"]  # no temporaries left


def test_pose_frames_are_evenly_spaced_and_finite():
    pts = np.zeros((10, 2, 3))
    pts[0] = np.nan
    table = Points3D(pts, ["a", "b"], np.arange(10))
    assert pose_frames(table, 3).tolist() == [1, 5, 9]
    assert pose_frames(table, 20).tolist() == list(range(1, 10))


def test_figure_module_does_not_import_torch():
    code = (
        "import sys, vidpose.viz.plots3d, vidpose.viz.labeled_video; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
