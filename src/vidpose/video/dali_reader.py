"""GPU video decoding with NVIDIA DALI: a VideoReader backend and the unlabeled-clip pipeline.

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

:func:`dali_clip_pipeline` decodes random clips of T consecutive frames from a list of videos and
augments them inside DALI on the GPU, the way training wants them (see its docstring). It is the
one place where this layer reaches up to :mod:`vidpose.data`, to draw clips with
:class:`~vidpose.data.unlabeled.ClipSampler` and augmentations with the distributions of
:mod:`vidpose.data.augment`; those imports happen when it is called.

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
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

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

if TYPE_CHECKING:
    from vidpose.data.augment import AugmentSettings

__all__ = [
    "INSTALL_HINT",
    "DaliClipBatch",
    "DaliClipPipeline",
    "DaliReader",
    "dali_clip_pipeline",
    "dali_matrix",
    "import_dali",
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


def _target(device: str | torch.device | None, backend: Backend) -> tuple[torch.device, int | None]:
    """(torch device of the outputs, DALI device_id) for a backend."""
    if backend == "cpu":
        return torch.device("cpu"), None
    if backend != "gpu":
        raise ValueError(f"backend must be 'gpu' or 'cpu', got {backend!r}")
    dev = resolve_cuda_device(device, "dali")
    return dev, dev.index


def _to_torch(tensor_list: Any, device: torch.device) -> torch.Tensor:
    """A dense DALI TensorList (CPU or GPU) as a new torch tensor on ``device``: one copy."""
    d = import_dali()
    t = tensor_list.as_tensor()
    out = torch.empty(tuple(t.shape()), dtype=d.to_torch_type[t.dtype], device=device)
    if device.type == "cuda":
        d.feed_ndarray(t, out, cuda_stream=torch.cuda.current_stream(device))
    else:
        d.feed_ndarray(t, out)
    return out


def _to_numpy(tensor_list: Any) -> np.ndarray:
    if hasattr(tensor_list, "as_cpu"):
        tensor_list = tensor_list.as_cpu()
    return np.array(tensor_list.as_tensor())


def _mapped(path: Path) -> np.ndarray:
    """The file's bytes, mapped (read on demand by the OS, shared by every clip of the file)."""
    return np.memmap(path, dtype=np.uint8, mode="r")


# ---------------------------------------------------------------------------------------------
# the VideoReader backend


