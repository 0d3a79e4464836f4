"""The GPU readers (nvdec, dali) and the DALI clip pipeline.

On a CPU machine: the backends register, explain what to install, make ``auto`` fall back to
PyAV, and their pure parts (NV12 -> RGB, DALI matrix convention) are checked. Where DALI is
installed, its graphs also run on DALI's CPU operators (VP9 video: the CPU decoder has no H.264).
Tests marked ``gpu`` need CUDA and the packages; they use the synthetic videos of conftest.py
(frame ``i`` says ``i``), so frame identity is checked exactly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidpose._warp import warp_images
from vidpose.config import AugmentConfig as AugmentSettings
from vidpose.data import dali_clips
from vidpose.data.dali_clips import dali_matrix
from vidpose.data.geometry import resize_frames
from vidpose.data.unlabeled import ClipLoader, ClipSampler
from vidpose.errors import ReaderUnavailableError
from vidpose.video import READERS, dali_reader, nvdec_reader, open_video, probe_video
from vidpose.video.nvdec_reader import nv12_to_rgb, resolve_cuda_device
from vidpose.video.pyav_reader import PyAVReader

N = 40
# The example project's video; VIDPOSE_EXAMPLE_VIDEO points elsewhere (the GPU machine has no
# ../shared, see bench/README_gpu.md).
EXAMPLE_VIDEO = Path(
    os.environ.get(
        "VIDPOSE_EXAMPLE_VIDEO",
        Path(__file__).resolve().parents[2]
        / ".."
        / "shared"
        / "data"
        / "mirror-mouse-example"
        / "videos"
        / "test_vid.mp4",
    )
)


def has_module(name: str) -> bool:
    try:
        __import__(name)
    except Exception:
        return False
    return True


HAS_DALI = has_module("nvidia.dali")
needs_dali = pytest.mark.skipif(not HAS_DALI, reason="NVIDIA DALI is not installed")


@pytest.fixture
def forget_imports(monkeypatch):
    """Make the backends' cached package imports start afresh (restored after the test)."""
    for module, names in ((nvdec_reader, ("_nvc", "_nvc_error")), (dali_reader, ("_dali",))):
        for name in names:
            monkeypatch.setattr(module, name, None)
    monkeypatch.setattr(dali_reader, "_dali_error", None)


def hide(monkeypatch, *modules: str) -> None:
    """Make ``import module`` fail as if the package were not installed."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


# ---------------------------------------------------------------------------------------------
# registration, install hints, fallback (CPU)


def test_gpu_backends_are_registered_above_pyav():
    assert READERS.names()[:3] == ["nvdec", "dali", "pyav"]
    assert (READERS.get("nvdec").priority, READERS.get("nvdec").gpu) == (30, True)
    assert (READERS.get("dali").priority, READERS.get("dali").gpu) == (20, True)
    assert READERS.import_errors == {}
    # random training clips prefer threaded PyAV
    assert max(READERS, key=lambda s: s.clip_priority).name == "pyav"


def test_missing_pynvvideocodec_says_what_to_install(mp4_video, monkeypatch, forget_imports):
    hide(monkeypatch, "PyNvVideoCodec")
    with pytest.raises(ReaderUnavailableError, match=r"not installed.*uv sync --extra gpu"):
        nvdec_reader.import_pynvvideocodec()
    with pytest.raises(ReaderUnavailableError, match=r"PyNvVideoCodec is not installed"):
        open_video(mp4_video, reader="nvdec")


def test_missing_dali_says_what_to_install(mp4_video, monkeypatch, forget_imports):
    hide(monkeypatch, "nvidia.dali", "nvidia.dali.plugin.pytorch")
    with pytest.raises(ReaderUnavailableError, match=r"DALI is not installed.*nvidia-dali-cuda130"):
        open_video(mp4_video, reader="dali")


def test_broken_driver_is_reported(monkeypatch, forget_imports):
    """PyNvVideoCodec raises RuntimeError at import when no NVIDIA driver is found."""

    def fail(name, *a, **k):
        raise RuntimeError("libnvidia-encode.so.1: cannot open shared object file\nmore")

    monkeypatch.setattr(nvdec_reader.importlib, "import_module", fail)
    with pytest.raises(ReaderUnavailableError, match=r"installed but cannot load \(libnvidia"):
        nvdec_reader.import_pynvvideocodec()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_without_cuda_auto_falls_back_to_pyav(mp4_video):
    with open_video(mp4_video) as r:
        assert isinstance(r, PyAVReader)
    for name in ("nvdec", "dali"):
        with pytest.raises(ReaderUnavailableError):
            open_video(mp4_video, reader=name)


def test_gpu_backends_refuse_a_cpu_device(mp4_video):
    with pytest.raises(ReaderUnavailableError, match="decodes into CUDA memory; device 'cpu'"):
        resolve_cuda_device("cpu", "nvdec")
    for name in ("nvdec", "dali"):
        with pytest.raises(ReaderUnavailableError, match=f"the {name} reader decodes into CUDA"):
            open_video(mp4_video, reader=name, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_resolve_cuda_device_without_cuda():
    with pytest.raises(ReaderUnavailableError, match="needs a CUDA device and none is available"):
        resolve_cuda_device(None, "dali")


# ---------------------------------------------------------------------------------------------
# pure parts (CPU)


def test_nv12_to_rgb_matches_pyav_rgb24(mp4_video):
    """Our BT.601 conversion is within 2 levels of FFmpeg's on colourful H.264 frames."""
    with av.open(str(mp4_video)) as c:
        frames = [f for i, f in enumerate(c.decode(video=0)) if i % 5 == 0]
    nv12 = torch.from_numpy(np.stack([f.reformat(format="nv12").to_ndarray() for f in frames]))
    expected = np.stack([f.reformat(format="rgb24").to_ndarray() for f in frames]).astype(int)
    h, w = expected.shape[1:3]
    got = nv12_to_rgb(nv12, h, w).numpy().astype(int)
    diff = np.abs(got - expected)
    assert got.shape == expected.shape
    assert diff.max() <= 2 and diff.mean() < 0.5
    # a single (2-D) frame, and row padding beyond the width, give the same pixels
    padded = torch.nn.functional.pad(nv12[0], (0, 6))
    assert torch.equal(nv12_to_rgb(padded, h, w), torch.from_numpy(got[0].astype(np.uint8)))


