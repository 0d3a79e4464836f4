"""Synthetic multi-camera projects: layout, labels against the 3D truth through the cameras,
triangulation, the calibration file, determinism, occlusion and the lens in the rendering.

The project here is tiny: 3 cameras of 80 x 64 px (width x height, unequal to catch swaps),
2 sessions of 24 frames, 6 labeled frames (3 per session).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from same_files import assert_same

from vidpose.cli import main
from vidpose.errors import ConfigError, LabelsError, ProjectError
from vidpose.geometry import (
    CameraModel,
    calibration_toml,
    read_calibration,
    rotation_vector,
    triangulate,
)
from vidpose.io import read_poses
from vidpose.project.settings import load_calibration, load_settings
from vidpose.synthetic import (
    CONTEXT_FRAMES,
    MultiCameraProject,
    read_points_3d,
    select_keypoints,
    synthesize_multicamera_project,
)
from vidpose.synthetic.body import Body, Ellipsoid
from vidpose.synthetic.perspective import (
    camera_depth,
    camera_parts,
    draw_camera_parts,
    pixel_rays,
)
from vidpose.synthetic.render import keypoint_visibility, owner_table
from vidpose.video import open_video

WIDTH, HEIGHT = 80, 64
TINY = {"n_videos": 2, "n_frames": 24, "n_labeled": 6, "size": (HEIGHT, WIDTH)}


@pytest.fixture(scope="module")
def proj(tmp_path_factory) -> MultiCameraProject:
    out = tmp_path_factory.mktemp("mc") / "proj"
    return synthesize_multicamera_project(out, cameras=3, seed=5, difficulty="easy", **TINY)


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _truth(proj: MultiCameraProject, session: str):
    """(points (T, K, 3) mm, per-view truth tables)."""
    points = read_points_3d(proj.ground_truth_3d(session))
    return points, [read_poses(proj.ground_truth(session, v)) for v in proj.views]


def test_layout(proj: MultiCameraProject):
    root = proj.project_dir
    assert proj.views == ["cam0", "cam1", "cam2"] and proj.sessions == ["session00", "session01"]
    assert sorted(p.name for p in root.iterdir()) == [
        "CollectedData_cam0.csv",
        "CollectedData_cam1.csv",
        "CollectedData_cam2.csv",
        "calibration.toml",
        "ground_truth",
        "labeled-data",
        "videos",
        "vidpose.yaml",
    ]
    assert not list(root.parent.glob(".proj.*")), "the staging folder is gone"
    assert sum(len(f) for f in proj.labeled_frames.values()) == 6
    settings = load_settings(root)
    assert settings.views == proj.views and settings.calibration == "calibration.toml"
    assert settings.view_matches == [] and ("ear_left", "ear_right") in settings.flip_pairs
    for session, frames in proj.labeled_frames.items():
        wanted = {
            f"img{t + d:05d}.png"
            for t in frames
            for d in range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)
        }
        for view in proj.views:
            folder = root / "labeled-data" / f"{session}_{view}"
            assert {p.name for p in folder.iterdir()} == wanted
            with open_video(proj.video(session, view), reader="pyav") as reader:
                info = reader.info
            assert (info.n_frames, info.width, info.height) == (24, WIDTH, HEIGHT)
            assert proj.ground_truth(session, view).is_file()
    tables = [read_poses(proj.labels[v]) for v in proj.views]
    for view, table in zip(proj.views, tables):
        assert table.keypoints == select_keypoints(None)
        expected = [
            f"labeled-data/{s}_{view}/img{t:05d}.png"
            for s in proj.sessions
            for t in proj.labeled_frames[s]
        ]
        assert list(table.frames) == expected  # the same frames, rows in the same order


def test_labels_are_the_3d_truth_through_the_cameras(proj: MultiCameraProject):
    calibration = read_calibration(proj.calibration)
    tables = {v: read_poses(proj.labels[v]) for v in proj.views}
    row = 0
    for session in proj.sessions:
        points, truths = _truth(proj, session)
        frames = proj.labeled_frames[session]
        assert points.points.shape == (24, 12, 3) and list(points.frames) == list(range(24))
        for view, truth in zip(proj.views, truths):
            projected = calibration[view].project(points.points)
            assert np.abs(truth.coords - projected).max() < 1e-3  # every frame, hidden too
            labels = tables[view].coords[row : row + len(frames)]
            seen = truth.likelihood[frames] == 1
            assert np.array_equal(np.isfinite(labels).all(-1), seen)
            assert np.abs(labels[seen] - projected[frames][seen]).max() < 1e-3
        row += len(frames)
    # The animal is a few cm tall and stays near the floor of a 300 mm arena.
    z = points.points[..., 2]
    assert z.min() > -1 and z.max() < 60 and np.abs(points.points[..., :2]).max() < 250


def test_triangulating_the_2d_truth_recovers_the_3d_truth(proj: MultiCameraProject):
    calibration = read_calibration(proj.calibration)
    for session in proj.sessions:
        points, truths = _truth(proj, session)
        coords = np.stack([t.coords for t in truths])
        inside = np.stack([t.keypoint_columns["outside"] == 0 for t in truths])
        result = triangulate(calibration, coords, inside.astype(float), outlier_px=None)
        ok = inside.sum(0) >= 2
        assert ok.mean() > 0.9
        assert np.abs(result.points[ok] - points.points[ok]).max() < 1e-3  # mm


def test_calibration_file_round_trips(proj: MultiCameraProject):
    text = proj.calibration.read_text()
    calibration = read_calibration(proj.calibration)
    assert calibration_toml(calibration) == text
    assert calibration.names == proj.views
    assert all(cam.size == (WIDTH, HEIGHT) for cam in calibration)
    assert all(np.abs(cam.distortion[:2]).max() > 0 for cam in calibration), "a real lens"
    loaded = load_calibration(proj.project_dir, load_settings(proj.project_dir))
    assert loaded is not None and loaded.names == proj.views


def test_hidden_keypoints_are_missing_in_the_labels(proj: MultiCameraProject):
    n_occluded = 0
    row = 0
    for session in proj.sessions:
        frames = proj.labeled_frames[session]
        for view in proj.views:
            truth = read_poses(proj.ground_truth(session, view)).select_frames(np.array(frames))
            labels = read_poses(proj.labels[view]).coords[row : row + len(frames)]
            occluded = truth.keypoint_columns["occluded"] == 1
            outside = truth.keypoint_columns["outside"] == 1
            assert np.array_equal(np.isnan(labels).any(-1), occluded | outside)
            assert np.array_equal(truth.likelihood == 0, occluded | outside)
            n_occluded += int(occluded.sum())
        row += len(frames)
    assert n_occluded > 0, "some keypoint should be hidden behind the body in some view"


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path):
    kw = {"cameras": 2, "n_videos": 1, "n_frames": 10, "n_labeled": 2, "size": (32, 48)}
    a = synthesize_multicamera_project(tmp_path / "a", seed=3, **kw)
    b = synthesize_multicamera_project(tmp_path / "b", seed=3, **kw)
    c = synthesize_multicamera_project(tmp_path / "c", seed=4, **kw)
    files_a, files_b = _all_files(a.project_dir), _all_files(b.project_dir)
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        assert_same(a.project_dir, b.project_dir, name, files_a[name], files_b[name])
    assert a.calibration.read_bytes() != c.calibration.read_bytes()
    truth_a = a.ground_truth_3d("session00").read_bytes()
    assert truth_a != c.ground_truth_3d("session00").read_bytes()


def _looking_down(distortion: tuple[float, ...] = (0.0,) * 5) -> CameraModel:
    """A wide 96 x 64 camera (focal 60 px) 200 mm above the origin looking straight down
    (image x along world x)."""
    rot = np.diag([1.0, -1.0, -1.0])
    return CameraModel(
        name="down",
        size=(96, 64),
        matrix=[[60.0, 0.0, 47.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]],
        distortion=distortion,
        rotation=rotation_vector(rot),
        translation=-rot @ np.array([0.0, 0.0, 200.0]),
    )


def _render(body: Body, camera: CameraModel):
    """(ids, zbuf, inside, visible) of ``body`` through ``camera``, no noise."""
    n = len(body.keypoints)
    width, height = camera.size
    canvas = np.zeros((n, height, width), dtype=np.float32)
    zbuf = np.full((n, height, width), -np.inf, dtype=np.float32)
    ids = np.zeros((n, height, width), dtype=np.int16)
    draw_camera_parts(canvas, zbuf, ids, camera_parts(body, camera), pixel_rays(camera), 0)
    inside, visible = keypoint_visibility(
        ids,
        zbuf,
        camera.project(body.keypoints),
        camera_depth(camera, body.keypoints),
        owner_table(body, range(body.keypoints.shape[1])),
        tolerance=1.0,
    )
    return ids, zbuf, inside, visible


def test_a_part_in_front_hides_a_keypoint_by_depth():
    """Frame 0: a ball 40 mm high right above a small ball on the floor, seen from above; the
    floor ball's keypoint is hidden. Frame 1: the high ball is moved aside; it is seen."""
    high = np.array([[0.0, 0.0, 40.0], [60.0, 0.0, 40.0]])
    low = np.zeros((2, 3))
    body = Body(
        parts=[
            Ellipsoid("low", low, np.tile(np.eye(3) * 5.0, (2, 1, 1)), 0.5),
            Ellipsoid("high", high, np.tile(np.eye(3) * 15.0, (2, 1, 1)), 0.9),
        ],
        keypoints=np.stack([low, high], axis=1),
        owners=[("low",), ("high",)],
    )
    ids, zbuf, inside, visible = _render(body, _looking_down())
    assert inside.all()
    assert visible.tolist() == [[False, True], [True, True]]
    assert ids[0, 31, 47] == 2 and ids[1, 31, 47] == 1  # the image centre shows the top ball
    # depth: the top of the ball nearest the camera, in mm below it (-z in camera frame)
    assert zbuf[0, 31, 47] == pytest.approx(-(200 - 55), abs=0.5)