@register_reader(
    "dali",
    priority=20,
    gpu=True,
    help="GPU decoding with NVIDIA DALI into CUDA tensors (pip install nvidia-dali-cuda130)",
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
        self.device, self._device_id = _target(device, backend)
        self._backend = backend
        self._num_threads = num_threads
        with PyAVReader(self.path) as probe:
            self.info: VideoInfo = probe.info
        self._encoded = _mapped(self.path)
        try:
            self._clip_pipe = self._build_clip_pipe()
            self._run_clip(0, 1)
        except Exception as e:
            raise ReaderUnavailableError(
                f"{self.path}: DALI cannot decode this video on {self.device}: "
                f"{type(e).__name__}: {_first_line(e)}"
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
        return _to_torch(frames, self.device)[0]

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
                f"{_first_line(e)}"
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
                    decoded = _to_torch(out, self.device)[0]
                    frames, valid = self._place(decoded, _to_numpy(numbers)[0], s, length)
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


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    # DALI's messages start with "Critical error in pipeline"; the cause is on a later line.
    useful = [ln for ln in lines if "Critical error" not in ln and "Error in" not in ln]
    return (useful or lines or [type(e).__name__])[-1].strip()


# ---------------------------------------------------------------------------------------------
# training clips, decoded and augmented inside DALI


def dali_matrix(matrix: np.ndarray) -> np.ndarray:
    """DALI ``warp_affine`` matrices for :mod:`vidpose.data.augment`'s original -> augmented ones.

    vidpose puts pixel centres at integer coordinates and maps original to augmented; DALI's
    ``warp_affine`` (``inverse_map=True``) maps destination to source with pixel *corners* at
    integers. So ``A = T(+0.5) @ inv(M) @ T(-0.5)``.

    Args:
        matrix: (..., 3, 3) original -> augmented affine matrices, in input pixels.

    Returns:
        (..., 2, 3) float32 destination -> source matrices for DALI.
    """
    m = np.asarray(matrix, dtype=np.float64)
    shift = np.eye(3)
    shift[:2, 2] = 0.5
    unshift = np.eye(3)
    unshift[:2, 2] = -0.5
    a = shift @ np.linalg.inv(m) @ unshift
    return np.ascontiguousarray(a[..., :2, :], dtype=np.float32)


@dataclass
class DaliClipBatch:
    """B augmented clips from :class:`DaliClipPipeline`.

    Attributes:
        frames: (B, T, 3, H, W) float32 RGB in [0, 1] at the model input size, augmented.
        matrices: (B, 3, 3) float32 on the frames' device: original -> augmented input-pixel
            coordinates of each clip, for :func:`vidpose.data.augment.unwarp_coords`.
        video_index: (B,) int64 index into the pipeline's video list.
        start_frame: (B,) int64 index in its video of each clip's first frame.
        orig_hw: (B, 2) int64 (height, width) of each clip's video frames.
    """

    frames: torch.Tensor
    matrices: torch.Tensor
    video_index: np.ndarray
    start_frame: np.ndarray
    orig_hw: np.ndarray


@dataclass
class _Draw:
    """What one pipeline iteration needs from Python (all CPU numpy, one entry per clip)."""

    video_index: np.ndarray  # (B,) int64
    start: np.ndarray  # (B,) int64
    matrices: np.ndarray  # (B, 3, 3) float32, original -> augmented
    gain: np.ndarray  # (B,) float32 contrast * brightness
    offset: np.ndarray  # (B,) float32 (1 - contrast) * brightness, times the clip mean


class DaliClipPipeline:
    """Iterator of :class:`DaliClipBatch`: random clips decoded and augmented inside DALI.

    Build it with :func:`dali_clip_pipeline`, which documents the arguments. Iterating never ends;
    stop after the steps you need. Not thread-safe.
    """

    def __init__(
        self,
        videos: Sequence[VideoInfo],
        clip_length: int,
        batch_size: int,
        input_hw: tuple[int, int],
        augment: AugmentSettings,
        seed: int,
        device: str | torch.device | None,
        *,
        sampling: Literal["uniform", "shuffle"],
        steps_per_epoch: int,
        start_epoch: int,
        step: int | None,
        initial_fill: int,
        num_threads: int,
        backend: Backend,
    ) -> None:
        from vidpose.data.unlabeled import ClipSampler

        if sampling not in ("uniform", "shuffle"):
            raise ValueError(f"sampling must be 'uniform' or 'shuffle', got {sampling!r}")
        if batch_size < 1 or steps_per_epoch < 1:
            raise ValueError("batch_size and steps_per_epoch must be >= 1")
        self._d = import_dali()
        self.device, self._device_id = _target(device, backend)
        self.videos = list(videos)
        self.clip_length = int(clip_length)
        self.batch_size = int(batch_size)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.augment = augment
        self.seed = int(seed)
        self.sampling = sampling
        self.steps_per_epoch = int(steps_per_epoch)
        self.start_epoch = int(start_epoch)
        self._backend = backend
        # validates the clip length against the videos, in both modes
        self._sampler = ClipSampler(self.videos, self.clip_length, seed=self.seed)
        self._orig_hw = np.array([(v.height, v.width) for v in self.videos], dtype=np.int64)
        self._encoded = (
            [_mapped(Path(v.path)) for v in self.videos] if sampling == "uniform" else []
        )
        self._lock = threading.Lock()
        self._draws: dict[int, list[Any]] = {}  # iteration -> [draw, consumers left]
        self._counters = {"encoded": 0, "params": 0}
        self._iteration = 0
        self._pipe = self._build(step, initial_fill, num_threads)

    # -- Python-side draws, one per iteration, shared by the external sources ----------------

    def _make_draw(self, iteration: int) -> _Draw:
        from vidpose.data.augment import sample_affine

        b = self.batch_size
        epoch, step = divmod(iteration, self.steps_per_epoch)
        epoch += self.start_epoch
        if self.sampling == "uniform":
            plan = self._sampler.sample(epoch, step, n=b)
            video_index, start = plan.video_index, plan.start
        else:  # the reader chooses; these are placeholders
            video_index = start = np.zeros(b, dtype=np.int64)
        settings = self.augment
        if not settings.enabled:
            eye = np.broadcast_to(np.eye(3, dtype=np.float32), (b, 3, 3)).copy()
            ones = np.ones(b, dtype=np.float32)
            return _Draw(video_index, start, eye, ones, np.zeros(b, dtype=np.float32))
        # Augmentation draws use their own stream, separate from the clip positions'.
        entropy = np.random.SeedSequence([self.seed, 0xA11CE, epoch, step]).generate_state(2)
        generator = torch.Generator().manual_seed(int(entropy[0]))
        matrices = sample_affine(b, self.input_hw, settings, generator=generator, allow_flips=False)
        u = np.random.default_rng(int(entropy[1])).random((b, 2))
        s = settings.strength
        brightness = 1.0 + (2.0 * u[:, 0] - 1.0) * settings.brightness * s
        contrast = 1.0 + (2.0 * u[:, 1] - 1.0) * settings.contrast * s
        return _Draw(
            video_index=video_index,
            start=start,
            matrices=matrices.numpy().astype(np.float32),
            gain=(contrast * brightness).astype(np.float32),
            offset=((1.0 - contrast) * brightness).astype(np.float32),
        )

    def _draw(self, consumer: str) -> _Draw:
        """The draw of this consumer's next iteration; computed by whichever source asks first."""
        with self._lock:
            i = self._counters[consumer]
            self._counters[consumer] = i + 1
            entry = self._draws.get(i)
            if entry is None:
                consumers = 2 if self.sampling == "uniform" else 1
                entry = self._draws[i] = [self._make_draw(i), consumers]
            entry[1] -= 1
            if entry[1] == 0:
                del self._draws[i]
            return entry[0]

    def _encoded_source(self) -> list[np.ndarray]:
        draw = self._draw("encoded")
        return [self._encoded[int(v)] for v in draw.video_index]

    def _params_source(self) -> tuple[list[np.ndarray], ...]:
        draw = self._draw("params")
        b = self.batch_size
        dali_mtx = dali_matrix(draw.matrices) if "dali_matrix" in self._param_names else None
        columns = {
            "video_index": lambda i: np.array(draw.video_index[i], dtype=np.int64).reshape(1),
            "start": lambda i: np.array(draw.start[i], dtype=np.int32),
            "matrices": lambda i: draw.matrices[i],
            "dali_matrix": lambda i: dali_mtx[i],
            "gain": lambda i: np.array(draw.gain[i], dtype=np.float32),
            "offset": lambda i: np.array(draw.offset[i], dtype=np.float32),
        }
        return tuple([columns[name](i) for i in range(b)] for name in self._param_names)

    # -- the graph ---------------------------------------------------------------------------

    def _build(self, step: int | None, initial_fill: int, num_threads: int) -> Any:
        d = self._d
        fn, types = d.fn, d.types
        gpu = self._backend == "gpu"
        h, w = self.input_hw
        t = self.clip_length
        settings = self.augment
        noise_std = settings.noise_std * settings.strength if settings.enabled else 0.0

        def on_device(node):
            return node.gpu() if gpu else node

        # Only what the graph uses comes from Python (DALI warns about unused outputs).
        names = ["matrices"]
        if self.sampling == "uniform":
            names += ["video_index", "start"]
        if settings.enabled:
            names += ["dali_matrix", "gain", "offset"]
        self._param_names = names

        @d.pipeline_def(
            batch_size=self.batch_size,
            num_threads=num_threads,
            device_id=self._device_id,
            seed=self.seed,
        )
        def clip_graph():
            params = dict(
                zip(
                    names,
                    fn.external_source(
                        source=self._params_source, num_outputs=len(names), batch=True
                    ),
                )
            )
            matrices = params["matrices"]
            if self.sampling == "uniform":
                video_index, start = params["video_index"], params["start"]
                encoded = fn.external_source(source=self._encoded_source, batch=True, no_copy=True)
                frames = fn.decoders.video(
                    encoded,
                    device="mixed" if gpu else "cpu",
                    start_frame=start,
                    sequence_length=t,
                    # Clips end inside the container's frame count; should DALI find fewer
                    # frames (a truncated file), repeating the last keeps the batch dense.
                    pad_mode="edge",
                )
            else:
                frames, video_index, start = fn.experimental.readers.video(
                    device="gpu" if gpu else "cpu",
                    filenames=[str(v.path) for v in self.videos],
                    labels=list(range(len(self.videos))),
                    sequence_length=t,
                    step=t if step is None else step,
                    pad_mode="none",  # drops the short sequence at each video's end
                    enable_frame_num="scalar",
                    random_shuffle=True,
                    initial_fill=initial_fill,
                    seed=self.seed,
                    name="clips",
                )
            x = fn.resize(
                frames,
                resize_x=w,
                resize_y=h,
                dtype=types.FLOAT,
                antialias=True,
                interp_type=types.INTERP_LINEAR,
            )
            x = x * (1.0 / 255.0)
            if settings.enabled:
                # One matrix per clip: DALI applies a per-sample argument to every frame.
                x = fn.warp_affine(
                    x,
                    matrix=params["dali_matrix"],
                    fill_value=0.0,
                    inverse_map=True,
                    interp_type=types.INTERP_LINEAR,
                )
                # contrast about the clip's mean, then brightness gain, as augment_clip does:
                # ((x - m) * c + m) * g = x * (c g) + m * ((1 - c) g)
                mean = fn.reductions.mean(x)
                x = x * on_device(params["gain"]) + mean * on_device(params["offset"])
                if noise_std > 0:
                    x = fn.noise.gaussian(x, stddev=noise_std, seed=self.seed + 1)
                x = d.math.clamp(x, 0.0, 1.0)
            x = fn.transpose(x, perm=[0, 3, 1, 2])  # (T, H, W, C) -> (T, C, H, W)
            return x, matrices, video_index, start

        pipe = clip_graph()
        pipe.build()
        return pipe

    # -- iteration ---------------------------------------------------------------------------

    def __iter__(self) -> DaliClipPipeline:
        return self

    def __next__(self) -> DaliClipBatch:
        if self._pipe is None:
            raise StopIteration
        frames, matrices, video_index, start = self._pipe.run()
        self._iteration += 1
        video_index = _to_numpy(video_index).reshape(-1).astype(np.int64)
        return DaliClipBatch(
            frames=_to_torch(frames, self.device),
            matrices=torch.from_numpy(_to_numpy(matrices)).to(self.device, non_blocking=True),
            video_index=video_index,
            start_frame=_to_numpy(start).reshape(-1).astype(np.int64),
            orig_hw=self._orig_hw[video_index],
        )

    @property
    def iteration(self) -> int:
        """Batches given so far."""
        return self._iteration

    def close(self) -> None:
        self._pipe = None
        self._encoded = []
        self._draws.clear()


def dali_clip_pipeline(
    videos: Sequence[str | Path | VideoInfo],
    clip_length: int,
    batch_size: int,
    input_hw: tuple[int, int],
    augment: AugmentSettings | None = None,
    seed: int = 0,
    device_id: int | str | torch.device | None = None,
    *,
    sampling: Literal["uniform", "shuffle"] = "uniform",
    steps_per_epoch: int = 1_000_000_000,
    start_epoch: int = 0,
    step: int | None = None,
    initial_fill: int = 64,
    num_threads: int = 4,
    backend: Backend = "gpu",
) -> DaliClipPipeline:
    """Random clips of T consecutive frames from ``videos``, decoded and augmented inside DALI.

    Per clip, on the GPU: decode T frames (NVDEC) -> resize to ``input_hw`` (bilinear,
    antialiased) -> [0, 1] -> one random affine warp shared by all T frames (rotation, scale,
    translation drawn as :func:`vidpose.data.augment.sample_affine` draws them, no flips; zeros
    outside the frame) -> contrast about the clip's mean and brightness gain, shared by the T
    frames -> Gaussian pixel noise, per frame -> clamp to [0, 1]. Blur is not applied. Each batch
    carries the 3x3 original -> augmented matrices, so that predictions can be mapped back with
    :func:`vidpose.data.augment.unwarp_coords` and then
    :func:`vidpose.data.augment.input_to_orig`.

    Sampling:

    - ``"uniform"`` (default): clip positions come from
      :class:`~vidpose.data.unlabeled.ClipSampler` (video chosen in proportion to its frame
      count, start uniform in ``[0, n - T]``): iteration ``i`` draws
      ``sample(epoch=start_epoch + i // steps_per_epoch, step=i % steps_per_epoch, n=batch_size)``,
      so positions are those the CPU loader uses for the same seed. Each clip demuxes its video
      anew from memory and decodes from the keyframe before its start.
    - ``"shuffle"``: DALI's video reader walks the videos in sequences of T frames every ``step``
      frames (default T) and shuffles them through a buffer of ``initial_fill`` decoded clips:
      decoding is sequential, hence cheaper, but consecutive batches come from nearby parts of
      the same video. Reproducible for a given seed; ``steps_per_epoch`` and ``start_epoch``
      only seed the augmentations.

    Args:
        videos: video files, or their :class:`~vidpose.video.VideoInfo` (probed when paths).
        clip_length: T.
        batch_size: clips per batch.
        input_hw: (H, W) of the model input.
        augment: augmentation settings (None: rotation, scale, translation, brightness,
            contrast and noise at :class:`~vidpose.data.augment.AugmentSettings`' defaults);
            ``enabled=False`` only resizes, and matrices are identities.
        seed: makes clip positions, matrices, photometric draws and noise reproducible.
        device_id: CUDA device (index, "cuda:N" or ``torch.device``); None = the current one.
        sampling, steps_per_epoch, start_epoch, step, initial_fill: see "Sampling" above.
        num_threads: DALI CPU threads.
        backend: "gpu", or "cpu" for DALI's CPU operators (VP8/VP9/MJPEG only; for tests).

    Raises:
        ReaderUnavailableError: DALI or a CUDA device missing.
        VideoError: a video cannot be probed, or every video is shorter than T.
    """
    from vidpose.data.augment import AugmentSettings
    from vidpose.video import probe_video

    infos = [v if isinstance(v, VideoInfo) else probe_video(v) for v in videos]
    if isinstance(device_id, int):
        device_id = torch.device("cuda", device_id)
    return DaliClipPipeline(
        infos,
        clip_length,
        batch_size,
        input_hw,
        AugmentSettings() if augment is None else augment,
        seed,
        device_id,
        sampling=sampling,
        steps_per_epoch=steps_per_epoch,
        start_epoch=start_epoch,
        step=step,
        initial_fill=initial_fill,
        num_threads=num_threads,
        backend=backend,
    )
