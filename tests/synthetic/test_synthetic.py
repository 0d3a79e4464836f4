"""Synthetic projects: files, labels against ground truth, determinism, rendering geometry.

Projects here are tiny (96 x 96 px views, 40 frames, 8 labeled frames) so the module runs in a
few seconds; the full-size speed target is checked by hand, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from same_files import assert_same

from vidpose.errors import ConfigError, ProjectError
from vidpose.io import read_poses
from vidpose.project.settings import load_settings
from vidpose.synthetic import (
    CONTEXT_FRAMES,
    SyntheticProject,
    render_video,
    select_keypoints,
    synthesize_project,
)
from vidpose.synthetic.body import Body, Ellipsoid
from vidpose.synthetic.render import (
    Occluder,
    draw_occluders,
    draw_parts,
    keypoint_visibility,
    owner_table,
    project_parts,
    side_camera,
    top_camera,
)
from vidpose.video import open_video

TINY = {"n_labeled": 8, "n_frames": 40, "size": (96, 96)}


@pytest.fixture(scope="module")
def side_project(tmp_path_factory) -> SyntheticProject:
    """Side view, hard: the far paws and occluders hide keypoints, so labels have gaps."""
    out = tmp_path_factory.mktemp("side") / "proj"
    return synthesize_project(out, seed=3, n_videos=2, view="side", difficulty="hard", **TINY)


@pytest.fixture(scope="module")
def two_view_project(tmp_path_factory) -> SyntheticProject:
    out = tmp_path_factory.mktemp("two") / "proj"
    return synthesize_project(out, seed=4, n_videos=1, views=2, **TINY)


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_project_layout(side_project: SyntheticProject):
    p = side_project
    assert [v.name for v in p.videos] == ["session00.mp4", "session01.mp4"]
    assert all(v.is_file() for v in p.videos)
    assert [g.name for g in p.ground_truth] == ["session00.csv", "session01.csv"]
    assert [g.name for g in p.ground_truth_full] == ["session00_full.csv", "session01_full.csv"]
    assert len(p.labeled_frames) == 8 and len(set(p.labeled_frames)) == 8
    assert all(CONTEXT_FRAMES <= t < 40 - CONTEXT_FRAMES for t in p.labeled_frames)

    labels = read_poses(p.labels)
    assert labels.is_labels
    assert labels.keypoints == p.keypoints == select_keypoints(None)
    assert list(labels.frames) == [
        f"labeled-data/session00/img{t:05d}.png" for t in p.labeled_frames
    ]
    pngs = {f.name for f in (p.project_dir / "labeled-data" / "session00").iterdir()}
    wanted = {
        f"img{t + d:05d}.png"
        for t in p.labeled_frames
        for d in range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)
    }
    assert pngs == wanted

    with open_video(p.videos[0], reader="pyav") as reader:
        assert reader.info.n_frames == 40
        assert (reader.info.height, reader.info.width) == (96, 96)


def test_labels_equal_ground_truth_at_labeled_frames(side_project: SyntheticProject):
    labels = read_poses(side_project.labels)
    truth = read_poses(side_project.ground_truth[0])
    rows = truth.select_frames(np.array(side_project.labeled_frames))
    assert np.array_equal(labels.coords, rows.coords, equal_nan=True)


def test_hidden_keypoints_are_missing(side_project: SyntheticProject):
    labels = read_poses(side_project.labels)
    full = read_poses(side_project.ground_truth_full[0]).select_frames(
        np.array(side_project.labeled_frames)
    )
    hidden = (full.keypoint_columns["occluded"] == 1) | (full.keypoint_columns["outside"] == 1)
    assert hidden.any(), "the side view should hide some keypoints (far paws, occluders)"
    assert np.array_equal(~labels.visible, hidden)
    # The true position of hidden keypoints is kept in the full table.
    assert np.isfinite(full.coords).all()


def test_ground_truth_tables_agree(side_project: SyntheticProject):
    for short, long in zip(side_project.ground_truth, side_project.ground_truth_full):
        gt, full = read_poses(short), read_poses(long)
        assert not gt.is_labels and list(gt.frames) == list(range(40))
        seen = full.likelihood == 1.0
        assert np.array_equal(gt.visible, seen)
        assert np.array_equal(gt.likelihood[seen], np.ones(seen.sum()))
        assert np.isnan(gt.likelihood[~seen]).all()
        assert np.array_equal(gt.coords[seen], full.coords[seen])
        hidden = full.keypoint_columns["occluded"] + full.keypoint_columns["outside"]
        assert np.array_equal(hidden == 1, ~seen)


def test_pngs_are_the_decoded_video_frames(side_project: SyntheticProject):
    folder = side_project.project_dir / "labeled-data" / "session00"
    with open_video(side_project.videos[0], reader="pyav") as reader:
        frames = np.concatenate([b.frames for b in reader.iter_batches(16)])
    for png in sorted(folder.glob("img*.png")):
        t = int(png.stem[3:])
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), frames[t]), png.name


def test_settings_parse_and_name_known_keypoints(side_project: SyntheticProject):
    settings = load_settings(side_project.project_dir)
    names = set(side_project.keypoints)
    assert {n for _, n in settings.referenced_keypoints()} <= names
    assert ("ear_left", "ear_right") in settings.flip_pairs
    assert ("nose", "ear_left") in settings.skeleton
    assert settings.pca_keypoints and "tail_tip" not in settings.pca_keypoints
    assert settings.views == []


def test_two_views_side_by_side(two_view_project: SyntheticProject):
    p = two_view_project
    settings = load_settings(p.project_dir)
    assert p.views == settings.views == ["top", "side"]
    base = select_keypoints(None)
    assert p.keypoints == [f"{k}_top" for k in base] + [f"{k}_side" for k in base]
    assert settings.view_matches == [[f"{k}_top", f"{k}_side"] for k in base]
    assert settings.flip_pairs == []
    with open_video(p.videos[0], reader="pyav") as reader:
        assert (reader.info.height, reader.info.width) == (96, 192)
    truth = read_poses(p.ground_truth_full[0])
    x = truth.coords[..., 0]
    k = len(base)
    # Each view's keypoints sit in its own half (allowing for parts leaving the frame).
    assert np.median(x[:, :k]) < 96 <= np.median(x[:, k:])
    # Both views show the same animal: the top view's x is the side view's x shifted by 96.
    assert np.allclose(x[:, k:] - 96, x[:, :k])


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path):
    kw = {**TINY, "n_videos": 1, "n_frames": 24, "n_labeled": 4}
    a = synthesize_project(tmp_path / "a", seed=7, **kw)
    b = synthesize_project(tmp_path / "b", seed=7, **kw)
    c = synthesize_project(tmp_path / "c", seed=8, **kw)
    files_a, files_b = _all_files(a.project_dir), _all_files(b.project_dir)
    assert files_a.keys() == files_b.keys()
    for name in files_a:
        assert_same(a.project_dir, b.project_dir, name, files_a[name], files_b[name])
    assert a.labels.read_bytes() != c.labels.read_bytes()
    assert a.ground_truth[0].read_bytes() != c.ground_truth[0].read_bytes()


def test_keypoint_subset(tmp_path: Path):
    p = synthesize_project(tmp_path / "p", seed=1, n_keypoints=4, n_videos=1, **TINY)
    assert p.keypoints == ["nose", "ear_left", "ear_right", "tail_base"]
    assert read_poses(p.labels).keypoints == p.keypoints
    settings = load_settings(p.project_dir)
    assert settings.flip_pairs == [("ear_left", "ear_right")]
    assert {n for _, n in settings.referenced_keypoints()} <= set(p.keypoints)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_labeled": 37}, ConfigError),  # 40 frames leave room for 36 with context
        ({"size": (95, 96)}, ConfigError),
        ({"view": "front"}, ConfigError),
        ({"difficulty": "extreme"}, ConfigError),
        ({"n_keypoints": 13}, ConfigError),
        ({"views": 3}, ConfigError),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs, error):
    args = {**TINY, **kwargs}
    with pytest.raises(error):
        synthesize_project(tmp_path / "p", **args)
    assert not (tmp_path / "p").exists()


def test_refuses_non_empty_folder(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not empty"):
        synthesize_project(tmp_path, **TINY)


@pytest.mark.parametrize("view", ["top", "side"])
def test_keypoints_lie_on_the_animal(view: str):
    """Without noise, a visible keypoint's pixel shows the animal, not the empty arena."""
    r = render_video(11, 60, (128, 128), (view,), "easy", clean=True)
    kp = np.round(r.keypoints_px).astype(int)
    t, k = np.nonzero(r.visible)
    on_frame = r.frames[t, kp[t, k, 1], kp[t, k, 0]].astype(int)
    on_empty = r.background[kp[t, k, 1], kp[t, k, 0]].astype(int)
    differs = np.abs(on_frame - on_empty) > 10
    assert differs.mean() > 0.97
    # Per keypoint too, so that no body part is drawn away from its keypoint.
    per_kp = np.array([differs[k == j].mean() for j in range(len(r.names)) if (k == j).any()])
    assert per_kp.min() > 0.8