def test_the_lens_distortion_is_in_the_picture():
    """A small ball near the image corner is drawn where the distorted projection puts it,
    pixels away from where a pinhole (no lens) would."""
    lens = (-0.3, 0.1, 0.0, 0.0, 0.0)
    camera = _looking_down(lens)
    centre = np.array([[120.0, 75.0, 0.0]])  # normalized (0.6, -0.375): near the corner
    body = Body([Ellipsoid("ball", centre, np.eye(3)[None] * 8.0, 0.9)], centre[:, None], [()])
    ids, *_ = _render(body, camera)
    rows, cols = np.nonzero(ids[0] == 1)
    drawn = np.array([cols.mean(), rows.mean()])
    distorted = camera.project(centre[0])
    pinhole = _looking_down().project(centre[0])
    assert np.linalg.norm(drawn - distorted) < 0.5
    assert np.linalg.norm(pinhole - distorted) > 4


def test_points_3d_reader_names_the_bad_line(tmp_path: Path):
    path = tmp_path / "s_3d.csv"
    path.write_text("frame,nose_x,nose_y,nose_z\n0,1.0,2.0,3.0\n1,1.0,oops,3.0\n")
    with pytest.raises(LabelsError, match=r"s_3d.csv line 3: could not convert"):
        read_points_3d(path)
    path.write_text("frame,nose_x,nose_y\n")
    with pytest.raises(LabelsError, match="line 1: expected 'frame' then"):
        read_points_3d(path)


