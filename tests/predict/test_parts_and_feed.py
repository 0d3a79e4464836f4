"""One video split into parts decoded at once, and videos streamed into one prediction."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vidpose.predict.predictor as predictor
from vidpose.predict import load_model
from vidpose.predict.batch import FutureResults
from vidpose.predict.predictor import VideoFeed, predict_with_members, split_video
from vidpose.predict.run import Predictor


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of 8 frames are allowed (the tiny video has 48)."""
    monkeypatch.setattr(predictor, "MIN_PART_FRAMES", 8)


def _copies(video: Path, folder: Path, n: int) -> list[Path]:
    """``n`` copies of ``video`` in ``folder``: separate videos to predict."""
    out = []
    for i in range(n):
        v = folder / f"v{i}.mp4"
        shutil.copy(video, v)
        out.append(v)
    return out


def _spy_shares(monkeypatch) -> list[int]:
    """The decoders each video was split for (``split_video``'s ``parts``), in order."""
    shares: list[int] = []
    real = predictor.split_video
    monkeypatch.setattr(
        predictor, "split_video", lambda p, share, bs: shares.append(share) or real(p, share, bs)
    )
    return shares


def _predict(model, videos, **kwargs) -> dict:
    got: dict = {}
    model.predict_videos(
        videos,
        batch_size=8,
        on_done=lambda path, res, _st: got.setdefault(path, []).append(res),
        **kwargs,
    )
    return got


def test_split_video_ranges(tiny_video, tmp_path, small_parts):
    parts = split_video(tiny_video, 4, 8)
    # 48 frames in 4 parts of whole batches: 16, 16, 16 (the last one open-ended)
    assert parts == [(0, 16), (16, 32), (32, None)]
    assert split_video(tiny_video, 1, 8) == [(0, None)]
    assert split_video(tiny_video, 100, 8)[-1] == (40, None)  # at most n / MIN_PART_FRAMES
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert split_video(bad, 4, 8) == [(0, None)]  # its decoder will say why


def test_split_video_keeps_short_videos_whole(tiny_video):
    assert split_video(tiny_video, 6, 8) == [(0, None)]  # 48 frames < 2 x MIN_PART_FRAMES


@pytest.mark.parametrize("decoders", ["threads", "processes"])
def test_a_video_split_into_parts_predicts_what_it_does_whole(
    tiny_model, tiny_video, monkeypatch, decoders
):
    model = load_model(tiny_model, device="cpu")
    model.cfg.predict.decoders = decoders
    whole = _predict(model, [tiny_video], jobs=4)[tiny_video]
    monkeypatch.setattr(predictor, "MIN_PART_FRAMES", 8)
    seen: list = []
    real = predictor.split_video
    monkeypatch.setattr(predictor, "split_video", lambda *a: seen.append(real(*a)) or seen[-1])
    parts = _predict(model, [tiny_video], jobs=4)[tiny_video]
    assert len(seen) == 1 and len(seen[0]) == 3  # 4 decoders, 48 frames: 3 parts of 2 batches
    assert len(whole) == len(parts) == 1
    a, b = whole[0], parts[0]
    assert np.array_equal(a.frames, b.frames) and a.n_frames == 48
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
    np.testing.assert_allclose(a.likelihood, b.likelihood, atol=1e-4)


@pytest.mark.gpu
def test_nvdec_in_decoder_processes_predicts_what_decoder_threads_do(
    tiny_model, tiny_video, monkeypatch
):
    """The workers decode into CUDA buffers the predicting process maps by IPC: the same
    frames, hence the same poses, as NVDEC decoder threads in this process (parts too)."""
    pytest.importorskip("PyNvVideoCodec")
    monkeypatch.setattr(predictor, "MIN_PART_FRAMES", 8)
    model = load_model(tiny_model, device="cuda")
    got = {}
    for decoders in ("threads", "processes"):
        model.cfg.predict.decoders = decoders
        got[decoders] = _predict(model, [tiny_video], jobs=4, reader="nvdec")[tiny_video][0]
    a, b = got["threads"], got["processes"]
    assert a.n_frames == b.n_frames == 48 and np.isfinite(b.coords).all()
    np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
    np.testing.assert_allclose(a.likelihood, b.likelihood, atol=1e-4)