def test_nv12_to_rgb_known_colours():
    """Limited-range black, white and BT.601 pure red."""
    h, w = 2, 4
    nv12 = torch.zeros(3, h + 1, w, dtype=torch.uint8)
    nv12[0, :h], nv12[0, h:] = 16, 128  # black
    nv12[1, :h], nv12[1, h:] = 235, 128  # white
    nv12[2, :h] = 81  # BT.601 red (255, 0, 0) is Y 81, Cb 90, Cr 240
    nv12[2, h:, 0::2], nv12[2, h:, 1::2] = 90, 240
    rgb = nv12_to_rgb(nv12, h, w).to(torch.int)
    assert (rgb[0] == 0).all() and (rgb[1] == 255).all()
    assert (rgb[2, ..., 0] >= 253).all() and (rgb[2, ..., 1:] <= 2).all()
    with pytest.raises(ValueError, match="NV12 frames of 4x4 need"):
        nv12_to_rgb(nv12, 4, 4)


def test_dali_matrix_maps_pixel_centres_like_vidpose():
    """DALI samples dst pixel corner-coordinates (p + 0.5) at A @ (p + 0.5) = M^-1 p + 0.5."""
    rng = np.random.default_rng(0)
    angle, scale, t = 0.3, 1.2, np.array([3.0, -2.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = rot, t
    a = dali_matrix(m)
    assert a.shape == (2, 3) and a.dtype == np.float32
    p = rng.uniform(0, 50, size=(10, 2))
    dst_corner = p + 0.5
    src_corner = dst_corner @ a[:, :2].T + a[:, 2]
    expected = (p - t) @ np.linalg.inv(rot).T + 0.5
    assert np.allclose(src_corner, expected, atol=1e-4)
    assert dali_matrix(np.stack([m, np.eye(3)])).shape == (2, 2, 3)


# ---------------------------------------------------------------------------------------------
# DALI graphs on DALI's CPU operators (VP9), where DALI is installed


@pytest.fixture(scope="module")
def vp9_video(write_video) -> Path:
    return write_video("synth_vp9.mkv", codec="libvpx-vp9")


@needs_dali
def test_dali_cpu_reader_frame_identity(vp9_video, ids):
    with dali_reader.DaliReader(vp9_video, backend="cpu") as r:
        assert r.info.n_frames == N
        for start, length in [(0, 5), (13, 9), (36, 10), (39, 1)]:
            b = r.read_clip(start, length)
            n = min(length, N - start)
            assert b.frames.shape == (n, 48, 64, 3) and b.valid.all()
            assert ids(b.frames.numpy()).tolist() == list(range(start, start + n))
        batches = list(r.iter_batches(16, start=3, stop=38))
        assert [b.start for b in batches] == [3, 19, 35]
        frames = np.concatenate([b.frames.numpy() for b in batches])
        assert ids(frames).tolist() == list(range(3, 38))
        assert all(b.valid.all() for b in batches)


@needs_dali
def test_dali_cpu_clip_pipeline_positions_geometry_and_photometry(vp9_video):
    info = probe_video(vp9_video)
    geometry_only = AugmentSettings(brightness=0.0, contrast=0.0, noise_std=0.0, rotation_deg=25)
    pipe = dali_clips.dali_clip_pipeline(
        [info, info], 6, 3, (48, 64), geometry_only, seed=4, backend="cpu", steps_per_epoch=2
    )
    sampler = ClipSampler([info, info], 6, seed=4)
    with dali_reader.DaliReader(vp9_video, backend="cpu") as reader:
        for i in range(3):
            batch = next(pipe)
            plan = sampler.sample(i // 2, i % 2, n=3)  # positions: the CPU loader's
            assert batch.video_index.tolist() == plan.video_index.tolist()
            assert batch.start_frame.tolist() == plan.start.tolist()
            assert batch.frames.shape == (3, 6, 3, 48, 64)
            assert batch.orig_hw.tolist() == [[48, 64]] * 3
            for j in range(3):
                raw = resize_frames(reader.read_clip(int(batch.start_frame[j]), 6).frames, (48, 64))
                expected = warp_images(raw, batch.matrices[j][None])
                assert not torch.equal(batch.matrices[j], torch.eye(3))
                assert (batch.frames[j] - expected).abs().max() < 1e-3

        photometric = AugmentSettings(
            brightness=0.3,
            contrast=0.3,
            noise_std=0.0,
            rotation_deg=0.0,
            scale_min=1.0,
            scale_max=1.0,
            translate_fraction=0.0,
        )
        pipe = dali_clips.dali_clip_pipeline(
            [info], 6, 2, (48, 64), photometric, seed=1, backend="cpu"
        )
        draw = pipe._make_draw(0)
        batch = next(pipe)
        for j in range(2):
            x = resize_frames(reader.read_clip(int(batch.start_frame[j]), 6).frames, (48, 64))
            expected = (x * float(draw.gain[j]) + x.mean() * float(draw.offset[j])).clamp(0, 1)
            assert (batch.frames[j] - expected).abs().max() < 1e-3
        assert not np.allclose(draw.gain, 1.0)


@needs_dali
def test_dali_cpu_clip_pipeline_shuffle_gives_consecutive_frames(vp9_video, ids):
    pipe = dali_clips.dali_clip_pipeline(
        [vp9_video],
        5,
        4,
        (48, 64),
        AugmentSettings(enabled=False),
        seed=0,
        backend="cpu",
        sampling="shuffle",
    )
    seen = set()
    for _ in range(3):
        batch = next(pipe)
        assert torch.equal(batch.matrices, torch.eye(3).expand(4, 3, 3))
        for clip, start in zip(batch.frames, batch.start_frame):
            pixels = (clip.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
            assert ids(pixels).tolist() == list(range(start, start + 5))
            assert start + 5 <= N
            seen.add(int(start))
    assert len(seen) > 3


# ---------------------------------------------------------------------------------------------
# on a GPU


def frame_diff(a: torch.Tensor, b: np.ndarray) -> np.ndarray:
    return np.abs(a.cpu().numpy().astype(int) - b.astype(int))


@pytest.mark.gpu
@pytest.mark.parametrize("rgb", ["decoder", "torch"])
def test_nvdec_frame_identity_and_pixels(mp4_video, ids, rgb):
    pytest.importorskip("PyNvVideoCodec")
    with nvdec_reader.NvdecReader(mp4_video, "cuda", rgb=rgb) as r, PyAVReader(mp4_video) as ref:
        assert r.info == ref.info
        rng = np.random.default_rng(0)
        for _ in range(12):
            start, length = int(rng.integers(0, N)), int(rng.integers(1, 12))
            b = r.read_clip(start, length)
            n = min(length, N - start)
            assert b.frames.is_cuda and b.frames.dtype == torch.uint8
            assert b.frames.shape == (n, 48, 64, 3) and b.valid.all()
            assert ids(b.frames.cpu().numpy()).tolist() == list(range(start, start + n))
            d = frame_diff(b.frames, ref.read_clip(start, length).frames)
            assert d.mean() < 2.0
            if rgb == "torch":
                assert d.max() <= 3
        for mode in ("threaded", "stream", "index"):
            r._sequential = mode
            frames = torch.cat([b.frames for b in r.iter_batches(16, start=5)])
            assert ids(frames.cpu().numpy()).tolist() == list(range(5, N))
        assert r.misplaced_frames == 0 and r.decode_errors == []


@pytest.mark.gpu
@pytest.mark.parametrize("reader", ["nvdec", "dali"])
def test_gpu_readers_on_the_example_video(reader):
    """Real H.264 with B-frames and 250-frame GOPs: the frames PyAV gives, to the colour matrix.

    Measured on an H100: nvdec is identical to PyAV; DALI's own YUV->RGB conversion differs by
    up to 2 levels (mean ~1.04 on this grey video), never by a frame.
    """
    pytest.importorskip("PyNvVideoCodec" if reader == "nvdec" else "nvidia.dali")
    if not EXAMPLE_VIDEO.exists():
        pytest.skip(f"example video not found at {EXAMPLE_VIDEO}")
    make = nvdec_reader.NvdecReader if reader == "nvdec" else dali_reader.DaliReader
    with make(EXAMPLE_VIDEO) as r, PyAVReader(EXAMPLE_VIDEO) as ref:
        for start in (0, 191, 500, 990):
            got, want = r.read_clip(start, 4), ref.read_clip(start, 4)
            diff = frame_diff(got.frames, want.frames)
            assert got.valid.all() and diff.mean() < 1.5 and diff.max() <= 3
        first = next(r.iter_batches(64, start=100))
        diff = frame_diff(first.frames, ref.read_clip(100, 64).frames)
        assert diff.mean() < 1.5 and diff.max() <= 3
    if reader == "nvdec":  # every frame, streamed from mid-GOP, with each streaming decoder
        with PyAVReader(EXAMPLE_VIDEO) as ref:
            want = np.concatenate([b.frames for b in ref.iter_batches(100, start=137)])
        for mode in ("threaded", "stream"):
            with nvdec_reader.NvdecReader(EXAMPLE_VIDEO, sequential=mode) as r:
                batches = list(r.iter_batches(100, start=137))
                got = torch.cat([b.frames for b in batches]).cpu().numpy()
                assert all(b.valid.all() for b in batches) and r.misplaced_frames == 0
                assert r.streamed_with == mode and r.batches_by_index == 0
            diff = np.abs(got.astype(int) - want.astype(int))
            assert got.shape == want.shape and diff.mean() < 1.5 and diff.max() <= 3, mode


@pytest.mark.gpu
def test_open_video_auto_on_cuda_uses_a_gpu_reader(mp4_video):
    if not (has_module("PyNvVideoCodec") or HAS_DALI):
        pytest.skip("neither PyNvVideoCodec nor DALI is installed")
    with open_video(mp4_video, device="cuda") as r:
        assert not isinstance(r, PyAVReader)
        assert r.read_clip(0, 2).frames.is_cuda


@pytest.mark.gpu
@needs_dali
def test_dali_gpu_reader_frame_identity(mp4_video, ids):
    with dali_reader.DaliReader(mp4_video, "cuda") as r, PyAVReader(mp4_video) as ref:
        for start, length in [(0, 5), (13, 9), (36, 10)]:
            b = r.read_clip(start, length)
            n = min(length, N - start)
            assert b.frames.is_cuda and b.valid.all()
            assert ids(b.frames.cpu().numpy()).tolist() == list(range(start, start + n))
            assert frame_diff(b.frames, ref.read_clip(start, length).frames).mean() < 2.0
        frames = torch.cat([b.frames for b in r.iter_batches(16, start=3)])
        assert ids(frames.cpu().numpy()).tolist() == list(range(3, N))


@pytest.mark.gpu
@needs_dali
@pytest.mark.parametrize("sampling", ["uniform", "shuffle"])
def test_dali_gpu_clip_pipeline(mp4_video, ids, sampling):
    info = probe_video(mp4_video)
    pipe = dali_clips.dali_clip_pipeline(
        [info], 6, 2, (48, 64), AugmentSettings(enabled=False), seed=0, sampling=sampling
    )
    batch = next(pipe)
    assert batch.frames.is_cuda and batch.frames.shape == (2, 6, 3, 48, 64)
    assert batch.matrices.is_cuda and batch.matrices.shape == (2, 3, 3)
    for clip, start in zip(batch.frames, batch.start_frame):
        pixels = (clip.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy()
        assert ids(pixels).tolist() == list(range(start, start + 6))
    augmented = dali_clips.dali_clip_pipeline([info], 6, 2, (32, 32), seed=0, sampling=sampling)
    batch = next(augmented)
    assert batch.frames.shape == (2, 6, 3, 32, 32)
    assert float(batch.frames.min()) >= 0.0 and float(batch.frames.max()) <= 1.0


@pytest.mark.gpu
@pytest.mark.parametrize("reader", ["nvdec", "dali"])
def test_clip_loader_on_gpu(mp4_video, reader):
    pytest.importorskip("PyNvVideoCodec" if reader == "nvdec" else "nvidia.dali")
    info = probe_video(mp4_video)
    with ClipLoader([info], 8, (32, 32), reader=reader, device="cuda", steps_per_epoch=3) as loader:
        clips = list(loader)
    assert len(clips) == 3
    for clip in clips:
        assert clip.frames.is_cuda and clip.frames.shape == (8, 3, 32, 32)
        assert (clip.matrix is not None) == (reader == "dali")
