"""Context-model training data and an end-to-end run on CPU.

Neighbour loading uses hand-made PNGs whose every pixel equals the frame number, so the frame
that landed in each window slot can be read back from the cache. The end-to-end test trains a
tiny context model on the ``tiny_project`` fixture (16 labeled 64 x 64 frames, each with its +-2
neighbour PNGs; one 48-frame video).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidpose.build import build_network_from_config, optimizer_factory, schedule_from_config
from vidpose.config import AugmentConfig, VidposeConfig, compose_config
from vidpose.data.augment import augment_labeled
from vidpose.data.batches import LabeledBatch, UnlabeledClip
from vidpose.data.labeled import load_labeled, neighbour_paths
from vidpose.errors import ConfigError
from vidpose.io.poses import Poses
from vidpose.losses import SUPERVISED_LOSSES, LossSetup, build_unsupervised_losses
from vidpose.training import train
from vidpose.training.datamodule import TrainBatch
from vidpose.training.module import PoseModule

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "model.head=heatmap_context",
    "data.image_height=64",
    "data.image_width=64",
    "data.val_fraction=0.125",
    "data.test_fraction=0.125",
    "training.batch_size=4",
]


def _png(path: Path, value: int) -> None:
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def frames_dir(tmp_path) -> Path:
    """img03..img07 (full window of img05), img10 alone, img21 + img22 (img22 lacks the right
    side and img20)."""
    d = tmp_path / "labeled-data" / "s"
    d.mkdir(parents=True)
    for i in (3, 4, 5, 6, 7, 10, 21, 22):
        _png(d / f"img{i:02d}.png", i)
    return d


def test_neighbour_paths_use_same_width_names_and_replicate_towards_the_centre(frames_dir):
    names = [p.name for p in neighbour_paths(frames_dir / "img05.png", 5)]
    assert names == ["img03.png", "img04.png", "img05.png", "img06.png", "img07.png"]
    names = [p.name for p in neighbour_paths(frames_dir / "img22.png", 5)]
    assert names == ["img21.png", "img21.png", "img22.png", "img22.png", "img22.png"]
    assert {p.name for p in neighbour_paths(frames_dir / "img10.png", 3)} == {"img10.png"}


def test_load_labeled_caches_windows_and_warns_once_about_missing_neighbours(frames_dir):
    names = ["img05.png", "img10.png", "img22.png"]
    labels = Poses(
        coords=np.full((3, 1, 2), 4.0),
        keypoints=["a"],
        frames=np.asarray([f"labeled-data/s/{n}" for n in names], dtype=object),
    )
    split = np.asarray(["train", "train", "val"], dtype=object)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_labeled(labels, [frames_dir / n for n in names], (8, 8), split, 5)
    msgs = [str(w.message) for w in caught if "neighbouring" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].startswith("2 of 3 labeled frame(s)")
    assert "img10.png" in msgs[0] and "img22.png" in msgs[0]
    assert data.windows is not None and data.windows.shape == (3, 5, 3, 8, 8)
    slots = data.windows[:, :, 0, 0, 0].tolist()
    assert slots == [[3, 4, 5, 6, 7], [10] * 5, [21, 21, 22, 22, 22]]
    assert torch.equal(data.images, data.windows[:, 2])
    assert data.context_frames == 5
    plain = load_labeled(labels, [frames_dir / n for n in names], (8, 8), split)
    assert plain.windows.shape == (3, 1, 3, 8, 8) and torch.equal(plain.images, data.images)


def test_augment_windows_applies_one_transform_to_every_frame_of_a_sample():
    torch.manual_seed(0)
    b, w, s = 3, 5, 32
    base = torch.rand(b, 1, 3, s, s)
    windows = base.expand(b, w, 3, s, s).clone()  # identical frames in each window
    batch = LabeledBatch(
        images=windows[:, 2],
        keypoints=torch.full((b, 1, 2), 16.0),
        visible=torch.ones(b, 1, dtype=torch.bool),
        frame_index=torch.arange(b),
        orig_hw=torch.full((b, 2), s),
        windows=windows,
    )
    settings = AugmentConfig(rotation_deg=30.0, noise_std=0.0, blur_prob=0.5)
    gen = torch.Generator().manual_seed(1)
    out = augment_labeled(batch, settings, None, gen)
    assert out.windows.shape == windows.shape
    for k in range(w):  # every frame got its sample's transform, and it did change them
        torch.testing.assert_close(out.windows[:, k], out.windows[:, 2])
    assert not torch.allclose(out.windows[:, 2], windows[:, 2], atol=1e-2)
    assert torch.equal(out.images, out.windows[:, 2])
    # Without neighbours the same draws give the same centre frames.
    plain = augment_labeled(
        LabeledBatch(
            batch.images, batch.keypoints, batch.visible, batch.frame_index, batch.orig_hw
        ),
        settings,
        None,
        torch.Generator().manual_seed(1),
    )
    assert plain.windows is None
    torch.testing.assert_close(plain.images, out.images)
    torch.testing.assert_close(plain.keypoints, out.keypoints)


def test_tiny_context_model_trains_and_predicts_a_video_one_backbone_pass_per_frame(
    tiny_project, tmp_path
):
    from vidpose.predict.predictor import load_model

    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(
            tiny_project,
            [*TINY, "training.max_steps=3"],
            model_dir=tmp_path / "m",
            progress=False,
        )
    # the synthetic project writes every labeled frame's +-2 neighbours
    assert not [w for w in caught if "neighbouring" in str(w.message)]
    assert res.steps == 3
    assert np.isfinite(res.metrics["train"]["pixel_error_mean"])

    model = load_model(res.model_dir, device="cpu")
    assert model.network.context_frames == 5
    calls: list[int] = []
    inner = model.network.forward_features

    def counting(images):
        calls.append(int(images.shape[0]))
        return inner(images)

    model.network.forward_features = counting  # type: ignore[method-assign]
    video = sorted((tiny_project / "videos").iterdir())[0]
    poses = model.predict_video(video, batch_size=7)  # 48 frames: batches straddle windows
    assert poses.n_frames == 48
    assert sum(calls) == 48
    assert np.isfinite(poses.coords).all() and np.isfinite(poses.likelihood).all()
    assert ((poses.likelihood >= 0) & (poses.likelihood <= 1)).all()

    # Same predictions whatever the batching (the rolling buffer crosses batch boundaries).
    again = model.predict_video(video, batch_size=48)
    np.testing.assert_allclose(again.coords, poses.coords, atol=1e-3)


SEMI = ["unlabeled.reader=pyav", "losses.ramp_epochs=0", "training.log_every_n_steps=1"]


def test_context_model_trains_with_unsupervised_losses_on_clip_windows(tiny_project, tmp_path):
    import pandas as pd

    losses = ["temporal", "unimodal"]
    res = train(
        tiny_project,
        [
            *TINY,
            *SEMI,
            "training.max_steps=3",
            "unlabeled.clip_length=7",
            f"model.losses=[{','.join(losses)}]",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    assert res.steps == 3
    log = pd.read_csv(res.model_dir / "logs" / "csv" / "metrics.csv")
    for name in losses:
        values = log[f"train/{name}"].dropna()
        assert len(values) > 0 and np.isfinite(values).all(), name


def test_clip_shorter_than_the_context_window_is_a_clear_config_error(tiny_project, tmp_path):
    with pytest.raises(ConfigError, match=r"unlabeled\.clip_length=4 is shorter than"):
        train(
            tiny_project,
            [
                *TINY,
                *SEMI,
                "training.max_steps=1",
                "unlabeled.clip_length=4",
                "model.losses=[temporal]",
            ],
            model_dir=tmp_path / "m",
            progress=False,
        )


def _module(cfg: VidposeConfig, losses: list[str] = (), compile: bool = False) -> PoseModule:
    """A PoseModule for 2 keypoints, built from ``cfg`` as training builds it."""
    network = build_network_from_config(cfg, 2)
    setup = LossSetup(labels_px=np.zeros((4, 2, 2)), keypoints=["a", "b"])
    return PoseModule(
        network,
        SUPERVISED_LOSSES.get(cfg.model.supervised_loss),
        build_unsupervised_losses(list(losses), cfg.losses, setup),
        optimizer_factory(cfg.training, schedule_from_config(cfg.training, 10, 1)),
        sigma=cfg.model.sigma,
        compile=compile,
    )


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
def test_context_semisupervised_step_runs_the_backbone_once_on_windows_and_clip():
    """B=2 windows of W=5 and a T=7 clip: one backbone call on 2*5 + 7 frames; the clip
    yields T - W + 1 = 3 predictions per decoder."""
    torch.manual_seed(0)
    cfg = compose_config({}, [*TINY, "unlabeled.clip_length=7", "losses.temporal.min_confidence=0"])
    module = _module(cfg, ["temporal"])
    calls: list[int] = []
    inner = module.network.forward_features

    def counting(images):
        calls.append(int(images.shape[0]))
        return inner(images)

    module.network.forward_features = counting  # type: ignore[method-assign]
    seen: list[list[int]] = []
    losses = module.unsupervised_losses

    def spy(outs, clip, second=None):
        seen.append([int(o.coords.shape[0]) for o in outs])
        return losses(outs, clip, second)

    module.unsupervised_losses = spy  # type: ignore[method-assign]
    windows = torch.rand(2, 5, 3, 64, 64)
    labeled = LabeledBatch(
        images=windows[:, 2],
        keypoints=torch.full((2, 2, 2), 30.0),
        visible=torch.ones(2, 2, dtype=torch.bool),
        frame_index=torch.arange(2),
        orig_hw=torch.full((2, 2), 64),
        windows=windows,
    )
    clip = UnlabeledClip(torch.rand(7, 3, 64, 64), 0, 0, (64, 64), torch.eye(3))
    total = module.compute_loss(TrainBatch(labeled, clip), 1.0)["loss"]
    assert calls == [17]
    assert seen == [[3, 3]]
    assert torch.isfinite(total) and total.requires_grad


def _project_windows(project: Path, **kw):
    from vidpose.project import load_project

    proj = load_project(project)
    split = np.full(proj.labels.n_frames, "train", dtype=object)
    videos = [(v.path, v.n_frames) for v in proj.videos]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_labeled(proj.labels, proj.image_paths, (64, 64), split, 5, videos=videos, **kw)
    return data, [str(w.message) for w in caught]


def test_missing_neighbour_pngs_are_read_from_the_source_video(tiny_project):
    reference, msgs = _project_windows(tiny_project)
    assert not [m for m in msgs if "neighbour" in m]
    labeled = {p.name for p in (tiny_project / "labeled-data" / "session00").glob("*.png")}
    from vidpose.project import load_project

    centres = {Path(p).name for p in load_project(tiny_project).image_paths}
    removed = sorted(labeled - centres)
    assert removed  # the synthetic project did write neighbour PNGs
    for name in removed:
        (tiny_project / "labeled-data" / "session00" / name).unlink()
    from_video, msgs = _project_windows(tiny_project)
    assert not [m for m in msgs if "neighbour" in m or "do not match" in m]
    # The PNGs are the decoded video frames, so the video gives back the very same pixels.
    assert torch.equal(from_video.windows, reference.windows)


def test_video_whose_frames_do_not_match_the_labels_is_not_used(tiny_project):
    from vidpose.project import load_project

    centres = {Path(p).name for p in load_project(tiny_project).image_paths}
    for png in (tiny_project / "labeled-data" / "session00").glob("*.png"):
        if png.name not in centres:
            png.unlink()
    # Another video under the labeled folder's name: frames exist but show something else.
    video = tiny_project / "videos" / "session00.mp4"
    reversed_frames = video.with_name("rev.mp4")
    from vidpose.video import open_video
    from vidpose.video.writer import VideoWriter

    with open_video(video, reader="pyav") as r:
        frames = np.concatenate([b.frames for b in r.iter_batches(64)])
    with VideoWriter(reversed_frames, fps=30, width=64, height=64) as wr:
        for f in frames[::-1]:
            wr.write(f)
    reversed_frames.replace(video)
    data, msgs = _project_windows(tiny_project)
    assert any("do not match the labeled PNGs" in m and "session00.mp4" in m for m in msgs)
    lacking = [m for m in msgs if "lack some of their 4 neighbouring" in m]
    assert len(lacking) == 1 and lacking[0].startswith("16 of 16")
    assert all((data.windows[:, k] == data.windows[:, 2]).all() for k in range(5))


def test_images_numbered_as_a_sequence_are_not_each_others_neighbours(tmp_path):
    d = tmp_path / "labeled-data"
    d.mkdir()
    for i in range(6):
        _png(d / f"img{i:02d}.png", 10 * i)
    names = [f"img{i:02d}.png" for i in range(6)]
    labels = Poses(
        coords=np.full((6, 1, 2), 4.0),
        keypoints=["a"],
        frames=np.asarray([f"labeled-data/{n}" for n in names], dtype=object),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_labeled(labels, [d / n for n in names], (8, 8), np.full(6, "train"), 3)
    msgs = [str(w.message) for w in caught]
    assert len([m for m in msgs if "numbered as a sequence" in m]) == 1
    assert data.windows[:, :, 0, 0, 0].tolist() == [[10 * i] * 3 for i in range(6)]


def test_training_compile_compiles_the_network_in_place_keeping_parameter_names(monkeypatch):
    from vidpose.models.network import PoseNetwork

    compiled: list[dict] = []
    monkeypatch.setattr(
        PoseNetwork, "compile", lambda self, **kw: compiled.append(kw), raising=False
    )
    cfg = compose_config({}, [*TINY, "model.head=heatmap_fpn"])
    for flag, n in ((False, 0), (True, 1)):
        module = _module(cfg, compile=flag)
        assert len(compiled) == n
    assert compiled == [{"dynamic": False}]
    assert not any("_orig_mod" in k for k in module.state_dict())
