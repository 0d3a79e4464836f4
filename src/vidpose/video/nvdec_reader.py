"""GPU video reader on NVDEC through PyNvVideoCodec: frames are decoded straight into CUDA memory.

Frames come back as ``torch.uint8`` CUDA tensors ``(B, H, W, 3)`` RGB, on the device the reader
was opened for. The decoder's output surfaces are handed to torch through DLPack (no host copy)
and copied once, on the GPU, into the returned tensor (the decoder reuses its surfaces).

Install: ``uv sync --extra gpu`` (PyPI package ``pynvvideocodec``; needs an NVIDIA driver with
NVDEC). When the package, a CUDA device or NVDEC support for the video's codec is missing, the
constructor raises :class:`~vidpose.errors.ReaderUnavailableError`, so that
``open_video(reader="auto")`` falls back to the next backend (``pyav`` in the end).

Colour. By default PyNvVideoCodec converts to RGB on the GPU (``OutputColorType.RGB``) with the
matrix it chooses from the stream's signalled colour description; for a stream that signals none,
NVIDIA's conversion may use BT.709 where FFmpeg (and so
:class:`~vidpose.video.pyav_reader.PyAVReader`) uses BT.601, which changes grey pixels not at all
and saturated colours by a few levels. ``rgb="torch"`` asks for the decoder's native NV12 instead
and converts it with :func:`nv12_to_rgb`: BT.601 limited range, rounded like FFmpeg's swscale,
within 2 levels of PyAV's ``rgb24``. Either way chroma is upsampled by repetition, as swscale does.

Frame identity. Frame ``i`` is the ``i``-th frame in presentation order, as for PyAV. When the
reader opens, it checks that the decoder's timestamps (``getPTS()``) follow the constant-rate
grid of the stream's time base (frames 0 and 1 one frame apart). If they do, every frame the
decoder returns is placed by its timestamp, not by its position in the decoder's answer: a frame
that lands elsewhere than asked is put where it belongs, and the slot asked for stays invalid. If
they do not, the reader trusts the decoder's indexing (``timestamp_checked`` is False).

Frame count. ``info`` is PyAV's (:func:`~vidpose.video.probe_video`), so every backend reports the
same ``n_frames``; frames the decoder cannot deliver are zeros with ``valid`` False, listed in
:attr:`NvdecReader.decode_errors` and in one warning at the end of an iteration or at ``close()``.

Not thread-safe: use one reader per thread.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import av
import numpy as np
import torch

from vidpose.errors import ReaderUnavailableError, VideoError
from vidpose.video.base import (
    FrameBatch,
    ReaderChecks,
    VideoInfo,
    format_frame_ranges,
    register_reader,
)
from vidpose.video.color import nv12_to_rgb
from vidpose.video.pyav_reader import PyAVReader

__all__ = [
    "INSTALL_HINT",
    "NvdecReader",
    "import_pynvvideocodec",
    "nv12_to_rgb",
    "require_cuda_type",
    "resolve_cuda_device",
]

INSTALL_HINT = (
    "install PyNvVideoCodec with `uv sync --extra gpu` (PyPI package `pynvvideocodec`; it needs "
    "an NVIDIA GPU and a driver with NVDEC)"
)

# The decoder keeps every surface of one call alive until the call returns; bounding the frames
# per call bounds that memory (and is plenty to amortise the call).
_MAX_FRAMES_PER_CALL = 32

AUTO_STREAMING: Literal["threaded", "stream", "index"] = "index"
"""How ``sequential="auto"`` reads a video whose frame timestamps were checked at open.

