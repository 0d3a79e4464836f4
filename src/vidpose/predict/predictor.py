"""Inference with a trained model: images and whole videos, streamed in batches.

Video pipeline: a decoder thread fills a small queue of frame batches (so decoding overlaps
the network) -> host-to-device copy -> resize on the device -> forward in bf16
on CUDA -> coordinates mapped to original-frame pixels on the device -> one host copy per batch.
Memory is bounded by the queue, whatever the video's length.

Every network goes through one :class:`~vidpose.models.FrameStream`: the backbone runs once per
frame and a network with a temporal window of W frames keeps the last W - 1 frames' features
across batches, so each frame's prediction sees frames t-W//2..t+W//2 (edge-padded at the
video's ends). ``predict_images`` treats its images as unrelated: each one is its own window.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidpose._cpus import usable_cpus
from vidpose._device import resolve_device
from vidpose._graphs import CAPTURE_GATE
from vidpose._progress import FramesProgress
from vidpose.build import build_network_from_config
from vidpose.config import VidposeConfig, load_config
from vidpose.data.geometry import input_to_orig
from vidpose.errors import ConfigError, VidposeError
from vidpose.geometry import Calibration
from vidpose.io.poses import COORD_DECIMALS, Poses
from vidpose.model_dir import ModelDir, ModelDirError
from vidpose.models import FrameStream, PoseNetwork
from vidpose.models.folding import FoldedPair, fold_batchnorm, fold_state_dict
from vidpose.models.fusion import exact_float32, fuse_conv_relu
from vidpose.predict.processes import decode_in_processes
from vidpose.video import READERS, open_video
from vidpose.video.base import FrameBatch, format_frame_ranges
from vidpose.video.color import i420_to_input


@dataclass
class PredictStats:
    """Timing of one video's prediction."""

    frames: int
    seconds: float
    invalid_frames: list[int]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``predict.precision`` for ``device``: auto = bf16 on a GPU, 32 on CPU."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "32"
    if precision not in ("32", "bf16", "16"):
        raise ConfigError(f"precision must be auto, 32, bf16 or 16, got {precision!r}")
    return precision


