"""Training one model over every camera of a multi-camera project.

A synthetic 3-camera project with 3D ground truth: its true 2D positions are exact projections
of the true 3D points through ``calibration.toml``, so a clip of true positions must cost the
cross-camera losses (nearly) nothing and a displaced camera must cost them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.build import loss_setup
from vidpose.config import VidposeConfig
from vidpose.data.batches import UnlabeledClip
from vidpose.data.geometry import orig_to_input, resize_frames
from vidpose.data.unlabeled import ClipLoader
from vidpose.errors import ConfigError, ProjectError
from vidpose.geometry import read_calibration
from vidpose.io import read_poses
from vidpose.losses.registry import build_unsupervised_losses
from vidpose.model_dir import ModelDir
from vidpose.models.heads import HeadOutput
from vidpose.project import load_project
from vidpose.synthetic import synthesize_multicamera_project
from vidpose.training import train
from vidpose.training.module import clip_inputs, wide
from vidpose.video import open_video

HEIGHT, WIDTH = 48, 64
INPUT_HW = (32, 64)
TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    f"data.image_height={INPUT_HW[0]}",
    f"data.image_width={INPUT_HW[1]}",
    "data.val_fraction=0.2",
    "data.test_fraction=0.2",
    "training.batch_size=4",
    "training.device=cpu",
    "unlabeled.clip_length=4",
]


@pytest.fixture(scope="module")
def mc(tmp_path_factory):
    out = tmp_path_factory.mktemp("mc") / "proj"
    return synthesize_multicamera_project(
        out,
        cameras=3,
        seed=2,
        difficulty="easy",
        n_videos=2,
        n_frames=20,
        n_labeled=10,
        size=(HEIGHT, WIDTH),
    )


def _truth_clip(mc, session: str, start: int, length: int):
    """True 2D positions of ``length`` frames of every camera: (V, T, K, 2) original px, and
    the same as network outputs in input px (camera after camera)."""
    truths = np.stack(
        [read_poses(mc.ground_truth(session, v)).coords[start : start + length] for v in mc.views]
    )
    coords_in = orig_to_input(
        torch.tensor(truths, dtype=torch.float32).flatten(0, 1), (HEIGHT, WIDTH), INPUT_HW
    )
    return truths, coords_in


def _clip(n_views: int, length: int) -> UnlabeledClip:
    return UnlabeledClip(
        frames=torch.zeros(n_views * length, 3, *INPUT_HW),
        video_index=0,
        start_frame=0,
        orig_hw=(HEIGHT, WIDTH),
        view_hw=((HEIGHT, WIDTH),) * n_views,
        matrix=torch.eye(3),
    )


def test_wide_puts_each_instants_cameras_side_by_side():
    x = torch.arange(3 * 4 * 5).reshape(3 * 4, 5)  # 3 cameras x 4 instants, 5 keypoints
    w = wide(x, 3)
    assert w.shape == (4, 15)
    for c in range(3):
        for t in range(4):
            assert torch.equal(w[t, c * 5 : (c + 1) * 5], x[c * 4 + t])
    assert wide(x, 1) is x


def test_clip_inputs_map_each_camera_to_its_own_frame_size():
    # camera 1's frames are twice as large: its input px map to twice the original px
    clip = UnlabeledClip(
        frames=torch.zeros(2 * 3, 3, 16, 16),
        video_index=0,
        start_frame=0,
        orig_hw=(32, 32),
        view_hw=((32, 32), (64, 64)),
        matrix=torch.eye(3),
    )
    coords = torch.full((6, 2, 2), 7.5)  # the centre of the 16 x 16 input
    out = HeadOutput(coords=coords, confidence=torch.rand(6, 2))
    inputs, coords_in = clip_inputs(out, clip, clip.matrix)
    assert inputs.cameras == 2 and inputs.coords_px.shape == (3, 4, 2)
    torch.testing.assert_close(inputs.coords_px[:, :2], torch.full((3, 2, 2), 15.5))
    torch.testing.assert_close(inputs.coords_px[:, 2:], torch.full((3, 2, 2), 31.5))
    torch.testing.assert_close(inputs.confidence, wide(out.confidence, 2))
    assert coords_in.shape == (6, 2, 2)


def test_true_positions_cost_the_camera_losses_nothing_and_a_moved_camera_costs(mc):
    project = load_project(mc.project_dir)
    cfg = VidposeConfig()
    train_rows = np.flatnonzero(project.cameras.view_of_row >= 0)
    setup = loss_setup(cfg, project.labels, train_rows, project.settings, project.cameras)
    assert setup.cameras == ("cam0", "cam1", "cam2") and setup.labels_px.shape == (10, 36, 2)
    losses = build_unsupervised_losses(["reprojection", "pca_multiview"], cfg.losses, setup)
    truths, coords_in = _truth_clip(mc, "session01", 3, 6)
    clip = _clip(3, 6)
    visible = torch.tensor(np.isfinite(truths).all(-1).reshape(18, -1), dtype=torch.float32)

    def costs(coords: torch.Tensor) -> dict[str, float]:
        coords = coords.clone().requires_grad_()
        out = HeadOutput(coords=coords, confidence=visible)
        inputs, _ = clip_inputs(out, clip, clip.matrix)
        terms = {w.name: w.loss(inputs) for w in losses}
        return coords, terms

    _, exact = costs(coords_in)
    rep = exact["reprojection"]
    assert int(rep.count) > 0 and rep.loss.item() == 0.0
    assert exact["pca_multiview"].loss.item() < 0.5
    moved = coords_in.clone()
    moved[6:12, 0] += 16.0  # camera 1's nose, all six instants, 16 input px (16 original px)
    coords, off = costs(moved)
    per = off["reprojection"].per_element  # (T, V, K)
    assert off["reprojection"].loss.item() > 0
    assert (per[:, 1, 0] > 0).all() and per[:, :, 1:].sum() == 0
    off["reprojection"].loss.backward()
    grad = coords.grad.abs().sum(-1)  # (18, K)
    assert grad[6:12, 0].sum() > 0  # the moved camera's nose is pulled back
    assert grad[:, 1:].sum() < 1e-6 * grad[:, 0].sum() + 1e-12  # other keypoints untouched


def test_clips_hold_the_same_instants_of_every_camera(mc):
    project = load_project(mc.project_dir)
    sessions = list(project.cameras.sessions.values())
    videos = [v for s in sessions for v in s]
    loader = ClipLoader(
        videos,
        5,
        INPUT_HW,
        reader="pyav",
        device="cpu",
        seed=3,
        steps_per_epoch=3,
        groups=[[0, 1, 2], [3, 4, 5]],
        workers=2,
    )
    with loader:
        clips = list(loader)
    assert len(clips) == 3
    for clip in clips:
        assert clip.n_views == 3 and clip.n_frames == 5 and clip.frames.shape[0] == 15
        assert clip.view_hw == ((HEIGHT, WIDTH),) * 3
        for v in range(3):
            info = videos[clip.video_index * 3 + v]
            with open_video(info.path, reader="pyav") as r:
                raw = r.read_clip(clip.start_frame, 5).frames
            torch.testing.assert_close(clip.views_frames[v], resize_frames(raw, INPUT_HW))


def test_dali_clips_are_refused_for_cameras(mc):
    project = load_project(mc.project_dir)
    videos = [v for s in project.cameras.sessions.values() for v in s]
    with pytest.raises(ConfigError, match="multi-camera project needs the same instants"):
        ClipLoader(videos, 4, INPUT_HW, reader="dali", device="cpu", groups=[[0, 1, 2], [3, 4, 5]])


def test_train_one_model_over_all_cameras(mc, tmp_path: Path):
    md = ModelDir(tmp_path / "m")
    result = train(
        mc.project_dir,
        [*TINY, "training.max_steps=3", "model.losses=[temporal,pca_multiview,reprojection]"],
        model_dir=md.path,
        progress=False,
    )
    assert result.steps == 3
    record = md.read_record()
    assert record.views == ["cam0", "cam1", "cam2"] and record.calibration == "calibration.toml"
    calibration = md.read_calibration()
    assert calibration.names == ["cam0", "cam1", "cam2"]
    assert md.calibration.read_bytes() == (mc.project_dir / "calibration.toml").read_bytes()
    # one split per instant: every camera's image of an instant in the same split
    where = {
        f.replace("_cam1/", "_cam0/").replace("_cam2/", "_cam0/"): s
        for s, frames in record.split.items()
        for f in frames
    }
    for s, frames in record.split.items():
        assert len(frames) % 3 == 0
        for f in frames:
            assert where[f.replace("_cam1/", "_cam0/").replace("_cam2/", "_cam0/")] == s
    assert sum(len(f) for f in record.split.values()) == 30
    fitted = json.loads(md.unsupervised.read_text())
    matches = fitted["multiview_pca"]["view_matches"]
    assert matches[0] == [0, 12, 24] and len(matches) == 12
    metrics = md.read_metrics()
    assert set(metrics["unsupervised"]) >= {"temporal", "pca_multiview", "reprojection"}


def test_a_context_model_trains_over_cameras(mc, tmp_path: Path):
    result = train(
        mc.project_dir,
        [
            *TINY,
            "model.head=heatmap_context",
            "training.max_steps=2",
            "model.losses=[temporal,pca_multiview]",
            "unlabeled.clip_length=6",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    assert result.steps == 2


def test_a_split_file_that_splits_an_instant_is_refused(mc, tmp_path: Path):
    project = load_project(mc.project_dir)
    frames = [str(f) for f in project.labels.frames]
    split = ["train"] * len(frames)
    split[0] = "test"  # camera 0's image of instant 0 only
    path = tmp_path / "split.csv"
    path.write_text("image,split\n" + "".join(f"{f},{s}\n" for f, s in zip(frames, split)))
    with pytest.raises(ProjectError, match="same split") as info:
        train(mc.project_dir, [*TINY, f"data.split_file={path}"], model_dir=tmp_path / "m")
    assert frames[0] in str(info.value) and frames[10] in str(info.value)
    assert not (tmp_path / "m").exists()


def test_reprojection_needs_cameras_and_a_calibration(mc, tmp_path: Path):
    import shutil

    proj = Path(shutil.copytree(mc.project_dir, tmp_path / "p"))
    text = (proj / "vidpose.yaml").read_text().replace("calibration: calibration.toml\n", "")
    (proj / "vidpose.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"reprojection but vidpose\.yaml names no calibration"):
        train(proj, [*TINY, "model.losses=[reprojection]"], model_dir=tmp_path / "m")
    calibration = read_calibration(mc.project_dir / "calibration.toml")
    assert calibration.names == ["cam0", "cam1", "cam2"]
