"""Shifted sessions: files and records, determinism, no change to the unshifted project, and
each shift factor changing the images the way it says while the ground truth follows.

Projects are tiny (96 x 96 px, 40 frames) and factor checks render 24 frames without encoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from same_files import assert_same

from vidpose.errors import ConfigError, ProjectError
from vidpose.io import read_poses
from vidpose.synthetic import (
    SHIFT_KINDS,
    SessionShift,
    SyntheticProject,
    read_sessions,
    render_video,
    synthesize_project,
)
from vidpose.synthetic.shift import MAX_MAGNITUDE, SHIFT_PRESETS, draw_shift
from vidpose.video import open_video

TINY = {"n_labeled": 8, "n_frames": 40, "size": (96, 96)}
SIZE = (96, 96)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> SyntheticProject:
    out = tmp_path_factory.mktemp("shifted") / "proj"
    return synthesize_project(out, seed=5, n_videos=1, shifted_sessions=2, **TINY)


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _frames(video: Path) -> np.ndarray:
    with open_video(video, reader="pyav") as reader:
        return np.concatenate([b.frames for b in reader.iter_batches(64)])


def test_shifted_sessions_have_videos_and_ground_truth_but_no_labels(shifted):
    p = shifted
    assert [v.name for v in p.videos] == ["session00.mp4", "shift00.mp4", "shift01.mp4"]
    assert [s.kind for s in p.sessions] == ["labeled", "shifted", "shifted"]
    assert [s.stem for s in p.shifted] == ["shift00", "shift01"]
    for s in p.sessions:
        assert s.video.parent.name == "videos" and s.video.is_file()
        assert _frames(s.video).shape[:3] == (40, 96, 96)
        gt, full = read_poses(s.ground_truth), read_poses(s.ground_truth_full)
        assert list(gt.frames) == list(range(40)) == list(full.frames)
        assert np.isfinite(full.coords).all()
        assert np.array_equal(gt.visible, full.likelihood == 1.0)
        hidden = full.keypoint_columns["occluded"] + full.keypoint_columns["outside"]
        assert np.array_equal(hidden == 1, ~gt.visible)
        assert gt.visible.mean() > 0.5
    assert sorted(d.name for d in (p.project_dir / "labeled-data").iterdir()) == ["session00"]
    labels = read_poses(p.labels)
    assert all(str(f).startswith("labeled-data/session00/") for f in labels.frames)
    assert p.sessions[0].labeled_frames == p.labeled_frames
    assert all(s.labeled_frames == [] for s in p.shifted)


def test_sessions_file_records_every_session_and_its_shift(shifted):
    p = shifted
    assert p.sessions_file == p.project_dir / "ground_truth" / "sessions.json"
    record = json.loads(p.sessions_file.read_text())
    assert record["seed"] == 5 and record["shift_magnitude"] == SHIFT_PRESETS["strong"]
    assert record["shift_kinds"] == list(SHIFT_KINDS)
    entry = record["sessions"]["shift01"]
    assert entry["kind"] == "shifted" and entry["video"] == "videos/shift01.mp4"
    assert entry["ground_truth_full"] == "ground_truth/shift01_full.csv"
    assert set(entry["factors"]) == set(SHIFT_KINDS)
    assert read_sessions(p.project_dir) == p.sessions
    assert p.sessions[0].shift == SessionShift()
    for s in p.shifted:
        f = s.shift
        # the strong magnitude, as the shift module documents it
        assert f.background_mix == 1.0
        assert abs(f.lamp_gain - 1) == pytest.approx(0.4) and f.lamp_gradient == 0.4
        assert max(abs(np.asarray(f.lamp_tint) - 1)) <= 0.12 + 1e-6
        assert np.mean(f.lamp_tint) == pytest.approx(1.0, abs=1e-5)
        assert abs(np.log(f.body_scale)) == pytest.approx(0.3, abs=1e-5)
        assert abs(f.contrast - 1) == pytest.approx(0.45)
        assert f.blur_sigma_px == pytest.approx(2.0 * 96 / 256)
        assert abs(f.camera_rotation_deg) == 8.0
        assert np.hypot(*f.camera_shift_px) == pytest.approx(0.08 * 96, abs=1e-4)
    assert p.shifted[0].shift != p.shifted[1].shift


def test_read_sessions_names_the_missing_file(tmp_path: Path):
    with pytest.raises(ProjectError, match="--shifted"):
        read_sessions(tmp_path)
    (tmp_path / "ground_truth").mkdir()
    (tmp_path / "ground_truth" / "sessions.json").write_text('{"sessions": {"a": {}}}')
    with pytest.raises(ProjectError, match="cannot be read"):
        read_sessions(tmp_path)


def test_same_seed_same_bytes_and_unshifted_files_unchanged(shifted, tmp_path: Path):
    """Shifted sessions are deterministic; adding them (or more videos) changes no other file,
    and a shifted session does not depend on how many unshifted videos there are."""
    files = _all_files(shifted.project_dir)
    again = _all_files(synthesize_project(tmp_path / "a", seed=5, n_videos=1,
                                          shifted_sessions=2, **TINY).project_dir)  # fmt: skip
    assert again.keys() == files.keys()
    for name in files:
        assert_same(tmp_path / "a", shifted.project_dir, name, again[name], files[name])

    plain = _all_files(synthesize_project(tmp_path / "b", seed=5, n_videos=1, **TINY).project_dir)
    assert "ground_truth/sessions.json" not in plain
    shift_files = {n for n in files if "shift" in n or n.endswith("sessions.json")}
    assert len(shift_files) == 2 * 3 + 1
    assert plain.keys() == files.keys() - shift_files
    for name in plain:
        assert_same(tmp_path / "b", shifted.project_dir, name, plain[name], files[name])

    more = synthesize_project(tmp_path / "c", seed=5, n_videos=2, shifted_sessions=1, **TINY)
    assert [v.name for v in more.videos] == ["session00.mp4", "session01.mp4", "shift00.mp4"]
    mine = _all_files(more.project_dir)
    for name in ("videos/shift00.mp4", "ground_truth/shift00_full.csv", "CollectedData.csv"):
        assert_same(more.project_dir, shifted.project_dir, name, mine[name], files[name])


def test_lamp_colour_tints_only_shifted_videos(shifted):
    grey = _frames(shifted.videos[0]).reshape(-1, 3).astype(float)
    assert np.abs(grey - grey.mean(axis=1, keepdims=True)).max() <= 2
    for s in shifted.shifted:
        means = _frames(s.video).reshape(-1, 3).astype(float).mean(axis=0)
        tint = np.asarray(s.shift.lamp_tint)
        # the brightest and the dimmest channel are the lamp's
        assert means.argmax() == tint.argmax() and means.argmin() == tint.argmin()
        assert means.max() / means.min() > 1.05


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shift": "huge"}, "mild, strong or a number"),
        ({"shift": MAX_MAGNITUDE + 0.5}, "mild, strong or a number"),
        ({"shift_kinds": "lighting,colour"}, "'colour' unknown; choose from background"),
        ({"shifted_sessions": -1}, "shifted_sessions"),
    ],
)
def test_bad_shift_arguments_are_refused_before_writing(tmp_path: Path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synthesize_project(tmp_path / "p", **{**TINY, "shifted_sessions": 1, **kwargs})
    assert not (tmp_path / "p").exists()


def test_draw_shift_magnitude_and_kinds():
    def draw(m, kinds=SHIFT_KINDS):
        return draw_shift(np.random.default_rng(3), m, kinds, (256, 256))

    assert draw(0.0).is_neutral
    assert draw(1.0, ()).is_neutral
    strong, mild = draw(1.0), draw(0.5)
    assert not strong.is_neutral
    assert mild.lamp_gain - 1 == pytest.approx((strong.lamp_gain - 1) / 2)
    assert mild.blur_sigma_px == pytest.approx(strong.blur_sigma_px / 2) == 1.0
    assert np.log(mild.camera_zoom) == pytest.approx(np.log(strong.camera_zoom) / 2, abs=1e-5)
    # a factor's draw does not depend on which other factors are on
    only = draw(1.0, ("lighting",))
    assert only.lamp_gain == strong.lamp_gain and only.lamp_tint == strong.lamp_tint
    assert only.body_scale == 1.0 and not only.moves_camera and only.background_mix == 0


# -- each factor, rendered without noise (clean) unless it is the blur ------------------------


def _render(shift: SessionShift | None = None, clean: bool = True, view: str = "top"):
    return render_video(11, 24, SIZE, (view,), "easy", clean=clean, shift=shift)


def _animal_pixels(r) -> float:
    """Mean count of pixels per frame where the animal (or an occluder) covers the arena."""
    return float(
        (np.abs(r.frames.astype(int) - r.background[None].astype(int)) > 10).sum((1, 2)).mean()
    )


def test_neutral_shift_renders_exactly_as_no_shift():
    a, b = _render(), _render(SessionShift(texture_seed=99))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.keypoints_px, b.keypoints_px)


@pytest.mark.parametrize("gain", [0.6, 1.4])
def test_lighting_gain_scales_brightness(gain: float):
    ratio = _render(SessionShift(lamp_gain=gain)).frames.mean() / _render().frames.mean()
    assert ratio == pytest.approx(gain, rel=0.05)


def test_lighting_gradient_brightens_one_side():
    base = _render().frames.astype(float)
    lit = _render(SessionShift(lamp_gradient=0.4, lamp_gradient_deg=0.0)).frames.astype(float)
    gain = lit.mean(axis=(0, 1)) / base.mean(axis=(0, 1))  # per column, left to right
    assert gain[:10].mean() < 0.75 and gain[-10:].mean() > 1.25


@pytest.mark.parametrize("scale", [0.74, 1.35])
def test_size_scales_the_animal_and_its_keypoints(scale: float):
    base, r = _render(), _render(SessionShift(body_scale=scale))
    area = _animal_pixels(r) / _animal_pixels(base)
    assert area == pytest.approx(scale**2, rel=0.2)
    n, t = r.names.index("nose"), r.names.index("tail_base")

    def length(v):
        return np.linalg.norm(v.keypoints_px[:, n] - v.keypoints_px[:, t], axis=1).mean()

    assert length(r) / length(base) == pytest.approx(scale, rel=0.05)


@pytest.mark.parametrize("contrast", [0.55, 1.45])
def test_contrast_scales_animal_against_floor(contrast: float):
    def spine_contrast(r) -> float:
        k = r.names.index("spine_mid")
        x, y = np.round(r.keypoints_px[:, k]).astype(int).T
        t = np.nonzero(r.visible[:, k])[0]
        return float((r.frames[t, y[t], x[t]].astype(float) - r.background[y[t], x[t]]).mean())

    ratio = spine_contrast(_render(SessionShift(contrast=contrast))) / spine_contrast(_render())
    assert ratio == pytest.approx(contrast, rel=0.1)


def test_blur_lowers_sharpness():
    def sharpness(r) -> float:
        f = r.frames.astype(float)
        return float((np.diff(f, axis=1) ** 2).mean() + (np.diff(f, axis=2) ** 2).mean())

    base = sharpness(_render(clean=False))
    mild = sharpness(_render(SessionShift(blur_sigma_px=0.75), clean=False))
    strong = sharpness(_render(SessionShift(blur_sigma_px=1.5), clean=False))
    assert strong < mild < 0.8 * base
    assert strong < 0.5 * base


def test_camera_moves_keypoints_exactly():
    base = _render()
    moved = _render(SessionShift(camera_shift_px=(10.0, -6.0)))
    assert np.allclose((moved.keypoints_px - base.keypoints_px).mean(axis=(0, 1)), [10, -6])
    r = _render(SessionShift(camera_zoom=1.1, camera_rotation_deg=90.0))
    c = (96 - 1) / 2
    # 90 degrees (x towards y) about the centre: (x, y) -> (c - 1.1 (y - c), c + 1.1 (x - c))
    x, y = base.keypoints_px[..., 0] - c, base.keypoints_px[..., 1] - c
    assert np.allclose(r.keypoints_px, np.stack([c - 1.1 * y, c + 1.1 * x], -1))
    # the arena edge comes into view where the camera moved away from it
    assert (_render(SessionShift(camera_shift_px=(20.0, 0.0))).background[:, :15] < 40).all()


def test_background_is_another_texture_at_the_same_level():
    base = _render().background.astype(float)
    other = _render(SessionShift(background_mix=1.0, texture_seed=3)).background.astype(float)
    half = _render(SessionShift(background_mix=0.5, texture_seed=3)).background.astype(float)
    assert abs(other.mean() - base.mean()) < 0.1 * base.mean()
    assert abs(np.corrcoef(other.ravel(), base.ravel())[0, 1]) < 0.3
    assert np.corrcoef(half.ravel(), base.ravel())[0, 1] > 0.5


@pytest.mark.parametrize("view", ["top", "side"])
def test_keypoints_lie_on_the_shifted_animal(view: str):
    """Background, lighting, size, blur and camera all shifted: a visible keypoint's pixel
    still shows the animal, not the empty arena. Without noise any change is the animal; the
    threshold is low because a dim lamp leaves a dark ear few grey levels above the floor
    (contrast is left out: it can make that ear match the floor)."""
    kinds = [k for k in SHIFT_KINDS if k != "contrast"]
    hits, names = [], []
    for seed in range(3):
        shift = draw_shift(np.random.default_rng(seed), 1.0, kinds, SIZE)
        r = render_video(seed, 24, SIZE, (view,), "easy", clean=True, shift=shift)
        assert r.inside.mean() > 0.9  # the camera moved, the animal is still mostly in view
        kp = np.round(r.keypoints_px).astype(int)
        t, k = np.nonzero(r.visible)
        on_frame = r.frames[t, kp[t, k, 1], kp[t, k, 0]].astype(int)
        on_empty = r.background[kp[t, k, 1], kp[t, k, 0]].astype(int)
        hits.append(np.abs(on_frame - on_empty) > 3)
        names.append(k)
    differs, k = np.concatenate(hits), np.concatenate(names)
    assert differs.mean() > 0.97
    assert min(differs[k == j].mean() for j in np.unique(k)) > 0.8