class PoseModel:
    """A trained network with what is needed to turn pixels into keypoints.

    Build with :func:`load_model`. ``predict_images`` and ``predict_video`` return
    :class:`~vidpose.io.poses.Poses` in original-frame pixels.

    A multi-camera model predicts each camera's frames on their own, like any model; it also
    carries its ``views`` (camera names, in the project's order; empty for a single-camera
    model) and its ``calibration`` (:class:`~vidpose.geometry.Calibration` of those views, or
    None), which :mod:`vidpose.predict.sessions` uses to triangulate a session's videos.
    """

    def __init__(
        self,
        network: PoseNetwork,
        cfg: VidposeConfig,
        keypoints: list[str],
        device: torch.device,
        precision: str = "auto",
        model_dir: Path | None = None,
        skeleton: list[tuple[str, str]] | None = None,
        views: list[str] | None = None,
        calibration: Calibration | None = None,
    ):
        self.cfg = cfg
        self.keypoints = list(keypoints)
        self.skeleton = [tuple(e) for e in skeleton] if skeleton else None
        self.views = list(views or [])
        self.calibration = calibration
        self.device = device
        self.model_dir = model_dir
        self.input_hw = (cfg.data.image_height, cfg.data.image_width)
        self.precision = resolve_precision(precision, device)
        self.network = network.to(device).eval()
        self._features: Callable | None = None  # None: the network's own forward_features
        # the network compiled ahead of time (vidpose.aot): images -> (coords in input px,
        # confidence); None: the network itself
        self.aot: Callable | None = None
        # batch normalisations folded into their convolutions (load_model), and whether
        # folding was asked for (an ensemble member is a copy of the first only if both agree)
        self.folded: list[FoldedPair] = []
        self.fold_requested = False
        # convolutions fused with the ReLU after them (load_model, on a GPU), and whether
        # fusing was asked for
        self.fused: list[str] = []
        self.fuse_requested = False

    def compile(self) -> None:
        """Compile the backbone pass with torch.compile (pays off on long videos on CUDA)."""
        self._features = torch.compile(self.network.forward_features, dynamic=False)

    @property
    def _autocast(self):
        dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(self.precision)
        return torch.autocast(
            self.device.type,
            dtype=dtype or torch.float32,
            enabled=dtype is not None,
            # no weight-cast cache: a captured graph (predict_with_members) must not keep one;
            # on a GPU the weights are stored in this precision already (cast_weights)
            cache_enabled=False,
        )

    def _prepare(self, frames_u8: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, H0, W0, 3) uint8, or (B, 3 H0 / 2, W0) packed I420 planes (a planar reader's
        ``FrameBatch``), -> (B, 3, H, W) float network input on the device, (H0, W0)."""
        frames = frames_u8.to(self.device, non_blocking=True)
        if frames.dim() == 3:  # planes: converted at the network's size (i420_to_input)
            orig_hw = (int(frames.shape[1]) * 2 // 3, int(frames.shape[2]))
            return i420_to_input(frames, self.input_hw), orig_hw
        orig_hw = (int(frames.shape[1]), int(frames.shape[2]))
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if orig_hw != self.input_hw:
            x = F.interpolate(
                x, size=self.input_hw, mode="bilinear", align_corners=False, antialias=True
            )
        return x, orig_hw

    @torch.inference_mode()
    def _infer(self, frames_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unrelated images (B, H0, W0, 3) uint8 on any device -> (coords (B, K, 2) orig px,
        conf (B, K)) on the device."""
        x, orig_hw = self._prepare(frames_u8)
        if self.aot is not None:
            return self._run_aot(x.contiguous(), orig_hw)
        with self._autocast:
            out = self.network.forward_images(x)
        coords = input_to_orig(out.coords.float(), orig_hw, self.input_hw)
        return coords, out.confidence.float()

    def _run_aot(self, x: torch.Tensor, orig_hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """The compiled network on contiguous inputs: coords in original px, confidence."""
        coords, conf = self.aot(x)
        return input_to_orig(coords, orig_hw, self.input_hw), conf

    @torch.inference_mode()
    def _infer_stream(
        self, frames_u8: torch.Tensor | None, stream: FrameStream, orig_hw: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Push the next frames of a video (None: its end) through ``stream``; coords (M, K, 2)
        in original px and confidence (M, K) of the frames it completed."""
        with self._autocast:
            if frames_u8 is None:
                out = stream.finish()
            else:
                x, orig_hw = self._prepare(frames_u8)
                out = stream.push(x)
        if out is None:
            return None
        coords = input_to_orig(out.coords.float(), orig_hw, self.input_hw)
        return coords, out.confidence.float()

    def predict_images(self, images: np.ndarray, batch_size: int | None = None) -> Poses:
        """Predict keypoints on (N, H, W), (N, H, W, 1) or (N, H, W, 3) uint8 images."""
        images = np.asarray(images)
        if images.ndim == 3:  # (N, H, W) grey
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise VidposeError(f"images must be (N, H, W[, 1|3]) uint8, got {images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        images = np.ascontiguousarray(images.astype(np.uint8, copy=False))
        bs = batch_size or self.cfg.predict.batch_size
        coords, conf = [], []
        for s in range(0, len(images), bs):
            c, p = self._infer(torch.from_numpy(images[s : s + bs]))
            coords.append(c.cpu().numpy())
            conf.append(p.cpu().numpy())
        coords, conf = _rounded(np.concatenate(coords), np.concatenate(conf))
        return Poses(
            coords=coords,
            keypoints=self.keypoints,
            frames=np.arange(len(images)),
            likelihood=conf,
            scorer=self.scorer,
        )

    def predict_video(
        self,
        path: str | Path,
        *,
        batch_size: int | None = None,
        reader: str | None = None,
        progress: bool = False,
        stats: list[PredictStats] | None = None,
    ) -> Poses:
        """Predict every frame of a video; NaN rows (and a warning) for undecodable frames.

        ``batch_size`` and ``reader`` default to the model's ``predict.*`` config."""
        path = Path(path)
        if self.device.type == "cuda":  # streams and pinned copies on the model's device
            with torch.cuda.device(self.device):
                return self._predict_video(path, batch_size, reader, progress, stats)
        return self._predict_video(path, batch_size, reader, progress, stats)

    def _predict_video(self, path, batch_size, reader, progress, stats) -> Poses:
        bs = batch_size or self.cfg.predict.batch_size
        reader = reader or self.cfg.predict.reader
        with open_video(path, reader=reader, device=self.device) as vr:
            n = vr.info.n_frames
            fps = vr.info.fps
            coords = np.full((n, len(self.keypoints), 2), np.nan)
            conf = np.full((n, len(self.keypoints)), np.nan)
            invalid: list[int] = []
            t0 = time.perf_counter()
            done = 0
            bar = FramesProgress(path.name, n) if progress else None
            stream = FrameStream(self.network, self._features)
            # Frames pushed into the stream and not predicted yet (a window's last W // 2).
            pending_idx = np.zeros(0, dtype=np.int64)
            pending_ok = np.zeros(0, dtype=bool)
            orig_hw = (0, 0)
            for batch in _prefetch(vr.iter_batches(bs), depth=3):
                frames = batch.frames
                if isinstance(frames, np.ndarray):
                    frames = torch.from_numpy(frames)
                    if self.device.type == "cuda":
                        frames = frames.pin_memory()
                idx = batch.indices
                if idx[-1] >= n:  # container under-reported its length
                    extra = idx[-1] + 1 - n
                    coords = np.concatenate([coords, np.full((extra, *coords.shape[1:]), np.nan)])
                    conf = np.concatenate([conf, np.full((extra, conf.shape[1]), np.nan)])
                    n = idx[-1] + 1
                ok = np.asarray(batch.valid, dtype=bool)
                invalid.extend(idx[~ok].tolist())
                done += len(idx)
                orig_hw = (int(frames.shape[1]), int(frames.shape[2]))
                pending_idx = np.concatenate([pending_idx, idx])
                pending_ok = np.concatenate([pending_ok, ok])
                res = self._infer_stream(frames, stream, orig_hw)
                if res is not None:
                    m = len(res[0])
                    i, o = pending_idx[:m], pending_ok[:m]
                    coords[i[o]] = res[0].cpu().numpy()[o]
                    conf[i[o]] = res[1].cpu().numpy()[o]
                    pending_idx, pending_ok = pending_idx[m:], pending_ok[m:]
                if bar is not None:
                    bar.advance(len(idx))
            if len(pending_idx):
                res = self._infer_stream(None, stream, orig_hw)
                assert res is not None and len(res[0]) == len(pending_idx)
                o = pending_ok
                coords[pending_idx[o]] = res[0].cpu().numpy()[o]
                conf[pending_idx[o]] = res[1].cpu().numpy()[o]
            if bar is not None:
                bar.stop()
            seconds = time.perf_counter() - t0
            missing = sorted(set(range(n)) - set(_decoded_rows(conf)))
            invalid = sorted(set(invalid) | set(missing))
        if invalid:
            warnings.warn(
                f"{path}: {len(invalid)} frame(s) could not be decoded and have NaN "
                f"predictions: {format_frame_ranges(invalid)}",
                stacklevel=2,
            )
        if stats is not None:
            stats.append(PredictStats(frames=done, seconds=seconds, invalid_frames=invalid))
        coords, conf = _rounded(coords, conf)
        return Poses(
            coords=coords,
            keypoints=self.keypoints,
            frames=np.arange(n),
            likelihood=conf,
            scorer=self.scorer,
            fps=_fps_or_none(fps),
            video=str(path),
            skeleton=self.skeleton,
        )

    # -- many videos at once (single-frame networks) -----------------------------------------

    def predict_videos(
        self,
        paths: Sequence[Path] | Iterable[Path],
        *,
        batch_size: int | None = None,
        reader: str | None = None,
        jobs: int | None = None,
        progress: bool = False,
        on_done: Callable[[Path, Poses | BaseException, PredictStats | None], None],
        waiting: Callable[[], int] | None = None,
        drained: Callable[[], bool] | None = None,
    ) -> None:
        """Predict many videos at once: up to ``jobs`` are decoded concurrently (one thread
        each: PyAV on CPU cores, or an NVDEC session each), their batches go through one model
        (a captured CUDA graph per frame size on CUDA), results come back to the host without
        stalling the GPU, and ``on_done(video, poses or the error, stats)`` is called as each
        video completes (in this thread; hand slow work such as writing to a pool). ``paths``
        may be a :class:`VideoFeed` (:func:`predict_with_members`).

        Networks with a temporal window predict one video at a time (``predict_video``).
        """
        bs = batch_size or self.cfg.predict.batch_size
        reader = reader or self.cfg.predict.reader
        if self.network.context_frames > 1:
            for path in paths:
                stats: list[PredictStats] = []
                try:
                    poses = self.predict_video(
                        path, batch_size=bs, reader=reader, progress=progress, stats=stats
                    )
                except Exception as exc:  # reported per video
                    on_done(path, exc, None)
                    continue
                on_done(path, poses, stats[0])
            return
        predict_with_members(
            [self],
            paths,
            batch_size=bs,
            reader=reader,
            jobs=jobs,
            progress=progress,
            on_done=lambda v, res, st: on_done(
                v, res if isinstance(res, BaseException) else res[0], st
            ),
            waiting=waiting,
            drained=drained,
        )

    @property
    def scorer(self) -> str:
        return f"vidpose_{self.cfg.model.backbone}"


DEFAULT_JOBS = 4
"""Videos (or parts of videos) decoded at once by ``predict_videos`` (NVDEC sessions, PyAV
threads or decoder processes). Fewer decoder threads contend less for the GIL: on one H200
host (16 cores, 8 videos of 9,940 frames, PyAV) 4 threads fed the GPU at 4,213 frames/s, 6 at
3,297-3,329, 8 at 3,821, 12 at 3,528; 20 videos: 4,043 with 4 against 3,841 with 6
(``bench/predict_decoders.py``, ``bench/predict_gpus.py``; bench/results/issue13_h200)."""

PROCESS_JOBS = 8
"""Decoder processes of one GPU when videos are decoded in processes and ``jobs`` is not given
(at most half its cores, at least :data:`DEFAULT_JOBS`): on the 2-H200 host, 8 per GPU beat 12
and 16 (2 GPUs: 7,707 against 7,444 and 5,732 frames/s; one GPU: 4,974 against 4,862; commit
f615ccd, ``bench/results/issue16_h200x2/``)."""


def default_jobs(processes: bool, cores: int | None = None) -> int:
    """Videos decoded at once when not asked: :data:`PROCESS_JOBS` decoder processes (at most
    half of ``cores``, default this process's usable cores), else :data:`DEFAULT_JOBS`
    threads."""
    if not processes:
        return DEFAULT_JOBS
    return max(DEFAULT_JOBS, min(PROCESS_JOBS, (cores or usable_cpus()) // 2))


MIN_PART_FRAMES = 1024
"""A video is split into parts decoded at once only if each part gets at least this many
frames: a part costs a seek and, on average, half a keyframe interval decoded for nothing."""


class VideoFeed:
    """Videos that arrive while a prediction runs (a worker's queue): :meth:`put` them and
    :meth:`close` when no more will come. :func:`predict_with_members` predicts each as it
    arrives, with the same decoders and captured graphs for all of them."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._closed = False

    def put(self, video: Any) -> None:
        self._queue.put(video)

    def close(self) -> None:
        self._closed = True
        self._queue.put(_END)

    def waiting(self) -> int:
        """Videos put and not taken yet (an estimate, for planning)."""
        return max(0, self._queue.qsize() - self._closed)  # not the end marker

    def drained(self) -> bool:
        """Whether no video will come beyond those waiting (closed)."""
        return self._closed

    def __iter__(self) -> Iterator[Any]:
        while (item := self._queue.get()) is not _END:
            yield item


def shares_frames(models: list[PoseModel]) -> bool:
    """Whether several models can predict from the same decoded, resized frames in one pass
    (:func:`predict_with_members`): single-frame networks with the same device, input size
    and keypoints."""
    if len(models) < 2:
        return False
    first = models[0]
    return all(
        m.network.context_frames == 1
        and (m.device, m.input_hw, m.keypoints, m.precision)
        == (first.device, first.input_hw, first.keypoints, first.precision)
        for m in models
    )


def predict_with_members(
    models: list[PoseModel],
    paths: Sequence[Path] | Iterable[Path],
    *,
    batch_size: int | None = None,
    reader: str | None = None,
    jobs: int | None = None,
    progress: bool = False,
    on_done: Callable[[Path, list[Poses] | BaseException, PredictStats | None], None],
    waiting: Callable[[], int] | None = None,
    drained: Callable[[], bool] | None = None,
) -> None:
    """Predict many videos with one or several single-frame models (an ensemble's members) at
    once: every frame is decoded once and goes through every member (one captured CUDA graph
    for all of them on CUDA); ``on_done(video, [poses of each member] or the error, stats)``.

    ``paths`` is a list, or any iterable of videos, predicted as they come (a
    :class:`VideoFeed`: until it is closed); ``waiting()`` then says how many are ready to be
    taken (a feed's own ``waiting`` by default), and ``drained()`` whether nothing will come
    beyond them (a feed's own ``drained``; always, for a list). Up to ``jobs`` decoders run at
    once; when there are fewer videos than decoders, now or once drained, a long video is split
    into parts decoded at once (:data:`MIN_PART_FRAMES`).

    Raises:
        VidposeError: the models differ in device, input size or keypoints, or one has a
            temporal window (those predict with ``predict_video``).
    """
    first = models[0]
    if len(models) > 1 and not shares_frames(models):
        raise VidposeError(
            "these models cannot share frames (a temporal window, or different device, input "
            "size, keypoints or precision): predict them one by one"
        )
    bs = batch_size or first.cfg.predict.batch_size
    reader = reader or first.cfg.predict.reader
    listed = isinstance(paths, Sequence)
    if listed and not paths:
        return
    processes = uses_decoder_processes(first, reader)
    jobs = max(1, jobs or default_jobs(processes))
    runner = _Members(models)
    waiting = waiting or getattr(paths, "waiting", None)
    drained = drained or getattr(paths, "drained", None)
    _MultiVideo(
        runner, paths, waiting, bs, reader, jobs, progress, on_done, processes, drained
    ).run()


def uses_decoder_processes(model: PoseModel, reader: str | None = None) -> bool:
    """Whether ``model`` decodes its videos in worker processes (:func:`decode_in_processes`
    with its ``predict.decoders``, its device and ``reader``, default its ``predict.reader``)."""
    cfg = model.cfg.predict
    return decode_in_processes(cfg.decoders, model.device, reader or cfg.reader)


def split_video(path: Path, parts: int, batch_size: int) -> list[tuple[int, int | None]]:
    """``[start, stop)`` frame ranges that cover ``path`` in at most ``parts`` pieces of at
    least :data:`MIN_PART_FRAMES`, each a whole number of batches (the last one open-ended);
    one range when the video cannot be split cheaply (it does not seek: no usable timestamps)
    or cannot be opened (its decoder reports why)."""
    if parts < 2:
        return [(0, None)]
    from vidpose.video.pyav_reader import PyAVReader

    try:
        with PyAVReader(path) as r:
            n, seeks = r.info.n_frames, r.seeks
    except Exception:
        return [(0, None)]
    parts = min(parts, n // MIN_PART_FRAMES)
    if parts < 2 or not seeks:
        return [(0, None)]
    size = -(-n // parts)
    size = -(-size // batch_size) * batch_size
    starts = list(range(0, n, size))
    return [(s, s + size) for s in starts[:-1]] + [(starts[-1], None)]


class _Members:
    """Several models run on the same frames: the resize once, then every member's network."""

    def __init__(self, models: list[PoseModel]) -> None:
        self.models = models
        first = models[0]
        self.device = first.device
        self.keypoints = first.keypoints
        self.input_hw = first.input_hw
        # compiled backbones (``predict.compile``) are captured too: their kernels replay
        self.use_graphs = self.device.type == "cuda"
        self._graphs = None
        # Several members on a GPU run side by side, each on a stream of its own (captured
        # with the graph): one ResNet-50's kernels at batch 64 leave part of an H200 idle, and
        # five members ran 2,393 -> 2,822 frames/s on 5 streams (session 19).
        self._streams = (
            [torch.cuda.Stream(self.device) for _ in models]
            if self.device.type == "cuda" and len(models) > 1
            else None
        )

    def _eager(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H0, W0, 3) uint8 -> coords (M, B, K, 2) in original px and conf (M, B, K)."""
        first = self.models[0]
        x, orig_hw = first._prepare(frames)
        coords, conf = [], []
        # the compiled networks' input (traced contiguous), made once for all of them
        packed = x.contiguous() if any(m.aot is not None for m in self.models) else x
        here = torch.cuda.current_stream(self.device) if self._streams else None
        for i, m in enumerate(self.models):
            side = contextlib.nullcontext()
            if self._streams:
                self._streams[i].wait_stream(here)
                side = torch.cuda.stream(self._streams[i])
            with side, first._autocast:
                if m.aot is not None:
                    c, p = m._run_aot(packed, orig_hw)
                    coords.append(c)
                    conf.append(p)
                    continue
                if m._features is None:
                    out = m.network.forward_images(x)
                else:  # a single-frame network's forward, its backbone compiled
                    out = m.network.forward_head(m._features(x))
                coords.append(input_to_orig(out.coords.float(), orig_hw, self.input_hw))
                conf.append(out.confidence.float())
        if self._streams:  # every member done before their outputs are stacked
            for s in self._streams:
                here.wait_stream(s)
        return torch.stack(coords), torch.stack(conf)

    @torch.no_grad()
    def infer(self, frames: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` rows' (M, n, K, 2) coords and (M, n, K) confidences; on CUDA a
        replay of a captured graph (one per frame size; a short batch is padded), whose outputs
        are overwritten by the next call."""
        if not self.use_graphs:
            return self._eager(frames)
        from vidpose._graphs import StepGraphs

        if self._graphs is None:
            self._graphs = StepGraphs(
                lambda t, _c: dict(zip(("coords", "conf"), self._eager(t["frames"]))), warmup=1
            )
        out = self._graphs({"frames": frames})
        return out["coords"][:, :n], out["conf"][:, :n]


class _VideoState:
    """One video of a :class:`_MultiVideo` run: its arrays and how far it is."""

    def __init__(self, path: Path, n: int, k: int, members: int = 1) -> None:
        self.path = path
        self.coords = np.full((members, n, k, 2), np.nan)
        self.conf = np.full((members, n, k), np.nan)
        self.invalid: list[int] = []
        self.frames = 0
        self.in_flight = 0
        self.decoded = False  # every part's decoder reached its end
        self.parts_ended = 0
        self.error: BaseException | None = None
        self.t0 = time.perf_counter()
        self.fps: float | None = None

    @property
    def n(self) -> int:
        return self.conf.shape[1]

    def grow(self, n: int) -> None:
        if n > self.n:  # the container under-reported its length
            m, extra = self.conf.shape[0], n - self.n
            self.coords = np.concatenate(
                [self.coords, np.full((m, extra, *self.coords.shape[2:]), np.nan)], axis=1
            )
            self.conf = np.concatenate(
                [self.conf, np.full((m, extra, self.conf.shape[2]), np.nan)], axis=1
            )


_END = object()
_FED = object()  # the feeder took every video of the source
_DIED = object()  # every decoder process stopped
IDLE_S = 0.05
"""With no batch for this long, the predicting thread waits for the results on their way."""
MAX_IN_FLIGHT = 8
"""Batches whose results may be on their way to the host at once."""


class _MultiVideo:
    """The machinery of :meth:`PoseModel.predict_videos`.

    Work is in *tasks*: a video, or a ``[start, stop)`` part of one (:func:`split_video`),
    each decoded by one decoder (a thread, or a worker process). A feeder thread takes videos
    from the source as they come, splits them when decoders would otherwise idle, and starts
    their tasks; this thread runs the network on every batch and finishes each video once all
    of its parts are decoded and predicted.
    """

    def __init__(
        self,
        model: _Members,
        source,
        waiting,
        bs,
        reader,
        jobs,
        progress,
        on_done,
        processes,
        drained=None,
    ) -> None:
        self.model = model
        self.source = source
        listed = isinstance(source, Sequence)
        if waiting is None:  # a list: what the feeder has not taken yet
            waiting = (lambda: len(source) - len(self.paths)) if listed else (lambda: 0)
        self.waiting = waiting
        if drained is None:  # a list: nothing comes beyond it
            drained = (lambda: True) if listed else (lambda: False)
        self.drained = drained
        self.bs = bs
        self.reader = reader
        self.jobs = jobs
        self.processes = processes
        # a GPU converts the planes itself: half of a CPU decoder's work per frame
        self.planar = model.device.type == "cuda"
        self.paths: list[Path] = []  # video number -> path, as the feeder takes them
        self.finished: set[int] = set()  # videos handed to on_done
        # (video, path, start, stop, decoding threads)
        self.tasks: list[tuple[int, Path, int, int | None, int]] = []
        self.parts: dict[int, int] = {}  # video -> its number of tasks
        self._procs: Any = None  # ProcessDecoders when decoding in worker processes
        # task -> its page-locked shared buffers (data pointer -> a view keeping them mapped)
        self._registered: dict[int, dict[int, torch.Tensor]] = {}
        self._last_copy: dict[int, torch.cuda.Event] = {}  # task -> its last copy's event
        self._unpinner: _Unpinner | None = None
        self._copy_stream: torch.cuda.Stream | None = None
        # hands decoder buffers back as soon as the GPU is done with them (CUDA only)
        self._returns: _BufferReturns | None = None
        self.on_done = on_done
        self.members = len(model.models)
        self.queue: queue.Queue = queue.Queue(maxsize=2 * jobs + 2)
        self.stop = threading.Event()
        self.states: dict[int, _VideoState] = {}
        self.in_flight: deque[tuple] = deque()
        self._sem = threading.Semaphore(jobs)  # decoder threads running at once
        self._running = 0  # tasks started and not ended (decoders busy)
        self._lock = threading.Lock()
        self.progress = progress
        self.bar: FramesProgress | None = None
        self._frames_total = 0
        self._cuda_index = 0

    # the feeder ------------------------------------------------------------------------------

    def _feed(self) -> None:
        """Take the source's videos as decoders free up, split them where decoders would
        idle, start their tasks; then tell the main loop how many tasks there were.

        A video is taken only once a decoder is free for it, so that how it is split is
        decided as late as possible: when the source is *drained* (nothing will come beyond
        what waits: a list, or a worker told that its scheduler has no more videos), each
        video is split so that every decoder has a part until the end (``jobs`` over the
        videos left), and the last videos of a batch do not leave most decoders idle; before
        that, only the decoders free now are shared (``free`` over the videos waiting)."""
        try:
            source = iter(self.source)
            while True:
                if not self._take_slot():
                    return
                path = next(source, _END)
                if path is _END:
                    self._give_slot()
                    return
                path = Path(path)
                if self.stop.is_set():  # taken from a feed: said, not lost
                    self._give_slot()
                    self.on_done(path, VidposeError("prediction stopped before it started"), None)
                    return
                i = len(self.paths)
                self.paths.append(path)
                waiting = self.waiting()
                with self._lock:
                    free = self.jobs - self._running  # this slot among them
                if self.drained():
                    share = max(1, self.jobs // (waiting + 1))
                else:
                    share = max(1, free // (waiting + 1))
                ranges = split_video(path, share, self.bs)
                self.parts[i] = len(ranges)
                # the cores shared by the decoders that will run beside these
                with self._lock:
                    beside = self._running + len(ranges) + waiting
                threads = max(1, usable_cpus() // max(1, min(self.jobs, beside)))
                for k, (start, stop) in enumerate(ranges):
                    if k and not self._take_slot():
                        return
                    t = len(self.tasks)
                    self.tasks.append((i, path, start, stop, threads))
                    self._start_task(t)
        except BaseException as exc:  # the source failed: the main loop raises it
            self.queue.put((-1, exc, None))
        finally:
            self.queue.put((-1, _FED, len(self.tasks)))

    def _take_slot(self) -> bool:
        """Wait for a free decoder (False once the prediction stops)."""
        self._sem.acquire()
        return not self.stop.is_set()

    def _give_slot(self) -> None:
        self._sem.release()

    def _start_task(self, t: int) -> None:
        """Start task ``t`` on the decoder slot taken for it."""
        with self._lock:
            self._running += 1
        if self._procs is not None:
            _, path, start, stop, threads = self.tasks[t]
            self._procs.submit(t, path, start, stop, threads)
            return
        threading.Thread(
            target=self._decode, args=(t,), daemon=True, name=f"vidpose-decode-{t}"
        ).start()

    def _task_done(self) -> None:
        """A task's decoder is free (its last message is on its way to the main loop)."""
        with self._lock:
            self._running -= 1
        self._sem.release()

    # decoder threads ------------------------------------------------------------------------

    def _decode(self, t: int) -> None:
        _, path, start, stop, threads = self.tasks[t]
        try:
            device = self.model.device
            if device.type == "cuda":  # where pin_memory makes its buffers; an index, as
                torch.cuda.set_device(self._cuda_index)  # a bare "cuda" device has none
            with open_video(
                path, reader=self.reader, device=device, planar=self.planar, threads=threads
            ) as vr:
                self.queue.put((t, "open", vr.info))
                for batch in vr.iter_batches(self.bs, start, stop):
                    if self.stop.is_set():
                        return
                    frames = batch.frames
                    if isinstance(frames, np.ndarray):
                        frames = torch.from_numpy(frames)
                        if device.type == "cuda":
                            # not while the predicting thread captures a graph
                            with CAPTURE_GATE.running():
                                frames = frames.pin_memory()
                    self.queue.put((t, batch, frames))
            self.queue.put((t, _END, None))
        except BaseException as exc:  # reported for this video; the others go on
            self.queue.put((t, exc, None))
        finally:
            self._task_done()

    def _start_processes(self) -> None:
        from vidpose.predict.decoders import END, started

        # "auto" is PyAV here: NVDEC in worker processes runs in a CUDA context per worker,
        # which the GPU time-slices with the network's (see decode_in_processes)
        reader = "pyav" if self.reader == "auto" else self.reader
        cuda = None  # a GPU reader's workers decode on the model's GPU
        if self.model.device.type == "cuda" and reader in READERS and READERS.get(reader).gpu:
            cuda = f"cuda:{self._cuda_index}"
        procs = started(self.jobs, self.bs, reader, planar=self.planar, device=cuda)
        self._procs = procs

        def bridge() -> None:
            try:
                while not self.stop.is_set():
                    try:
                        t, kind, payload = procs.get(timeout=1.0)
                    except queue.Empty:
                        continue
                    if kind == "open":
                        self.queue.put((t, "open", payload))
                    elif kind == END:
                        self.queue.put((t, _END, None))
                        self._task_done()  # its decoder takes the next task now
                    elif isinstance(kind, BaseException):
                        self.queue.put((t, kind, None))
                        self._task_done()
                    else:
                        self.queue.put((t, kind, (kind.frames, payload)))
            except BaseException as exc:  # every worker died: the tasks left fail with it
                self.queue.put((-1, _DIED, exc))

        threading.Thread(target=bridge, daemon=True, name="vidpose-decoders").start()

    def _shared_to_device(self, t: int, frames: torch.Tensor, ticket: Any) -> torch.Tensor:
        """Task ``t``'s batch from a worker's shared buffer, on the device; the buffer goes back
        to the worker once the copy is done (at once on CPU, or when the copy's event has
        passed on CUDA)."""
        device = self.model.device
        if device.type != "cuda":
            return frames  # consumed by the network below, before the buffer is handed back
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(device)
        pinned = self._pin(t, frames)
        with torch.cuda.stream(self._copy_stream):
            out = frames.to(device, non_blocking=pinned)
            done = torch.cuda.Event()
            done.record(self._copy_stream)
        torch.cuda.current_stream(device).wait_event(done)
        out.record_stream(torch.cuda.current_stream(device))
        self._returning().put(done, ticket)
        if pinned:
            self._last_copy[t] = done
        return out

    def _returning(self) -> _BufferReturns:
        if self._returns is None:
            self._returns = _BufferReturns(self._procs, self._cuda_index)
        return self._returns

    def _pin(self, t: int, frames: torch.Tensor) -> bool:
        """Page-lock the shared buffer holding ``frames`` once per task (asynchronous
        copies); False if it cannot be (the copy is then synchronous, and as correct)."""
        storage = frames.untyped_storage()
        key = storage.data_ptr()
        pinned = self._registered.setdefault(t, {})
        if key in pinned:
            return True
        try:
            err = torch.cuda.cudart().cudaHostRegister(key, storage.nbytes(), 0)
            ok = int(err[0] if isinstance(err, tuple) else err) == 0
        except Exception:  # an old torch without cudart bindings: pageable copies
            ok = False
        if ok:
            pinned[key] = frames  # keeps the mapping alive while it is registered
        return ok

    def _hand_back(self) -> None:
        """Wait until every buffer sent to the GPU is back with its worker."""
        if self._returns is not None:
            self._returns.wait()

    def _unpin(self, tasks: list[int]) -> None:
        """Unregister the buffers of finished tasks once their last copies are done, so that
        a long batch does not accumulate page-locked memory, one set of buffers per task: in
        a thread of its own (:class:`_Unpinner`), not here. Done here, the predicting thread
        waited for every copy in flight and for ``cudaHostUnregister`` as each task ended,
        and fed the GPU nothing meanwhile: py-spy of a one-video 5-member ensemble on an
        H200 (8 parts) showed ~0.7 s of its end in this method (session 19)."""
        for t in tasks:
            buffers = self._registered.pop(t, {})
            last = self._last_copy.pop(t, None)
            if buffers:
                if self._unpinner is None:
                    self._unpinner = _Unpinner(self._cuda_index)
                self._unpinner.put(last, buffers)

    # main loop ------------------------------------------------------------------------------

    def run(self) -> None:
        # Streams, captures and pinned copies use the thread's current device: make it the
        # model's (a worker predicts on cuda:1 from a thread whose default is cuda:0).
        if self.model.device.type != "cuda":
            self._run()
            return
        with torch.cuda.device(self.model.device):
            self._run()

    def _run(self) -> None:
        if self.model.device.type == "cuda":
            self._cuda_index = torch.cuda.current_device()  # the model's, set by run()
        if self.processes:
            self._start_processes()
        threading.Thread(target=self._feed, daemon=True, name="vidpose-feed").start()
        ended, fed = 0, None  # tasks ended; all tasks, once the feeder is done
        try:
            while fed is None or ended < fed:
                try:
                    t, what, payload = self.queue.get(timeout=IDLE_S)
                except queue.Empty:
                    # Quiet: a decoder or the source may not speak before these results are
                    # out (a worker's scheduler sends more videos when it hears of finished
                    # ones), so bring in every result on its way and finish those videos.
                    self._collect(block=True)
                    continue
                if t < 0:  # from the feeder or the bridge
                    if what is _FED:
                        fed = payload
                    elif what is _DIED:  # no decoder left: every task not ended fails
                        self._fail_unended(payload)
                        ended, fed = len(self.tasks), len(self.tasks)
                    else:
                        raise what  # the source of videos failed
                    continue
                i = self.tasks[t][0]
                if what == "open":
                    if i not in self.states:
                        st = self.states[i] = _VideoState(
                            self.paths[i], payload.n_frames, len(self.model.keypoints), self.members
                        )
                        st.fps = payload.fps
                        self._frames_total += st.n
                        if self.progress:
                            self._bar_total(self._frames_total)
                    continue
                if isinstance(what, BaseException) or what is _END:
                    ended += 1
                    self._task_ended(t, i, what if isinstance(what, BaseException) else None)
                else:
                    self._batch(t, i, what, payload)
                self._collect(block=False)
            self._collect(block=True)
        finally:
            self.stop.set()
            if self._procs is not None:
                with contextlib.suppress(Exception):
                    self._hand_back()
                    self._unpin(list(self._registered))
                if self._unpinner is not None:  # every buffer unregistered before the end
                    self._unpinner.close(timeout=30)
                if self._returns is not None:
                    self._returns.close()
                self._procs.close()
            for _ in range(self.jobs):  # let a feeder waiting for a slot see the stop
                self._sem.release()
            if self.bar is not None:
                self.bar.stop()

    def _task_ended(self, t: int, i: int, error: BaseException | None) -> None:
        self._unpin([t])
        st = self.states.get(i)
        if st is None:  # failed before it opened
            st = self.states[i] = _VideoState(self.paths[i], 0, 0, self.members)
        if error is not None and st.error is None:
            st.error = error
        st.parts_ended += 1
        st.decoded = st.parts_ended == self.parts[i]

    def _fail_unended(self, exc: BaseException) -> None:
        for i in range(len(self.paths)):
            if i in self.finished:
                continue
            st = self.states.get(i)
            if st is None:
                st = self.states[i] = _VideoState(self.paths[i], 0, 0, self.members)
            if not st.decoded:
                st.error = st.error or exc
                st.decoded = True

    def _batch(self, t: int, i: int, batch: FrameBatch, payload: Any) -> None:
        ticket = None
        if isinstance(payload, tuple):  # a worker process's shared buffer
            payload, ticket = payload
        try:
            if self.states[i].error is None:
                # a GPU decoder's buffer is read in place, and handed back after the network
                in_place = ticket is not None and payload.is_cuda
                if ticket is not None and not in_place:
                    payload = self._shared_to_device(t, payload, ticket)
                    if self.model.device.type == "cuda":
                        ticket = None  # handed back when its copy is done
                self._infer(i, self.states[i], batch, payload)
                if in_place:  # handed back once the network has read it
                    done = torch.cuda.Event()
                    done.record()
                    self._returning().put(done, ticket)
                    ticket = None
        except Exception as exc:  # this video fails; the others go on
            self.states[i].error = exc
        finally:
            if ticket is not None:
                self._procs.release(ticket)

    def _bar_total(self, total: int) -> None:
        if self.bar is None:
            self.bar = FramesProgress("videos", total)
        else:
            self.bar.set_total(total)

    def _infer(self, i: int, st: _VideoState, batch: FrameBatch, frames: torch.Tensor) -> None:
        model = self.model
        idx = batch.indices
        st.grow(int(idx[-1]) + 1)
        ok = np.asarray(batch.valid, dtype=bool)
        st.invalid.extend(idx[~ok].tolist())
        st.frames += len(idx)
        n = frames.shape[0]
        if model.use_graphs:
            frames = frames.to(model.device, non_blocking=True)
            if n < self.bs:  # the video's last batch: padded to the captured size
                pad = frames.new_zeros((self.bs - n, *frames.shape[1:]))
                frames = torch.cat([frames, pad])
        coords, conf = model.infer(frames, n)
        if model.device.type == "cuda":
            hc = torch.empty(coords.shape, dtype=torch.float32, pin_memory=True)
            hp = torch.empty(conf.shape, dtype=torch.float32, pin_memory=True)
            hc.copy_(coords, non_blocking=True)
            hp.copy_(conf, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            hc, hp, event = coords, conf, None
        st.in_flight += 1
        self.in_flight.append((i, idx, ok, hc, hp, event))

    def _collect(self, block: bool) -> None:
        """Move results that reached the host into their videos' arrays and finish the videos
        that are complete. ``block``: wait for all; otherwise only what is ready (waiting for
        the oldest when too many are on their way, which bounds pinned memory)."""
        while self.in_flight:
            i, idx, ok, hc, hp, event = self.in_flight[0]
            if event is not None and not event.query():
                if not block and len(self.in_flight) <= MAX_IN_FLIGHT:
                    break
                event.synchronize()
            self.in_flight.popleft()
            st = self.states[i]
            st.coords[:, idx[ok]] = hc.numpy()[:, ok]
            st.conf[:, idx[ok]] = hp.numpy()[:, ok]
            st.in_flight -= 1
            if self.bar is not None:
                self.bar.advance(len(idx))
        for i, st in list(self.states.items()):
            if st.decoded and st.in_flight == 0:
                del self.states[i]
                self.finished.add(i)
                self._finish(st)

    def _finish(self, st: _VideoState) -> None:
        if st.error is not None:
            self.on_done(st.path, st.error, None)
            return
        seconds = time.perf_counter() - st.t0
        n = st.n
        missing = sorted(set(range(n)) - set(_decoded_rows(st.conf[0])))
        invalid = sorted(set(st.invalid) | set(missing))
        if invalid:
            warnings.warn(
                f"{st.path}: {len(invalid)} frame(s) could not be decoded and have NaN "
                f"predictions: {format_frame_ranges(invalid)}",
                stacklevel=2,
            )
        coords, conf = _rounded(st.coords, st.conf)
        poses = [
            Poses(
                coords=coords[j],
                keypoints=self.model.keypoints,
                frames=np.arange(n),
                likelihood=conf[j],
                scorer=m.scorer,
                fps=_fps_or_none(st.fps),
                video=str(st.path),
                skeleton=m.skeleton,
            )
            for j, m in enumerate(self.model.models)
        ]
        self.on_done(st.path, poses, PredictStats(st.frames, seconds, invalid))


class _DeviceThread:
    """A daemon thread on a CUDA device (``cuda_index``) that handles the items put to it
    (:meth:`_handle`) in order, until :meth:`close`."""

    def __init__(self, cuda_index: int | None, name: str) -> None:
        self._index = cuda_index
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._thread.start()

    def _run(self) -> None:
        # the items' device; never a reason for this thread to end: callers count on it
        if self._index is not None:
            with contextlib.suppress(Exception):
                torch.cuda.set_device(self._index)
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._handle(item)

    def _handle(self, item: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        """Handle what was put, then stop (waiting ``timeout`` s at most)."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)


class _BufferReturns(_DeviceThread):
    """A thread that hands each decoder buffer back to its worker process as soon as the GPU
    is done with it (its copy's event has passed), whatever the predicting thread is doing.

    The predicting thread used to hand buffers back between batches, and it spends most of a
    run blocked on the network's results: under py-spy (H200 host, one 9,940-frame video in 8
    parts, commit 428c0b9), the 8 decoder processes spent about half their time waiting for a
    free buffer.
    """

    def __init__(self, procs: Any, cuda_index: int | None) -> None:
        self._procs = procs
        self._pending = 0
        self._cond = threading.Condition()
        super().__init__(cuda_index, "vidpose-returns")

    def put(self, event: torch.cuda.Event, ticket: Any) -> None:
        """Hand ``ticket``'s buffer back once ``event`` has passed."""
        with self._cond:
            self._pending += 1
        self._queue.put((event, ticket))

    def _handle(self, item: tuple[torch.cuda.Event, Any]) -> None:
        event, ticket = item
        try:
            event.synchronize()
            self._procs.release(ticket)
        except Exception:  # closing: the workers are being stopped anyway
            pass
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def wait(self) -> None:
        """Until every buffer put so far is handed back."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending == 0)


class _Unpinner(_DeviceThread):
    """A thread that unregisters page-locked decoder buffers (``cudaHostUnregister``) once
    the copies from them are done, off the predicting thread."""

    def __init__(self, cuda_index: int | None) -> None:
        super().__init__(cuda_index, "vidpose-unpin")

    def put(self, last_copy: torch.cuda.Event | None, buffers: dict[int, torch.Tensor]) -> None:
        """Unregister ``buffers`` (data pointer -> a view keeping it mapped) once
        ``last_copy``, the last copy from any of them, has passed."""
        self._queue.put((last_copy, buffers))

    def _handle(self, item: tuple[torch.cuda.Event | None, dict[int, torch.Tensor]]) -> None:
        last_copy, buffers = item
        with contextlib.suppress(Exception):
            if last_copy is not None:
                last_copy.synchronize()
            for key in buffers:
                torch.cuda.cudart().cudaHostUnregister(key)
        # the views go with the item: the mappings may be released now


def _rounded(coords: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.round(coords, COORD_DECIMALS), np.round(conf, COORD_DECIMALS + 1)


def _decoded_rows(conf: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~np.isnan(conf).all(axis=1))


def _prefetch(it: Iterator[FrameBatch], depth: int) -> Iterator[FrameBatch]:
    """Run ``it`` in a background thread, ``depth`` items ahead; re-raises its errors here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    sentinel = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                if stop.is_set():
                    break
                q.put(item)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)
        finally:
            q.put(sentinel)

    thread = threading.Thread(target=work, daemon=True, name="vidpose-decode")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is sentinel:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def load_model(
    model_dir: str | Path,
    *,
    device: str | None = None,
    precision: str | None = None,
    checkpoint: str = "best",
    like: PoseModel | None = None,
    aot: bool | None = None,
    fold: bool | None = None,
    fuse: bool | None = None,
) -> PoseModel:
    """Load ``MODEL_DIR/checkpoints/<checkpoint>.ckpt`` with the config saved beside it.

    ``like``: a model loaded before (an ensemble's first member); when its network is the same
    (``model.*`` config and keypoint count), this one starts as a copy of it instead of being
    built and initialised afresh, then gets its own weights.

    ``device`` and ``precision`` default to the model's ``predict.*`` config. A multi-camera
    model's record gives the model its ``views`` and its copy of the calibration. On CPU in
    float32, a single-frame network runs as compiled ahead of time (:mod:`vidpose.aot`) when
    the directory has a package compiled from this checkpoint by this torch (``aot``, default
    ``predict.aot``). Each batch normalisation that follows a convolution is folded into it
    (:mod:`vidpose.models.folding`; ``fold``, default ``predict.fold_batchnorm``) when the
    model predicts in float32: the same function, checked on a probe input, with a
    memory-bound kernel fewer per pair. On a GPU (``fuse``, default ``predict.fuse_conv_relu``)
    the norms are folded whatever the precision, and each convolution is fused with the ReLU
    (and residual sum) after it (:mod:`vidpose.models.fusion`), checked the same way.

    Raises:
        ModelDirError: the directory is not a complete model, or a file of it is damaged
            (the calibration a multi-camera model's record names included).
    """
    md = ModelDir(model_dir)
    md.require_complete()
    cfg = load_config(md.config)
    record = md.read_record()
    device_ = resolve_device(device or cfg.predict.device)
    precision = resolve_precision(precision or cfg.predict.precision, device_)
    # float32 only: in bf16 on an H200 the folded ResNet-50 ran slower (6,408 against 6,959
    # frames/s at batch 64, bench/predict_network.py) and, rounded differently, not as the same
    # function (keypoints up to 220 px apart where the heatmap is flat)
    fold = (cfg.predict.fold_batchnorm if fold is None else fold) and precision == "32"
    # on a GPU, whatever the precision: cuDNN's fused kernels doubled the ResNet-50 trunk's
    # images/s in bf16 on an H200 (models/fusion.py), and they need the norms folded first
    fuse = (cfg.predict.fuse_conv_relu if fuse is None else fuse) and device_.type == "cuda"
    fold = fold or fuse
    copied = (
        like is not None
        and like.fold_requested == fold
        and like.fuse_requested == fuse
        and like.precision == precision  # its weights may be stored in it (cast_weights)
        and like.cfg.model == cfg.model
        and like.cfg.training.channels_last == cfg.training.channels_last
        and len(like.keypoints) == len(record.keypoints)
    )
    if copied:
        # the same network: a copy of it, whose weights are all replaced below, costs a memory
        # copy, where building one initialises every weight at random (0.25 s for a ResNet-50)
        network = copy.deepcopy(like.network)
    else:
        # built where it runs: a GPU draws the initial weights, which the checkpoint's replace,
        # in milliseconds, where the CPU took ~0.4 s for a ResNet-50 and then copied them over
        # (a GPU worker's model load: 2.0 s on the 2-H200 host, session 18)
        with torch.device(device_) if device_.type == "cuda" else contextlib.nullcontext():
            network = build_network_from_config(cfg, len(record.keypoints), pretrained=False)
    folded = list(like.folded) if copied else []
    ckpt = md.checkpoint(checkpoint)
    try:
        state = _checkpoint_state(ckpt)
        prefix = "network."
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if folded:  # the copy is folded already: so are the weights it gets
            state = fold_state_dict(state, folded)
        network.load_state_dict(state)
    except Exception as exc:  # truncated file, not a checkpoint, weights of another network
        raise ModelDirError(
            f"{ckpt}: cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); the "
            "checkpoint is damaged or belongs to another network"
        ) from exc
    network.eval()
    if fuse:  # folded and fused where it runs: the fused kernels are cuDNN's
        network.to(device_)
    if fold and not copied:
        probe = _probe(network).to(device_ if fuse else "cpu")
        with exact_float32():
            folded = fold_batchnorm(network, probe, _probe_forward)
    fused = list(like.fused) if copied else []
    if fuse and folded and not copied:
        fused = fuse_conv_relu(network, probe, _probe_forward)
    if fuse:  # a copy's weights were loaded into its original's cast parameters: cast too
        cast_weights(network, precision)
    model = PoseModel(
        network,
        cfg,
        record.keypoints,
        device_,
        precision,
        model_dir=md.path,
        skeleton=record.skeleton or None,
        views=record.views,
        calibration=md.read_calibration(record),
    )
    model.fold_requested = fold
    model.folded = folded
    model.fuse_requested = fuse
    model.fused = fused
    if (
        (cfg.predict.aot if aot is None else aot)
        and model.device.type == "cpu"
        and model.precision == "32"
        and network.context_frames == 1
    ):
        from vidpose.aot import load_compiled

        model.aot = load_compiled(md.path, ckpt)
    return model


def cast_weights(network: nn.Module, precision: str) -> int:
    """Store the convolutions' and linear layers' weights in the autocast precision (bf16 or
    16): what autocast would otherwise cast afresh, one kernel per tensor, on every forward
    (~110 tensors for ResNet-50 + heatmap_fpn: 5.83 -> 5.59 ms a batch of 64 on an H200,
    session 19). The same values, so the same outputs (bit for bit): those layers' parameters
    are used only by their own convolution or matrix product, which autocast computes in that
    precision anyway. Float32 keeps the weights as they are. The number of tensors cast."""
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)
    if dtype is None:
        return 0
    n = 0
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            for p in module.parameters(recurse=False):
                if p.dtype != dtype:
                    p.data = p.data.to(dtype)
                    n += 1
    return n


def _checkpoint_state(ckpt: Path) -> dict[str, Any]:
    """The checkpoint's ``state_dict``, memory-mapped where the file allows it: only the
    network's weights are read, not the optimiser's state saved beside them."""
    try:
        return torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["state_dict"]
    except RuntimeError:  # not a zip checkpoint (mmap needs one): read as a whole
        return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def _probe(network: PoseNetwork) -> torch.Tensor:
    """A small fixed input for :func:`fold_batchnorm`'s check: two images of two strides."""
    side = 2 * network.stride
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, side, side, generator=gen)


def _probe_forward(network: PoseNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = network.forward_images(x)
    return out.coords, out.confidence


def _fps_or_none(fps: float | None) -> float | None:
    """The container's frame rate, or None when it does not give a usable one."""
    return float(fps) if fps is not None and np.isfinite(fps) and fps > 0 else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
