"""ClipSampler and ClipLoader on tiny synthetic videos whose frames say their own index.

Videos: frame ``i`` of each video carries ``i`` in binary in its top rows (see
``make_frames`` below, the same scheme as tests/video/conftest.py): 48 x 64 RGB, H.264 with
B-frames and a keyframe every 8 frames, 30 fps. Video A has 40 frames, video B 24 frames.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.data.batches import UnlabeledClip
from vidpose.data.geometry import resize_frames
from vidpose.data.unlabeled import ClipLoader, ClipSampler
from vidpose.errors import ConfigError, ReaderUnavailableError, VideoError
from vidpose.video import FrameBatch, VideoInfo, probe_video
from vidpose.video import base as video_base
from vidpose.video.pyav_reader import PyAVReader
from vidpose.video.writer import VideoWriter

H, W = 48, 64


def make_frames(n: int) -> np.ndarray:
    """(n, 48, 64, 3) uint8; frame i: a gradient shifted by 7 i, rows 0..11 hold i in binary."""
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    for i in range(n):
        grey = (xx * 4 + yy * 2 + i * 7) % 200
        frames[i] = (grey[..., None] + np.array([0, 20, 40])).astype(np.uint8)
        for b in range(8):
            frames[i, :12, b * 8 : (b + 1) * 8] = 255 if (i >> b) & 1 else 0
    return frames


def frame_ids(frames: np.ndarray) -> np.ndarray:
    """(T,) index encoded in (T, H, W, 3) uint8 frames."""
    blocks = frames[:, :12, :64].reshape(len(frames), 12, 8, 8, 3).mean(axis=(1, 3, 4))
    return ((blocks > 128) * (1 << np.arange(8))).sum(axis=1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[VideoInfo]:
    folder = tmp_path_factory.mktemp("unlabeled")
    infos = []
    for name, n in (("a.mp4", 40), ("b.mp4", 24)):
        path = folder / name
        with VideoWriter(path, 30, W, H, gop=8) as w:
            w.write(make_frames(n))
        infos.append(probe_video(path))
    return infos


def fake_infos(counts: list[int]) -> list[VideoInfo]:
    return [VideoInfo(Path(f"v{i}.mp4"), n, 30.0, 64, 48, "h264") for i, n in enumerate(counts)]


# ---------------------------------------------------------------------------------------------
# ClipSampler


def test_sampler_is_a_function_of_seed_epoch_step():
    sampler = ClipSampler(fake_infos([100, 300, 600]), clip_length=16, seed=7)
    a = sampler.sample(3, 5, n=8)
    b = ClipSampler(fake_infos([100, 300, 600]), clip_length=16, seed=7).sample(3, 5, n=8)
    assert np.array_equal(a.video_index, b.video_index) and np.array_equal(a.start, b.start)
    others = [
        ClipSampler(fake_infos([100, 300, 600]), 16, seed=8).sample(3, 5, n=8),
        sampler.sample(4, 5, n=8),
        sampler.sample(3, 6, n=8),
        sampler.sample(3, 5, n=8, attempt=1),
    ]
    for o in others:
        assert not np.array_equal(o.start, a.start)


def test_sampler_draws_videos_in_proportion_to_their_frames():
    counts = [100, 300, 600]
    sampler = ClipSampler(fake_infos(counts), clip_length=10, seed=0)
    plan = sampler.plan(epoch=0, steps=1500, clips_per_step=4)
    share = np.bincount(plan.video_index, minlength=3) / len(plan)
    assert np.allclose(share, [0.1, 0.3, 0.6], atol=0.03)
    assert np.allclose(sampler.probabilities, [0.1, 0.3, 0.6])


def test_sampler_never_runs_past_the_end_and_reaches_both_ends():
    counts = [12, 50]
    sampler = ClipSampler(fake_infos(counts), clip_length=10, seed=1)
    plan = sampler.plan(epoch=2, steps=600, clips_per_step=2)
    n = np.array(counts)[plan.video_index]
    assert (plan.start >= 0).all() and (plan.start + 10 <= n).all()
    short = plan.start[plan.video_index == 0]
    assert set(short.tolist()) == {0, 1, 2}  # every legal start of the 12-frame video
    long_ = plan.start[plan.video_index == 1]
    assert long_.min() == 0 and long_.max() == 40


def test_sampler_skips_videos_shorter_than_a_clip():
    sampler = ClipSampler(fake_infos([5, 30]), clip_length=8, seed=0)
    assert sampler.probabilities.tolist() == [0.0, 1.0]
    assert (sampler.plan(0, 50).video_index == 1).all()


def test_sampler_rejects_impossible_settings():
    with pytest.raises(VideoError, match=r"shorter than the clip length 16: v0\.mp4 \(5 frames\)"):
        ClipSampler(fake_infos([5, 9]), clip_length=16)
    with pytest.raises(ConfigError, match="clip length must be >= 1"):
        ClipSampler(fake_infos([50]), clip_length=0)
    with pytest.raises(VideoError, match="no videos"):
        ClipSampler([], clip_length=4)


# ---------------------------------------------------------------------------------------------
# ClipLoader with PyAV


def test_loader_gives_the_sampled_frames_resized(videos):
    loader = ClipLoader(videos, 6, (24, 40), reader="pyav", device="cpu", seed=3, steps_per_epoch=5)
    sampler = ClipSampler(videos, 6, seed=3)
    clips = list(loader)
    assert len(clips) == len(loader) == 5
    for step, clip in enumerate(clips):
        plan = sampler.sample(0, step)
        assert isinstance(clip, UnlabeledClip) and clip.matrix is None
        assert (clip.video_index, clip.start_frame) == (plan.video_index[0], plan.start[0])
        assert clip.frames.shape == (6, 3, 24, 40) and clip.frames.dtype == torch.float32
        assert clip.orig_hw == (H, W)
        with PyAVReader(videos[clip.video_index].path) as r:
            expected = resize_frames(r.read_clip(clip.start_frame, 6).frames, (24, 40))
        assert torch.equal(clip.frames, expected)
    loader.close()


def test_loader_at_full_size_keeps_frame_identity(videos):
    with ClipLoader(videos, 5, (H, W), reader="pyav", device="cpu", steps_per_epoch=8) as loader:
        for clip in loader:
            pixels = (clip.frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
            assert frame_ids(pixels).tolist() == list(range(clip.start_frame, clip.start_frame + 5))
            n = videos[clip.video_index].n_frames
            assert clip.start_frame + 5 <= n


def test_loader_threads_do_not_change_the_clips_or_their_order(videos):
    def clips(workers: int) -> list:
        with ClipLoader(
            videos,
            5,
            (16, 24),
            reader="pyav",
            device="cpu",
            seed=9,
            steps_per_epoch=12,
            workers=workers,
            prefetch=2,
        ) as loader:
            return list(loader)

    one, three = clips(1), clips(3)
    assert [(c.video_index, c.start_frame) for c in one] == [
        (c.video_index, c.start_frame) for c in three
    ]
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(one, three))


def test_loader_epochs_advance_and_can_be_set(videos):
    loader = ClipLoader(videos, 4, (16, 16), reader="pyav", device="cpu", seed=0, steps_per_epoch=3)
    first = [(c.video_index, c.start_frame) for c in loader]
    second = [(c.video_index, c.start_frame) for c in loader]
    assert loader.epoch == 2
    loader.set_epoch(0)
    again = [(c.video_index, c.start_frame) for c in loader]
    sampler = ClipSampler(videos, 4, seed=0)
    expected = [sampler.sample(1, s) for s in range(3)]
    assert second == [(int(p.video_index[0]), int(p.start[0])) for p in expected]
    assert first == again and first != second
    loader.close()


def test_loader_stops_cleanly_when_the_consumer_breaks(videos):
    loader = ClipLoader(
        videos, 4, (16, 16), reader="pyav", device="cpu", steps_per_epoch=50, prefetch=2
    )
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert loader.epoch == 0  # an unfinished pass does not advance the epoch
    workers = [t for t in threading.enumerate() if t.name == "vidpose-clip-prefetch"]
    assert not workers  # the generator's exit stopped and joined its decoding thread
    assert len(list(loader)) == 50
    loader.close()


def test_loader_auto_on_cpu_uses_pyav(videos):
    with ClipLoader(videos, 4, (16, 16), device="cpu", steps_per_epoch=1) as loader:
        assert loader.reader == "pyav"
        assert isinstance(loader._readers[0], PyAVReader)


def test_loader_gpu_readers_need_a_cuda_device(videos):
    for name in ("nvdec", "dali"):
        with pytest.raises(ReaderUnavailableError, match=f"the {name} reader delivers frames"):
            ClipLoader(videos, 4, (16, 16), reader=name, device="cpu")
    with pytest.raises(ReaderUnavailableError, match=r"unlabeled\.reader: unknown reader 'nope'"):
        ClipLoader(videos, 4, (16, 16), reader="nope", device="cpu")


def test_loader_redraws_clips_with_undecodable_frames(videos, monkeypatch):
    """A reader that reports frames 0..19 of video A as damaged: those clips are redrawn."""

    class DamagedReader(PyAVReader):
        def read_clip(self, start: int, length: int) -> FrameBatch:
            batch = super().read_clip(start, length)
            if self.path.name == "a.mp4":
                batch.valid &= batch.indices >= 20
            return batch

    spec = video_base.ReaderSpec("damaged", DamagedReader, priority=-1, gpu=False, help="test")
    video_base.READERS.names()  # loads the built-in readers first
    monkeypatch.setitem(video_base.READERS._specs, "damaged", spec)
    loader = ClipLoader(
        videos, 4, (16, 16), reader="damaged", device="cpu", steps_per_epoch=30, max_retries=10
    )
    clips = list(loader)
    loader.close()
    damaged = [c for c in clips if c.video_index == 0 and c.start_frame < 20]
    assert not damaged
    assert any(c.video_index == 0 for c in clips)
    # without redraws the damaged clips come through, with one warning
    loader = ClipLoader(
        videos, 4, (16, 16), reader="damaged", device="cpu", steps_per_epoch=30, max_retries=0
    )
    with pytest.warns(UserWarning, match=r"a\.mp4: unlabeled clip at frame \d+ holds undecodable"):
        clips = list(loader)
    loader.close()
    assert any(c.video_index == 0 and c.start_frame < 20 for c in clips)


def test_loader_worker_errors_reach_the_consumer(videos, monkeypatch):
    class BrokenReader(PyAVReader):
        def read_clip(self, start: int, length: int) -> FrameBatch:
            raise VideoError(f"{self.path}: broken on purpose")

    spec = video_base.ReaderSpec("broken", BrokenReader, priority=-1, gpu=False, help="test")
    video_base.READERS.names()
    monkeypatch.setitem(video_base.READERS._specs, "broken", spec)
    loader = ClipLoader(videos, 4, (16, 16), reader="broken", device="cpu", steps_per_epoch=3)
    with pytest.raises(VideoError, match="broken on purpose"):
        list(loader)
    loader.close()


# ---------------------------------------------------------------------------------------------
# UnlabeledClip.matrix (added for clips that come augmented)


def test_unlabeled_clip_matrix_is_optional_checked_and_moved():
    frames = torch.zeros(3, 3, 8, 8)
    assert UnlabeledClip(frames, 0, 0, (8, 8)).matrix is None
    clip = UnlabeledClip(frames, 1, 2, (8, 8), matrix=torch.eye(3))
    assert torch.equal(clip.to("cpu").matrix, torch.eye(3))
    with pytest.raises(ValueError, match=r"matrix must be \(3, 3\)"):
        UnlabeledClip(frames, 0, 0, (8, 8), matrix=torch.eye(2))
