"""PyAVReader on tiny synthetic videos (see conftest.py) and on the example project's video."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidpose.errors import VideoError
from vidpose.video import FrameBatch, VideoReader, open_video
from vidpose.video.base import format_frame_ranges
from vidpose.video.pyav_reader import PyAVReader

N = 40
EXAMPLE_VIDEO = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "mirror-mouse-example"
    / "videos"
    / "test_vid.mp4"
)


def read_all(reader, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    batches = list(reader.iter_batches(batch_size))
    return np.concatenate([b.frames for b in batches]), np.concatenate([b.valid for b in batches])


def random_clips(n_frames: int, count: int, seed: int = 0) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, n_frames)), int(rng.integers(1, 12))) for _ in range(count)]


def test_metadata(mp4_video, mkv_video):
    for path in (mp4_video, mkv_video):
        with PyAVReader(path) as r:
            assert isinstance(r, VideoReader)
            assert r.info.n_frames == N
            assert r.info.fps == pytest.approx(30.0)
            assert (r.info.width, r.info.height) == (64, 48)
            assert r.info.codec == "h264"
            assert r.info.path == path


def test_synthetic_video_has_b_frames(mp4_video):
    """The tests below exercise reordering only if decode order differs from display order."""
    with av.open(str(mp4_video)) as c:
        pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert pts != sorted(pts)


def test_sequential_batches(mp4_video, synth_frames, ids):
    with PyAVReader(mp4_video) as r:
        batches = list(r.iter_batches(16))
        assert [b.start for b in batches] == [0, 16, 32]
        assert [len(b.valid) for b in batches] == [16, 16, 8]
        assert all(isinstance(b, FrameBatch) for b in batches)
        frames = np.concatenate([b.frames for b in batches])
        assert frames.dtype == np.uint8 and frames.shape == (N, 48, 64, 3)
        assert all(b.valid.all() for b in batches)
        assert list(ids(frames)) == list(range(N))
        # Lossy, but close to what was written: colours in the right channels, not BGR.
        assert np.abs(frames.astype(int) - synth_frames).mean() < 3
        assert r.decode_errors == []
        np.testing.assert_array_equal(batches[1].indices, np.arange(16, 32))


def test_iter_batches_start_stop(mp4_video, ids):
    with PyAVReader(mp4_video) as r:
        batches = list(r.iter_batches(5, start=13, stop=27))
        assert [b.start for b in batches] == [13, 18, 23]
        assert [len(b.valid) for b in batches] == [5, 5, 4]
        assert list(ids(np.concatenate([b.frames for b in batches]))) == list(range(13, 27))
        # stop past the end is clipped
        assert sum(len(b.valid) for b in r.iter_batches(7, start=35, stop=1000)) == 5


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".ts"])
def test_random_clips_equal_sequential(write_video, ids, suffix):
    """Pixel-identical, whatever the container (avi has no real pts, ts starts at pts != 0)."""
    path = write_video(f"synth{suffix}")
    with PyAVReader(path) as r:
        seq, valid = read_all(r)
        assert valid.all() and list(ids(seq)) == list(range(N))
        for start, length in random_clips(N, 25):
            clip = r.read_clip(start, length)
            end = min(start + length, N)
            assert clip.start == start and clip.valid.all()
            np.testing.assert_array_equal(clip.frames, seq[start:end], err_msg=f"clip {start}")


def test_random_access_seeks_rather_than_rewinding(mkv_video, monkeypatch):
    """Clips far into the video come from a seek, not from decoding from frame 0."""
    rewinds = []
    original = PyAVReader._rewind

    def counting_rewind(self):
        rewinds.append(1)
        return original(self)

    monkeypatch.setattr(PyAVReader, "_rewind", counting_rewind)
    with PyAVReader(mkv_video) as r:
        for start in (33, 17, 25, 9):
            r.read_clip(start, 3)
    assert rewinds == []


def test_clip_at_the_very_end(mp4_video, ids):
    with PyAVReader(mp4_video) as r:
        clip = r.read_clip(N - 5, 5)
        assert list(ids(clip.frames)) == list(range(N - 5, N)) and clip.valid.all()
        short = r.read_clip(N - 3, 10)  # runs past the end: the frames that exist
        assert list(ids(short.frames)) == [N - 3, N - 2, N - 1]
        assert list(ids(r.read_clip(N - 1, 1).frames)) == [N - 1]


@pytest.mark.parametrize("start", [N, N + 100, -1])
def test_out_of_range_start(mp4_video, start):
    with PyAVReader(mp4_video) as r:
        with pytest.raises(VideoError, match=rf"frame {start} out of range.*{N} frames"):
            r.read_clip(start, 4)
        with pytest.raises(VideoError, match="out of range"):
            r.iter_batches(4, start=start)


def test_bad_length_and_batch_size(mp4_video):
    with PyAVReader(mp4_video) as r:
        with pytest.raises(VideoError, match="length must be >= 1"):
            r.read_clip(0, 0)
        with pytest.raises(VideoError, match="batch_size"):
            r.iter_batches(0)


def test_closed_reader(mp4_video):
    r = PyAVReader(mp4_video)
    r.close()
    r.close()  # idempotent
    with pytest.raises(VideoError, match="closed"):
        r.read_clip(0, 1)


def test_non_zero_start_pts(tmp_path, synth_frames, ids):
    """Frame 0 is the first frame even when the stream's timestamps start at 17 frames."""
    path = tmp_path / "offset.mkv"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=30, options={"x264-params": "keyint=8"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, image in enumerate(synth_frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i + 17, Fraction(1, 30)
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    with PyAVReader(path) as r:
        assert r.info.n_frames == N
        seq, valid = read_all(r)
        assert valid.all() and list(ids(seq)) == list(range(N))
        for start, length in random_clips(N, 10, seed=1):
            np.testing.assert_array_equal(r.read_clip(start, length).frames, seq[start:][:length])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match=r"nope\.mp4: no such video file"):
        PyAVReader(missing)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("frame,x,y\n0,1,2\n")
    with pytest.raises(VideoError, match=r"notes\.mp4: not a readable video; FFmpeg says: .+"):
        PyAVReader(path)


def test_no_video_stream(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), layout="mono")
        frame.sample_rate = 8000
        c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    with pytest.raises(VideoError, match=r"sound\.wav: contains no video stream \(streams: audio"):
        PyAVReader(path)


