"""Multi-camera prediction: each view's 2D table, then each session triangulated into 3D.

The rig: ``vidpose synthesize --cameras 3`` at 64 x 64 px (the tiny model's input size), two
sessions ``session00`` and ``session01`` of 24 frames, "easy", with 2D and 3D ground truth.
The model: the folder's tiny model (trained 4 steps on the single-camera tiny project, whose
12 keypoints are the rig's) made a multi-camera one the way training makes it: ``views`` and
``calibration`` in its ``model.json`` and the rig's ``calibration.toml`` copied beside it.
Its predictions are near random; the triangulation itself is checked against the 3D ground
truth by feeding the session step the rig's exact 2D ground truth.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from vidpose.cli import main
from vidpose.geometry import read_calibration, triangulate_tables
from vidpose.io import read_points_3d, read_poses
from vidpose.model_dir import ModelDir, ModelDirError, ModelRecord
from vidpose.predict import batch
from vidpose.predict.batch import predict_batch
from vidpose.predict.ledger import Ledger
from vidpose.predict.predictor import load_model
from vidpose.predict.run import VideoResult, normalized_path
from vidpose.predict.sessions import (
    ModelCameras,
    Sessions,
    Settings3D,
    group_sessions,
    model_cameras,
)
from vidpose.synthetic import MultiCameraProject, synthesize_multicamera_project

CPU = ["--device", "cpu", "--no-progress", "--jobs", "2"]
FRAMES = 24


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> MultiCameraProject:
    return synthesize_multicamera_project(
        tmp_path_factory.mktemp("rig") / "rig",
        cameras=3,
        seed=3,
        n_labeled=2,
        n_videos=2,
        n_frames=FRAMES,
        size=(64, 64),
        difficulty="easy",
    )


def _multicamera(model: Path, dst: Path, rig: MultiCameraProject, calibration: bool = True):
    """A copy of ``model`` whose record lists the rig's views (and names its calibration)."""
    shutil.copytree(model, dst)
    md = ModelDir(dst)
    record = md.read_record()
    assert record.keypoints == rig.keypoints  # the tiny project's body is the rig's
    record.views = list(rig.views)
    if calibration:
        record.calibration = md.calibration.name
        shutil.copy(rig.calibration, md.calibration)
    md.write_record(record)
    return dst


@pytest.fixture(scope="module")
def mc_model(tiny_model, rig, tmp_path_factory) -> Path:
    return _multicamera(tiny_model, tmp_path_factory.mktemp("mc") / "m", rig)


