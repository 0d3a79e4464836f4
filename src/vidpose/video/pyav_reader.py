"""CPU video reader on FFmpeg through PyAV: the backend that is always available.

Frames come back as RGB uint8 numpy arrays ``(T, H, W, 3)``. Decoding is threaded by FFmpeg
(``thread_type="AUTO"``); the Python loop does one colour conversion and one copy per frame.

Frame identity. A frame's index is computed from its presentation timestamp:
``index = round((pts - start_pts) * time_base * fps)``, so random access (seek to the keyframe
at or before the wanted frame, decode forward) returns exactly the frames that sequential
decoding returns, whatever the seek precision of the container, B-frame reordering or a
non-zero first timestamp. When the first decoded timestamps do not follow that rule (AVI with
B-frames carries no real pts; variable frame rate), the reader falls back to counting decoded
frames and serves random access by decoding from the start (correct, slower).

Frame count. ``info.n_frames`` is the container's frame count when it has one (mp4, avi),
otherwise ``round(duration * fps)`` (mkv, webm, ts), otherwise packets are counted by demuxing
the file once (no decoding). A truncated file keeps the container's count; the frames it lacks
are reported invalid.

Damaged videos. Frames that fail to decode, frames the decoder flags corrupt and frames past
the point where decoding stopped (a truncated file) are returned as zeros with
``FrameBatch.valid`` False; their indices accumulate in :attr:`PyAVReader.decode_errors` and are
listed in one ``warnings.warn`` at the end of an iteration or at ``close()``. After damage,
every frame up to the next intact keyframe is invalid too, because such frames predict from
damaged pictures and FFmpeg's error concealment does not flag them. Inside a damaged stretch,
which frames are flagged can differ between sequential and random access (the decoder reports
errors with a delay that depends on where decoding began); elsewhere the two agree exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
from av.video.reformatter import VideoReformatter

from vidpose.errors import VideoError
from vidpose.video.base import (
    FrameBatch,
    ReaderChecks,
    VideoInfo,
    i420_shape,
    register_reader,
)

# Frames decoded at open to learn whether timestamps identify frames (B-frame reordering shows
# up within the first few frames).
_PROBE_FRAMES = 12
# Below this many frames ahead, decoding forward is cheaper than seeking.
_CONTINUE_WINDOW = 32
# How far before the wanted frame successive seek attempts aim, in frames.
_SEEK_BACKOFFS = (0, 8, 64, 512, 4096)
# Consecutive demuxer errors after which the rest of the file is taken as unreadable.
_DEMUX_RETRIES = 4

# (frame index, decoded frame), the frame None where it is invalid.
_Item = tuple[int, "av.VideoFrame | None"]


def open_container(path: Path) -> av.container.InputContainer:
    """Open ``path`` with FFmpeg; a VideoError says what the demuxer said if it cannot."""
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, expected a video file")
    try:
        return av.open(str(path), "r")
    except av.FFmpegError as e:
        first_error = e
    # PyAV silences FFmpeg's log, which holds the useful part ("moov atom not found"); open
    # again with it captured, only on this failure path so that normal opens have no side effect.
    detail = _open_error_log(path)
    said = f"{first_error.strerror}" + (f" ({detail})" if detail else "")
    raise VideoError(f"{path}: not a readable video; FFmpeg says: {said}") from first_error


def _open_error_log(path: Path) -> str:
    previous = av.logging.get_level(), av.logging.get_skip_repeated()
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # the same message for another file must show too
    try:
        with av.logging.Capture() as logs, contextlib.suppress(av.FFmpegError):
            av.open(str(path), "r").close()
    finally:
        av.logging.set_level(previous[0])
        av.logging.set_skip_repeated(previous[1])
    return "; ".join(dict.fromkeys(msg.strip() for _, _, msg in logs if msg.strip()))


class _Failure:
    """A packet that failed to decode, with its pts when the container gave one."""

    __slots__ = ("pts",)

    def __init__(self, pts: int | None) -> None:
        self.pts = pts


class _Cursor:
    """A decoding position: an iterator of (index, frame) with one-item push-back."""

    def __init__(self, items: Iterator[_Item], position: int) -> None:
        self._items = items
        self._pending: list[_Item] = []
        self.position = position  # index of the next frame this cursor will give (best guess)

    def next(self) -> _Item | None:
        item = self._pending.pop() if self._pending else next(self._items, None)
        if item is not None:
            self.position = item[0] + 1
        return item

    def push(self, item: _Item) -> None:
        self._pending.append(item)
        self.position = item[0]


# AVColorSpace values decoded as BT.601 by swscale's default: unspecified, BT470BG, SMPTE170M;
# AVColorRange: unspecified, MPEG (limited).
_BT601_SPACES = (2, 5, 6)
_LIMITED_RANGES = (0, 1)


def _planar_exact(frame: av.VideoFrame) -> bool:
    """Whether :func:`~vidpose.video.color.i420_to_rgb` of this stream's planes matches what
    ``rgb24`` gives (the same matrix and range) and the planes pack (even size)."""
    return (
        frame.format.name == "yuv420p"
        and frame.colorspace in _BT601_SPACES
        and frame.color_range in _LIMITED_RANGES
        and frame.width % 2 == 0
        and frame.height % 2 == 0
    )


def _copy_planes(frame: av.VideoFrame, out: np.ndarray, reformatter: VideoReformatter) -> None:
    """Copy a frame's Y, Cb, Cr planes into ``out`` ((3H/2, W) packed I420), dropping the row
    padding FFmpeg adds."""
    if frame.format.name != "yuv420p":  # a mid-stream format change
        frame = reformatter.reformat(frame, format="yuv420p")
    flat = out.reshape(-1)
    at = 0
    for plane in frame.planes:
        rows, cols = plane.height, plane.width
        src = np.frombuffer(plane, np.uint8)[: rows * plane.line_size]
        flat[at : at + rows * cols].reshape(rows, cols)[...] = src.reshape(rows, plane.line_size)[
            :, :cols
        ]
        at += rows * cols


@register_reader(
    "pyav",
    priority=10,
    gpu=False,
    help="CPU decoding with FFmpeg through PyAV (always available)",
    # Random training clips: threaded PyAV gave 758 augmented clip frames/s on an H100 host
    # (16 cores, 250-frame keyframe spacing) against nvdec's 456 and DALI's 57.
    clip_priority=100,
    host_options=True,
)
class PyAVReader(ReaderChecks):
    """Read a video on the CPU with PyAV. Frames are numpy ``(T, H, W, 3)`` uint8 RGB.

    Args:
        path: the video file.
        device: accepted for the common reader signature; frames are always host numpy arrays.
        threads: FFmpeg decoding threads, 0 = FFmpeg's choice.
        planar: deliver the decoder's planes instead of RGB where that is exact enough: 8-bit
            4:2:0 video (``yuv420p``) of even size with no colour description or a BT.601 one,
            limited range; frames are then (T, 3H/2, W) packed I420 and ``pixels`` is "i420"
            (convert with :func:`vidpose.video.color.i420_to_rgb`, on a GPU). Other videos
            come as RGB (``pixels`` "rgb"). The colour conversion is half of the per-frame
            cost, so a GPU consumer decodes about twice as fast this way.

    Raises:
        VideoError: missing file, not a video, no video stream, or no decodable frame.
    """

    def __init__(
        self, path: str | Path, device: str | None = None, *, threads: int = 0, planar: bool = False
    ) -> None:
        self.path = Path(path)
        self.device = device
        self._threads = threads
        self._planar = planar
        self.pixels = "rgb"
        self._errors: set[int] = set()
        self._warned: set[int] = set()
        self._reformatter = VideoReformatter()
        self._cursor: _Cursor | None = None
        self._container: av.container.InputContainer | None = None
        self._open()
        try:
            self._probe()
        except BaseException:
            self.close()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _open(self) -> None:
        self._container = open_container(self.path)
        streams = self._container.streams.video
        if not streams:
            kinds = ", ".join(s.type for s in self._container.streams) or "none"
            self._container.close()
            raise VideoError(f"{self.path}: contains no video stream (streams: {kinds})")
        self._stream = streams[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = self._threads

    def _probe(self) -> None:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise VideoError(f"{self.path}: the container gives no frame rate")
        self._rate = Fraction(rate)
        self._time_base = Fraction(stream.time_base)
        frames_per_tick = self._time_base * self._rate
        self._tick = (frames_per_tick.numerator, frames_per_tick.denominator)

        # Probe frames are the start of sequential decoding: the first read gets them again.
        raw = self._raw_frames()
        probe = list(itertools.islice(raw, _PROBE_FRAMES))
        decoded = [f for f in probe if not isinstance(f, _Failure) and not f.is_corrupt]
        if not decoded:
            raise VideoError(
                f"{self.path}: no decodable video frame (the file may be truncated or damaged)"
            )
        self._pts_mode = self._timestamps_identify_frames(probe)
        n_frames = self._frame_count()
        if n_frames <= 0:
            raise VideoError(f"{self.path}: the video has zero frames")
        self.info = VideoInfo(
            path=self.path,
            n_frames=n_frames,
            fps=float(self._rate),
            width=decoded[0].width,
            height=decoded[0].height,
            codec=stream.codec_context.name,
        )
        self._cursor = _Cursor(self._indexed(itertools.chain(probe, raw), after_seek=False), 0)
        if self._planar and _planar_exact(decoded[0]):
            self.pixels = "i420"

    def _timestamps_identify_frames(self, probe: list[av.VideoFrame | _Failure]) -> bool:
        """Whether the probed frames' pts identify frames (sets ``_start_pts``).

        They do when each pts sits on the constant-rate grid (within a quarter frame: mkv
        rounds to milliseconds) and the indices increase. Gaps are allowed (frames lost to
        damage), and so is one step back per decoding failure (a damaged decoder may output
        out of order); AVI with B-frames, whose "pts" are decode-order stamps, steps back
        every few frames. The stream's start time is the first choice of origin; the first
        frame's pts the second (a container whose start time counts frames the decoder drops).
        """
        self._start_pts = 0
        failures = sum(isinstance(f, _Failure) for f in probe)
        pts = [f.pts for f in probe if not isinstance(f, _Failure)]
        if not pts or any(p is None for p in pts):
            return False
        for origin in (self._stream.start_time, pts[0]):
            if origin is None:
                continue
            position = [(p - origin) * self._time_base * self._rate for p in pts]
            index = np.array([round(x) for x in position])
            on_grid = all(abs(x - i) < Fraction(1, 4) for x, i in zip(position, index))
            steps_back = int((np.diff(index) < 1).sum())
            if on_grid and index[0] >= 0 and steps_back <= failures:
                self._start_pts = origin
                return True
        return False

    def _frame_count(self) -> int:
        stream = self._stream
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        if stream.duration is not None and stream.duration > 0:
            seconds = stream.duration * self._time_base
        elif self._container.duration is not None and self._container.duration > 0:
            seconds = Fraction(self._container.duration, av.time_base)
        else:
            return self._count_packets()
        estimate = round(seconds * self._rate)
        # FFmpeg's matroska muxer stores the end time as the duration, which counts from time
        # zero rather than from the first frame. Tell that apart from a truncated file (whose
        # container count must stand) by the timestamp of the last packet.
        offset = round(self._start_pts * self._time_base * self._rate)
        if self._pts_mode and offset > 0 and "matroska" in self._container.format.name:
            last = self._count_to_last_packet()
            if last is not None and abs(estimate - offset - last) <= 1:
                return last
        return estimate

    def _count_to_last_packet(self) -> int | None:
        """1 + the index of the last packet's pts, from a seek to the end of the file."""
        with av.open(str(self.path), "r") as container:
            stream = container.streams.video[0]
            last = None
            with contextlib.suppress(av.FFmpegError):
                container.seek(2**62, stream=stream, backward=True)
                for packet in container.demux(stream):
                    if packet.size and packet.pts is not None:
                        last = packet.pts if last is None else max(last, packet.pts)
        return None if last is None else self._index_of(last) + 1

    def _count_packets(self) -> int:
        with av.open(str(self.path), "r") as container:
            stream = container.streams.video[0]
            count = 0
            with contextlib.suppress(av.FFmpegError):
                for packet in container.demux(stream):
                    count += packet.size > 0
            return count

    # -- decoding ----------------------------------------------------------------------------

    def _index_of(self, pts: int) -> int:
        """``round((pts - start) * time_base * rate)`` (halves to even, as ``round`` of the
        Fraction), in integers: Fraction arithmetic cost ~10 us a frame, under the GIL."""
        num, den = self._tick
        index, rest = divmod((pts - self._start_pts) * num, den)
        if 2 * rest > den or (2 * rest == den and index % 2):
            index += 1
        return index

    def _pts_of(self, index: float) -> int:
        return self._start_pts + math.floor(index / (self._time_base * self._rate))

    def _raw_frames(self) -> Iterator[av.VideoFrame | _Failure]:
        """Decoded frames in presentation order from the container's current position.

        A :class:`_Failure` marks a packet that failed to decode (its frame never comes). A
        demuxer error (damaged container) is retried from where the demuxer stopped, as FFmpeg
        demuxers resynchronise; repeated errors end the stream (a truncated file).
        """
        codec = self._stream.codec_context
        failures_in_a_row = 0
        while failures_in_a_row < _DEMUX_RETRIES:
            try:
                for packet in self._container.demux(self._stream):
                    try:
                        frames = codec.decode(packet)
                    except av.FFmpegError:
                        yield _Failure(packet.pts)
                        continue
                    failures_in_a_row = 0
                    yield from frames
                return
            except av.FFmpegError:
                failures_in_a_row += 1
                yield _Failure(None)
        with contextlib.suppress(av.FFmpegError, EOFError):
            yield from codec.decode(None)

    def _indexed(
        self, frames: Iterator[av.VideoFrame | _Failure], after_seek: bool
    ) -> Iterator[_Item]:
        """Attach frame indices: by timestamp, or (without usable timestamps) by counting.

        A frame is given as None (invalid) when the decoder flags it corrupt, and so is every
        frame after damage (a corrupt frame or a packet that failed) until an intact keyframe
        later than the damaged frame: frames in between may predict from damaged references
        and hold concealment garbage that FFmpeg does not flag. After a seek, frames before
        the first keyframe (open-GOP leading pictures) are skipped.
        """
        seen_key = not after_seek
        damaged_upto: int | None = None  # highest damaged frame index while damage is live
        index = -1
        for frame in frames:
            if isinstance(frame, _Failure):
                if self._pts_mode and frame.pts is not None:
                    lost = self._index_of(frame.pts)
                else:
                    lost = index + 1
                    if not self._pts_mode:
                        index += 1  # count mode: the lost frame most likely sat here
                        yield index, None
                damaged_upto = lost if damaged_upto is None else max(damaged_upto, lost)
                continue
            intact_key = frame.key_frame and not frame.is_corrupt
            if not seen_key:
                if not intact_key:
                    continue
                seen_key = True
            if self._pts_mode and frame.pts is not None:
                index = self._index_of(frame.pts)
            else:
                index += 1
            if frame.is_corrupt:
                damaged_upto = index if damaged_upto is None else max(damaged_upto, index)
            elif intact_key and damaged_upto is not None and index > damaged_upto:
                damaged_upto = None
            yield index, None if damaged_upto is not None else frame

    def _rewind(self) -> _Cursor:
        """Decode from the first frame: reopen the container (the one sure way to get there)."""
        self._container.close()
        self._open()
        return _Cursor(self._indexed(self._raw_frames(), after_seek=False), 0)

    def _cursor_at(self, start: int) -> _Cursor:
        """A cursor whose next frame has index <= ``start``."""
        cur = self._cursor
        if cur is not None and cur.position <= start:
            ahead = start - cur.position
            if ahead <= _CONTINUE_WINDOW or not self._pts_mode:
                return cur
        if self._pts_mode:
            for back in _SEEK_BACKOFFS:
                target = start - back
                if target <= 0:
                    break
                cur = self._seek(target)
                if cur is not None:
                    item = cur.next()
                    if item is not None and item[0] <= start:
                        cur.push(item)
                        return cur
        return self._rewind()

    def _seek(self, target: int) -> _Cursor | None:
        # Aim half a frame after the target's nominal pts: containers round timestamps (mkv
        # stores milliseconds), and a seek backwards from there still lands at or before it.
        try:
            self._container.seek(
                self._pts_of(target + 0.5), stream=self._stream, backward=True, any_frame=False
            )
        except av.FFmpegError:
            return None
        self._stream.codec_context.flush_buffers()
        return _Cursor(self._indexed(self._raw_frames(), after_seek=True), target)

    def _read(self, start: int, length: int, out: np.ndarray | None = None) -> FrameBatch:
        """Frames ``start .. start+length-1``, decoded into ``out`` when given (``length``
        frames of this reader's shape); frames that cannot be decoded are zeros."""
        h, w = self.info.height, self.info.width
        planar = self.pixels == "i420"
        shape = i420_shape(h, w) if planar else (h, w, 3)
        if out is None:
            frames = np.zeros((length, *shape), dtype=np.uint8)
        elif out.shape != (length, *shape) or out.dtype != np.uint8:
            raise ValueError(f"out: expected uint8 {(length, *shape)}, got {out.dtype} {out.shape}")
        else:
            frames = out
        valid = np.zeros(length, dtype=bool)
        stop = start + length
        cursor = self._cursor = self._cursor_at(start)
        while (item := cursor.next()) is not None:
            index, frame = item
            if index >= stop:
                cursor.push(item)
                break
            if index < start or frame is None:
                continue
            if (frame.height, frame.width) != (h, w):
                continue  # a mid-stream size change: reported as a bad frame
            if planar:
                _copy_planes(frame, frames[index - start], self._reformatter)
            else:
                frames[index - start] = self._reformatter.reformat(
                    frame, format="rgb24"
                ).to_ndarray()
            valid[index - start] = True
        if not valid.all():
            if out is not None:  # a reused buffer: what was not decoded is zeros, as always
                frames[~valid] = 0
            self._errors.update((np.flatnonzero(~valid) + start).tolist())
        return FrameBatch(start=start, frames=frames, valid=valid, pixels=self.pixels)

    # -- public ------------------------------------------------------------------------------

    def _is_closed(self) -> bool:
        return self._container is None

    @property
    def seeks(self) -> bool:
        """Whether random access seeks (timestamps identify frames); otherwise a read that
        starts past the cursor decodes from the first frame."""
        return self._pts_mode

    def read_clip(self, start: int, length: int) -> FrameBatch:
        """Frames ``start .. start+length-1`` (fewer if the video ends first).

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)`` or ``length < 1``.
        """
        length = self._clip_length(start, length)
        return self._read(start, length)

    decodes_into = True
    """:meth:`iter_batches` takes ``into``: decoder processes decode straight into the shared
    buffers the predicting process reads, without a new array per batch and a copy per frame
    (in one process on a 2-core CPU, ~7% faster; ``bench/results/decode_into_cpu.json``)."""

    def iter_batches(
        self,
        batch_size: int,
        start: int = 0,
        stop: int | None = None,
        *,
        into: Callable[[int], np.ndarray] | None = None,
    ) -> Iterator[FrameBatch]:
        """Every frame in ``[start, stop)`` in order, ``batch_size`` at a time (last may be short).

        ``stop`` beyond the end is clipped to ``n_frames``. Arguments are checked at the call,
        not at the first ``next()``. ``into(n)``, when given, is asked before each batch for
        the uint8 array of ``n`` frames to decode it into (the batch's ``frames`` is then that
        array), instead of a new one.

        Raises:
            VideoError: ``start`` not in ``[0, n_frames)`` or ``batch_size < 1``.
        """
        stop = self._batches_stop(batch_size, start, stop)
        return self._batches(batch_size, start, stop, into)

    def _batches(
        self, batch_size: int, start: int, stop: int, into: Callable[[int], np.ndarray] | None
    ) -> Iterator[FrameBatch]:
        for s in range(start, stop, batch_size):
            n = min(batch_size, stop - s)
            yield self._read(s, n, None if into is None else into(n))
        self._warn_errors()

    def close(self) -> None:
        if self._container is None:
            return
        self._cursor = None
        self._container.close()
        self._container = None
        if hasattr(self, "info"):
            self._warn_errors()

    def __enter__(self) -> PyAVReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PyAVReader({str(self.path)!r})"
