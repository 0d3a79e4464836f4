"""GPU video decoding with NVIDIA DALI: a VideoReader backend, and the DALI helpers that the
training-clip pipeline (:mod:`vidpose.data.dali_clips`) builds on.

Install: DALI built for your CUDA version, e.g. ``pip install nvidia-dali-cuda130`` (CUDA 13). When
DALI, a CUDA device or DALI support for the video is missing, :class:`DaliReader` raises
:class:`~vidpose.errors.ReaderUnavailableError`, so that ``open_video(reader="auto")`` falls back.

:class:`DaliReader` (registered as ``"dali"``) serves the VideoReader protocol with frames as CUDA
``torch.uint8`` tensors ``(B, H, W, 3)`` RGB:

- ``read_clip`` decodes with ``fn.decoders.video`` (NVDEC, "mixed" backend) from the file mapped
  in memory, with the start frame and length fed per call. Each call demuxes the container anew,
  so its cost grows with the file's size: meant for a few random clips, not for streaming.
- ``iter_batches`` streams with ``fn.experimental.readers.video`` over the frame range asked for,
  one sequence per batch, and places each frame by the frame number the reader reports.

Frame identity: frame ``i`` is the ``i``-th frame in presentation order, as for PyAV. ``info`` is
PyAV's, so every backend reports the same ``n_frames``; frames DALI does not deliver are zeros
with ``valid`` False.

Every function here takes ``backend="gpu"`` (the point of this module) or ``backend="cpu"``,
which runs the same graphs on DALI's CPU operators and gives CPU tensors. The CPU operators
decode VP8/VP9/MJPEG but not H.264; the option exists so that the graphs can be tested without
a GPU.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch

from vidpose.errors import ReaderUnavailableError, VideoError
from vidpose.video.base import (
    FrameBatch,
    ReaderChecks,
    VideoInfo,
    register_reader,
)
from vidpose.video.nvdec_reader import require_cuda_type, resolve_cuda_device
from vidpose.video.pyav_reader import PyAVReader

__all__ = [
    "INSTALL_HINT",
    "DaliReader",
    "dali_target",
    "dali_to_numpy",
    "dali_to_torch",
    "first_error_line",
    "import_dali",
    "mapped_file",
]

INSTALL_HINT = (
    "install NVIDIA DALI built for your CUDA version, e.g. `pip install nvidia-dali-cuda130` for "
    "CUDA 13 (`uv sync --extra dali` installs the CUDA 12 build)"
)

Backend = Literal["gpu", "cpu"]

_dali: SimpleNamespace | None = None
_dali_error: str | None = None


def import_dali() -> SimpleNamespace:
    """DALI's modules, imported on first use: ``pipeline_def``, ``fn``, ``types``, ``math``,
    ``feed_ndarray``, ``to_torch_type``, ``version``.

    Raises:
        ReaderUnavailableError: DALI is not installed or cannot load (the message says what to
            install).
    """
    global _dali, _dali_error
    if _dali is not None:
        return _dali
    if _dali_error is None:
        try:
            dali = importlib.import_module("nvidia.dali")
            plugin = importlib.import_module("nvidia.dali.plugin.pytorch")
            _dali = SimpleNamespace(
                pipeline_def=dali.pipeline_def,
                fn=importlib.import_module("nvidia.dali.fn"),
                types=importlib.import_module("nvidia.dali.types"),
                math=importlib.import_module("nvidia.dali.math"),
                feed_ndarray=plugin.feed_ndarray,
                to_torch_type=plugin.to_torch_type,
                version=getattr(dali, "__version__", "?"),
            )
            return _dali
        except ImportError as e:
            if (getattr(e, "name", None) or "").startswith("nvidia"):
                _dali_error = f"NVIDIA DALI is not installed; {INSTALL_HINT}"
            else:
                _dali_error = f"NVIDIA DALI cannot be imported ({e}); {INSTALL_HINT}"
        except Exception as e:
            _dali_error = f"NVIDIA DALI cannot load ({type(e).__name__}: {e}); {INSTALL_HINT}"
    raise ReaderUnavailableError(_dali_error)


def dali_target(
    device: str | torch.device | None, backend: Backend
) -> tuple[torch.device, int | None]:
    """(torch device of the outputs, DALI device_id) for a backend."""
    if backend == "cpu":
        return torch.device("cpu"), None
    if backend != "gpu":
        raise ValueError(f"backend must be 'gpu' or 'cpu', got {backend!r}")
    dev = resolve_cuda_device(device, "dali")
    return dev, dev.index


def dali_to_torch(tensor_list: Any, device: torch.device) -> torch.Tensor:
    """A dense DALI TensorList (CPU or GPU) as a new torch tensor on ``device``: one copy."""
    d = import_dali()
    t = tensor_list.as_tensor()
    out = torch.empty(tuple(t.shape()), dtype=d.to_torch_type[t.dtype], device=device)
    if device.type == "cuda":
        d.feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(device))
    else:
        d.feed_ndarray(t, out)
    return out


def dali_to_numpy(tensor_list: Any) -> np.ndarray:
    if hasattr(tensor_list, "as_cpu"):
        tensor_list = tensor_list.as_cpu()
    return np.array(tensor_list.as_tensor())


def mapped_file(path: Path) -> np.ndarray:
    """The file's bytes, mapped (read on demand by the OS, shared by every clip of the file)."""
    return np.memmap(path, dtype=np.uint8, mode="r")


