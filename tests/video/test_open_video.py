"""open_video / probe_video: backend choice through the registry, and edge errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.errors import ReaderUnavailableError, VideoError
from vidpose.video import READERS, VideoInfo, VideoReader, open_video, probe_video
from vidpose.video import base as video_base
from vidpose.video.pyav_reader import PyAVReader


def test_pyav_is_registered():
    assert "pyav" in READERS
    spec = READERS.get("pyav")
    assert spec.factory is PyAVReader and spec.gpu is False and spec.priority == 10
    assert spec.help


def test_missing_gpu_backends_are_skipped_and_explained():
    READERS.names()
    for name in ("nvdec", "dali"):
        assert name in READERS.import_errors or name in READERS
    assert "nope" not in READERS
    with pytest.raises(ReaderUnavailableError, match=r"reader: unknown reader 'nope'.*pyav"):
        open_video(__file__, reader="nope")


@pytest.mark.parametrize("device", [None, "cpu"])
def test_auto_opens_with_pyav(mp4_video, device):
    with open_video(mp4_video, device=device) as r:
        assert isinstance(r, PyAVReader) and isinstance(r, VideoReader)
        assert r.read_clip(3, 2).frames.shape == (2, 48, 64, 3)


def test_named_reader(mp4_video):
    with open_video(str(mp4_video), reader="pyav") as r:
        assert r.info.n_frames == 40


def test_unknown_reader_lists_registered(mp4_video):
    with pytest.raises(ReaderUnavailableError, match=r"'quantum'.*choose one of auto, .*pyav"):
        open_video(mp4_video, reader="quantum")


def test_auto_falls_back_from_an_unavailable_backend(mp4_video, monkeypatch):
    """A higher-priority GPU backend that cannot run here gives way to the next one."""
    tried = []

    class NoGpuReader:
        def __init__(self, path, device=None):
            tried.append(device)
            raise ReaderUnavailableError("no CUDA device")

    READERS.names()
    monkeypatch.setitem(
        READERS._specs,
        "fakegpu",
        video_base.ReaderSpec("fakegpu", NoGpuReader, priority=100, gpu=True, help="test"),
    )
    with open_video(mp4_video) as r:
        assert isinstance(r, PyAVReader)
    assert tried == [None]
    with open_video(mp4_video, device="cpu") as r:  # CPU only: the GPU backend is not tried
        assert isinstance(r, PyAVReader)
    with open_video(mp4_video, device=torch.device("cpu")) as r:
        assert isinstance(r, PyAVReader)
    assert tried == [None]
    with open_video(mp4_video, device=torch.device("cuda", 1)) as r:
        assert isinstance(r, PyAVReader)
    assert tried == [None, "cuda:1"]
    with pytest.raises(ReaderUnavailableError, match="no CUDA device"):
        open_video(mp4_video, reader="fakegpu")


def test_missing_file_named(tmp_path):
    with pytest.raises(VideoError, match=r"ghost\.mp4: no such video file"):
        open_video(tmp_path / "ghost.mp4")


def test_probe_video(mkv_video):
    info = probe_video(mkv_video)
    assert isinstance(info, VideoInfo)
    assert (info.n_frames, info.width, info.height, info.codec) == (40, 64, 48, "h264")
    assert info.fps == pytest.approx(30)


def test_probe_text_file(tmp_path):
    path = tmp_path / "readme.mp4"
    path.write_text("not a video")
    with pytest.raises(VideoError, match=r"readme\.mp4: not a readable video"):
        probe_video(path)


def test_frames_are_rgb_in_order(tmp_path):
    """A red, a green and a blue frame come back red, green, blue (not BGR)."""
    from vidpose.video.writer import VideoWriter

    frames = np.zeros((3, 32, 32, 3), np.uint8)
    for i in range(3):
        frames[i, ..., i] = 200
    path = tmp_path / "rgb.mkv"
    with VideoWriter(path, 10, 32, 32) as w:
        w.write(frames)
    with open_video(path) as r:
        got = r.read_clip(0, 3).frames.astype(int).mean(axis=(1, 2))
    assert (np.argmax(got, axis=1) == [0, 1, 2]).all()
    assert (got.max(axis=1) > 180).all()