def test_a_part_that_fails_fails_its_video_alone(tiny_model, tiny_video, tmp_path, monkeypatch):
    monkeypatch.setattr(predictor, "MIN_PART_FRAMES", 8)
    model = load_model(tiny_model, device="cpu")
    other = tmp_path / "other.mp4"
    shutil.copy(tiny_video, other)
    real_open = predictor.open_video

    class Breaking:
        def __init__(self, vr):
            self.vr, self.info = vr, vr.info

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.vr.close()

        def iter_batches(self, bs, start=0, stop=None):
            if start > 0:
                raise RuntimeError(f"part from {start} broke")
            yield from self.vr.iter_batches(bs, start, stop)

    def flaky(path, **kwargs):
        vr = real_open(path, **kwargs)
        return Breaking(vr) if path == tiny_video else vr

    monkeypatch.setattr(predictor, "open_video", flaky)
    got = _predict(model, [tiny_video, other], jobs=4)
    assert isinstance(got[tiny_video][0], RuntimeError)
    assert "broke" in str(got[tiny_video][0])
    assert got[other][0].n_frames == 48 and np.isfinite(got[other][0].coords).all()


def test_videos_fed_while_predicting_are_all_predicted_once(tiny_model, tiny_video, tmp_path):
    model = load_model(tiny_model, device="cpu")
    videos = _copies(tiny_video, tmp_path, 4)
    expected = _predict(model, [tiny_video])[tiny_video][0]
    feed = VideoFeed()
    got: dict = {}

    def producer() -> None:
        for v in videos:
            feed.put(v)
            time.sleep(0.3)  # the first videos are done before the last ones arrive
        feed.close()

    threading.Thread(target=producer, daemon=True).start()
    predict_with_members(
        [model],
        feed,
        batch_size=8,
        jobs=2,
        on_done=lambda path, res, _st: got.setdefault(path, []).append(res),
    )
    assert sorted(got) == videos
    for v in videos:
        assert len(got[v]) == 1
        np.testing.assert_allclose(got[v][0][0].coords, expected.coords, atol=1e-3)


def test_a_worker_keeps_serving_videos_that_come_one_at_a_time(tiny_model, tiny_video, tmp_path):
    """A worker's prediction stays open between videos: each result comes back while the
    worker waits for the next video."""
    pred = Predictor(tiny_model, tmp_path / "out", device="cpu", batch_size=8)
    pred.load()
    futures = FutureResults(pred, jobs=2, crash_marker=None)
    for i in range(3):
        v = tmp_path / f"w{i}.mp4"
        shutil.copy(tiny_video, v)
        res = futures.submit(v, f"w{i}").result(timeout=120)
        assert res.status == "ok", res.reason
        assert res.table == tmp_path / "out" / f"w{i}.csv" and res.table.exists()
    futures.loop.close()
    assert not futures.loop.thread.is_alive()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_planes_converted_in_the_captured_graph_predict_what_rgb_frames_do(
    tiny_model, tiny_video, monkeypatch
):
    """On a GPU, PyAV hands over I420 planes converted inside the captured graph; the
    predictions match those from PyAV's RGB frames (the conversions differ by <= 2 levels)."""
    model = load_model(tiny_model, device="cuda", precision="32")
    model.cfg.predict.reader = "pyav"
    planar = _predict(model, [tiny_video], jobs=1)[tiny_video][0]
    real_open = predictor.open_video
    monkeypatch.setattr(
        predictor, "open_video", lambda path, **kw: real_open(path, **{**kw, "planar": False})
    )
    rgb = _predict(model, [tiny_video], jobs=1)[tiny_video][0]
    assert np.isfinite(planar.coords).all()
    np.testing.assert_allclose(planar.coords, rgb.coords, atol=0.5)


def test_results_on_their_way_are_brought_in_while_the_feed_is_quiet(
    tiny_model, tiny_video, monkeypatch
):
    """A worker's scheduler sends more videos only when it hears of finished ones: once every
    video it got is decoded, the results still on their way from the GPU must come in without
    waiting for another message (on the GPU this hung the 2-GPU batch). Here each batch's
    result is 'on its way' (its event not done) until someone waits for it."""

    class LateEvent:
        def __init__(self) -> None:
            self.done = False

        def query(self) -> bool:
            return self.done

        def synchronize(self) -> None:
            self.done = True

    real = predictor._MultiVideo._infer

    def late(self, *args):
        real(self, *args)
        *entry, _ = self.in_flight.pop()
        self.in_flight.append((*entry, LateEvent()))

    monkeypatch.setattr(predictor._MultiVideo, "_infer", late)
    model = load_model(tiny_model, device="cpu")
    feed = VideoFeed()
    got: dict = {}
    heard = threading.Event()

    def on_done(path, res, _st):
        got[path] = res
        heard.set()

    feed.put(tiny_video)
    run = threading.Thread(
        target=predict_with_members,
        args=([model], feed),
        kwargs=dict(batch_size=8, jobs=2, on_done=on_done),
        daemon=True,
    )
    run.start()
    assert heard.wait(timeout=60), "the finished video was never reported"
    feed.close()  # what the scheduler does once it has heard
    run.join(timeout=60)
    assert not run.is_alive()
    assert np.isfinite(got[tiny_video][0].coords).all()


