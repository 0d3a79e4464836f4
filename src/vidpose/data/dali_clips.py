"""Training clips decoded *and augmented* inside NVIDIA DALI on the GPU.

:func:`dali_clip_pipeline` decodes random clips of T consecutive frames from a list of videos
and augments them the way training wants them (see its docstring): positions drawn by
:class:`~vidpose.data.unlabeled.ClipSampler`, transforms with the distributions of
:mod:`vidpose.data.augment`. The DALI reader and helpers it builds on live in
:mod:`vidpose.video.dali_reader`; DALI itself is imported on first use.

Every function here takes ``backend="gpu"`` (the point of this module) or ``backend="cpu"``,
which runs the same graphs on DALI's CPU operators and gives CPU tensors (VP8/VP9/MJPEG only;
for tests).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vidpose.config.schema import AugmentConfig
from vidpose.data.augment import sample_affine
from vidpose.data.batches import UnlabeledClip
from vidpose.data.unlabeled import (
    ClipLoader,
    ClipPipelineSpec,
    ClipSampler,
    register_clip_pipeline,
)
from vidpose.video import VideoInfo, probe_video
from vidpose.video.dali_reader import (
    Backend,
    dali_target,
    dali_to_numpy,
    dali_to_torch,
    import_dali,
    mapped_file,
)

__all__ = ["DaliClipBatch", "DaliClipPipeline", "dali_clip_pipeline", "dali_matrix"]


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
        augment: AugmentConfig,
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
        if sampling not in ("uniform", "shuffle"):
            raise ValueError(f"sampling must be 'uniform' or 'shuffle', got {sampling!r}")
        if batch_size < 1 or steps_per_epoch < 1:
            raise ValueError("batch_size and steps_per_epoch must be >= 1")
        self._d = import_dali()
        self.device, self._device_id = dali_target(device, backend)
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
            [mapped_file(Path(v.path)) for v in self.videos] if sampling == "uniform" else []
        )
        self._lock = threading.Lock()
        self._draws: dict[int, list[Any]] = {}  # iteration -> [draw, consumers left]
        self._counters = {"encoded": 0, "params": 0}
        self._iteration = 0
        self._pipe = self._build(step, initial_fill, num_threads)

    # -- Python-side draws, one per iteration, shared by the external sources ----------------

    def _make_draw(self, iteration: int) -> _Draw:
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
        video_index = dali_to_numpy(video_index).reshape(-1).astype(np.int64)
        return DaliClipBatch(
            frames=dali_to_torch(frames, self.device),
            matrices=torch.from_numpy(dali_to_numpy(matrices)).to(self.device, non_blocking=True),
            video_index=video_index,
            start_frame=dali_to_numpy(start).reshape(-1).astype(np.int64),
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
    augment: AugmentConfig | None = None,
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
            contrast and noise at :class:`~vidpose.config.AugmentConfig`' defaults);
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
    infos = [v if isinstance(v, VideoInfo) else probe_video(v) for v in videos]
    if isinstance(device_id, int):
        device_id = torch.device("cuda", device_id)
    return DaliClipPipeline(
        infos,
        clip_length,
        batch_size,
        input_hw,
        AugmentConfig() if augment is None else augment,
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


class DaliClipSource:
    """A :class:`~vidpose.data.unlabeled.ClipLoader`'s clips from a :class:`DaliClipPipeline`
    (one clip per step, augmented inside DALI; each clip carries its matrix)."""

    def __init__(self, loader: ClipLoader) -> None:
        self.loader = loader
        self._pipe: DaliClipPipeline | None = None
        self._next_epoch: int | None = None  # the epoch the pipeline gives next, if known

    def epoch(self, epoch: int) -> Iterator[UnlabeledClip]:
        lo = self.loader
        if self._pipe is None or self._next_epoch != epoch:
            self.close()
            self._pipe = DaliClipPipeline(
                lo.videos,
                lo.clip_length,
                1,
                lo.input_hw,
                lo.augment,
                lo.seed,
                lo.device,
                sampling=lo.pipeline_options.get("sampling", "uniform"),
                steps_per_epoch=lo.steps_per_epoch,
                start_epoch=epoch,
                step=None,
                initial_fill=64,
                num_threads=4,
                backend="gpu",
            )
        self._next_epoch = None  # unknown until the epoch is complete
        for _ in range(lo.steps_per_epoch):
            b = next(self._pipe)
            yield UnlabeledClip(
                frames=b.frames[0],
                video_index=int(b.video_index[0]),
                start_frame=int(b.start_frame[0]),
                orig_hw=(int(b.orig_hw[0, 0]), int(b.orig_hw[0, 1])),
                matrix=b.matrices[0],
            )
        self._next_epoch = epoch + 1

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        self._pipe = None
        self._next_epoch = None


def _check_dali(device: torch.device) -> None:
    import_dali()
    dali_target(device, "gpu")


register_clip_pipeline(
    ClipPipelineSpec(
        name="dali",
        check=_check_dali,
        open=DaliClipSource,
        help="clips decoded and augmented inside DALI on the GPU",
    )
)