# ---------------------------------------------------------------------------------------------
# the VideoReader backend


@register_reader(
    "dali",
    priority=20,
    gpu=True,
    help="GPU decoding with NVIDIA DALI into CUDA tensors (pip install nvidia-dali-cuda130)",
    clip_priority=20,
)
class DaliReader(ReaderChecks):
    """Read a video with DALI on the GPU. Frames are ``torch.uint8`` tensors ``(T, H, W, 3)`` RGB.

    Args:
        path: the video file.
        device: "cuda", "cuda:N", a ``torch.device`` or None (the current CUDA device).
        backend: "gpu" (NVDEC); "cpu" runs DALI's CPU decoder (no H.264; for tests).
        num_threads: DALI CPU threads per pipeline.

    Raises:
        VideoError: missing file, not a video (as :class:`~vidpose.video.pyav_reader.PyAVReader`).
        ReaderUnavailableError: DALI missing, no CUDA device, a non-CUDA device asked for, or
            DALI cannot decode this video (the first frame is decoded at open to find out).
    """

    _decoder_name = "DALI"

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device | None = None,
        *,
        backend: Backend = "gpu",
        num_threads: int = 2,
    ) -> None:
        self.path = Path(path)
        self._clip_pipe: Any = None
        self._closed = False
        self._errors: set[int] = set()
        self._warned: set[int] = set()
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such video file")
        if backend == "gpu":
            require_cuda_type(device, "dali")  # a wrong device first: installing would not help
        self._d = import_dali()
        self.device, self._device_id = dali_target(device, backend)
        self._backend = backend
        self._num_threads = num_threads
        with PyAVReader(self.path) as probe:
            self.info: VideoInfo = probe.info
        self._encoded = mapped_file(self.path)
        try:
            self._clip_pipe = self._build_clip_pipe()
            self._run_clip(0, 1)
        except Exception as e:
            raise ReaderUnavailableError(
                f"{self.path}: DALI cannot decode this video on {self.device}: "
                f"{type(e).__name__}: {first_error_line(e)}"
            ) from e

    # -- random access -----------------------------------------------------------------------

    def _build_clip_pipe(self) -> Any:
        d = self._d
        decoder_device = "mixed" if self._backend == "gpu" else "cpu"

        # Inputs are fed per call, so nothing may be prefetched ahead of the feed.
        @d.pipeline_def(
            batch_size=1,
            num_threads=self._num_threads,
            device_id=self._device_id,
            prefetch_queue_depth=1,
        )
        def clip_graph():
            encoded = d.fn.external_source(name="encoded", no_copy=True)
            start = d.fn.external_source(name="start")
            count = d.fn.external_source(name="count")
            return d.fn.decoders.video(
                encoded,
                device=decoder_device,
                start_frame=start,
                sequence_length=count,
                pad_mode="none",  # a clip past the end comes back short, never padded
            )

        pipe = clip_graph()
        pipe.build()
        return pipe

    def _run_clip(self, start: int, length: int) -> torch.Tensor:
        """(F, H, W, 3) uint8 frames start .. start+F-1 as DALI decodes them (F <= length)."""
        pipe = self._clip_pipe
        pipe.feed_input("encoded", [self._encoded])
        pipe.feed_input("start", [np.array(start, dtype=np.int32)])
        pipe.feed_input("count", [np.array(length, dtype=np.int32)])
        (frames,) = pipe.run()
        return dali_to_torch(frames, self.device)[0]

    def read_clip(self, start: int, length: int) -> FrameBatch:
        """Frames ``start .. start+length-1`` (fewer if the video ends first).

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)``, ``length < 1``, or DALI failed.
        """
        length = self._clip_length(start, length)
        h, w = self.info.height, self.info.width
        try:
            decoded = self._run_clip(start, length)
        except Exception as e:
            raise VideoError(
                f"{self.path}: DALI failed to decode frames {start}-{start + length - 1}: "
                f"{first_error_line(e)}"
            ) from e
        valid = np.zeros(length, dtype=bool)
        got = min(decoded.shape[0], length)
        if tuple(decoded.shape[1:]) == (h, w, 3):
            valid[:got] = True
        if got == length and valid.all():
            frames = decoded
        else:
            frames = torch.zeros((length, h, w, 3), dtype=torch.uint8, device=self.device)
            if valid.any():
                frames[:got] = decoded[:got]
        if not valid.all():
            self._errors.update((np.flatnonzero(~valid) + start).tolist())
        return FrameBatch(start=start, frames=frames, valid=valid)

    # -- sequential --------------------------------------------------------------------------

    def iter_batches(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[FrameBatch]:
        """Every frame in ``[start, stop)`` in order, ``batch_size`` at a time (last may be short).

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)`` or ``batch_size < 1``.
        """
        stop = self._batches_stop(batch_size, start, stop)
        return self._batches(batch_size, start, stop)

    def _build_range_pipe(self, folder: Path, batch_size: int, start: int, stop: int) -> Any:
        d = self._d
        # DALI's file list splits lines on whitespace: name the video through a plain link.
        link = folder / f"video{self.path.suffix}"
        os.symlink(self.path.resolve(), link)
        file_list = folder / "range.txt"
        file_list.write_text(f"{link} 0 {start} {stop}\n")
        reader_device = "gpu" if self._backend == "gpu" else "cpu"

        @d.pipeline_def(batch_size=1, num_threads=self._num_threads, device_id=self._device_id)
        def range_graph():
            frames, _, numbers = d.fn.experimental.readers.video(
                device=reader_device,
                file_list=str(file_list),
                file_list_format="frames",
                file_list_include_end=False,
                sequence_length=batch_size,
                step=batch_size,
                pad_mode="constant",  # the last, short sequence comes padded with number -1
                enable_frame_num="sequence",
                random_shuffle=False,
                name="range",
            )
            return frames, numbers

        pipe = range_graph()
        pipe.build()
        return pipe

    def _batches(self, batch_size: int, start: int, stop: int) -> Iterator[FrameBatch]:
        h, w = self.info.height, self.info.width
        with tempfile.TemporaryDirectory(prefix="vidpose-dali-") as tmp:
            pipe = self._build_range_pipe(Path(tmp), batch_size, start, stop)
            runs = int(next(iter(pipe.epoch_size().values())))
            for i, s in enumerate(range(start, stop, batch_size)):
                length = min(batch_size, stop - s)
                if i >= runs:  # DALI found fewer frames than the container announced
                    frames = torch.zeros((length, h, w, 3), dtype=torch.uint8, device=self.device)
                    valid = np.zeros(length, dtype=bool)
                else:
                    out, numbers = pipe.run()
                    decoded = dali_to_torch(out, self.device)[0]
                    frames, valid = self._place(decoded, dali_to_numpy(numbers)[0], s, length)
                if not valid.all():
                    self._errors.update((np.flatnonzero(~valid) + s).tolist())
                yield FrameBatch(start=s, frames=frames, valid=valid)
            del pipe
        self._warn_errors()

    def _place(
        self, decoded: torch.Tensor, numbers: np.ndarray, start: int, length: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Frames of one sequence placed by the frame number DALI gives each (-1 = padding)."""
        h, w = self.info.height, self.info.width
        rows = numbers.astype(np.int64) - start
        keep = (numbers >= 0) & (rows >= 0) & (rows < length)
        if tuple(decoded.shape[1:]) != (h, w, 3):
            keep[:] = False
        if keep[:length].all() and np.array_equal(rows[:length], np.arange(length)):
            return decoded[:length], np.ones(length, dtype=bool)
        frames = torch.zeros((length, h, w, 3), dtype=torch.uint8, device=self.device)
        valid = np.zeros(length, dtype=bool)
        src = np.flatnonzero(keep)
        if len(src):
            dst = torch.as_tensor(rows[src], device=self.device)
            frames.index_copy_(0, dst, decoded[torch.as_tensor(src, device=self.device)])
            valid[rows[src]] = True
        return frames, valid

    # -- public ------------------------------------------------------------------------------

    def _is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._clip_pipe = None
        self._encoded = None
        self._warn_errors()

    def __enter__(self) -> DaliReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DaliReader({str(self.path)!r}, device={str(self.device)!r})"


def first_error_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    # DALI's messages start with "Critical error in pipeline"; the cause is on a later line.
    useful = [ln for ln in lines if "Critical error" not in ln and "Error in" not in ln]
    return (useful or lines or [type(e).__name__])[-1].strip()