def test_a_worker_whose_prediction_fails_before_taking_a_video_still_moves_on(tmp_path):
    """A bug that stops the prediction before it takes a video fails the next video (with the
    reason) instead of retrying forever; closing the worker returns."""
    from vidpose.predict.batch import WorkerLoop

    class Broken:
        def predict(self, videos, **_kw):
            raise RuntimeError("no model")

    results: list = []
    loop = WorkerLoop(Broken(), jobs=2, on_result=results.append)
    loop.put(tmp_path / "a.mp4", "a")
    loop.put(tmp_path / "b.mp4", "b")
    loop.close()
    assert [(r.stem, r.status) for r in results] == [("a", "failed"), ("b", "failed")]
    assert "RuntimeError: no model" in results[0].reason


def test_when_every_decoder_dies_only_unfinished_videos_fail():
    mv = object.__new__(predictor._MultiVideo)
    mv.paths = [Path("done.mp4"), Path("open.mp4"), Path("new.mp4")]
    mv.finished = {0}  # already handed to on_done
    mv.members = 1
    mv.states = {1: predictor._VideoState(mv.paths[1], 8, 2)}
    mv._fail_unended(RuntimeError("decoders died"))
    assert sorted(mv.states) == [1, 2]
    assert all(st.decoded and isinstance(st.error, RuntimeError) for st in mv.states.values())


def test_the_last_videos_of_a_list_are_split_so_that_every_decoder_has_a_part(
    tiny_model, tiny_video, tmp_path, monkeypatch, small_parts
):
    """A list is drained from the start: each video is split over the decoders as they
    free up, ``jobs`` over the videos left (whole while many wait), so the last videos do
    not leave most decoders idle; the poses are those of whole videos."""
    model = load_model(tiny_model, device="cpu")
    videos = _copies(tiny_video, tmp_path, 3)
    whole = _predict(model, [tiny_video], jobs=1)[tiny_video][0]
    shares = _spy_shares(monkeypatch)
    got = _predict(model, videos, jobs=4)
    assert shares == [1, 2, 4]  # 4 // 3, 4 // 2, 4 // 1
    for v in videos:
        np.testing.assert_allclose(got[v][0].coords, whole.coords, atol=1e-3)


def test_a_feed_splits_its_videos_over_all_decoders_once_drained(
    tiny_model, tiny_video, tmp_path, monkeypatch, small_parts
):
    """Before a feed is drained, a video gets only the decoders free when it is taken; once
    drained (closed, or a worker told that its scheduler has no more), the videos left share
    every decoder, though most are still busy when it is taken."""
    model = load_model(tiny_model, device="cpu")
    videos = _copies(tiny_video, tmp_path, 3)
    shares = _spy_shares(monkeypatch)
    drained = threading.Event()
    feed = VideoFeed()
    for v in videos[:2]:
        feed.put(v)
    got: dict = {}

    def later() -> None:
        while len(shares) < 2:
            time.sleep(0.01)
        drained.set()
        feed.put(videos[2])
        feed.close()

    threading.Thread(target=later, daemon=True).start()
    model.predict_videos(
        feed,
        batch_size=8,
        jobs=4,
        on_done=lambda path, res, _st: got.setdefault(path, []).append(res),
        drained=drained.is_set,
    )
    assert shares[0] == 2  # 4 free decoders, this video and one waiting: 4 // 2
    # the decoders free then: the 2 the first one's parts left (3 if one part already ended)
    assert shares[1] in (2, 3)
    # taken once one of the 4 parts running ended (1 decoder free), but drained: all 4
    assert shares[2] == 4
    assert sorted(got) == sorted(videos)
    assert all(len(r) == 1 and r[0].n_frames == 48 for r in got.values())
