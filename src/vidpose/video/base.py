"""The VideoReader protocol and its registry of backends.

A reader gives metadata, random access to a clip of T consecutive frames, and sequential
iteration in batches. Frames are always RGB uint8, (T, H, W, 3), in decode order. CPU backends
return numpy arrays; GPU backends (later) return CUDA torch tensors of the same layout.

How to add a backend: write a class satisfying :class:`VideoReader` in its own module under
``vidpose/video/``, import heavy dependencies lazily inside it, and decorate it with
``@register_reader("name", priority=N, gpu=bool)``. ``open_video(path, reader="auto")`` tries
backends from highest priority down and falls back when one is unavailable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidpose.errors import VideoError
from vidpose.registry import Registry, first_line


@dataclass(frozen=True)
class VideoInfo:
    """What a video container says about itself.

    Attributes:
        path: the video file.
        n_frames: number of frames (counted by the container or estimated from duration x fps).
        fps: frames per second.
        width, height: frame size in pixels.
        codec: codec name, e.g. "h264".
    """

    path: Path
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str


@dataclass
class FrameBatch:
    """A run of consecutive frames from a video.

    Attributes:
        start: index of the first frame.
        frames: (B, H, W, 3) uint8 RGB; numpy on CPU backends, a torch tensor on GPU ones.
            Frames that failed to decode are zero.
        valid: (B,) bool, False where the frame failed to decode.
        pixels: "rgb", or "i420" when a reader asked for planes (``open_video(planar=True)``)
            gave them: ``frames`` is then (B, 3H/2, W) packed I420
            (:func:`vidpose.video.color.i420_to_rgb`).
    """

    start: int
    frames: Any
    valid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    pixels: str = "rgb"

    @property
    def indices(self) -> np.ndarray:
        return np.arange(self.start, self.start + len(self.valid))


@runtime_checkable
class VideoReader(Protocol):
    """A video open for reading. Use as a context manager, or call ``close()``."""

    info: VideoInfo

    def read_clip(self, start: int, length: int) -> FrameBatch:
        """Frames ``start .. start+length-1``. Raises VideoError if start is out of range."""
        ...

    def iter_batches(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[FrameBatch]:
        """Every frame in [start, stop) in order, ``batch_size`` at a time (last may be short)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> VideoReader: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class ReaderSpec:
    """A registered VideoReader backend.

    Attributes:
        name: as given to ``open_video(reader=...)``, ``--reader`` and ``*.reader`` keys.
        factory: ``factory(path, device=...) -> VideoReader``; raises ReaderUnavailableError
            when it cannot run here.
        priority: ``reader="auto"`` tries higher priorities first when streaming a video.
        gpu: whether it delivers frames as CUDA tensors.
        help: one line.
        clip_priority: the same for random clips (training), where seeking dominates: threaded
            CPU decoding was measured faster than the GPU readers there.
        host_options: whether ``factory`` takes ``planar=`` (frames as I420 planes where
            exact, :class:`FrameBatch` ``pixels``) and ``threads=`` (decoding threads).
    """

    name: str
    factory: Callable[..., VideoReader]
    priority: int
    gpu: bool
    help: str
    clip_priority: int = 0
    host_options: bool = False


READERS: Registry[ReaderSpec] = Registry(
    "reader",
    key="reader",
    modules=("vidpose.video.pyav_reader",),
    optional_modules={"nvdec": "vidpose.video.nvdec_reader", "dali": "vidpose.video.dali_reader"},
    order=lambda s: -s.priority,
    columns=lambda s: f"{'GPU' if s.gpu else 'CPU'} priority {s.priority:<3}",
)
READER_CHOICES = ("auto",)
"""Names accepted besides the registered readers: ``auto`` picks the best that works."""


def register_reader(
    name: str,
    *,
    priority: int,
    gpu: bool,
    help: str = "",
    clip_priority: int = 0,
    host_options: bool = False,
):
    """Class decorator registering a VideoReader backend under ``name``."""

    def wrap(cls):
        doc = help or first_line(cls.__doc__)
        READERS.add(ReaderSpec(name, cls, priority, gpu, doc, clip_priority, host_options))
        return cls

    return wrap


def i420_shape(height: int, width: int) -> tuple[int, int]:
    """The (rows, columns) of one frame's I420 planes packed as
    :func:`vidpose.video.color.i420_to_rgb` reads them: the luma plane, then Cb, then Cr, each
    plane's rows back to back (H and W even)."""
    if height % 2 or width % 2:
        raise ValueError(f"I420 packing needs an even frame size, got {height}x{width}")
    return height * 3 // 2, width


def frames_to_uint8_rgb(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) grey or (T, H, W, 1|3) frames as (T, H, W, 3) uint8 RGB."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames, dtype=np.uint8)


def format_frame_ranges(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts: list[str] = []
    run_start = prev = None
    for i in [*sorted(indices), None]:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if run_start is not None:
            parts.append(f"{run_start}" if run_start == prev else f"{run_start}-{prev}")
        run_start = prev = i
    return ", ".join(parts)


class ReaderChecks:
    """Argument checks and decode-error bookkeeping shared by the reader backends.

    A backend sets ``path``, ``info``, ``_errors`` and ``_warned`` (sets of frame indices),
    defines ``_is_closed()``, and may name itself in warnings with ``_decoder_name``.
    """

    path: Path
    info: VideoInfo
    _errors: set[int]
    _warned: set[int]
    _decoder_name = ""

    def _is_closed(self) -> bool:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    @property
    def decode_errors(self) -> list[int]:
        """Indices of frames that could not be decoded so far (sorted)."""
        return sorted(self._errors)

    def _check_range(self, start: int, what: str) -> None:
        if self._is_closed():
            raise VideoError(f"{self.path}: reader is closed")
        n = self.info.n_frames
        if not 0 <= start < n:
            raise VideoError(
                f"{self.path}: {what} frame {start} out of range; the video has {n} frames"
            )

    def _clip_length(self, start: int, length: int) -> int:
        """Check a clip request; its length, cut at the end of the video."""
        self._check_range(start, "clip start")
        if length < 1:
            raise VideoError(f"{self.path}: clip length must be >= 1, got {length}")
        return min(length, self.info.n_frames - start)

    def _batches_stop(self, batch_size: int, start: int, stop: int | None) -> int:
        """Check an iteration request; its stop, cut at the end of the video."""
        self._check_range(start, "start")
        if batch_size < 1:
            raise VideoError(f"{self.path}: batch_size must be >= 1, got {batch_size}")
        return self.info.n_frames if stop is None else min(stop, self.info.n_frames)

    def _warn_errors(self) -> None:
        new = self._errors - self._warned
        if new:
            self._warned |= new
            by = f" by {self._decoder_name}" if self._decoder_name else ""
            warnings.warn(
                f"{self.path}: {len(new)} frame(s) could not be decoded{by} and were "
                f"returned as zeros with valid=False: {format_frame_ranges(sorted(new))}",
                stacklevel=3,
            )