def cut(path: Path, fraction: float, dest: Path) -> Path:
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_truncated_video(write_video, tmp_path, ids, suffix):
    """A file cut to 60% of its bytes: the frames before the cut decode, the rest are reported.

    mp4 is written with faststart (index first), otherwise the cut would lose the index.
    """
    path = cut(write_video(f"whole{suffix}", faststart=True), 0.6, tmp_path / f"cut{suffix}")
    with PyAVReader(path) as r:
        assert r.info.n_frames == N  # what the container says
        with pytest.warns(UserWarning, match=r"cut\.\w+: \d+ frame\(s\) could not be decoded"):
            seq, valid = read_all(r)
        n_valid = int(valid.sum())
        assert 4 <= n_valid < N
        assert list(ids(seq[valid])) == list(np.flatnonzero(valid))  # right frames
        assert not seq[~valid].any()  # invalid frames are zeros
        assert valid[-1] == False  # noqa: E712 - the tail is gone
        assert r.decode_errors == list(np.flatnonzero(~valid))
        # random access agrees with sequential decoding, frame validity included
        for start, length in random_clips(N, 15, seed=2):
            clip = r.read_clip(start, length)
            end = min(start + length, N)
            np.testing.assert_array_equal(clip.valid, valid[start:end])
            np.testing.assert_array_equal(clip.frames, seq[start:end])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # already reported: no second warning at close
            r.close()


def test_truncated_mp4_without_faststart(write_video, tmp_path):
    """With the index (moov) at the end, a cut mp4 has nothing decodable: say so clearly."""
    path = cut(write_video("late_index.mp4", faststart=False), 0.6, tmp_path / "late.mp4")
    with pytest.raises(VideoError, match=r"late\.mp4: not a readable video.*moov atom not found"):
        PyAVReader(path)


def test_cut_before_first_frame(write_video, tmp_path):
    path = cut(write_video("early.mkv"), 0.2, tmp_path / "early.mkv")
    with pytest.raises(VideoError, match=r"early\.mkv: .*(no decodable|not a readable)"):
        PyAVReader(path)


def test_damaged_packet_reported_by_index(write_video, tmp_path, ids):
    """Garbage in the middle of frame 20's packet: frames around it are flagged, not faked.

    With a keyframe every 8 frames, frames 24..39 do not depend on frame 20; frames just
    before keyframe 16 may be flagged too (the reader errs on the side of invalid).
    """
    path = write_video("clean.mkv")
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = {
            round(p.pts * stream.time_base * 30): (p.pos, p.size) for p in c.demux(stream) if p.size
        }
    pos, size = packets[20]
    data = bytearray(path.read_bytes())
    data[pos + 6 : pos + size] = (
        np.random.default_rng(0).integers(0, 256, size - 6, np.uint8).tobytes()
    )
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))

    with PyAVReader(damaged) as r, pytest.warns(UserWarning, match="could not be decoded"):
        seq, valid = read_all(r)
    assert 20 in r.decode_errors
    assert set(r.decode_errors) <= set(range(8, 24))
    assert valid[:8].all() and valid[24:].all()
    assert list(ids(seq[valid])) == list(np.flatnonzero(valid))
    assert not seq[~valid].any()


