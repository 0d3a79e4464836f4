"""Unlabeled clips for semi-supervised training: where to take them, and loading them.

:class:`ClipSampler` says where clips come from: T consecutive frames at a random position of a
random project video, the video drawn with probability proportional to its frame count (videos
shorter than T are never drawn) and the start uniform in ``[0, n - T]``, so that a clip never
runs past its video's end. A draw is a pure function of ``(seed, epoch, step)``: the same
arguments give the same clips on any machine, whatever the loading order or threads.

:class:`ClipLoader` turns those positions into :class:`~vidpose.data.batches.UnlabeledClip`
records, ``steps_per_epoch`` per epoch, with frames resized to the model input and on the
training device. How depends on the reader:

- a CPU reader (``"pyav"``): ``workers`` background threads decode the next clips while the
  model trains (at most ``prefetch`` clips ahead; decoding releases the GIL, so threads scale
  with cores); the main thread copies them to the device (from pinned memory) and resizes them
  there. Clips come in step order whatever the number of threads.
- a GPU reader (``"nvdec"``): clips are decoded on the device, in the calling thread.
- a reader with a clip pipeline in :data:`CLIP_PIPELINES` (``"dali"``:
  :mod:`vidpose.data.dali_clips`): the pipeline decodes *and augments* the clips; each clip
  carries the matrix used (``clip.matrix``).

Other readers do not augment (``clip.matrix`` is None): the training step calls
:func:`~vidpose.data.augment.augment_clip` on them. So a training step can do::

    if clip.matrix is None:
        frames, matrix = augment_clip(clip.frames, settings)
    else:
        frames, matrix = clip.frames, clip.matrix

Readers stay open for the loader's life, one per video; :meth:`ClipLoader.close` closes them.

With ``groups`` (a multi-camera project: each session's videos, one per camera), a clip is the
same T instants of every video of a group, view after view (``clip.view_hw`` holds each
view's frame size), so that losses can compare the cameras at each instant; the sampler draws
groups as it draws videos (by the group's frame count, the shortest of its videos).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vidpose.config.schema import AugmentConfig
from vidpose.data.batches import UnlabeledClip
from vidpose.data.geometry import resize_frames
from vidpose.errors import ConfigError, ReaderUnavailableError, VideoError
from vidpose.registry import Registry
from vidpose.video import READER_CHOICES, READERS, VideoInfo, VideoReader, open_video

__all__ = ["CLIP_PIPELINES", "ClipLoader", "ClipPlan", "ClipSampler", "register_clip_pipeline"]


class ClipSource(Protocol):
    """One epoch's worth of clips at a time from a clip pipeline (see :data:`CLIP_PIPELINES`)."""

    def epoch(self, epoch: int) -> Iterator[UnlabeledClip]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ClipPipelineSpec:
    """A reader's own pipeline that decodes *and augments* training clips.

    Attributes:
        name: the reader it belongs to (``unlabeled.reader``).
        check: ``check(device)`` raises ReaderUnavailableError when it cannot run here.
        open: ``open(loader) -> ClipSource`` for a :class:`ClipLoader`'s videos and settings.
        help: one line.
    """

    name: str
    check: Callable[[torch.device], None]
    open: Callable[[ClipLoader], ClipSource]
    help: str


CLIP_PIPELINES: Registry[ClipPipelineSpec] = Registry(
    "clip pipeline", key="unlabeled.reader", modules=("vidpose.data.dali_clips",)
)
"""Readers whose training clips come from a pipeline of their own rather than ``read_clip``."""


def register_clip_pipeline(spec: ClipPipelineSpec) -> ClipPipelineSpec:
    return CLIP_PIPELINES.add(spec)


@dataclass(frozen=True)
class ClipPlan:
    """Where N clips come from.

    Attributes:
        video_index: (N,) int64 index into the sampler's video list.
        start: (N,) int64 first frame of each clip; the clip is ``start .. start + T - 1``.
    """

    video_index: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.video_index)


