"""Video and image prediction with a (briefly) trained tiny model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vidpose.cli import main as cli_main
from vidpose.errors import VideoError, VidposeError
from vidpose.io import read_poses
from vidpose.predict import load_model
from vidpose.video import open_video
from vidpose.video.writer import VideoWriter


def _frames(path):
    with open_video(path, reader="pyav") as vr:
        return np.concatenate([b.frames for b in vr.iter_batches(64)])


def test_predict_video_matches_predict_images(tiny_model, tiny_video):
    model = load_model(tiny_model, device="cpu")
    poses = model.predict_video(tiny_video, batch_size=7)
    assert poses.n_frames == 48 and poses.keypoints == model.keypoints
    assert np.array_equal(poses.frames, np.arange(48))
    assert np.isfinite(poses.coords).all() and np.isfinite(poses.likelihood).all()
    assert ((poses.likelihood >= 0) & (poses.likelihood <= 1)).all()
    ref = model.predict_images(_frames(tiny_video))
    np.testing.assert_allclose(poses.coords, ref.coords, atol=1e-3)


@pytest.mark.parametrize("size", [(64, 64), (90, 76)])
def test_planar_frames_predict_as_their_rgb_frames(tiny_model, tmp_path, size):
    """A GPU model is fed the decoder's I420 planes, made into the network's input at its size
    (color.i420_to_input); here on CPU: the input of the RGB frames within a level or two,
    and the keypoints as close to theirs as converting the planes first made them."""
    import av
    import torch

    from vidpose.video.color import i420_to_rgb

    h, w = size
    video = tmp_path / "v.mp4"
    gen = np.random.default_rng(0)
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(24):
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.stack([(xx * 3 + t * 5) % 256, (yy * 2 + t) % 256, (xx + yy) % 256], -1)
            img = (img + gen.integers(0, 20, img.shape)).clip(0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    model = load_model(tiny_model, device="cpu")
    with open_video(video, reader="pyav", planar=True) as vr:
        assert vr.pixels == "i420"
        planes = torch.as_tensor(np.concatenate([b.frames for b in vr.iter_batches(64)]))
    rgb = torch.as_tensor(_frames(video))
    x_planar, hw_planar = model._prepare(planes)
    x_rgb, hw_rgb = model._prepare(rgb)
    assert hw_planar == hw_rgb == size
    levels = ((x_planar - x_rgb) * 255).abs()
    planar = model._infer(planes)[0]
    converted_first = model._infer(i420_to_rgb(planes))[0]  # the conversion before 40e16f0
    if size == (64, 64):  # nothing to resize: the same input as converting first
        assert float(levels.max()) < 2.5  # FFmpeg's conversion against ours (module docstring)
        assert torch.equal(planar, converted_first)
    else:
        assert float(levels.mean()) < 1.0
        # this near-random model moves keypoints by a pixel for a level of input: the keypoints
        # are no further from the RGB frames' than those of converting first
        reference = model._infer(rgb)[0]
        now = float((planar - reference).abs().mean())
        before = float((converted_first - reference).abs().mean())
        assert now <= 1.5 * before + 0.02


def test_a_model_loaded_like_another_gets_its_own_weights(tiny_model, tiny_video):
    """An ensemble's members after the first start as a copy of its network (no building, no
    random initialisation): each must end with its own checkpoint's weights, shared with no one."""
    import torch

    first = load_model(tiny_model, device="cpu")
    with torch.no_grad():
        for p in first.network.parameters():
            p.add_(1.0)  # weights unlike the checkpoint's
    second = load_model(tiny_model, device="cpu", like=first)
    plain = load_model(tiny_model, device="cpu")
    for a, b, c in zip(
        first.network.state_dict().values(),
        second.network.state_dict().values(),
        plain.network.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(b, c)
        assert a.data_ptr() != b.data_ptr()
    ref = plain.predict_video(tiny_video, batch_size=16)
    np.testing.assert_array_equal(
        second.predict_video(tiny_video, batch_size=16).coords, ref.coords
    )


def test_folded_batchnorms_predict_as_the_network_did(tiny_model, tiny_video):
    """Loading folds the norms into their convolutions (predict.fold_batchnorm): fewer
    modules, the same predictions; fold=False keeps the network as trained."""
    import torch

    folded = load_model(tiny_model, device="cpu")
    plain = load_model(tiny_model, device="cpu", fold=False)

    def norms(m):
        return sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.network.modules())

    assert norms(folded) == 0 and len(folded.folded) == norms(plain) > 20
    assert plain.folded == [] and folded.fold_requested and not plain.fold_requested
    a = folded.predict_video(tiny_video, batch_size=16)
    b = plain.predict_video(tiny_video, batch_size=16)
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
    np.testing.assert_allclose(a.likelihood, b.likelihood, atol=1e-4)
    # a member loaded like a model of another folding is built afresh, as asked
    assert norms(load_model(tiny_model, device="cpu", fold=False, like=folded)) == norms(plain)
    # never in bf16 (slower on a GPU, and rounded otherwise)
    assert load_model(tiny_model, device="cpu", precision="bf16").folded == []


