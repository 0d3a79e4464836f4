"""label_video and ``vidpose label-video`` on a tiny synthetic video.

The video: 20 frames of 64 x 48 (W x H) uniform mid-grey (128), 10 fps, H.264 crf 0. The
predictions: 3 keypoints ("nose", "ear", "tail"; tab10 blue, orange, green) with
``nose = (10 + i, 20)`` in frame ``i`` (it moves one pixel a frame), ``ear = (30, 30)`` and
``tail = (50, 30)``, every likelihood 1.0 unless a test lowers it. Markers are drawn with radius
4 (so 4:2:0 chroma subsampling keeps the centre colour) and encoded at crf 0; a pixel counts as
a colour when every channel is within ``TOL``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidpose.cli import main
from vidpose.errors import LabelsError, ProjectError
from vidpose.io import Poses, write_poses
from vidpose.video import open_video, probe_video
from vidpose.video.writer import VideoWriter
from vidpose.viz.colors import keypoint_colors_u8
from vidpose.viz.labeled_video import find_settings_file, label_video, load_skeleton

N, H, W = 20, 48, 64
GREY = 128
KEYPOINTS = ["nose", "ear", "tail"]
COLORS = keypoint_colors_u8(KEYPOINTS).astype(int)
TOL = 24
R = 4


@pytest.fixture
def grey_video(tmp_path) -> Path:
    path = tmp_path / "videos" / "grey.mp4"
    path.parent.mkdir()
    with VideoWriter(path, fps=10, width=W, height=H, crf=0) as w:
        w.write(np.full((N, H, W, 3), GREY, dtype=np.uint8))
    return path


def make_poses(n: int = N, shift: tuple[float, float] = (0.0, 0.0), scorer="model") -> Poses:
    """The predictions described in the module docstring, shifted by ``shift`` px."""
    coords = np.zeros((n, 3, 2))
    coords[:, 0] = np.stack([10 + np.arange(n), np.full(n, 20)], axis=1)
    coords[:, 1] = (30, 30)
    coords[:, 2] = (50, 30)
    coords += shift
    return Poses(
        coords=coords,
        keypoints=KEYPOINTS,
        frames=np.arange(n),
        likelihood=np.ones((n, 3)),
        scorer=scorer,
    )


def read_all(path: Path) -> np.ndarray:
    with open_video(path, reader="pyav") as r:
        return r.read_clip(0, r.info.n_frames).frames.astype(int)


def is_color(pixel: np.ndarray, color) -> bool:
    return bool(np.all(np.abs(pixel - np.asarray(color, dtype=int)) <= TOL))


def test_frame_count_size_and_keypoint_pixels(grey_video, tmp_path):
    out = tmp_path / "labeled.mp4"
    stats = label_video([make_poses()], grey_video, out, marker_size=R, crf=0)
    info = probe_video(out)
    assert (stats.frames, info.n_frames, info.width, info.height) == (N, N, W, H)
    assert info.fps == pytest.approx(10)
    frames = read_all(out)
    for i in (0, 7, N - 1):
        assert is_color(frames[i, 20, 10 + i], COLORS[0]), i  # nose moves with i
        assert is_color(frames[i, 30, 30], COLORS[1])
        assert is_color(frames[i, 30, 50], COLORS[2])
        assert is_color(frames[i, 40, 10], GREY)  # background untouched
        assert is_color(frames[i, 1, 1], (0, 0, 0))  # frame counter box


def test_low_confidence_hidden_or_hollow(grey_video, tmp_path):
    poses = make_poses()
    poses.likelihood[:, 1] = 0.5  # ear
    poses.coords[:, 2] = np.nan  # tail: never drawn
    hide, hollow = tmp_path / "hide.mp4", tmp_path / "hollow.mp4"
    label_video(poses, grey_video, hide, low_confidence="hide", marker_size=R, crf=0)
    label_video(poses, grey_video, hollow, low_confidence="hollow", marker_size=R, crf=0)
    hidden, rings = read_all(hide)[5], read_all(hollow)[5]
    assert is_color(hidden[30, 30], GREY)
    assert np.abs(hidden[24:37, 24:37] - GREY).max() <= TOL  # nothing around the ear either
    assert is_color(rings[30, 30], GREY)  # a ring: the centre stays background
    assert np.abs(rings[24:37, 24:37] - GREY).max() > 60  # ...but the ring is drawn
    for f in (hidden, rings):
        assert np.abs(f[22:39, 42:59] - GREY).max() <= TOL  # NaN tail
        assert is_color(f[20, 15], COLORS[0])  # confident nose as usual


def test_two_prediction_files_and_legend(grey_video, tmp_path):
    out = tmp_path / "both.mp4"
    a, b = make_poses(scorer="model"), make_poses(shift=(0, 15), scorer="smoothed")
    label_video([a, b], grey_video, out, marker_size=R, crf=0)
    frame = read_all(out)[3]
    assert is_color(frame[20, 13], COLORS[0])
    assert is_color(frame[35, 13], COLORS[0])
    assert is_color(frame[45, 30], COLORS[1])
    assert np.abs(frame[:8, -8:] - GREY).max() > 60  # legend, top right


def test_skeleton_only_between_confident_points(grey_video, tmp_path):
    poses = make_poses()
    poses.likelihood[10:, 2] = 0.1  # tail unsure from frame 10 on
    out = tmp_path / "skeleton.mp4"
    label_video(poses, grey_video, out, skeleton=[("ear", "tail")], marker_size=6, crf=0)
    frames = read_all(out)
    assert np.abs(frames[5, 30, 40] - GREY).max() > 40  # edge drawn midway
    assert is_color(frames[15, 30, 40], GREY)  # no edge to an unsure point


def test_predictions_covering_fewer_frames(grey_video, tmp_path):
    out = tmp_path / "partial.mp4"
    label_video(make_poses(n=10), grey_video, out, marker_size=R, crf=0, frame_counter=False)
    frames = read_all(out)
    assert len(frames) == N
    assert is_color(frames[5, 1, 1], GREY)  # no frame counter
    assert is_color(frames[5, 30, 30], COLORS[1])
    assert is_color(frames[15, 30, 30], GREY)


def test_bad_inputs_name_the_file(grey_video, tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(LabelsError, match=r"missing\.csv"):
        label_video(tmp_path / "missing.csv", grey_video, out)
    other = make_poses()
    other.keypoints = ["nose", "ear", "paw"]
    with pytest.raises(LabelsError, match=r"smoothed: keypoints differ .*'tail'.*'paw'"):
        label_video([make_poses(), Poses(other.coords, other.keypoints, other.frames,
                     other.likelihood, scorer="smoothed")], grey_video, out)  # fmt: skip
    with pytest.raises(LabelsError, match=r"frame index 20 is outside grey\.mp4"):
        label_video(make_poses(n=26), grey_video, out)
    with pytest.raises(ProjectError, match=r"\['paw'\] not in model"):
        label_video(make_poses(), grey_video, out, skeleton=[("nose", "paw")])
    assert not out.exists()


def test_cli_finds_the_project_skeleton(grey_video, tmp_path, capsys):
    project = grey_video.parent.parent
    (project / "vidpose.yaml").write_text("skeleton:\n  - [ear, tail]\n")
    pred = project / "grey_pred.csv"
    write_poses(make_poses(), pred)
    assert find_settings_file([grey_video]) == project / "vidpose.yaml"
    assert load_skeleton(project) == [("ear", "tail")]
    out = tmp_path / "cli.mp4"
    argv = ["label-video", str(pred), str(grey_video), "--out", str(out), "--skeleton"]
    assert main([*argv, "--marker-size", "6", "--crf", "0"]) == 0
    assert "frames/s" in capsys.readouterr().out
    assert np.abs(read_all(out)[5, 30, 40] - GREY).max() > 40  # the yaml's edge
    assert main(["label-video", str(pred), str(grey_video), "--out", str(out),
                 "--skeleton", str(tmp_path / "nope")]) == 2  # fmt: skip