class ClipSampler:
    """Random clip positions across videos, reproducible from ``(seed, epoch, step)``.

    Args:
        videos: the project's videos (only ``n_frames`` and ``path`` are used).
        clip_length: T, frames per clip.
        seed: base seed.

    Raises:
        ConfigError: ``clip_length < 1``.
        VideoError: no video, or every video is shorter than T (the message lists them).
    """

    def __init__(self, videos: Sequence[VideoInfo], clip_length: int, seed: int = 0) -> None:
        if int(clip_length) < 1:
            raise ConfigError(f"clip length must be >= 1, got {clip_length}")
        if not videos:
            raise VideoError("no videos to sample unlabeled clips from")
        self.videos = list(videos)
        self.clip_length = int(clip_length)
        self.seed = int(seed)
        self.n_frames = np.array([int(v.n_frames) for v in self.videos], dtype=np.int64)
        weights = np.where(self.n_frames >= self.clip_length, self.n_frames, 0).astype(np.float64)
        if weights.sum() == 0:
            listed = ", ".join(f"{v.path} ({v.n_frames} frames)" for v in self.videos)
            raise VideoError(
                f"every video is shorter than the clip length {self.clip_length}: {listed}"
            )
        #: (V,) probability of drawing each video
        self.probabilities = weights / weights.sum()

    def sample(self, epoch: int, step: int, n: int = 1, attempt: int = 0) -> ClipPlan:
        """The ``n`` clips of training step ``step`` of epoch ``epoch``.

        ``attempt`` gives an independent redraw for the same step (used when a clip turns out
        to hold undecodable frames).
        """
        if min(epoch, step, attempt) < 0 or n < 1:
            raise ValueError(
                f"epoch, step and attempt must be >= 0 and n >= 1, got {epoch}, {step}, "
                f"{attempt}, {n}"
            )
        rng = np.random.default_rng([self.seed, epoch, step, attempt])
        video = rng.choice(len(self.videos), size=n, p=self.probabilities)
        last_start = self.n_frames[video] - self.clip_length  # inclusive
        start = rng.integers(0, last_start + 1)
        return ClipPlan(video_index=video.astype(np.int64), start=start.astype(np.int64))

    def plan(self, epoch: int, steps: int, clips_per_step: int = 1) -> ClipPlan:
        """Every clip of an epoch: ``sample(epoch, s, clips_per_step)`` for s < ``steps``."""
        plans = [self.sample(epoch, s, clips_per_step) for s in range(steps)]
        return ClipPlan(
            video_index=np.concatenate([p.video_index for p in plans]),
            start=np.concatenate([p.start for p in plans]),
        )


