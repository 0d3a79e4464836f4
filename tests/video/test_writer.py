"""VideoWriter: round trip, padding of odd sizes, keyframe interval, atomic writes, bad input."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from vidpose.errors import VideoError
from vidpose.video.pyav_reader import PyAVReader
from vidpose.video.writer import VideoWriter


def test_round_trip(tmp_path, synth_frames, ids):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 30, 64, 48) as w:
        w.write(synth_frames[:25])
        w.write(synth_frames[25])  # a single (H, W, 3) frame
        w.write(synth_frames[26:])
    assert w.n_written == 40
    with PyAVReader(path) as r:
        frames = r.read_clip(0, 40).frames
    assert list(ids(frames)) == list(range(40))
    assert np.abs(frames.astype(int) - synth_frames).mean() < 3


def test_file_mode_follows_umask(tmp_path, synth_frames):
    path = tmp_path / "shared.mp4"
    with VideoWriter(path, 30, 64, 48) as w:
        w.write(synth_frames[:2])
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_odd_size_padded_by_edge_replication(tmp_path, synth_frames):
    frames = np.ascontiguousarray(synth_frames[:4, :47, :63])
    frames[:, :, -1] = [250, 10, 10]  # the last column, which the pad column must copy
    path = tmp_path / "odd.mkv"
    with VideoWriter(path, 30, 63, 47) as w:
        w.write(frames)
        assert (w.padded_width, w.padded_height) == (64, 48)
    with PyAVReader(path) as r:
        assert (r.info.width, r.info.height) == (64, 48)
        decoded = r.read_clip(0, 4).frames.astype(int)
    np.testing.assert_allclose(decoded[:, 20:40, 63].mean(axis=(0, 1)), [250, 10, 10], atol=12)
    assert np.abs(decoded[:, 47, :63] - decoded[:, 46, :63]).mean() < 4  # copied last row


def test_keyframe_interval(tmp_path, synth_frames):
    path = tmp_path / "gop.mp4"
    with VideoWriter(path, 30, 64, 48, gop=10) as w:
        w.write(synth_frames)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys = sorted(round(p.pts * s.time_base * 30) for p in c.demux(s) if p.is_keyframe)
    # x264 treats keyint as a maximum (it may place a keyframe early, before B-frames)
    assert keys[0] == 0 and max(np.diff(keys)) <= 10 and len(keys) >= 4


def test_fractional_fps(tmp_path, synth_frames):
    path = tmp_path / "ntsc.mp4"
    with VideoWriter(path, 30000 / 1001, 64, 48) as w:
        w.write(synth_frames[:10])
    with PyAVReader(path) as r:
        assert r.info.fps == pytest.approx(29.97, abs=1e-3)
        assert r.info.n_frames == 10


def test_failure_inside_block_leaves_old_file(tmp_path, synth_frames):
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"previous content")
    with pytest.raises(RuntimeError), VideoWriter(path, 30, 64, 48) as w:
        w.write(synth_frames[:5])
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]  # no temporary left


def test_no_frames_is_an_error_and_no_file(tmp_path):
    path = tmp_path / "empty.mp4"
    with (
        pytest.raises(VideoError, match=r"empty\.mp4: no frames were written"),
        VideoWriter(path, 30, 64, 48),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_bad_frames(tmp_path, synth_frames):
    path = tmp_path / "bad.mp4"
    with VideoWriter(path, 30, 64, 48) as w:
        with pytest.raises(VideoError, match=r"bad\.mp4: frames must be \(B, 48, 64, 3\)"):
            w.write(synth_frames[:, :, :32])
        with pytest.raises(VideoError, match="must be uint8, got float32"):
            w.write(synth_frames.astype(np.float32))
        w.write(synth_frames[:2])
    assert path.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "x.gif"}, r"x\.gif: cannot write a video with suffix '\.gif'"),
        ({"width": 0}, "frame size must be positive"),
        ({"gop": 0}, "gop must be >= 1"),
        ({"fps": -5}, "fps must be positive"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"fps": 30, "width": 64, "height": 48, **kwargs}
    path = tmp_path / args.pop("path", "ok.mp4")
    with pytest.raises(VideoError, match=message):
        VideoWriter(path, **args)
    assert list(tmp_path.iterdir()) == []
