"""``vidpose evaluate`` for a multi-camera model: the labeled frames and the video sessions in 3D.

The rig: ``vidpose synthesize --cameras 3`` at 64 x 64 px, two sessions of 24 frames, 6
labeled instants (each in every view), "easy". Its labels are the exact projections of the
3D ground truth where a labeller would see the keypoint, so labels triangulate back to the 3D
truth. The model: a resnet18 trained 2 steps on the single-camera tiny project (the same 12
keypoints), made a multi-camera model of the rig as training makes one (``views``,
``calibration``, ``project`` in ``model.json``, the calibration copied beside it). Its
``predictions_labeled.csv`` and video tables are given exactly (labels and 2D ground truth,
one view's keypoint moved 40 px), so the 3D numbers are known.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from vidpose.cli import main
from vidpose.geometry import read_calibration, triangulate_tables
from vidpose.io import Poses, read_points_3d, read_poses, write_poses
from vidpose.io.points3d import write_points_3d
from vidpose.model_dir import LP_SET_NAMES, ModelDir
from vidpose.project import load_project
from vidpose.synthetic import MultiCameraProject, synthesize_multicamera_project
from vidpose.training import train
from vidpose.viz.evaluate import evaluate, prediction_tables
from vidpose.viz.evaluate3d import instant_rows, triangulate_labeled

MOVED_PX = 40.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> MultiCameraProject:
    return synthesize_multicamera_project(
        tmp_path_factory.mktemp("rig") / "rig",
        cameras=3,
        seed=3,
        n_labeled=6,
        n_videos=2,
        n_frames=24,
        size=(64, 64),
        difficulty="easy",
    )


@pytest.fixture(scope="module")
def model_src(tiny_project_src, rig, tmp_path_factory) -> Path:
    """A tiny model made a multi-camera model of ``rig`` (read-only: copy it)."""
    root = tmp_path_factory.mktemp("mc_eval")
    res = train(
        tiny_project_src,
        [
            "model.backbone=resnet18",
            "model.pretrained=false",
            "model.heatmap_stride=2",
            "data.image_height=64",
            "data.image_width=64",
            "training.batch_size=4",
            "training.max_steps=2",
        ],
        model_dir=root / "model",
        progress=False,
    )
    md = ModelDir(res.model_dir)
    record = md.read_record()
    assert record.keypoints == rig.keypoints
    record.views, record.calibration = list(rig.views), md.calibration.name
    record.project = str(rig.project_dir)
    record.skeleton = [list(e) for e in load_project(rig.project_dir).settings.skeleton]
    shutil.copy(rig.calibration, md.calibration)
    md.write_record(record)
    return md.path


@pytest.fixture
def model(model_src, tmp_path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(model_src, dst)
    return dst


def _layout_arrays(rig: MultiCameraProject):
    """View-major label rows of the rig, built from its tables: (labels (N, K, 2), view of
    each row, labeled instant of each row)."""
    tables = [read_poses(rig.labels[v]) for v in rig.views]
    g = tables[0].n_frames
    coords = np.concatenate([t.coords for t in tables])
    return coords, np.repeat(np.arange(len(tables)), g), np.tile(np.arange(g), len(tables))


def test_instant_rows_keeps_instants_with_one_row_in_every_view():
    views = np.array([0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 1, 2, 0, 2, 2, 3])  # 1: no view 1; 2: twice in view 1; 3: no view 0
    np.testing.assert_array_equal(instant_rows(views, groups, 2), [[0, 3]])


def test_labels_triangulate_to_the_truth_and_an_outlier_view_is_dropped(rig):
    labels, view_of_row, group_of_row = _layout_arrays(rig)
    calibration = read_calibration(rig.calibration)
    split = np.where(group_of_row % 2 == 0, "train", "test").astype(object)
    predicted = labels.copy()
    # move, in cam1, every keypoint labeled in all 3 views of the first instant by 40 px
    rows = instant_rows(view_of_row, group_of_row, 3)
    seen3 = np.isfinite(labels[rows[0]]).all(-1).all(0)  # (K,)
    assert seen3.sum() >= 3
    predicted[rows[0, 1], seen3, 0] += MOVED_PX
    res = triangulate_labeled(
        calibration, view_of_row, group_of_row, predicted, np.ones(labels.shape[:2]), labels, split
    )
    assert res.views == rig.views and res.rows.shape == (6, 3) and res.incomplete == 0
    assert list(res.split) == ["train", "test"] * 3
    # the labels' triangulation is the 3D truth at the labeled frames
    key = [read_poses(rig.labels["cam0"]).frames[r] for r in rows[:, 0]]
    truth = {}
    for s in rig.sessions:
        t = read_points_3d(rig.ground_truth_3d(s))
        for f in rig.labeled_frames[s]:
            truth[f"labeled-data/{s}_cam0/img{f:05d}.png"] = t.points[f]
    want = np.stack([truth[str(k)] for k in key])
    has = np.isfinite(res.labels).all(-1)
    assert has.mean() > 0.5 and np.abs(res.labels[has] - want[has]).max() < 1e-3
    # exact predictions: no 3D error, no reprojection error
    assert np.nanmax(res.error[1:]) < 1e-6 and np.nanmax(res.reprojection_px[1:]) < 1e-3
    # the moved view is an outlier beyond 20 px: dropped, the point stays right
    assert np.nanmax(res.error[0, seen3]) < 1e-6
    assert np.nanmax(res.error_2d[1, 0, seen3]) == pytest.approx(MOVED_PX, abs=1e-6)
    assert np.nanmax(res.error_2d_triangulated[1, 0, seen3]) < 1e-3
    assert res.units == "mm"


def _labeled_predictions(model: Path, rig: MultiCameraProject) -> np.ndarray:
    """Write predictions_labeled.csv: every label row's label (likelihood 0.9), cam1's
    first-instant keypoints that all 3 views label moved 40 px (an outlier view, dropped);
    split train/test by instant. Returns the keypoints moved."""
    project = load_project(rig.project_dir)
    labels = project.labels
    coords = labels.coords.copy()
    layout = project.cameras
    groups = layout.group_of_row
    seen3 = np.isfinite(labels.coords[groups == 0]).all(-1).all(0)
    assert seen3.sum() >= 3
    (first,) = np.flatnonzero((layout.view_of_row == rig.views.index("cam1")) & (groups == 0))
    coords[first, seen3, 0] += MOVED_PX
    split = np.where(groups % 2 == 0, "train", "test")
    preds = Poses(
        coords=np.where(np.isfinite(coords), coords, 32.0),  # a network predicts every keypoint
        keypoints=labels.keypoints,
        frames=labels.frames,
        likelihood=np.where(np.isfinite(labels.coords).all(-1), 0.9, 0.1),
        scorer="vidpose",
        frame_columns={"set": np.asarray([LP_SET_NAMES[s] for s in split], dtype=object)},
    )
    write_poses(preds, ModelDir(model).labeled_predictions)
    return seen3


def _sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.S))


def test_the_report_shows_labeled_frames_and_a_video_session_in_3d(model, rig, tmp_path):
    _labeled_predictions(model, rig)
    # the session's per-view 2D tables: exact (the 2D ground truth)
    tables = [rig.ground_truth("session00", v) for v in rig.views]
    res = evaluate(model, tables, device="cpu")
    html = res.report.read_text()
    sections = _sections(html)
    assert {"labeled", "labeled-3d", "session-3d-session00", "model"} <= set(sections)
    assert list(sections).index("labeled-3d") == list(sections).index("labeled") + 1
    lab3d = sections["labeled-3d"]
    # every instant's 3D error is 0 (the moved view is dropped): the KPIs say so
    assert re.search(r"<b>0\.00 mm</b><span>test mean 3D error \(3 instants\)", lab3d)
    assert re.search(r"<b>0\.00 mm</b><span>train mean 3D error \(3 instants\)", lab3d)
    assert "held-out median 2D error: raw → triangulated and reprojected" in lab3d
    assert "3D error per keypoint" in lab3d and "<img" in lab3d
    session = sections["session-3d-session00"]
    assert "<b>24</b><span>frames</span>" in session and "<img" in session
    assert re.search(r"<b>0\.00 px</b><span>median reprojection error", session)
    assert "Triangulated here from the views" in session
    for name in ("labeled_3d_worst", "session_session00_3d"):
        png = ModelDir(model).evaluation / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in html


def test_the_3d_table_written_beside_the_views_is_shown_and_not_read_as_2d(model, rig, capsys):
    _labeled_predictions(model, rig)
    videos = ModelDir(model).videos
    videos.mkdir(exist_ok=True)
    for v in rig.views:
        shutil.copy(rig.ground_truth("session01", v), videos / f"session01_{v}.csv")
    written = triangulate_tables(
        read_calibration(rig.calibration), {v: videos / f"session01_{v}.csv" for v in rig.views}
    ).points
    write_points_3d(written, videos / "session01_3d.csv")
    assert [p.name for p in prediction_tables(videos)] == [f"session01_{v}.csv" for v in rig.views]
    assert main(["evaluate", str(model), "--device", "cpu"]) == 0
    session = _sections(ModelDir(model).report.read_text())["session-3d-session01"]
    assert "session01_3d.csv (written by `vidpose predict`)" in session


def test_a_single_camera_model_gets_no_3d_section(model, rig, tiny_project_src):
    md = ModelDir(model)
    record = md.read_record()
    record.views, record.calibration = [], None
    record.project = str(tiny_project_src)  # its own predictions_labeled.csv is of this one
    md.write_record(record)
    res = evaluate(model, [rig.ground_truth("session00", v) for v in rig.views], device="cpu")
    sections = _sections(res.report.read_text())
    assert not [s for s in sections if "3d" in s]
    assert "train mean error" in sections["labeled"]


def test_without_the_models_calibration_labeled_frames_use_the_projects(model, rig):
    md = ModelDir(model)
    record = md.read_record()
    record.calibration = None
    md.write_record(record)
    md.calibration.unlink()
    _labeled_predictions(model, rig)
    res = evaluate(model, [rig.ground_truth("session00", v) for v in rig.views], device="cpu")
    sections = _sections(res.report.read_text())
    assert re.search(r"<b>0\.00 mm</b><span>test mean 3D error", sections["labeled-3d"])
    assert "session-3d-session00" not in sections  # videos are triangulated with the model's