def _videos(rig: MultiCameraProject, folder: Path, pairs: list[tuple[str, str]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for session, view in pairs:
        out.append(Path(shutil.copy(rig.video(session, view), folder)))
    return out


def _every(rig: MultiCameraProject) -> list[tuple[str, str]]:
    return [(s, v) for s in rig.sessions for v in rig.views]


def _report_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "predict_report.csv", newline="") as fh:
        return {Path(r["video"]).name: r for r in csv.DictReader(fh)}


# -- the model record -----------------------------------------------------------------------


def test_records_without_views_still_load_and_bad_ones_name_the_key(tiny_model, tmp_path):
    md = ModelDir(tiny_model)
    data = json.loads(md.record_path.read_text())
    assert "views" not in data or data["views"] == []
    record = md.read_record()
    assert record.views == [] and record.calibration is None
    assert md.read_calibration(record) is None
    model = load_model(tiny_model, device="cpu")
    assert model.views == [] and model.calibration is None

    bad = tmp_path / "model.json"
    for key, value, said in [
        ("views", "cam0", "'views' must be a list"),
        ("calibration", "../calibration.toml", "'calibration' must be a file name"),
    ]:
        with pytest.raises(ModelDirError, match=said):
            ModelRecord.from_dict({**data, key: value}, bad)


def test_the_loaded_model_carries_its_views_and_calibration(mc_model, rig):
    model = load_model(mc_model, device="cpu")
    assert model.views == rig.views
    want = read_calibration(rig.calibration)
    assert model.calibration.names == rig.views
    np.testing.assert_array_equal(model.calibration["cam1"].matrix, want["cam1"].matrix)


def test_a_named_calibration_that_is_missing_stops_the_batch_before_any_video(
    mc_model, rig, tmp_path
):
    broken = tmp_path / "broken"
    shutil.copytree(mc_model, broken)
    ModelDir(broken).calibration.unlink()
    out = tmp_path / "out"
    with pytest.raises(ModelDirError, match=r"calibration\.toml not found"):
        predict_batch(broken, _videos(rig, tmp_path / "v", [("session00", "cam0")]), out)
    assert not out.exists() or not list(out.glob("*.csv"))


# -- grouping --------------------------------------------------------------------------------


def test_videos_group_into_sessions_by_the_view_their_name_names():
    views = ["cam0", "cam1", "cam10"]
    plan = group_sessions(
        {
            "a": "day1_cam0",
            "b": "day1_cam1",
            "c": "cam10_day1",  # the view first; cam10 is not cam1
            "d": "cam0_day2",
            "e": "day2-cam1",
            "f": "overview",
            "g": "day1_cam0_copy",  # inside: session day1_copy
            "h": "day1.cam1",  # another spelling of day1's cam1
        },
        views,
    )
    assert plan.sessions == {
        "day1": {"cam0": "a", "cam1": "b", "cam10": "c"},
        "day2": {"cam0": "d", "cam1": "e"},
        "day1_copy": {"cam0": "g"},
    }
    assert plan.unnamed == ["f"]
    assert plan.duplicates == {"day1": ["h and b are both view cam1"]}
    assert plan.member_of["h"] == "day1"


# -- the session step on exact 2D input -----------------------------------------------------


def _session_step(rig, out: Path, tables: dict[str, Path], settings=None, ledger=None):
    """Run the batch's session step on ``tables`` (view -> a 2D table standing for that view's
    prediction of session00)."""
    cameras = ModelCameras(list(rig.views), read_calibration(rig.calibration))
    sessions = Sessions(out, cameras, settings or Settings3D(), ledger)
    videos = {
        f"/v/session00_{v}.mp4": (Path(f"/v/session00_{v}.mp4"), f"session00_{v}") for v in tables
    }
    sessions.plan(videos, {})
    for (key, (video, stem)), view in zip(videos.items(), tables, strict=True):
        sessions.video_done(key, VideoResult(video, stem, table=tables[view]))
    return sessions.finish()


def test_exact_2d_ground_truth_triangulates_to_the_3d_ground_truth(rig, tmp_path):
    tables = {v: rig.ground_truth("session00", v) for v in rig.views}
    ledger = Ledger(tmp_path)
    (res,) = _session_step(rig, tmp_path, tables, ledger=ledger)
    assert res.status == "ok" and res.views == rig.views and not res.missing
    got = read_points_3d(tmp_path / "session00_3d.csv")
    truth = read_points_3d(rig.ground_truth_3d("session00"))
    seen = np.stack([read_poses(t).likelihood == 1 for t in tables.values()], axis=-1)
    two = seen.sum(-1) >= 2
    assert got.views == rig.views and got.units == "mm" and got.keypoints == truth.keypoints
    np.testing.assert_array_equal(got.frames, np.arange(FRAMES))
    assert 0.5 < two.mean() < 1.0  # both cases occur
    assert np.abs(got.points[two] - truth.points[two]).max() < 1e-3  # mm
    assert np.isnan(got.points[~two]).all()
    np.testing.assert_array_equal(got.views_used, seen & two[..., None])
    assert np.nanmax(got.error_px) < 1e-3
    assert res.frames == FRAMES and res.summary["median_error_px"] < 1e-3
    (event,) = [e for e in ledger.events() if e["event"] == "triangulated"]
    assert event["session"] == "session00" and event["outputs"][0]["path"] == "session00_3d.csv"

    # again with the same inputs: kept; with one input changed: done again
    before = (tmp_path / "session00_3d.csv").stat().st_mtime_ns
    (again,) = _session_step(rig, tmp_path, tables, ledger=ledger)
    assert again.status == "skipped" and again.summary == res.summary
    assert (tmp_path / "session00_3d.csv").stat().st_mtime_ns == before
    (smoothed,) = _session_step(rig, tmp_path, tables, Settings3D(smooth=True), ledger=ledger)
    assert smoothed.status == "ok"  # other settings: triangulated again


def test_a_missing_view_triangulates_from_the_others_and_says_which(rig, tmp_path):
    tables = {v: rig.ground_truth("session00", v) for v in ("cam0", "cam2")}
    (res,) = _session_step(rig, tmp_path, tables)
    assert res.status == "partial" and res.views == ["cam0", "cam2"]
    assert res.missing == {"cam1": "no video of this view given"}
    assert "triangulated from cam0, cam2 only; view cam1: no video" in res.reason
    assert read_points_3d(res.table).views == ["cam0", "cam2"]

    (one,) = _session_step(rig, tmp_path / "one", {"cam1": tables["cam0"]})
    assert one.status == "incomplete" and one.table is None
    assert "1 of 3 views predicted" in one.reason and "view cam0: no video" in one.reason
    assert not (tmp_path / "one" / "session00_3d.csv").exists()


# -- vidpose predict with a multi-camera model ----------------------------------------------


def test_predict_writes_every_view_and_each_session_in_3d_and_resumes(mc_model, rig, tmp_path):
    videos = _videos(rig, tmp_path / "v", _every(rig))
    out = tmp_path / "out"
    # the tiny model's likelihoods are low: every 2D point is used (--min-confidence 0)
    args = ["predict", str(mc_model), str(tmp_path / "v"), "--out", str(out), *CPU]
    args += ["--min-confidence", "0", "--outlier-px", "1"]
    assert main(args) == 0
    for session, view in _every(rig):
        assert read_poses(out / f"{session}_{view}.csv").n_frames == FRAMES
    calibration = read_calibration(ModelDir(mc_model).calibration)
    for session in rig.sessions:
        got = read_points_3d(out / f"{session}_3d.csv")
        assert got.views == rig.views and got.keypoints == rig.keypoints
        assert got.points.shape == (FRAMES, len(rig.keypoints), 3)
        np.testing.assert_array_equal(got.frames, np.arange(FRAMES))
        assert np.isfinite(got.points).all(-1).mean() > 0.9 and (got.n_views >= 2).mean() > 0.9
        assert (got.n_views == 2).any()  # --outlier-px 1 dropped views
        # what was written is the triangulation of the 2D tables written
        tables = {v: out / f"{session}_{v}.csv" for v in rig.views}
        direct = triangulate_tables(calibration, tables, min_confidence=0, outlier_px=1).points
        assert got.equals(direct)
        assert not got.equals(triangulate_tables(calibration, tables, min_confidence=0).points)
    rows = _report_rows(out)
    assert {r["session"] for r in rows.values()} == set(rig.sessions)
    assert rows["session01_cam2.mp4"]["points3d"] == "session01_3d.csv"
    doc = json.loads((out / "predict_report.json").read_text())
    assert doc["views"] == rig.views
    assert [(s["session"], s["status"], s["points3d"]) for s in doc["sessions"]] == [
        (s, "ok", f"{s}_3d.csv") for s in rig.sessions
    ]
    assert doc["summary"]["sessions"]["ok"] == 2
    assert set(doc["sessions"][0]["triangulation"]) >= {"median_error_px", "disagree"}

    # again: every video skipped, every 3D table kept
    stamps = {s: (out / f"{s}_3d.csv").stat().st_mtime_ns for s in rig.sessions}
    assert main(args) == 0
    doc = json.loads((out / "predict_report.json").read_text())
    assert {v["status"] for v in doc["videos"]} == {"skipped"}
    assert [s["status"] for s in doc["sessions"]] == ["skipped", "skipped"]
    assert {s: (out / f"{s}_3d.csv").stat().st_mtime_ns for s in rig.sessions} == stamps

    # one view's video changed: that video and its session are done again, the other kept
    shutil.copy(rig.video("session01", "cam1"), videos[4])
    assert main(args) == 0
    doc = json.loads((out / "predict_report.json").read_text())
    assert [s["status"] for s in doc["sessions"]] == ["skipped", "ok"]
    assert (out / "session00_3d.csv").stat().st_mtime_ns == stamps["session00"]
    assert (out / "session01_3d.csv").stat().st_mtime_ns > stamps["session01"]


def test_sessions_lacking_views_or_frames_are_warned_about_and_their_2d_tables_written(
    mc_model, rig, tiny_video, tmp_path, capsys
):
    folder = tmp_path / "v"
    _videos(rig, folder, [("session00", "cam0"), ("session00", "cam1"), ("session01", "cam2")])
    # a third session whose cam2 video is longer (48 frames) than its others (24)
    for view in ("cam0", "cam1"):
        shutil.copy(rig.video("session00", view), folder / f"odd_{view}.mp4")
    shutil.copy(tiny_video, folder / "odd_cam2.mp4")
    shutil.copy(tiny_video, folder / "overview.mp4")  # names no view
    out = tmp_path / "out"
    assert main(["predict", str(mc_model), str(folder), "--out", str(out), *CPU]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert len(list(out.glob("*_cam?.csv"))) == 6 and (out / "overview.csv").exists()
    assert "warning: session 'session00': triangulated from cam0, cam1 only; view cam2: no " in text
    assert (
        "warning: session 'session01': no 3D table: 1 of 3 views predicted (view cam0: no video "
        "of this view given; view cam1: no video of this view given)" in text
    )
    assert "warning: session 'odd': no 3D table:" in text and "48 frames" in text
    assert "1 video(s) name no view of the model (cam0, cam1, cam2)" in text
    assert "overview.mp4; 2D tables only" in text
    assert "1 of 3 session(s) in 3D" in text
    assert sorted(p.name for p in out.glob("*_3d.csv")) == ["session00_3d.csv"]
    assert read_points_3d(out / "session00_3d.csv").views == ["cam0", "cam1"]
    rows = _report_rows(out)
    assert rows["session01_cam2.mp4"]["points3d"] == "" and rows["overview.mp4"]["session"] == ""
    doc = json.loads((out / "predict_report.json").read_text())
    status = {s["session"]: s["status"] for s in doc["sessions"]}
    assert status == {"session00": "partial", "session01": "incomplete", "odd": "failed"}


def test_a_model_with_views_but_no_calibration_writes_2d_tables_and_a_note(
    tiny_model, rig, tmp_path, capsys
):
    model = _multicamera(tiny_model, tmp_path / "m", rig, calibration=False)
    assert model_cameras(model).views == rig.views and not model_cameras(model).triangulates
    _videos(rig, tmp_path / "v", [("session00", v) for v in rig.views])
    out = tmp_path / "out"
    argv = ["predict", str(model), str(tmp_path / "v"), "--out", str(out), "--smooth3d", *CPU]
    assert main(argv) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "the model's views are cam0, cam1, cam2 but it has no calibration: 2D tables only" in text
    )
    assert "--smooth3d: nothing was triangulated" in text
    assert len(list(out.glob("session00_cam?.csv"))) == 3 and not list(out.glob("*_3d.csv"))
    doc = json.loads((out / "predict_report.json").read_text())
    assert "sessions" not in doc and "session" not in doc["videos"][0]


def test_a_multicamera_ensemble_triangulates_its_smoothed_tables(mc_model, rig, tmp_path):
    ens = tmp_path / "ens"
    for member in ("seed0", "seed1"):
        shutil.copytree(mc_model, ens / member)
    (ens / "ensemble.json").write_text(json.dumps({"members": ["seed0", "seed1"], "seeds": [0, 1]}))
    _videos(rig, tmp_path / "v", [("session00", v) for v in rig.views])
    out = tmp_path / "out"
    report = predict_batch(ens, [tmp_path / "v"], out, device="cpu", jobs=2, smooth3d=True)
    (session,) = report.sessions
    assert session.status == "ok" and session.table == out / "session00_3d.csv"
    got = read_points_3d(session.table)
    raw = triangulate_tables(
        read_calibration(rig.calibration), {v: out / f"session00_{v}.csv" for v in rig.views}
    )
    # smoothed in 3D: the same frames with a point, from the smoothed 2D tables
    np.testing.assert_array_equal(np.isfinite(got.points), np.isfinite(raw.points.points))
    np.testing.assert_array_equal(got.views_used, raw.points.views_used)
    assert (out / "seed0" / "session00_cam0.csv").exists()


def test_worker_processes_predict_the_views_and_the_driver_triangulates(
    mc_model, rig, tmp_path, monkeypatch
):
    """The local engine's one-process-per-GPU path on two CPU "devices": the session's 3D
    table is written by the driver once the workers' tables are in."""
    monkeypatch.setattr(batch, "_local_devices", lambda settings, workers: ["cpu", "cpu"])
    videos = _videos(rig, tmp_path / "v", [("session01", v) for v in rig.views])
    out = tmp_path / "out"
    report = predict_batch(mc_model, videos, out, device="cpu", jobs=1)
    assert report.workers == 2 and [r.status for r in report.videos] == ["ok"] * 3
    (session,) = report.sessions
    assert session.status == "ok"
    events = Ledger(out).events()
    (tri,) = [e for e in events if e["event"] == "triangulated"]
    finished = [i for i, e in enumerate(events) if e["event"] == "finished"]
    assert events.index(tri) > max(finished)  # after the session's last video
    assert [i["path"] for i in tri["inputs"]] == [f"session01_{v}.csv" for v in rig.views]
    assert read_points_3d(out / "session01_3d.csv").n_frames == FRAMES
    assert normalized_path(videos[0]) in {normalized_path(p) for p in session.videos.values()}
    assert asdict(ModelDir(mc_model).read_record())["views"] == rig.views


def test_a_model_trained_on_the_rig_predicts_its_sessions_in_3d_and_reports_them(
    rig, tmp_path, capsys
):
    """End to end with training's side of the interface: `vidpose train` on the multi-camera
    rig writes the views and the calibration's copy; predict and evaluate use them."""
    from vidpose.training import train

    overrides = [
        "model.backbone=resnet18",
        "model.pretrained=false",
        "model.heatmap_stride=2",
        "data.image_height=64",
        "data.image_width=64",
        "training.batch_size=4",
        "training.max_steps=2",
        "data.val_fraction=0.5",
        "data.test_fraction=0.25",
    ]
    model = train(rig.project_dir, overrides, model_dir=tmp_path / "m", progress=False).model_dir
    record = ModelDir(model).read_record()
    assert record.views == rig.views and record.calibration == "calibration.toml"
    out = tmp_path / "out"
    args = ["predict", str(model), str(rig.project_dir / "videos"), "--out", str(out), *CPU]
    assert main([*args, "--min-confidence", "0"]) == 0
    for session in rig.sessions:
        got = read_points_3d(out / f"{session}_3d.csv")
        assert got.views == rig.views and got.n_frames == FRAMES
        assert np.isfinite(got.points).all(-1).mean() > 0.9
    argv = ["evaluate", str(model), "--device", "cpu"]
    argv += [a for v in rig.views for a in ("--video", str(rig.video("session00", v)))]
    assert main(argv) == 0
    html = ModelDir(model).report.read_text()
    assert '<section id="labeled-3d">' in html and '<section id="session-3d-session00">' in html