def test_loading_fuses_on_a_gpu_only(tiny_model):
    """cuDNN's fused kernels are a GPU's: on CPU the network is folded, not fused."""
    model = load_model(tiny_model, device="cpu", precision="32")
    assert not model.fuse_requested and model.fused == []
    assert model.folded  # float32 on CPU: folded as before


@pytest.mark.gpu
def test_fused_model_predicts_as_the_plain_one_on_a_gpu(tiny_model, tiny_video):
    """Fused on a GPU (predict.fuse_conv_relu): the predictions of the network as trained."""
    from vidpose.models.fusion import exact_float32

    fused = load_model(tiny_model, device="cuda", precision="32")
    plain = load_model(tiny_model, device="cuda", precision="32", fuse=False, fold=False)
    assert fused.fused and not plain.fused
    with exact_float32():  # TF32 rounding moves the peaks of this barely trained network's
        a = fused.predict_video(tiny_video, batch_size=16)  # flat heatmaps by pixels
        b = plain.predict_video(tiny_video, batch_size=16)
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
    np.testing.assert_allclose(a.likelihood, b.likelihood, atol=1e-4)
    # an ensemble's next member is a copy of the fused network with its own weights
    member = load_model(tiny_model, device="cuda", precision="32", like=fused)
    assert member.fused == fused.fused
    with exact_float32():
        c = member.predict_video(tiny_video, batch_size=16)  # folded from the file: 1e-4 px apart
    np.testing.assert_allclose(c.coords, a.coords, atol=1e-3)


@pytest.mark.gpu
def test_weights_stored_in_bf16_on_a_gpu_predict_as_float32_ones(tiny_model, tiny_video):
    """In bf16 on a GPU the convolutions' weights are stored in bf16 (cast_weights): the same
    keypoints, bit for bit, as with float32 weights that autocast casts on every forward."""
    import copy

    import torch

    model = load_model(tiny_model, device="cuda", precision="bf16")
    convs = [m for m in model.network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    a = model.predict_video(tiny_video, batch_size=16)
    model.network = copy.deepcopy(model.network).float()
    b = model.predict_video(tiny_video, batch_size=16)
    np.testing.assert_array_equal(a.coords, b.coords)
    np.testing.assert_array_equal(a.likelihood, b.likelihood)


def test_predictions_are_in_original_pixels(tiny_model, tiny_video):
    """Frames of another size: the network sees them resized; coordinates come back in theirs."""
    import torch
    import torch.nn.functional as F

    from vidpose.data.geometry import input_to_orig

    frames = _frames(tiny_video)[:8]
    big = np.repeat(np.repeat(frames, 3, axis=1), 2, axis=2)  # 192 x 128: not the input size
    model = load_model(tiny_model, device="cpu")
    direct = model.predict_images(big)
    x = torch.from_numpy(big).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=model.input_hw, mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        at_input = model.network(x).coords.numpy()
    expected = input_to_orig(at_input, big.shape[1:3], model.input_hw)
    np.testing.assert_allclose(direct.coords, expected, atol=1e-3)
    # y spans 3x the input's rows, x 2x its columns: the mapping is per axis
    assert not np.allclose(expected, at_input, atol=1.0)


def test_resized_video_is_accepted(tiny_model, tiny_video, tmp_path):
    frames = _frames(tiny_video)[:12]
    big = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)
    path = tmp_path / "big.mp4"
    with VideoWriter(path, fps=30, width=128, height=128) as w:
        w.write(big)
    poses = load_model(tiny_model, device="cpu").predict_video(path)
    assert poses.n_frames == 12 and np.isfinite(poses.coords).all()
    assert poses.coords[..., 0].max() > 64  # in the big video's pixels


