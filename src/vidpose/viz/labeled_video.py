"""Labeled videos: predicted keypoints and skeleton drawn on every frame, encoded to H.264.

Public API::

    label_video(predictions, video, out, ...) -> LabelVideoStats
    reprojected_poses(points, camera) -> Poses  # 3D points as one camera sees them
    find_settings_file(paths) -> Path | None   # nearest vidpose.yaml above any of ``paths``
    load_skeleton(path) -> [(name, name), ...]  # skeleton edges of a project dir or its yaml

Drawing. Keypoint ``k`` gets colour ``keypoint_colors_u8(keypoints)[k]`` (the vidpose palette),
drawn as a filled marker with a dark rim at the predicted pixel (coordinates rounded; integer
coordinates are pixel centres, so the marker's centre pixel is the keypoint's pixel). Points
below ``min_likelihood`` are drawn hollow (a ring in the same colour) or hidden; NaN points are
never drawn. Several prediction files of one video get one marker shape each (circle, square,
triangle, diamond, ...), named in a legend in the top-right corner; skeleton edges (in the colour
of the edge's first keypoint) join two confident points and lie under every marker.

3D overlay. Given a 3D table and the calibration, the 3D points are projected into the video's
camera (lens included, :func:`reprojected_poses`) and drawn as one more track, with the next
marker shape, last (on top) and named "3D reprojected (<view>)" in the legend: the same drawing
as the 2D predictions, so a keypoint's 2D marker and its reprojection share its colour and the
gap between them is the reprojection error.

Streaming. A thread decodes batches of frames while the main thread draws (Pillow's ImageDraw,
one ``Image`` per frame) and PyAV encodes (libx264 with its own threads), so memory does not grow
with the video. Encoding dominates: on a shared (loaded) 2-core CPU the 994-frame 396x406
mirror-mouse example video, 17 keypoints, two prediction files and a skeleton, labels at about
210 frames/s with the default ``veryfast`` x264 preset and 300 frames/s with ``superfast``
(files 30% larger), decoding included.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFont

from vidpose._progress import FramesProgress
from vidpose.errors import ConfigError, LabelsError, ProjectError, VideoError
from vidpose.geometry import Calibration, CameraModel, read_calibration
from vidpose.io import Poses, read_poses
from vidpose.io.ops import reorder_keypoints
from vidpose.io.points3d import Points3D, read_points_3d
from vidpose.project.multicamera import split_view
from vidpose.project.settings import SETTINGS_FILE, load_settings, parse_settings
from vidpose.video import FrameBatch, open_video
from vidpose.video.writer import VideoWriter
from vidpose.viz.colors import keypoint_colors_u8

# One marker shape per prediction file, in this order.
MARKERS: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "triangle_down", "hexagon")

_RIM = (20, 20, 20)  # dark edge around filled markers, so they stand out on light fur
_TEXT = (255, 255, 255)
_TEXT_BG = (0, 0, 0)
_DECODE_BATCH = 16
_QUEUE_DEPTH = 3  # decoded batches waiting to be drawn; bounds memory

# Per-keypoint drawing state in a track.
_HIDDEN, _HOLLOW, _FILLED = 0, 1, 2


@dataclass(frozen=True)
class LabelVideoStats:
    """What :func:`label_video` wrote.

    Attributes:
        out: the labeled video.
        frames: frames written.
        seconds: wall time of decode + draw + encode.
    """

    out: Path
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames labeled per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class _Track:
    """One prediction file, aligned to the video's frames and to the first file's keypoints.

    Attributes:
        label: legend text.
        marker: one of :data:`MARKERS`.
        row_of: (n_video_frames,) int64, the row of ``xy`` / ``state`` for each video frame;
            -1 where the file has no row.
        xy: (N, K, 2) int64 rounded pixel (x, y); meaningless where ``state`` is hidden.
        state: (N, K) int8, ``_HIDDEN``, ``_HOLLOW`` or ``_FILLED``.
    """

    label: str
    marker: str
    row_of: np.ndarray
    xy: np.ndarray
    state: np.ndarray


def label_video(
    predictions: Sequence[str | Path | Poses] | str | Path | Poses,
    video: str | Path,
    out: str | Path,
    *,
    min_likelihood: float = 0.9,
    low_confidence: Literal["hollow", "hide"] = "hollow",
    skeleton: Sequence[tuple[str, str]] | None = None,
    frame_counter: bool = True,
    labels: Sequence[str] | None = None,
    marker_size: int | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    reader: str = "pyav",
    progress: bool = False,
    points3d: str | Path | Points3D | None = None,
    calibration: str | Path | Calibration | None = None,
    view: str | None = None,
) -> LabelVideoStats:
    """Draw predicted keypoints on every frame of ``video`` and write ``out`` (H.264).

    Args:
        predictions: one or more prediction tables of ``video`` (paths or :class:`Poses` with
            integer frame indices), all with the same keypoints. Frames without a row are
            copied unlabeled.
        video: the video the predictions were made on.
        out: the labeled video (.mp4, .mkv, ...); written atomically, same fps and size as
            ``video`` (odd sizes are padded by one pixel for yuv420p), no audio.
        min_likelihood: points below it are low-confidence (a NaN likelihood counts as
            confident: labels carry none).
        low_confidence: "hollow" draws low-confidence points as rings, "hide" leaves them out.
        skeleton: edges as pairs of keypoint names, drawn between two confident points.
        frame_counter: draw the frame index in the top-left corner.
        labels: legend names, one per prediction file (default: file stems, or the scorer of
            a Poses). A legend is drawn when there are several files or ``labels`` is given.
        marker_size: marker radius in pixels (default 1% of the smaller frame side, >= 2).
        crf: x264 constant rate factor (18 is visually lossless; 0 is lossless).
        preset: x264 speed preset. "veryfast" is most of "medium"'s compression at several
            times its speed; "superfast" is ~1.5x faster again, files ~30% larger.
        reader: video reader backend (CPU frames needed for drawing).
        progress: show a progress bar.
        points3d: a 3D table (path or :class:`Points3D`) of the session, drawn reprojected
            into ``view`` on top of the 2D predictions; needs ``calibration``. Its frames and
            keypoints must be those of the first prediction table.
        calibration: the cameras (``calibration.toml`` or a :class:`Calibration`).
        view: the camera that filmed ``video`` (default: the camera named in its file name,
            e.g. ``session01_cam0.mp4`` is cam0).

    Returns:
        frames written and wall time.

    Raises:
        LabelsError: a prediction file is missing or malformed, is not a video prediction
            (frames are image paths), has a frame index outside the video or repeated, or its
            keypoints differ from the first file's.
        ProjectError: a skeleton edge names an unknown keypoint.
        VideoError: the video cannot be read, or ``out`` is the input video, or its size is
            not the size of the view's camera.
        ConfigError: ``view`` is no camera of the calibration (or none is named in the
            video's file name), or ``points3d`` comes without ``calibration``.
    """
    if low_confidence not in ("hollow", "hide"):
        raise ValueError(f"low_confidence must be 'hollow' or 'hide', got {low_confidence!r}")
    if isinstance(predictions, (str, Path, Poses)):
        predictions = [predictions]
    if not predictions:
        raise LabelsError("label_video needs at least one prediction table")
    if labels is not None and len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels for {len(predictions)} prediction tables")
    video, out = Path(video), Path(out)
    if out.resolve() == video.resolve():
        raise VideoError(f"{out}: the labeled video would overwrite its input video")

    loaded = [_load(p, i) for i, p in enumerate(predictions)]
    keypoints = loaded[0][0].keypoints
    edges = _edge_indices(skeleton or [], keypoints, loaded[0][1])
    labels = None if labels is None else list(labels)
    if points3d is not None and calibration is None:
        raise ConfigError("points3d: the 3D overlay needs the calibration")

    with open_video(video, reader=reader, device="cpu") as rd:
        info = rd.info
        if points3d is not None:
            overlay, name = _overlay_3d(
                points3d, calibration, view, video, (info.width, info.height), *loaded[0]
            )
            labels = [n for _, n in loaded] if labels is None else labels
            loaded.append((overlay, name))
            labels.append(overlay.scorer)
        tracks = [
            _track(
                _reorder(poses, keypoints, name, loaded[0][1]),
                name if labels is None else labels[i],
                MARKERS[i % len(MARKERS)],
                info.n_frames,
                min_likelihood,
                low_confidence,
                source=name,
                video=video,
            )
            for i, (poses, name) in enumerate(loaded)
        ]
        painter = _Painter(
            width=info.width,
            height=info.height,
            colors=keypoint_colors_u8(keypoints),
            tracks=tracks,
            edges=edges,
            radius=marker_size,
            frame_counter=frame_counter,
            legend=len(tracks) > 1 or labels is not None,
        )
        bar = FramesProgress(out.name, info.n_frames) if progress else None
        t0 = time.perf_counter()
        try:
            with VideoWriter(
                out, fps=info.fps, width=info.width, height=info.height, crf=crf, preset=preset
            ) as writer:
                batches = _prefetch(rd.iter_batches(_DECODE_BATCH), _QUEUE_DEPTH)
                # closing: the decode thread must stop before the reader closes
                with contextlib.closing(batches):
                    for batch in batches:
                        for j, frame in enumerate(batch.frames):
                            writer.write(painter.draw(frame, batch.start + j))
                        if bar is not None:
                            bar.advance(len(batch.frames))
                n = writer.n_written
        finally:
            if bar is not None:
                bar.stop()
    return LabelVideoStats(out=out, frames=n, seconds=time.perf_counter() - t0)


def _folders_above(paths: Sequence[str | Path]) -> Iterator[Path]:
    """Each path's folder (itself, if a folder) and the folders above it, nearest first; path
    after path."""
    for p in paths:
        p = Path(p).resolve()
        yield from ([p] if p.is_dir() else []) + list(p.parents)


def _dlc_config_in(folder: Path):
    """The DeepLabCut config.yaml in ``folder`` (None: none, another tool's, or malformed)."""
    from vidpose.project.settings import DLC_CONFIG_FILE, load_dlc_config

    if not (folder / DLC_CONFIG_FILE).is_file():
        return None
    try:
        return load_dlc_config(folder)
    except ProjectError:
        return None


def find_settings_file(paths: Sequence[str | Path]) -> Path | None:
    """The nearest ``vidpose.yaml`` (or DeepLabCut project ``config.yaml``) in the folders
    above any of ``paths`` (first path first)."""
    for folder in _folders_above(paths):
        if (folder / SETTINGS_FILE).is_file():
            return folder / SETTINGS_FILE
        dlc = _dlc_config_in(folder)
        if dlc is not None:
            return dlc.path
    return None


DEFAULT_MIN_LIKELIHOOD = 0.9


def default_min_likelihood(paths: Sequence[str | Path]) -> tuple[float, Path | None]:
    """The ``pcutoff`` of the nearest DeepLabCut ``config.yaml`` in the folders above any of
    ``paths`` (and the file), else 0.9 (and None)."""
    for folder in _folders_above(paths):
        dlc = _dlc_config_in(folder)
        if dlc is not None and dlc.pcutoff is not None:
            return dlc.pcutoff, dlc.path
    return DEFAULT_MIN_LIKELIHOOD, None


def load_skeleton(path: str | Path) -> list[tuple[str, str]]:
    """Skeleton edges from a project folder (its ``vidpose.yaml``) or a settings YAML file.

    Raises:
        ProjectError: the path does not exist, a project folder has no ``vidpose.yaml``, or
            the YAML is invalid.
    """
    from vidpose.project.settings import DLC_CONFIG_FILE

    path = Path(path)
    if path.is_dir():
        settings = load_settings(path)
        if not settings.sources:
            raise ProjectError(
                f"{path}: no {SETTINGS_FILE} (or DeepLabCut {DLC_CONFIG_FILE}) in this folder "
                "(for the skeleton)"
            )
        return list(settings.skeleton)
    if not path.is_file():
        raise ProjectError(f"{path}: no such project folder or settings file")
    if path.name in (SETTINGS_FILE, DLC_CONFIG_FILE):
        return list(load_settings(path.parent).skeleton)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: not valid UTF-8 YAML: {exc}") from exc
    return list(parse_settings(data, path).skeleton)


# -- inputs ----------------------------------------------------------------------------------


def _load(pred: str | Path | Poses, i: int) -> tuple[Poses, str]:
    """(poses, name): a path is read (name: its stem); a Poses is named by its scorer."""
    if isinstance(pred, Poses):
        return pred, pred.scorer or f"predictions {i + 1}"
    path = Path(pred)
    return read_poses(path), path.stem


def _reorder(poses: Poses, keypoints: list[str], name: str, first: str) -> Poses:
    """``poses`` with its keypoints in the order of ``keypoints`` (the first file's)."""
    if poses.keypoints == keypoints:
        return poses
    missing = [k for k in keypoints if k not in poses.keypoints]
    extra = [k for k in poses.keypoints if k not in keypoints]
    if missing or extra:
        raise LabelsError(
            f"{name}: keypoints differ from {first}'s: missing {missing}, extra {extra}; "
            "every prediction table of one labeled video needs the same keypoints"
        )
    return reorder_keypoints(poses, keypoints)


def _edge_indices(
    skeleton: Sequence[tuple[str, str]], keypoints: list[str], source: str
) -> list[tuple[int, int]]:
    lookup = {k: i for i, k in enumerate(keypoints)}
    edges = []
    for a, b in skeleton:
        unknown = [k for k in (a, b) if k not in lookup]
        if unknown:
            raise ProjectError(
                f"skeleton edge ({a}, {b}): keypoint(s) {unknown} not in {source} "
                f"(keypoints: {', '.join(keypoints)})"
            )
        edges.append((lookup[a], lookup[b]))
    return edges


def _track(
    poses: Poses,
    label: str,
    marker: str,
    n_video: int,
    min_likelihood: float,
    low_confidence: str,
    *,
    source: str,
    video: Path,
) -> _Track:
    """Validate ``poses``' frame indices against the video and precompute what to draw."""
    frames = poses.frames
    if frames.dtype.kind not in "iu":
        raise LabelsError(
            f"{source}: rows are images ({frames[0] if len(frames) else '?'}), not video "
            "frame indices; label-video needs predictions made on a video"
        )
    outside = frames[(frames < 0) | (frames >= n_video)]
    if outside.size:
        raise LabelsError(
            f"{source}: frame index {int(outside[0])} is outside {video.name}, which has "
            f"{n_video} frames (0..{n_video - 1}); are these predictions of another video?"
        )
    uniq, counts = np.unique(frames, return_counts=True)
    if (counts > 1).any():
        raise LabelsError(f"{source}: frame {int(uniq[counts > 1][0])} has more than one row")
    row_of = np.full(n_video, -1, dtype=np.int64)
    row_of[frames] = np.arange(len(frames))

    visible = poses.visible
    confident = ~(poses.likelihood < min_likelihood)  # NaN likelihood: confident
    state = np.where(confident, _FILLED, _HOLLOW if low_confidence == "hollow" else _HIDDEN)
    state = np.where(visible, state, _HIDDEN).astype(np.int8)
    xy = np.rint(np.nan_to_num(poses.coords, nan=-1e6)).clip(-1e6, 1e6).astype(np.int64)
    return _Track(label=label, marker=marker, row_of=row_of, xy=xy, state=state)


def reprojected_poses(points: Points3D, camera: CameraModel) -> Poses:
    """``points`` as ``camera`` sees them: (N, K, 2) pixels through its lens, NaN where a point
    is missing or behind the camera; likelihood NaN (drawn as confident); scorer
    "3D reprojected (<camera>)"."""
    return Poses(
        coords=camera.project(points.points),
        keypoints=points.keypoints,
        frames=points.frames,
        likelihood=np.full(points.points.shape[:2], np.nan),
        scorer=f"3D reprojected ({camera.name})",
        is_labels=False,
    )


def _frames_text(frames: np.ndarray) -> str:
    return f"{len(frames)} frames" + (f" ({frames.min()}..{frames.max()})" if len(frames) else "")


def _overlay_3d(
    points3d: str | Path | Points3D,
    calibration: str | Path | Calibration,
    view: str | None,
    video: Path,
    size: tuple[int, int],
    first: Poses,
    first_name: str,
) -> tuple[Poses, str]:
    """(the 3D table reprojected into the video's camera, the table's name for messages),
    after checking camera, image size, frames and keypoints against the video and ``first``."""
    if isinstance(points3d, Points3D):
        points, name = points3d, "the 3D points"
    else:
        points, name = read_points_3d(points3d), Path(points3d).name
    if not isinstance(calibration, Calibration):
        calibration = read_calibration(calibration)
    where = calibration.source or "the calibration"
    if view is None:
        found = split_view(video.stem, calibration.names)
        if found is None:
            raise ConfigError(
                f"{video.name}: its name names no camera of {where} "
                f"({', '.join(calibration.names)}); give the view"
            )
        view = found[1]
    camera = calibration[view]
    if tuple(camera.size) != size:
        raise VideoError(
            f"{video.name} is {size[0]}x{size[1]} px but camera {view} of {where} is "
            f"{camera.size[0]}x{camera.size[1]}; is this another camera's video?"
        )
    if not np.array_equal(np.sort(points.frames), np.sort(first.frames)):
        raise LabelsError(
            f"{name}: {_frames_text(points.frames)}, but {first_name} has "
            f"{_frames_text(first.frames)}; the 3D table must cover the 2D predictions' frames"
        )
    reprojected = reprojected_poses(points, camera)
    return _reorder(reprojected, first.keypoints, name, first_name), name


# -- drawing ---------------------------------------------------------------------------------


def _shape(marker: str, x: int, y: int, r: float) -> list[tuple[float, float]] | None:
    """Polygon vertices of ``marker`` centred on pixel (x, y); None for a circle."""
    if marker == "circle":
        return None
    if marker == "square":
        s = r * 0.85  # same area as the circle, roughly
        return [(x - s, y - s), (x + s, y - s), (x + s, y + s), (x - s, y + s)]
    if marker == "diamond":
        s = r * 1.2
        return [(x, y - s), (x + s, y), (x, y + s), (x - s, y)]
    n, rot, s = {"triangle": (3, -90, 1.35), "triangle_down": (3, 90, 1.35)}.get(
        marker, (6, 0, 1.05)
    )
    return [
        (
            x + s * r * math.cos(math.radians(rot + 360 * i / n)),
            y + s * r * math.sin(math.radians(rot + 360 * i / n)),
        )
        for i in range(n)
    ]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


class _Painter:
    """Draws every track's skeleton and markers, the frame counter and the legend on a frame."""

    def __init__(
        self,
        *,
        width: int,
        height: int,
        colors: np.ndarray,
        tracks: list[_Track],
        edges: list[tuple[int, int]],
        radius: int | None,
        frame_counter: bool,
        legend: bool,
    ) -> None:
        side = min(width, height)
        self.r = int(radius) if radius is not None else max(2, round(0.01 * side))
        self.line_w = max(1, round(self.r / 3))
        self.colors = [tuple(int(v) for v in c) for c in colors]
        self.tracks = tracks
        self.edges = edges
        self.font = _font(max(10, round(0.035 * side))) if frame_counter or legend else None
        self.frame_counter = frame_counter
        self.legend = self._legend(width, height) if legend else None

    def draw(self, frame: np.ndarray, index: int) -> np.ndarray:
        """``frame`` (H, W, 3) uint8 with everything drawn on it (a new array)."""
        if self.legend is not None:
            patch, x0 = self.legend
            frame[: patch.shape[0], x0 : x0 + patch.shape[1]] = patch
        img = Image.fromarray(frame)
        d = ImageDraw.Draw(img)
        r, w = self.r, self.line_w
        rows = []
        for t in self.tracks:
            row = t.row_of[index]
            if row >= 0:
                rows.append((t, t.xy[row].tolist(), t.state[row].tolist()))
        for _, xy, state in rows:
            for a, b in self.edges:
                if state[a] == _FILLED and state[b] == _FILLED:
                    d.line((*xy[a], *xy[b]), fill=self.colors[a], width=w)
        for t, xy, state in rows:
            for k, ((x, y), s) in enumerate(zip(xy, state)):
                if s == _HIDDEN:
                    continue
                color = self.colors[k]
                poly = _shape(t.marker, x, y, r)
                if s == _FILLED:
                    # The rim is a larger dark shape under the marker, so the centre pixel is
                    # always exactly the keypoint colour.
                    if poly is None:
                        d.ellipse((x - r - 1, y - r - 1, x + r + 1, y + r + 1), fill=_RIM)
                        d.ellipse((x - r, y - r, x + r, y + r), fill=color)
                    else:
                        d.polygon(_shape(t.marker, x, y, r + 1.2), fill=_RIM)
                        d.polygon(poly, fill=color)
                elif poly is None:
                    d.ellipse((x - r, y - r, x + r, y + r), outline=color, width=w)
                else:
                    d.polygon(poly, outline=color, width=w)
        if self.frame_counter:
            text = str(index)
            _, _, right, bottom = d.textbbox((3, 2), text, font=self.font)
            d.rectangle((0, 0, right + 3, bottom + 2), fill=_TEXT_BG)
            d.text((3, 2), text, fill=_TEXT, font=self.font)
        return np.asarray(img)

    def _legend(self, width: int, height: int) -> tuple[np.ndarray, int]:
        """(patch (h, w, 3) uint8, x of its left edge): marker + name per track, top right."""
        r = max(self.r, 4)
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        boxes = [probe.textbbox((0, 0), t.label, font=self.font) for t in self.tracks]
        line_h = max(max(b[3] for b in boxes), 2 * r + 2) + 4
        w = min(width, 4 * r + 12 + max(b[2] for b in boxes) + 4)
        h = min(height, line_h * len(self.tracks) + 4)
        img = Image.new("RGB", (w, h), _TEXT_BG)
        d = ImageDraw.Draw(img)
        for i, t in enumerate(self.tracks):
            cx, cy = 4 + 2 * r, 2 + i * line_h + line_h // 2
            poly = _shape(t.marker, cx, cy, r)
            if poly is None:
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_TEXT)
            else:
                d.polygon(poly, fill=_TEXT)
            d.text((4 * r + 12, cy), t.label, fill=_TEXT, font=self.font, anchor="lm")
        return np.asarray(img), width - w


# -- streaming -------------------------------------------------------------------------------


def _prefetch(batches: Iterator[FrameBatch], depth: int) -> Iterator[FrameBatch]:
    """Yield ``batches`` while a thread decodes the next ones (at most ``depth`` ahead).

    FFmpeg decoding and colour conversion release the GIL, so decoding overlaps drawing and
    encoding. An error in the thread is raised here; stopping early stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)

    thread = threading.Thread(target=work, name="vidpose-label-video-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
