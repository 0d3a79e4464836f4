"""Video reading and writing: open any video with the best available backend.

``open_video(path)`` returns a :class:`~vidpose.video.base.VideoReader`; ``probe_video(path)``
returns its :class:`~vidpose.video.base.VideoInfo`; :class:`VideoWriter` encodes frames.

Backends live in their own modules and register themselves with ``@register_reader`` when
:func:`_load_backends` imports them (on the first call that needs the registry, never at
``import vidpose.video``). A backend is constructed as ``factory(path: Path, device=device)``
and raises ``ReaderUnavailableError`` when it cannot run here (no CUDA, codec unsupported), so
that ``reader="auto"`` moves on to the next one. To add one: write the module (see
``base.py``), then add its name to ``_OPTIONAL_BACKENDS`` below.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from vidpose.errors import ReaderUnavailableError, VideoError
from vidpose.video.base import (
    FrameBatch,
    ReaderSpec,
    VideoInfo,
    VideoReader,
    available_readers,
    frames_to_uint8_rgb,
    register_reader,
)
from vidpose.video.writer import VideoWriter

__all__ = [
    "FrameBatch",
    "ReaderSpec",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "available_readers",
    "backend_import_errors",
    "frames_to_uint8_rgb",
    "open_video",
    "probe_video",
    "read_frames",
    "register_reader",
]

# Backend modules under vidpose.video. Required ones must import; optional (GPU) ones are
# skipped when their import fails, e.g. on a CPU-only machine or before they are written.
# To add a backend, add its module name here.
_REQUIRED_BACKENDS = ("pyav_reader",)
_OPTIONAL_BACKENDS = ("nvdec_reader", "dali_reader")

_backends_loaded = False
_import_errors: dict[str, str] = {}


def _load_backends() -> None:
    """Import the backend modules once, so that their ``@register_reader`` runs."""
    global _backends_loaded
    if _backends_loaded:
        return
    for name in _REQUIRED_BACKENDS:
        importlib.import_module(f"{__name__}.{name}")
    for name in _OPTIONAL_BACKENDS:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except Exception as e:  # a broken GPU backend must not stop CPU reading
            # keyed by reader name ("nvdec" for nvdec_reader), as open_video looks them up
            _import_errors[name.removesuffix("_reader")] = f"{type(e).__name__}: {e}"
    _backends_loaded = True


def backend_import_errors() -> dict[str, str]:
    """Optional backend module -> why it could not be imported (for diagnostics)."""
    _load_backends()
    return dict(_import_errors)


def open_video(path: str | Path, reader: str = "auto", device: str | None = None) -> VideoReader:
    """Open a video for reading.

    Args:
        path: the video file.
        reader: a registered backend name, or "auto" for the highest-priority backend that can
            open this video here (GPU backends raise ReaderUnavailableError when they cannot,
            and the next one is tried; "pyav" always can).
        device: where frames should live. None lets "auto" use a GPU backend when one works;
            "cpu" restricts "auto" to CPU backends (numpy frames); "cuda[:N]" is passed to GPU
            backends (a ``torch.device`` is taken as its string). CPU backends ignore it and
            return numpy arrays.

    Raises:
        VideoError: missing file, not a video, no video stream, zero frames.
        ReaderUnavailableError: unknown reader name, or the named reader cannot run here.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    device = None if device is None else str(device)  # a torch.device works too
    readers = available_readers()
    if reader != "auto":
        spec = readers.get(reader)
        if spec is None:
            why = f" ({_import_errors[reader]})" if reader in _import_errors else ""
            raise ReaderUnavailableError(
                f"unknown or unavailable video reader {reader!r}{why}; "
                f"available: {', '.join(readers)}"
            )
        return spec.factory(path, device=device)

    want_cpu = device is not None and device.split(":")[0] == "cpu"
    reasons = []
    for spec in readers.values():
        if want_cpu and spec.gpu:
            continue
        try:
            return spec.factory(path, device=device)
        except ReaderUnavailableError as e:
            reasons.append(f"{spec.name}: {e}")
    raise ReaderUnavailableError(
        f"{path}: no video reader could open it for device {device!r}: " + "; ".join(reasons)
    )


def probe_video(path: str | Path) -> VideoInfo:
    """What the container says about ``path``: frame count, fps, size, codec.

    Raises:
        VideoError: as :func:`open_video`.
    """
    from vidpose.video.pyav_reader import PyAVReader

    with PyAVReader(path) as r:
        return r.info


def read_frames(path: str | Path, indices, max_gap: int = 8) -> dict[int, np.ndarray]:
    """Frames ``indices`` of a video, decoded on the CPU: index -> (H, W, 3) uint8 RGB.

    Indices at most ``max_gap`` apart are read as one clip (decoding through a short gap is
    cheaper than seeking again). Frames that fail to decode are left out of the result.

    Raises:
        VideoError: as :func:`open_video`, or an index outside the video.
    """
    runs: list[list[int]] = []
    for i in sorted({int(i) for i in indices}):
        if runs and i - runs[-1][-1] <= max_gap:
            runs[-1].append(i)
        else:
            runs.append([i])
    out: dict[int, np.ndarray] = {}
    with open_video(path, reader="pyav", device="cpu") as reader:
        for run in runs:
            batch = reader.read_clip(run[0], run[-1] - run[0] + 1)
            for i in run:
                if batch.valid[i - run[0]]:
                    out[i] = np.asarray(batch.frames[i - run[0]])
    return out