def test_bad_arguments_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="cameras must be from 2 to 16"):
        synthesize_multicamera_project(tmp_path / "p", cameras=1, **TINY)
    with pytest.raises(ConfigError, match="n_labeled must be between 1 and"):
        synthesize_multicamera_project(tmp_path / "p", **{**TINY, "n_labeled": 41})
    assert not (tmp_path / "p").exists()


def test_cli(tmp_path: Path, capsys):
    out = tmp_path / "p"
    argv = ["synthesize", str(out), "--cameras", "2", "--videos", "1", "--frames", "8",
            "--labeled", "2", "--height", "32", "--width", "32", "--keypoints", "4"]  # fmt: skip
    assert main(argv) == 0
    assert "views: cam0, cam1" in capsys.readouterr().out
    assert read_poses(out / "CollectedData_cam1.csv").keypoints == select_keypoints(4)
    png = next((out / "labeled-data" / "session00_cam1").iterdir())
    assert Image.open(png).size == (32, 32)
    try:
        code = main(["synthesize", str(tmp_path / "q"), "--cameras", "2", "--views", "2"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "--views is for single-camera projects" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_overwrite_replaces_what_it_writes_and_keeps_the_rest(tmp_path: Path):
    kw = {"cameras": 2, "n_videos": 1, "n_frames": 8, "n_labeled": 2, "size": (32, 32)}
    a = synthesize_multicamera_project(tmp_path / "p", seed=1, **kw)
    (a.project_dir / "notes.txt").write_text("mine")
    first = a.ground_truth_3d("session00").read_bytes()
    with pytest.raises(ProjectError, match="not empty"):
        synthesize_multicamera_project(tmp_path / "p", seed=2, **kw)
    b = synthesize_multicamera_project(tmp_path / "p", seed=2, overwrite=True, **kw)
    assert b.ground_truth_3d("session00").read_bytes() != first
    assert (b.project_dir / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"], "no staging folder left"