@dataclass
class _Loaded:
    """A clip decoded by the worker: frames (T, H0, W0, 3) uint8, or already resized on CPU."""

    video_index: int
    start: int
    frames: list[torch.Tensor]


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ClipLoader:
    """Iterable of :class:`~vidpose.data.batches.UnlabeledClip`, ``steps_per_epoch`` per epoch.

    Each pass over the loader is one epoch; the epoch then advances by one, or is set with
    :meth:`set_epoch` (as a training loop does at the start of each epoch, e.g. on resume).
    Clip ``step`` of epoch ``e`` is ``ClipSampler(videos, clip_length, seed).sample(e, step)``
    (with pyav/nvdec, and with dali in its default ``"uniform"`` sampling).

    Args:
        videos: the project's videos.
        clip_length: T, frames per clip.
        input_hw: (H, W) the frames are resized to.
        reader: "auto" (the usable reader of highest ``clip_priority``: threaded PyAV,
            measured fastest for random clips), or a name in :data:`~vidpose.video.READERS`.
        device: where clips are delivered (None: CUDA when available, else CPU).
        seed: base seed of the clip positions (and of DALI's augmentation).
        steps_per_epoch: clips per epoch.
        augment: augmentation applied by a clip pipeline (:data:`CLIP_PIPELINES`; None means
            the :class:`~vidpose.config.AugmentConfig` defaults). Other readers do not augment.
        prefetch: clips decoded ahead of the consumer (CPU readers).
        workers: decoding threads (CPU readers); None = half the CPU cores, at most 4. Each
            keeps its own open reader per video.
        pipeline_options: extra options of the clip pipeline (e.g. DALI's ``sampling``).
        max_retries: redraws of a clip that holds undecodable frames before giving it anyway.
        groups: synchronized videos (indices into ``videos``, one per camera, the same order
            in every group); a clip then holds the same instants of each (module docstring).
            None: every video on its own.

    Raises:
        ConfigError: bad ``clip_length`` / ``steps_per_epoch`` / ``prefetch`` / ``workers``.
        VideoError: no video long enough (see :class:`ClipSampler`).
        ReaderUnavailableError: the reader named cannot run here.
    """

    def __init__(
        self,
        videos: Sequence[VideoInfo],
        clip_length: int,
        input_hw: tuple[int, int],
        reader: str = "auto",
        device: str | torch.device | None = None,
        seed: int = 0,
        steps_per_epoch: int = 100,
        *,
        augment: AugmentConfig | None = None,
        prefetch: int = 4,
        workers: int | None = None,
        pipeline_options: dict[str, Any] | None = None,
        max_retries: int = 3,
        groups: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if prefetch < 1:
            raise ConfigError(f"prefetch must be >= 1, got {prefetch}")
        if workers is None:
            workers = max(1, min(4, (os.cpu_count() or 2) // 2))
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.videos = list(videos)
        if groups is None:
            self.groups = [[i] for i in range(len(self.videos))]
        else:
            self.groups = [[int(i) for i in g] for g in groups]
            if not self.groups or len({len(g) for g in self.groups}) != 1 or not self.groups[0]:
                raise ConfigError(
                    f"clip groups must each list the same number (>= 1) of videos, got "
                    f"{self.groups}"
                )
        # A group is drawn as one video of its shortest member's length.
        drawn = [
            dataclasses.replace(
                self.videos[g[0]], n_frames=min(int(self.videos[i].n_frames) for i in g)
            )
            for g in self.groups
        ]
        self.sampler = ClipSampler(drawn, clip_length, seed)
        self.n_views = len(self.groups[0])
        self.clip_length = self.sampler.clip_length
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.seed = int(seed)
        self.steps_per_epoch = int(steps_per_epoch)
        self.augment = AugmentConfig() if augment is None else augment
        self.prefetch = max(int(prefetch), int(workers))
        self.workers = int(workers)
        self.pipeline_options = dict(pipeline_options or {})
        self.max_retries = int(max_retries)
        self.epoch = 0
        self._readers: dict[int, VideoReader] = {}  # video index -> reader (worker 0's too)
        self._worker_readers: list[dict[int, VideoReader]] = [self._readers]
        self._source: ClipSource | None = None
        self._warned_invalid = False
        if reader in CLIP_PIPELINES and self.n_views > 1:
            raise ConfigError(
                f"unlabeled.reader={reader}: its clip pipeline draws clips of one video, but a "
                "multi-camera project needs the same instants of every camera; use "
                "unlabeled.reader=pyav or nvdec"
            )
        self.reader = self._resolve_reader(reader)
        self._pipeline = self.reader in CLIP_PIPELINES
        self._gpu_reader = not self._pipeline and READERS.get(self.reader).gpu

    # -- set-up ------------------------------------------------------------------------------

    def _resolve_reader(self, reader: str) -> str:
        on_gpu = self.device.type == "cuda"
        if reader != "auto":
            if reader not in READERS:
                raise ReaderUnavailableError(
                    READERS.unknown(reader, "unlabeled.reader", READER_CHOICES)
                )
            if READERS.get(reader).gpu and not on_gpu:
                raise ReaderUnavailableError(
                    f"the {reader} reader delivers frames on a CUDA device, but the clips were "
                    f"asked for on {self.device}"
                )
            # Fail here, not at the first training step, when the reader cannot run.
            if reader in CLIP_PIPELINES:
                CLIP_PIPELINES.get(reader).check(self.device)
            else:
                device = str(self.device) if READERS.get(reader).gpu else None
                self._readers[0] = open_video(self.videos[0].path, reader=reader, device=device)
            return reader
        first = self.videos[0].path
        for spec in sorted(READERS, key=lambda spec: -spec.clip_priority):
            if spec.gpu and not on_gpu:
                continue
            if spec.name in CLIP_PIPELINES and self.n_views > 1:
                continue  # one video per clip
            try:
                r = spec.factory(first, device=str(self.device))
            except ReaderUnavailableError:
                continue
            if spec.name in CLIP_PIPELINES:
                r.close()  # its clips come from its own pipeline
            else:
                self._readers[0] = r
            return spec.name
        raise ReaderUnavailableError(f"{first}: no video reader could open it")

    def _reader_for(self, video_index: int, worker: int = 0) -> VideoReader:
        while len(self._worker_readers) <= worker:
            self._worker_readers.append({})
        readers = self._worker_readers[worker]
        r = readers.get(video_index)
        if r is None:
            device = str(self.device) if self._gpu_reader else None
            r = readers[video_index] = open_video(
                self.videos[video_index].path, reader=self.reader, device=device
            )
        return r

    # -- public ------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass give the clips of ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[UnlabeledClip]:
        epoch = self.epoch
        if self._pipeline:
            if self._source is None:
                self._source = CLIP_PIPELINES.get(self.reader).open(self)
            clips = self._source.epoch(epoch)
        elif self._gpu_reader:
            clips = self._iter_direct(epoch)
        else:
            clips = self._iter_prefetched(epoch)
        yield from clips
        self.epoch = epoch + 1

    def close(self) -> None:
        """Close every open reader and the clip pipeline."""
        for readers in self._worker_readers:
            for r in readers.values():
                r.close()
            readers.clear()
        del self._worker_readers[1:]
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> ClipLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading -----------------------------------------------------------------------------

    def _decode(self, epoch: int, step: int, worker: int = 0) -> tuple[int, int, list[Any]]:
        """(group index, start, each view's frames (T, H0, W0, 3) uint8) of one step, redrawn
        if damaged."""
        for attempt in range(self.max_retries + 1):
            plan = self.sampler.sample(epoch, step, 1, attempt)
            group, start = int(plan.video_index[0]), int(plan.start[0])
            views = []
            ok = True
            for video_index in self.groups[group]:
                batch = self._reader_for(video_index, worker).read_clip(start, self.clip_length)
                views.append(batch.frames)
                ok = ok and len(batch.valid) == self.clip_length and bool(batch.valid.all())
            if ok:
                break
        else:
            if not self._warned_invalid:
                self._warned_invalid = True
                names = ", ".join(str(self.videos[i].path) for i in self.groups[group])
                warnings.warn(
                    f"{names}: unlabeled clip at frame {start} holds undecodable frames (zeros) "
                    f"after {self.max_retries} redraws; using it",
                    stacklevel=3,
                )
        return group, start, views

    def _clip(self, group: int, start: int, views: list[torch.Tensor]) -> UnlabeledClip:
        """The clip of resized views (a one-camera clip when the group is one video)."""
        infos = [self.videos[i] for i in self.groups[group]]
        return UnlabeledClip(
            frames=views[0] if len(views) == 1 else torch.cat(views),
            video_index=group,
            start_frame=start,
            orig_hw=(infos[0].height, infos[0].width),
            view_hw=() if len(infos) == 1 else tuple((v.height, v.width) for v in infos),
        )

    def _iter_direct(self, epoch: int) -> Iterator[UnlabeledClip]:
        for step in range(self.steps_per_epoch):
            group, start, views = self._decode(epoch, step)
            resized = [resize_frames(f, self.input_hw, self.device) for f in views]
            yield self._clip(group, start, resized)

    def _load(self, epoch: int, step: int, worker: int) -> _Loaded:
        """Worker side: decode, then resize on CPU or pin for a fast copy to the GPU."""
        group, start, views = self._decode(epoch, step, worker)
        out = []
        for frames in views:
            frames = torch.from_numpy(np.ascontiguousarray(frames))
            if self.device.type == "cpu":
                frames = resize_frames(frames, self.input_hw)
            elif self.device.type == "cuda":
                frames = frames.pin_memory()
            out.append(frames)
        return _Loaded(group, start, out)

    def _iter_prefetched(self, epoch: int) -> Iterator[UnlabeledClip]:
        steps, n_workers = self.steps_per_epoch, self.workers
        done: dict[int, _Loaded | _Failed] = {}  # step -> decoded clip, until consumed
        cond = threading.Condition()
        state = {"next": 0, "stop": False}  # the step the consumer waits for

        def work(worker: int) -> None:
            for step in range(worker, steps, n_workers):
                with cond:
                    while not state["stop"] and step >= state["next"] + self.prefetch:
                        cond.wait()
                    if state["stop"]:
                        return
                try:
                    item: _Loaded | _Failed = self._load(epoch, step, worker)
                except BaseException as e:  # handed to the consumer, raised there
                    item = _Failed(e)
                with cond:
                    done[step] = item
                    cond.notify_all()
                if isinstance(item, _Failed):
                    return

        threads = [
            threading.Thread(target=work, args=(k,), name="vidpose-clip-prefetch", daemon=True)
            for k in range(n_workers)
        ]
        for t in threads:
            t.start()
        try:
            for step in range(steps):
                with cond:
                    while step not in done:
                        cond.wait()
                    item = done.pop(step)
                    state["next"] = step + 1
                    cond.notify_all()
                if isinstance(item, _Failed):
                    raise item.error
                views = item.frames
                if self.device.type != "cpu":
                    views = [resize_frames(f, self.input_hw, self.device) for f in views]
                yield self._clip(item.video_index, item.start, views)
        finally:
            with cond:
                state["stop"] = True
                cond.notify_all()
            for t in threads:
                t.join()
