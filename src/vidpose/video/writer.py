"""Encode RGB uint8 frames into a video file with PyAV (H.264 by default), atomically.

Used by the synthetic-project generator and for labeled videos. The file is written under a
temporary name beside the target and renamed into place only when :meth:`VideoWriter.close`
succeeds, so a killed or failed run never leaves half a video at ``path``.

Example::

    with VideoWriter("out.mp4", fps=30, width=64, height=48) as w:
        w.write(frames)  # (B, 48, 64, 3) uint8 RGB
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from vidpose._atomic import atomic_path
from vidpose.errors import VideoError

# The temporary file's name ends in ".tmp", so FFmpeg cannot guess the container from it.
CONTAINER_FORMATS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".avi": "avi",
    ".ts": "mpegts",
}


def _chroma_multiple(pix_fmt: str, path: Path) -> tuple[int, int]:
    """(x, y): frame width and height must be multiples of these for chroma-subsampled formats."""
    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, av.FFmpegError) as e:
        raise VideoError(f"{path}: unknown pixel format {pix_fmt!r}") from e
    # chroma_width(w) is w >> log2_chroma_w (rounded up); the ratio recovers the factor.
    ref = 64
    return ref // max(fmt.chroma_width(ref), 1), ref // max(fmt.chroma_height(ref), 1)


def _default_file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _as_rate(fps: float | Fraction, path: Path) -> Fraction:
    # A float from a reader (e.g. 29.97002997) maps back to the NTSC-style 30000/1001.
    rate = Fraction(fps).limit_denominator(10_000)
    if rate <= 0:
        raise VideoError(f"{path}: fps must be positive, got {fps}")
    return rate


class VideoWriter:
    """Write RGB uint8 frames to ``path`` (container from the suffix: .mp4 .m4v .mov .mkv .avi .ts).

    Args:
        path: output file; written atomically (temporary name, renamed on successful close).
        fps: frames per second (float or Fraction).
        width, height: frame size in pixels of the frames passed to :meth:`write`.
        codec: FFmpeg encoder name.
        crf: constant rate factor for x264/x265 (lower = better; 18 is visually lossless);
            other codecs take their quality settings through ``codec_options``.
        pix_fmt: encoded pixel format. Chroma-subsampled formats (yuv420p needs even width and
            height) get odd sizes padded by replicating the last column / row, so the encoded
            video is ``padded_width x padded_height``; pixel coordinates are unchanged.
        gop: keyframe interval in frames (x264 ``keyint``); random access decodes from the
            previous keyframe, so shorter is faster to seek and larger on disk.
        preset: x264/x265 speed preset.
        faststart: for .mp4/.mov, put the index (moov atom) at the start of the file, so a
            truncated file still has decodable frames and the file streams.
        codec_options: extra encoder options, passed to FFmpeg as is.

    Raises:
        VideoError: unknown container suffix, bad size, or frames of the wrong shape / dtype.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int = 18,
        pix_fmt: str = "yuv420p",
        *,
        gop: int = 32,
        preset: str = "medium",
        faststart: bool = True,
        codec_options: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINER_FORMATS:
            raise VideoError(
                f"{self.path}: cannot write a video with suffix {suffix!r}; "
                f"expected one of {', '.join(CONTAINER_FORMATS)}"
            )
        if width <= 0 or height <= 0:
            raise VideoError(f"{self.path}: frame size must be positive, got {width}x{height}")
        if gop < 1:
            raise VideoError(f"{self.path}: gop must be >= 1, got {gop}")
        self.width = int(width)
        self.height = int(height)
        self.fps = _as_rate(fps, self.path)
        mx, my = _chroma_multiple(pix_fmt, self.path)
        self.padded_width = -(-self.width // mx) * mx
        self.padded_height = -(-self.height // my) * my
        self.n_written = 0

        fmt = CONTAINER_FORMATS[suffix]
        container_options = {}
        if faststart and fmt in ("mp4", "mov"):
            container_options["movflags"] = "+faststart"
        options = {"preset": preset} if codec.startswith("libx26") else {}
        if codec in ("libx264", "libx265"):
            options["crf"] = str(crf)
            # Regular keyframes make random access cost bounded; scene cuts may add more.
            options["x264-params" if codec == "libx264" else "x265-params"] = (
                f"keyint={gop}:min-keyint={gop}"
            )
        options.update(codec_options or {})

        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._container = av.open(
                str(self._tmp), "w", format=fmt, container_options=container_options
            )
            self._stream = self._container.add_stream(codec, rate=self.fps, options=options)
            self._stream.width = self.padded_width
            self._stream.height = self.padded_height
            self._stream.pix_fmt = pix_fmt
            self._stream.codec_context.gop_size = gop
            self._stream.codec_context.time_base = 1 / self.fps
        except BaseException as e:
            self._abort(e)
            if isinstance(e, (av.FFmpegError, ValueError)):  # UnknownCodecError is a ValueError
                raise VideoError(f"{self.path}: cannot set up encoder {codec!r}: {e}") from e
            raise
        self._closed = False

    def write(self, frames: np.ndarray) -> None:
        """Append frames ``(B, H, W, 3)`` (or one ``(H, W, 3)``) uint8 RGB."""
        if self._closed:
            raise VideoError(f"{self.path}: write() after close()")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        expected = (self.height, self.width, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise VideoError(
                f"{self.path}: frames must be (B, {self.height}, {self.width}, 3) RGB, "
                f"got shape {frames.shape}"
            )
        if frames.dtype != np.uint8:
            raise VideoError(f"{self.path}: frames must be uint8, got {frames.dtype}")
        pad_y, pad_x = self.padded_height - self.height, self.padded_width - self.width
        if pad_y or pad_x:
            frames = np.pad(frames, ((0, 0), (0, pad_y), (0, pad_x), (0, 0)), mode="edge")
        time_base = 1 / self.fps
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.n_written
            frame.time_base = time_base
            self._container.mux(self._stream.encode(frame))
            self.n_written += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and rename it into place.

        Raises:
            VideoError: nothing was written (an empty video is never left at ``path``).
        """
        if self._closed:
            return
        if self.n_written == 0:
            err = VideoError(f"{self.path}: no frames were written; no video created")
            self._abort(err)
            raise err
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except BaseException as e:
            self._abort(e)
            raise
        self._closed = True
        # mkstemp makes the temporary file owner-only; a video should get the usual mode.
        self._tmp.chmod(_default_file_mode())
        self._atomic.__exit__(None, None, None)

    def _abort(self, exc: BaseException) -> None:
        """Drop the temporary file; ``path`` keeps whatever it held before."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        # atomic_path removes its temporary file when the block exits with an exception.
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif not self._closed:
            self._abort(exc)