def test_truncated_video_gives_nan_rows_and_warning(tiny_model, tiny_video, tmp_path):
    frames = _frames(tiny_video)
    path = tmp_path / "cut.mkv"
    with VideoWriter(path, fps=30, width=64, height=64, gop=8) as w:
        w.write(frames)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    model = load_model(tiny_model, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        poses = model.predict_video(path)
    bad = np.isnan(poses.coords).all(axis=(1, 2))
    assert bad.any() and (~bad).any()
    assert bad[-1] and not bad[0]
    msgs = [str(w.message) for w in caught if "could not be decoded" in str(w.message)]
    assert msgs and "cut.mkv" in msgs[0]


def test_cli_predict_writes_csv(tiny_model, tiny_video, tmp_path):
    rc = cli_main(
        [
            "predict",
            str(tiny_model),
            str(tiny_video),
            "--out",
            str(tmp_path),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert rc == 0
    poses = read_poses(tmp_path / f"{tiny_video.stem}.csv")
    assert poses.n_frames == 48 and not poses.is_labels


def test_load_model_on_incomplete_dir(tmp_path):
    with pytest.raises(VidposeError, match=r"config\.yaml"):
        load_model(tmp_path)


def test_the_models_predict_config_gives_the_prediction_defaults(tiny_model, tmp_path, monkeypatch):
    """predict.* keys saved with a model are what load_model / predict_video use when the
    caller says nothing; arguments still win."""
    import shutil

    from vidpose.config import load_config, save_config
    from vidpose.predict import predictor

    md = tmp_path / "m"
    shutil.copytree(tiny_model, md)
    cfg = load_config(md / "config.yaml")
    cfg.predict.device, cfg.predict.precision, cfg.predict.reader = "cpu", "32", "pyav"
    save_config(cfg, md / "config.yaml")
    model = load_model(md)
    assert (model.device.type, model.precision) == ("cpu", "32")
    asked: list[str] = []
    real = predictor.open_video

    def spy(path, reader="auto", device=None):
        asked.append(reader)
        return real(path, reader=reader, device=device)

    monkeypatch.setattr(predictor, "open_video", spy)
    video = tmp_path / "v.mp4"
    with VideoWriter(video, fps=10, width=64, height=64) as w:
        w.write(np.zeros((4, 64, 64, 3), dtype=np.uint8))
    model.predict_video(video)
    model.predict_video(video, reader="auto")
    assert asked == ["pyav", "auto"]


def test_decoder_processes_predict_what_decoder_threads_do(tiny_model, tiny_video, tmp_path):
    """predict.decoders=processes (worker processes filling shared buffers) gives the same
    tables as threads, and a corrupt video still fails alone."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 40)
    model = load_model(tiny_model, device="cpu")
    results = {}
    for decoders in ("threads", "processes"):
        model.cfg.predict.decoders = decoders
        got: dict = {}
        model.predict_videos(
            [tiny_video, bad, tiny_video],
            batch_size=16,
            jobs=2,
            on_done=lambda path, res, _stats, got=got: got.setdefault(path, []).append(res),
        )
        results[decoders] = got
    threads, procs = results["threads"], results["processes"]
    assert isinstance(procs[bad][0], VideoError)
    assert len(procs[tiny_video]) == 2
    for a in procs[tiny_video]:
        assert a.equals(threads[tiny_video][0])


@pytest.mark.gpu
def test_members_on_their_own_streams_predict_as_each_alone_on_a_gpu(tiny_model):
    """An ensemble's members run side by side on CUDA streams of their own inside the
    captured graph: each member's keypoints are those it predicts alone, bit for bit."""
    import torch

    from vidpose.predict.predictor import _Members

    first = load_model(tiny_model, device="cuda", precision="bf16")
    other = load_model(tiny_model, device="cuda", precision="bf16", like=first)
    with torch.no_grad():  # a member that differs from the first
        for p in other.network.parameters():
            p.mul_(1.01)
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (8, 64, 64, 3), dtype=torch.uint8, generator=gen).cuda()
    both = _Members([first, other])
    assert both._streams is not None
    for _ in range(2):  # the first call captures the graph, the second replays it
        coords, conf = (t.clone() for t in both.infer(frames, 8))
        for i, m in enumerate((first, other)):
            c, p = _Members([m]).infer(frames, 8)
            assert torch.equal(coords[i], c[0]) and torch.equal(conf[i], p[0])
    assert not torch.equal(coords[0], coords[1])