def test_warning_lists_frames_once(write_video, tmp_path):
    path = cut(write_video("w.mkv"), 0.6, tmp_path / "w.mkv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PyAVReader(path) as r:
            r.read_clip(N - 4, 4)  # read_clip records, the warning waits for close
            assert caught == []
    assert len(caught) == 1
    assert f"{N - 4}-{N - 1}" in str(caught[0].message)


def test_format_frame_ranges():
    assert format_frame_ranges([9, 3, 4, 5]) == "3-5, 9"
    assert format_frame_ranges([7]) == "7"
    assert format_frame_ranges([]) == ""


@pytest.mark.skipif(not EXAMPLE_VIDEO.exists(), reason=f"example video absent: {EXAMPLE_VIDEO}")
def test_example_project_video():
    """test_vid.mp4: 994 frames, 396 wide x 406 high, 250 fps, H.264 with B-frames."""
    with open_video(EXAMPLE_VIDEO, reader="pyav") as r:
        assert r.info.n_frames == 994
        assert (r.info.width, r.info.height) == (396, 406)
        assert r.info.fps == pytest.approx(250.0)
        # Its keyframes are ~250 frames apart: frame 440 needs a seek to 432 and decoding on.
        clip = r.read_clip(440, 4)
        assert clip.frames.shape == (4, 406, 396, 3) and clip.valid.all()
        last = r.read_clip(990, 10)
        assert len(last.valid) == 4 and last.valid.all()
    with open_video(EXAMPLE_VIDEO, reader="pyav") as r:
        seq = np.concatenate([b.frames for b in r.iter_batches(64, stop=448)])
    np.testing.assert_array_equal(clip.frames, seq[440:444])


@pytest.mark.parametrize(
    "time_base, rate",
    [
        (Fraction(1, 12800), Fraction(25)),
        (Fraction(1, 1000), Fraction(30000, 1001)),  # mkv milliseconds, NTSC rate
        (Fraction(1, 90000), Fraction(60)),
        (Fraction(1, 4), Fraction(2)),  # every other timestamp halfway between two frames
    ],
)
def test_frame_index_of_a_timestamp_rounds_as_the_fraction_does(time_base, rate):
    """The integer arithmetic of ``_index_of`` gives ``round()`` of the exact Fraction,
    halves to even included, for timestamps before and after the first frame's."""
    reader = object.__new__(PyAVReader)
    ticks = time_base * rate
    reader._tick = (ticks.numerator, ticks.denominator)
    rng = np.random.default_rng(0)
    for start in (0, 7, -3):
        reader._start_pts = start
        for pts in [*rng.integers(-(10**6), 10**9, 2000).tolist(), *range(-8, 9)]:
            assert reader._index_of(pts) == round((pts - start) * time_base * rate)


@pytest.mark.parametrize("planar", [False, True])
def test_batches_decoded_into_given_buffers_equal_new_ones(write_video, tmp_path, planar):
    """``into``: each batch is decoded into the caller's array (decoder processes decode into
    shared memory). Two dirty buffers take turns, as a worker's slots do: what could not be
    decoded (a cut video's tail) is zeros all the same."""
    path = cut(write_video("into.mkv", faststart=True), 0.6, tmp_path / "into.mkv")
    with PyAVReader(path, planar=planar) as r, pytest.warns(UserWarning, match="could not"):
        want = list(r.iter_batches(7))
    shape = want[0].frames.shape[1:]
    buffers = [np.full((7, *shape), 255, np.uint8) for _ in range(2)]
    given: list[np.ndarray] = []

    def into(n: int) -> np.ndarray:
        given.append(buffers[len(given) % 2][:n])
        return given[-1]

    with PyAVReader(path, planar=planar) as r, pytest.warns(UserWarning, match="could not"):
        got = []
        for b in r.iter_batches(7, into=into):
            assert b.frames is given[-1]
            got.append((b.start, b.frames.copy(), b.valid.copy()))
    assert len(got) == len(want) and not all(b.valid.all() for b in want)
    for (start, frames, valid), w in zip(got, want):
        assert start == w.start
        np.testing.assert_array_equal(valid, w.valid)
        np.testing.assert_array_equal(frames, w.frames)
    with PyAVReader(path, planar=planar) as r, pytest.raises(ValueError, match="out: expected"):
        next(r.iter_batches(7, into=lambda n: np.zeros((n + 1, *shape), np.uint8)))