def test_animal_moves_smoothly_inside_the_arena():
    r = render_video(5, 300, (96, 96), ("top",), "easy", clean=True)
    spine = r.keypoints_px[:, r.names.index("spine_mid")]
    assert ((spine >= 0) & (spine < 96)).all()
    step = np.linalg.norm(np.diff(spine, axis=0), axis=1)
    assert step.max() < 0.1 * 96
    assert np.ptp(spine, axis=0).min() > 20, "the animal should roam, not sit still"


def _one_ball_body(n: int) -> Body:
    centre = np.tile([40.0, 30.0, 5.0], (n, 1))
    axes = np.tile(np.eye(3) * 6.0, (n, 1, 1))
    return Body(
        parts=[Ellipsoid("ball", centre, axes, 0.9)],
        keypoints=np.stack([centre, centre + np.array([20.0, 0.0, 0.0])], axis=1),
        owners=[("ball",), ("ball",)],
    )


def test_occluder_hides_exactly_the_keypoints_it_covers():
    n, h, w = 3, 64, 96
    body = _one_ball_body(n)
    camera = top_camera()
    canvas = np.full((n, h, w), 0.2, dtype=np.float32)
    zbuf = np.full((n, h, w), -np.inf, dtype=np.float32)
    ids = np.zeros((n, h, w), dtype=np.int16)
    draw_parts(canvas, zbuf, ids, project_parts(body, camera), 0)
    # A square over the ball at frame 1 only.
    square = Occluder(1, 2, np.array([40.0, 30.0]), np.zeros(2), (8.0, 8.0), 0.0, 0.0, 8.0, 0.5)
    draw_occluders(canvas, zbuf, ids, [square], 0, occluder_id=2)
    inside, visible = keypoint_visibility(
        ids,
        zbuf,
        camera.project(body.keypoints),
        camera.depth(body.keypoints),
        owner_table(body, [0, 1]),
        tolerance=0.5,
    )
    assert inside.all()
    assert visible.tolist() == [[True, True], [False, True], [True, True]]
    assert canvas[1, 30, 40] == pytest.approx(0.5, abs=0.08)
    assert canvas[0, 30, 40] == pytest.approx(0.9, abs=0.01)  # the ball's most lit point


def test_side_camera_hides_the_far_side():
    """A point behind the ball (seen from the side camera) is hidden; one on top is not."""
    n = 1
    camera = side_camera(64, body_px=20.0)
    ball = _one_ball_body(n).parts[0]
    behind = ball.center - 8.0 * camera.toward  # further from the camera, same pixel
    on_top = ball.center + 7.0 * camera.toward
    body = Body(parts=[ball], keypoints=np.stack([behind, on_top], 1), owners=[(), ()])
    canvas = np.zeros((n, 64, 96), dtype=np.float32)
    zbuf = np.full((n, 64, 96), -np.inf, dtype=np.float32)
    ids = np.zeros((n, 64, 96), dtype=np.int16)
    draw_parts(canvas, zbuf, ids, project_parts(body, camera), 0)
    _, visible = keypoint_visibility(
        ids,
        zbuf,
        camera.project(body.keypoints),
        camera.depth(body.keypoints),
        owner_table(body, [0, 1]),
        tolerance=0.5,
    )
    assert visible.tolist() == [[False, True]]
