"""Video reading and writing: open any video with the best available backend.

``open_video(path)`` returns a :class:`~vidpose.video.base.VideoReader`; ``probe_video(path)``
returns its :class:`~vidpose.video.base.VideoInfo`; :class:`VideoWriter` encodes frames.

Backends live in their own modules and register themselves in :data:`READERS` with
``@register_reader``; the registry imports them on its first lookup, never at
``import vidpose.video``. A backend is constructed as ``factory(path: Path, device=device)``
and raises ``ReaderUnavailableError`` when it cannot run here (no CUDA, codec unsupported), so
that ``reader="auto"`` moves on to the next one. To add one: write the module (see
``base.py``), then list it in ``READERS``' modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidpose.errors import ReaderUnavailableError, VideoError
from vidpose.video.base import (
    READER_CHOICES,
    READERS,
    FrameBatch,
    ReaderSpec,
    VideoInfo,
    VideoReader,
    frames_to_uint8_rgb,
    register_reader,
)
from vidpose.video.writer import VideoWriter

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
"""File extensions taken as videos in a folder (case-insensitive)."""


def videos_in(folder: Path) -> list[Path]:
    """The videos directly in ``folder`` (by extension), sorted by name, hidden files (macOS
    ``._x.mp4``) skipped."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )


MANIFEST_SUFFIXES = (".txt", ".list")
"""File extensions of video lists (manifests) among video arguments."""


def read_manifest(path: Path) -> list[Path]:
    """The videos a manifest lists: one path per line, relative ones taken from the manifest's
    folder (``~`` expanded); blank lines and ``#`` comments skipped. Missing videos are listed
    all the same (each is reported as a video that cannot be predicted).

    Raises:
        VideoError: the manifest cannot be read as text.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise VideoError(
            f"{path}: cannot be read as a list of videos (one path per line): {why}"
        ) from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            video = Path(line).expanduser()
            out.append(video if video.is_absolute() else path.parent / video)
    return out


def expand_videos(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """Video arguments with every folder that holds videos replaced by them (not its
    subfolders'), and every manifest (a ``.txt`` / ``.list`` file, :func:`read_manifest`) by
    the videos it lists (its folders expanded in turn). Other paths, an empty folder included,
    pass through unchecked: each is reported as a video that cannot be predicted, and the
    others go on.

    Raises:
        VideoError: a manifest cannot be read.
    """
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        listed = [path]
        if path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            listed = read_manifest(path)
        for video in listed:
            found = videos_in(video) if video.is_dir() else []
            out.extend(found or [video])
    return out


__all__ = [
    "MANIFEST_SUFFIXES",
    "READERS",
    "READER_CHOICES",
    "VIDEO_SUFFIXES",
    "FrameBatch",
    "ReaderSpec",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "expand_videos",
    "frames_to_uint8_rgb",
    "open_video",
    "probe_video",
    "read_frames",
    "read_manifest",
    "register_reader",
    "videos_in",
]


def open_video(
    path: str | Path,
    reader: str = "auto",
    device: str | None = None,
    *,
    planar: bool = False,
    threads: int = 0,
) -> VideoReader:
    """Open a video for reading.

    Args:
        path: the video file.
        reader: a name in :data:`READERS`, or "auto" for the highest-priority backend that can
            open this video here (GPU backends raise ReaderUnavailableError when they cannot,
            and the next one is tried; "pyav" always can).
        device: where frames should live. None lets "auto" use a GPU backend when one works;
            "cpu" restricts "auto" to CPU backends (numpy frames); "cuda[:N]" is passed to GPU
            backends (a ``torch.device`` is taken as its string). CPU backends ignore it and
            return numpy arrays.
        planar: a CPU reader that can may deliver 8-bit 4:2:0 frames as I420 planes
            (``FrameBatch.pixels`` "i420") for the caller to convert, on a GPU
            (:func:`vidpose.video.color.i420_to_rgb`); others deliver RGB as always.
        threads: decoding threads of a CPU reader (0: FFmpeg's choice, about one per core;
            give fewer when several decoders run at once).

    Raises:
        VideoError: missing file, not a video, no video stream, zero frames.
        ReaderUnavailableError: unknown reader name, or the named reader cannot run here.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    device = None if device is None else str(device)  # a torch.device works too
    if reader != "auto":
        if reader not in READERS:
            raise ReaderUnavailableError(READERS.unknown(reader, extra=READER_CHOICES))
        return _make(READERS.get(reader), path, device, planar, threads)

    want_cpu = device is not None and device.split(":")[0] == "cpu"
    reasons = []
    for spec in READERS:
        if want_cpu and spec.gpu:
            continue
        try:
            return _make(spec, path, device, planar, threads)
        except ReaderUnavailableError as e:
            reasons.append(f"{spec.name}: {e}")
    raise ReaderUnavailableError(
        f"{path}: no video reader could open it for device {device!r}: " + "; ".join(reasons)
    )


def _make(
    spec: ReaderSpec, path: Path, device: str | None, planar: bool, threads: int
) -> VideoReader:
    if spec.host_options and (planar or threads):
        return spec.factory(path, device=device, planar=planar, threads=threads)
    return spec.factory(path, device=device)


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