"index", as every measured run did. The ThreadedDecoder (decoding ahead on its own thread,
outside the GIL) decoded 9,600 frames/s with 8 threads on one H200 where reads by index gave
7,712. But under the full prediction load it left frames invalid around multiples of its
prefetch depth, and the process aborted at exit with a corrupted heap (PyNvVideoCodec 2.2.4;
``bench/results/issue13_h200/README.md``). Reading by index is also what ``auto`` did in
practice before: the timestamp check rejected the SimpleDecoder's negative timestamps (a
B-frame video's first frames: -128, -64), so no measured run streamed. ``sequential=
"threaded"`` or ``"stream"`` still asks for streaming explicitly."""

_PREFETCH = 128
"""Frames a ThreadedDecoder decodes ahead of what was asked (its buffer)."""

_nvc: ModuleType | None = None
_nvc_error: str | None = None


def import_pynvvideocodec() -> ModuleType:
    """The ``PyNvVideoCodec`` module, imported on first use.

    Raises:
        ReaderUnavailableError: not installed (the message says how to install it), or installed
            but unable to load (no NVIDIA driver, driver too old).
    """
    global _nvc, _nvc_error
    if _nvc is not None:
        return _nvc
    if _nvc_error is None:
        try:
            _nvc = importlib.import_module("PyNvVideoCodec")
            return _nvc
        except ImportError as e:
            if getattr(e, "name", None) == "PyNvVideoCodec":
                _nvc_error = f"PyNvVideoCodec is not installed; {INSTALL_HINT}"
            else:
                _nvc_error = f"PyNvVideoCodec cannot be imported ({e}); {INSTALL_HINT}"
        except Exception as e:  # the package raises RuntimeError when no driver is found
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _nvc_error = (
                f"PyNvVideoCodec is installed but cannot load ({first_line}); it needs an NVIDIA "
                "driver with NVDEC"
            )
    raise ReaderUnavailableError(_nvc_error)


def require_cuda_type(device: str | torch.device | None, backend: str) -> None:
    """ReaderUnavailableError when ``device`` names something other than a CUDA device."""
    if device is not None and torch.device(device).type != "cuda":
        raise ReaderUnavailableError(
            f"the {backend} reader decodes into CUDA memory; device {str(device)!r} was asked for"
        )


def resolve_cuda_device(device: str | torch.device | None, backend: str) -> torch.device:
    """The CUDA device a GPU reader should decode on.

    Args:
        device: None (the current CUDA device), "cuda", "cuda:N" or a ``torch.device``.
        backend: the reader's name, for messages.

    Raises:
        ReaderUnavailableError: no CUDA device here, a non-CUDA device asked for, or no such GPU.
    """
    require_cuda_type(device, backend)
    if not torch.cuda.is_available():
        raise ReaderUnavailableError(
            f"the {backend} reader needs a CUDA device and none is available here"
        )
    dev = torch.device("cuda") if device is None else torch.device(device)
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if not 0 <= index < torch.cuda.device_count():
        raise ReaderUnavailableError(
            f"the {backend} reader was asked for cuda:{index} but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


# ---------------------------------------------------------------------------------------------
# the reader


def _stream_timing(path: Path) -> tuple[Fraction, Fraction] | None:
    """(time_base, frame rate) of the first video stream, or None when the container lacks one."""
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate or rate <= 0 or not stream.time_base:
                return None
            return Fraction(stream.time_base), Fraction(rate)
    except (av.FFmpegError, IndexError):
        return None


@register_reader(
    "nvdec",
    priority=30,
    gpu=True,
    help="GPU decoding with NVDEC through PyNvVideoCodec into CUDA tensors (`uv sync --extra gpu`)",
    clip_priority=30,
)
class NvdecReader(ReaderChecks):
    """Read a video with NVDEC. Frames are CUDA ``torch.uint8`` tensors ``(T, H, W, 3)`` RGB.

    Args:
        path: the video file.
        device: "cuda", "cuda:N", a ``torch.device`` or None (the current CUDA device).
        rgb: "decoder" converts to RGB inside PyNvVideoCodec; "torch" takes NV12 and converts it
            with :func:`nv12_to_rgb` (8-bit 4:2:0 video only).
        sequential: how :meth:`iter_batches` decodes. "stream" seeks once and then reads frames
            in order; "threaded" reads them in order from a PyNvVideoCodec ``ThreadedDecoder``,
            which demuxes and decodes ahead on its own thread, outside the GIL (falling back to
            "stream" where it cannot be made); "index" asks for each batch's frame indices.
            "auto" reads as :data:`AUTO_STREAMING` says (by index) when the timestamps were
            checked at open (so that a wrong seek is caught), and by index otherwise.

    Raises:
        VideoError: missing file, not a video (as :class:`~vidpose.video.pyav_reader.PyAVReader`).
        ReaderUnavailableError: PyNvVideoCodec missing or unusable, no CUDA device, a non-CUDA
            device asked for, or the GPU's NVDEC cannot decode this video.
    """

    _decoder_name = "NVDEC"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device | None = None,
        *,
        rgb: Literal["decoder", "torch"] = "decoder",
        sequential: Literal["auto", "threaded", "stream", "index"] = "auto",
    ) -> None:
        self.path = Path(path)
        self._decoder: Any = None
        self._errors: set[int] = set()
        self._warned: set[int] = set()
        self.misplaced_frames = 0  # frames the decoder gave for another index than asked
        self.streamed_with: str | None = None  # the last iter_batches: "threaded" or "stream"
        self.batches_by_index = 0  # batches a streaming read had to read by index instead
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such video file")
        if rgb not in ("decoder", "torch"):
            raise ValueError(f"rgb must be 'decoder' or 'torch', got {rgb!r}")
        if sequential not in ("auto", "threaded", "stream", "index"):
            raise ValueError(
                f"sequential must be 'auto', 'threaded', 'stream' or 'index', got {sequential!r}"
            )
        require_cuda_type(device, "nvdec")  # a wrong device first: installing would not help
        nvc = import_pynvvideocodec()
        self.device = resolve_cuda_device(device, "nvdec")
        self._rgb = rgb
        with PyAVReader(self.path) as probe:
            self.info: VideoInfo = probe.info
        self._check_caps(nvc)
        self._stream = torch.cuda.Stream(device=self.device)
        color = nvc.OutputColorType.RGB if rgb == "decoder" else nvc.OutputColorType.NATIVE
        self._color = color
        try:
            with torch.cuda.device(self.device):
                self._decoder = nvc.SimpleDecoder(
                    str(self.path),
                    gpu_id=self.device.index,
                    cuda_stream=self._stream.cuda_stream,
                    use_device_memory=True,
                    output_color_type=color,
                )
                n_decoder = len(self._decoder)
        except ReaderUnavailableError:
            raise
        except Exception as e:
            raise ReaderUnavailableError(
                f"{self.path}: PyNvVideoCodec cannot open this video on {self.device}: "
                f"{type(e).__name__}: {e}"
            ) from e
        # Frames past the decoder's count cannot be asked for; they are reported invalid.
        self._n_decodable = min(self.info.n_frames, n_decoder) if n_decoder > 0 else 0
        self._timing: tuple[Fraction, Fraction, int] | None = None
        self._calibrate()
        if sequential == "auto":
            sequential = AUTO_STREAMING if self._timing is not None else "index"
        self._sequential = sequential

    # -- set-up ------------------------------------------------------------------------------

    def _check_caps(self, nvc: ModuleType) -> None:
        """ReaderUnavailableError when the GPU's NVDEC cannot decode this codec / format / size.

        The query needs PyNvVideoCodec's demuxer; if it is missing or fails, decoding is simply
        tried (the decoder then reports what it cannot do).
        """
        try:
            demuxer = nvc.CreateDemuxer(str(self.path))
            codec, chroma, depth = (
                demuxer.GetNvCodecId(),
                demuxer.ChromaFormat(),
                demuxer.BitDepth(),
            )
            caps = nvc.GetDecoderCaps(self.device.index, codec, chroma, depth)
            supported = bool(caps["supported"])
            w_ok = int(caps["width_min"]) <= self.info.width <= int(caps["width_max"])
            h_ok = int(caps["height_min"]) <= self.info.height <= int(caps["height_max"])
            fits = w_ok and h_ok
        except Exception:
            return
        if not (supported and fits):
            name = torch.cuda.get_device_name(self.device)
            raise ReaderUnavailableError(
                f"{self.path}: NVDEC on {name} cannot decode this video ({self.info.codec}, "
                f"{self.info.width}x{self.info.height}, chroma format {chroma}, {depth}-bit)"
            )

    def _calibrate(self) -> None:
        """Learn whether decoder timestamps identify frames: frames 0 and 1 one frame apart."""
        if self._n_decodable < 2:
            return
        timing = _stream_timing(self.path)
        if timing is None:
            return
        time_base, rate = timing
        try:
            with torch.cuda.stream(self._stream):
                frames = self._decoder.get_batch_frames_by_index([0, 1])
            pts = [int(f.getPTS()) for f in frames]
        except Exception:
            return
        if len(pts) != 2 or pts[0] < 0:
            return
        step = (pts[1] - pts[0]) * time_base * rate
        if abs(step - 1) < Fraction(1, 4):
            self._timing = (time_base, rate, pts[0])

    # -- decoding ----------------------------------------------------------------------------

    def _index_of(self, frame: Any) -> int | None:
        if self._timing is None:
            return None
        time_base, rate, origin = self._timing
        try:
            pts = int(frame.getPTS())
        except Exception:
            return None
        return round((pts - origin) * time_base * rate)

    def _frame_tensors(self, frames: Sequence[Any]) -> list[torch.Tensor]:
        """(H, W, 3) uint8 CUDA views of decoded frames (NV12 converted in one batched op)."""
        views = [torch.from_dlpack(f) for f in frames]
        if self._rgb == "decoder" or not views:
            return views
        nv12 = torch.stack(views)
        return list(nv12_to_rgb(nv12, self.info.height, self.info.width))

    def _place(
        self, frames: Sequence[Any], asked: Sequence[int], start: int, out: torch.Tensor, valid
    ) -> None:
        """Copy decoded ``frames`` (answering ``asked``) into ``out`` rows, by their identity.

        The usual case, frames that land on consecutive rows, is one stacking copy; per-frame
        copies cost a kernel launch and Python time each (32 per decoder call)."""
        h, w = self.info.height, self.info.width
        length = out.shape[0]
        rows, views = [], []
        for want, frame, view in zip(asked, frames, self._frame_tensors(frames)):
            got = self._index_of(frame)
            if got is None:
                got = want
            elif got != want:
                self.misplaced_frames += 1
            row = got - start
            if not 0 <= row < length or tuple(view.shape) != (h, w, 3):
                continue
            rows.append(row)
            views.append(view)
        if not rows:
            return
        first = rows[0]
        if rows == list(range(first, first + len(rows))):
            torch.stack(views, out=out[first : first + len(rows)])
        else:
            for row, view in zip(rows, views):
                out[row].copy_(view)
        valid[rows] = True

    def _decode(self, decode_call, asked: list[int], start: int, out: torch.Tensor, valid) -> int:
        """Run one decoder call for ``asked`` frames; returns how many frames it gave."""
        try:
            frames = decode_call()
        except Exception as e:
            warnings.warn(
                f"{self.path}: NVDEC failed on frames {format_frame_ranges(asked)}: "
                f"{type(e).__name__}: {e}",
                stacklevel=4,
            )
            return 0
        self._place(frames, asked, start, out, valid)
        return len(frames)

    def _finish(self, start: int, out: torch.Tensor, valid: np.ndarray) -> FrameBatch:
        # ``out`` was made on the decoder's stream; the caller's stream must wait for the copies,
        # and the allocator must not hand its memory back to the decoder's stream too early.
        caller = torch.cuda.current_stream(self.device)
        caller.wait_stream(self._stream)
        out.record_stream(caller)
        if not valid.all():
            self._errors.update((np.flatnonzero(~valid) + start).tolist())
        return FrameBatch(start=start, frames=out, valid=valid)

    def _read_by_index(self, start: int, length: int) -> FrameBatch:
        with torch.cuda.stream(self._stream):
            out = torch.zeros(
                (length, self.info.height, self.info.width, 3),
                dtype=torch.uint8,
                device=self.device,
            )
            valid = np.zeros(length, dtype=bool)
            stop = min(start + length, self._n_decodable)
            for s in range(start, stop, _MAX_FRAMES_PER_CALL):
                asked = list(range(s, min(s + _MAX_FRAMES_PER_CALL, stop)))
                self._decode(
                    lambda a=asked: self._decoder.get_batch_frames_by_index(a),
                    asked,
                    start,
                    out,
                    valid,
                )
        return self._finish(start, out, valid)

    def _threaded(self, start: int) -> Any:
        """A ThreadedDecoder from frame ``start`` on this reader's stream, or None where this
        PyNvVideoCodec has none or it cannot open the video (plain streaming is used then)."""
        make = getattr(import_pynvvideocodec(), "ThreadedDecoder", None)
        if make is None:
            return None
        try:
            with torch.cuda.device(self.device):
                return make(
                    str(self.path),
                    _PREFETCH,
                    gpu_id=self.device.index,
                    cuda_stream=self._stream.cuda_stream,
                    use_device_memory=True,
                    output_color_type=self._color,
                    start_frame=start,
                )
        except Exception:
            return None

    def _stream_batches(self, batch_size: int, start: int, stop: int) -> Iterator[FrameBatch]:
        """Read in order from ``start`` (a ThreadedDecoder started there, or the decoder sought
        once); a batch with misplaced frames is re-read by index, and so is the rest."""
        threaded = self._threaded(start) if self._sequential == "threaded" else None
        self.streamed_with = "stream" if threaded is None else "threaded"
        if threaded is not None:
            next_frames = threaded.get_batch_frames
        else:
            with torch.cuda.stream(self._stream):
                self._decoder.seek_to_index(start)
            next_frames = self._decoder.get_batch_frames
        try:
            yield from self._streamed(next_frames, batch_size, start, stop)
        finally:
            if threaded is not None:
                # its surfaces are reused once it ends: the copies from them must be done
                self._stream.synchronize()
                with contextlib.suppress(Exception):
                    threaded.end()

    def _streamed(self, next_frames, batch_size: int, start: int, stop: int):
        position = start
        streaming = True
        for s in range(start, stop, batch_size):
            length = min(batch_size, stop - s)
            if not streaming or position != s:
                self.batches_by_index += 1
                yield self._read_by_index(s, length)
                continue
            misplaced_before = self.misplaced_frames
            with torch.cuda.stream(self._stream):
                out = torch.zeros(
                    (length, self.info.height, self.info.width, 3),
                    dtype=torch.uint8,
                    device=self.device,
                )
                valid = np.zeros(length, dtype=bool)
                end = min(s + length, self._n_decodable)
                for c in range(s, end, _MAX_FRAMES_PER_CALL):
                    asked = list(range(c, min(c + _MAX_FRAMES_PER_CALL, end)))
                    got = 0  # a short answer is asked again for the rest: only none ends it
                    while got < len(asked):
                        rest = asked[got:]
                        count = len(rest)
                        n = self._decode(lambda k=count: next_frames(k), rest, s, out, valid)
                        if n == 0:
                            break
                        got += n
                    position = c + got
                    if got < len(asked):
                        break
            if self.misplaced_frames != misplaced_before:
                # The stream is not where it should be: finish by index, which is exact.
                streaming = False
                self.batches_by_index += 1
                yield self._read_by_index(s, length)
                continue
            yield self._finish(s, out, valid)
        self._warn_errors()

    def _index_batches(self, batch_size: int, start: int, stop: int) -> Iterator[FrameBatch]:
        for s in range(start, stop, batch_size):
            yield self._read_by_index(s, min(batch_size, stop - s))
        self._warn_errors()

    # -- public ------------------------------------------------------------------------------

    @property
    def timestamp_checked(self) -> bool:
        """Whether frames are placed by their timestamps (see the module docstring)."""
        return self._timing is not None

    def _is_closed(self) -> bool:
        return self._decoder is None

    def read_clip(self, start: int, length: int) -> FrameBatch:
        """Frames ``start .. start+length-1`` (fewer if the video ends first), on the GPU.

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)`` or ``length < 1``.
        """
        length = self._clip_length(start, length)
        return self._read_by_index(start, length)

    def iter_batches(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[FrameBatch]:
        """Every frame in ``[start, stop)`` in order, ``batch_size`` at a time (last may be short).

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)`` or ``batch_size < 1``.
        """
        stop = self._batches_stop(batch_size, start, stop)
        if self._sequential in ("stream", "threaded"):
            return self._stream_batches(batch_size, start, stop)
        return self._index_batches(batch_size, start, stop)

    def close(self) -> None:
        if self._decoder is None:
            return
        self._stream.synchronize()  # no copy from the decoder's surfaces may still be running
        self._decoder = None
        self._warn_errors()

    def __enter__(self) -> NvdecReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NvdecReader({str(self.path)!r}, device={str(self.device)!r})"
