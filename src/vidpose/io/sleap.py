"""SLEAP files: labels and predictions (``.slp``, ``.pkg.slp``) and analysis HDF5.

``.slp`` is read and written through sleap-io (``uv pip install 'vidpose[sleap]'``, imported on
first use); analysis HDF5 (``*.analysis.h5``) is read with h5py and written through sleap-io.

Reading a ``.slp``:

- A file with user-labeled instances gives **labels**: one row per frame holding one, in the
  order of the file's videos, then frames. Each row's frame id is the image that
  ``vidpose import-sleap`` writes, ``labeled-data/<video stem>/img<frame>.png``, with the digits
  of the video's last frame (:mod:`vidpose.io.frame_names`) when the file records the video's
  frame count (SLEAP does), else of the video's largest labeled frame. Labels may come from
  several videos (with different file names); predicted instances are ignored.
- A file with predictions only gives one video's **predictions**: one row per frame from 0 to the
  video's last frame (as recorded, else the last frame the file lists), NaN where the file has
  no prediction; likelihood = the point scores.
- ``fps``, ``video`` (the source video of embedded frames) and ``skeleton`` are filled in when
  known; ``scorer`` is the one vidpose wrote in the file's provenance, else ``"sleap"``.
- Refused with a :class:`~vidpose.errors.LabelsError` naming the file, video and frame: several
  instances in a frame or instances on several tracks (vidpose is single-animal), several
  skeletons, predictions of several videos, videos made of image files.

Writing a ``.slp``:

- Labels become user instances; a row's image path names its frame (the number that ends the
  name) and video (its folder): ``poses.video`` when set and every image is in one folder (or
  the folder is named as that video), else ``videos/<folder>.mp4``, the video that the images
  of ``labeled-data/<folder>/`` come from in a vidpose or DeepLabCut project.
- Predictions (frame numbers) become predicted instances of ``poses.video``, or of the
  placeholder :data:`PLACEHOLDER_VIDEO` (read back as no video) when it is not set; the
  likelihoods are their point scores, their mean the instance score. A row without any
  coordinate or likelihood is an empty frame.
- ``keypoint_columns`` and ``frame_columns`` are not stored (a warning names them).

Analysis HDF5 (SLEAP's export of one video's tracks): ``tracks`` (SLEAP's layout
``(n_tracks, 2, n_nodes, n_frames)``, or any order its ``dims`` attribute names, as sleap-io
writes), ``point_scores``, ``node_names``, ``edge_names``, ``video_path``. It reads as
predictions of frames 0..n_frames-1 of one track; a file where several tracks hold data is
refused. Writing takes predictions only (through ``sleap_io.save_analysis_h5``).

Coordinates are copied as they are: SLEAP, DeepLabCut and vidpose all put pixel centres at whole
numbers.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidpose.errors import LabelsError, MissingDependencyError
from vidpose.io.frame_names import frame_digits, frame_image_path, frame_of_image
from vidpose.io.poses import Poses
from vidpose.io.registry import register_format

PLACEHOLDER_VIDEO = "unknown-video.mp4"
"""The video written for predictions whose ``Poses.video`` is not set."""

DEFAULT_SCORER = "sleap"
_SCORER_KEY = "vidpose_scorer"  # in the file's provenance
_KIND_KEY = "vidpose_kind"  # "labels" or "predictions", for files without any instance
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SINGLE_ANIMAL = (
    "vidpose is single-animal today (one instance of each keypoint per frame): keep one "
    "instance per frame in SLEAP (delete the others), or export one track"
)


def _sleap_io() -> Any:
    try:
        import sleap_io
    except ImportError as exc:  # an optional dependency
        raise MissingDependencyError(
            "reading and writing SLEAP files needs sleap-io: uv pip install 'vidpose[sleap]'"
        ) from exc
    return sleap_io


# --- .slp -> Poses ------------------------------------------------------------------------------


@dataclass
class SleapVideo:
    """A video that rows of a ``.slp`` come from.

    Attributes:
        filename: its path as recorded (the source video's for embedded frames).
        stem: its file name without the extension: the ``labeled-data/`` folder of its frames.
        n_frames: its frame count as recorded; None when the file does not say.
        frame_size: (height, width) as recorded, or None.
        fps: as recorded, or None.
        embedded: the ``.slp`` holds the images of its labeled frames (a ``.pkg.slp``).
    """

    filename: str
    stem: str
    n_frames: int | None
    frame_size: tuple[int, int] | None
    fps: float | None
    embedded: bool
    handle: Any = field(repr=False, default=None)  # the sleap_io.Video


@dataclass
class SleapFile:
    """What :func:`read_sleap` found.

    Attributes:
        path: the ``.slp`` read.
        poses: the table (see the module docstring).
        videos: the videos the rows come from.
        row_video: (N,) int64, index into ``videos`` of each row.
        row_frame: (N,) int64, each row's frame number in its video.
        symmetries: the skeleton's left/right pairs of keypoint names.
    """

    path: Path
    poses: Poses
    videos: list[SleapVideo]
    row_video: np.ndarray
    row_frame: np.ndarray
    symmetries: list[tuple[str, str]]

    def read_embedded(self, video: int, frames: list[int]) -> dict[int, np.ndarray]:
        """The images of ``frames`` embedded for ``videos[video]``: frame -> (H, W, C) uint8.

        Raises:
            LabelsError: the video has no embedded images, or not of one of these frames.
        """
        sv = self.videos[video]
        if not sv.embedded:
            raise LabelsError(f"{self.path}: video {sv.filename} has no embedded images")
        handle = sv.handle
        handle.open()
        try:
            out = {}
            for f in frames:
                try:
                    out[f] = np.asarray(handle[f])
                except (IndexError, KeyError):
                    raise LabelsError(
                        f"{self.path}: frame {f} of {sv.filename} is labeled but its image is "
                        "not embedded"
                    ) from None
            return out
        finally:
            handle.close()


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def _stem(filename: str) -> str:
    """File name without its last extension, for '/' and Windows '\\' paths alike."""
    name = re.split(r"[\\/]", filename.rstrip("\\/"))[-1]
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def _source_name(video: Any) -> str:
    """The file name of a video, or of the source video of embedded frames."""
    source = getattr(video, "source_video", None) or video
    filename = source.filename
    return _stem(_text(filename[0] if isinstance(filename, list) else filename))


def _recorded_shape(video: Any) -> tuple[int, ...] | None:
    shape = video.backend_metadata.get("shape")
    if shape is None:
        try:
            shape = video.shape  # only what the file recorded: its backend is not opened
        except Exception:  # sleap-io versions differ in what a closed video answers
            shape = None
    return tuple(int(s) for s in shape) if shape is not None and None not in shape else None


def _describe_video(video: Any, index: int, path: Path) -> SleapVideo:
    if isinstance(video.filename, list):
        raise LabelsError(
            f"{path}: video {index} is a sequence of image files ({video.filename[0]}, ...); "
            "vidpose reads labels of video files only"
        )
    embedded = bool(video.backend_metadata.get("has_embedded_images"))
    source = video.source_video if embedded and video.source_video is not None else video
    filename = _text(source.filename)
    shape = _recorded_shape(source)
    fps = source.backend_metadata.get("fps") or video.backend_metadata.get("fps")
    return SleapVideo(
        filename=filename,
        stem=_stem(filename) or f"video{index}",
        n_frames=shape[0] if shape else None,
        frame_size=(shape[1], shape[2]) if shape and len(shape) >= 3 else None,
        fps=float(fps) if fps else None,
        embedded=embedded,
        handle=video,
    )


class _Videos:
    """A file's videos by index, each described (:class:`SleapVideo`) on first use."""

    def __init__(self, videos: list, path: Path) -> None:
        self._videos = videos
        self._index = {id(v): i for i, v in enumerate(videos)}
        self._path = path
        self._described: dict[int, SleapVideo] = {}

    def index(self, lf: Any) -> int:
        return self._index[id(lf.video)]

    def __getitem__(self, i: int) -> SleapVideo:
        if i not in self._described:
            self._described[i] = _describe_video(self._videos[i], i, self._path)
        return self._described[i]

    def of(self, lf: Any) -> SleapVideo:
        return self[self.index(lf)]


def read_sleap(path: str | Path) -> SleapFile:
    """Read a SLEAP ``.slp`` / ``.pkg.slp`` (see the module docstring for what rows it gives).

    Raises:
        LabelsError: not a SLEAP labels file, or one vidpose cannot hold (named).
        MissingDependencyError: sleap-io is not installed.
    """
    path = Path(path)
    sio = _sleap_io()
    try:
        labels = sio.load_slp(str(path), open_videos=False)
    except Exception as exc:  # h5py / sleap-io raise many types for damaged or foreign files
        raise LabelsError(
            f"{path}: cannot read it as a SLEAP labels file ({type(exc).__name__}: {exc})"
        ) from None
    if len(labels.skeletons) != 1:
        raise LabelsError(
            f"{path}: {len(labels.skeletons)} skeletons; vidpose reads files with one skeleton"
        )
    skeleton = labels.skeletons[0]
    keypoints = [node.name for node in skeleton.nodes]
    edges = [(e.source.name, e.destination.name) for e in skeleton.edges]
    order = {name: i for i, name in enumerate(keypoints)}
    symmetries = [
        tuple(sorted((n.name for n in s.nodes), key=order.__getitem__)) for s in skeleton.symmetries
    ]
    all_videos = _Videos(list(labels.videos), path)
    frames = sorted(labels.labeled_frames, key=lambda lf: (all_videos.index(lf), lf.frame_idx))
    provenance = dict(labels.provenance or {})
    has_user = any(lf.user_instances for lf in frames)
    has_predicted = any(lf.predicted_instances for lf in frames)
    is_labels = has_user or (not has_predicted and provenance.get(_KIND_KEY) != "predictions")
    _check_single_animal(frames, is_labels, path)
    rows = _labels_rows if is_labels else _prediction_rows
    coords, likelihood, row_video, row_frame = rows(frames, len(keypoints), all_videos, path)
    used = sorted(set(row_video.tolist()))
    videos = [all_videos[i] for i in used]
    row_video = np.searchsorted(np.array(used, dtype=np.int64), row_video).astype(np.int64)
    stems: dict[str, str] = {}
    for v in videos:
        if stems.setdefault(v.stem, v.filename) != v.filename:
            raise LabelsError(
                f"{path}: videos {stems[v.stem]} and {v.filename} have the same file name; "
                f"their frames would share labeled-data/{v.stem}/ (rename one in SLEAP)"
            )
    ids = row_frame
    if is_labels:
        digits = [
            frame_digits(v.n_frames or int(row_frame[row_video == i].max()) + 1)
            for i, v in enumerate(videos)
        ]
        ids = np.array(
            [
                frame_image_path(videos[v].stem, f, digits[v])
                for v, f in zip(row_video.tolist(), row_frame.tolist())
            ],
            dtype=object,
        )
    one = videos[0] if len(videos) == 1 else None
    try:
        poses = Poses(
            coords=coords,
            keypoints=keypoints,
            frames=ids,
            likelihood=None if is_labels else likelihood,
            scorer=str(provenance.get(_SCORER_KEY) or DEFAULT_SCORER),
            is_labels=is_labels,
            fps=one.fps if one is not None else None,
            video=one.filename if one is not None and one.filename != PLACEHOLDER_VIDEO else None,
            skeleton=edges,
        )
    except ValueError as exc:  # repeated node names and the like
        raise LabelsError(f"{path}: {exc}") from None
    return SleapFile(path, poses, videos, row_video, row_frame, symmetries)


def _check_single_animal(frames: list, is_labels: bool, path: Path) -> None:
    """One instance per frame, all on one track (or none): instances on several tracks are
    several animals even when each frame holds one."""
    kind = "user-labeled" if is_labels else "predicted"
    first_track: Any = None
    for lf in frames:
        instances = lf.user_instances if is_labels else lf.predicted_instances
        if len(instances) > 1:
            problem = f"{len(instances)} {kind} instances"
        else:
            track = instances[0].track if instances else None
            if track is None or track is first_track:
                continue
            if first_track is None:
                first_track = track
                continue
            problem = f"an instance on track {track.name!r} after track {first_track.name!r}"
        raise LabelsError(
            f"{path}: video {_source_name(lf.video)}, frame {lf.frame_idx}: {problem}; "
            f"{_SINGLE_ANIMAL}"
        )


def _labels_rows(frames: list, k: int, videos: _Videos, path: Path):
    """One row per frame with a user instance: coords, None, video index, frame number."""
    coords, row_video, row_frame = [], [], []
    for lf in frames:
        if lf.user_instances:
            videos.of(lf)  # refuses videos vidpose cannot name
            coords.append(lf.user_instances[0].numpy())
            row_video.append(videos.index(lf))
            row_frame.append(lf.frame_idx)
    return (
        np.stack(coords).astype(np.float64) if coords else np.zeros((0, k, 2)),
        None,
        np.array(row_video, dtype=np.int64),
        np.array(row_frame, dtype=np.int64),
    )


def _prediction_rows(frames: list, k: int, videos: _Videos, path: Path):
    """One row per frame 0..n-1 of the one video with predictions: coords, likelihood,
    video index, frame number."""
    by_video: dict[int, list] = {}
    for lf in frames:
        by_video.setdefault(videos.index(lf), []).append(lf)
    with_data = [i for i, lfs in by_video.items() if any(lf.predicted_instances for lf in lfs)]
    if len(with_data) > 1:
        names = ", ".join(videos[i].filename for i in with_data)
        raise LabelsError(
            f"{path}: predictions of {len(with_data)} videos ({names}); vidpose reads one "
            "video's predictions per file: save each video's predictions to its own .slp"
        )
    chosen = with_data[0] if with_data else next(iter(by_video), None)
    if chosen is None:
        return np.zeros((0, k, 2)), np.zeros((0, k)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    lfs = by_video[chosen]
    n = max(videos[chosen].n_frames or 0, lfs[-1].frame_idx + 1)
    coords = np.full((n, k, 2), np.nan)
    likelihood = np.full((n, k), np.nan)
    for lf in lfs:
        if lf.predicted_instances:
            values = lf.predicted_instances[0].numpy(scores=True)
            coords[lf.frame_idx] = values[:, :2]
            likelihood[lf.frame_idx] = values[:, 2]
    return coords, likelihood, np.full(n, chosen, np.int64), np.arange(n, dtype=np.int64)


def load_sleap(path: str | Path) -> Poses:
    """Read a SLEAP ``.slp`` / ``.pkg.slp`` into a :class:`Poses` (see the module docstring).

    Raises:
        LabelsError: naming the file, video and frame.
        MissingDependencyError: sleap-io is not installed.
    """
    return read_sleap(path).poses


# --- Poses -> .slp ------------------------------------------------------------------------------


def _warn_dropped(poses: Poses, path: Path) -> None:
    dropped = [*poses.keypoint_columns, *poses.frame_columns]
    if dropped:
        warnings.warn(
            f"{path}: SLEAP files cannot store the columns {dropped}; they are not written",
            stacklevel=3,
        )


def _label_targets(poses: Poses, where: str) -> list[tuple[str, int]]:
    """(video, frame) of each label row, from its image path (see the module docstring)."""
    if poses.frames.dtype.kind in "iu":
        raise LabelsError(
            f"{where}: labels must name their images (labeled-data/<video>/img<frame>.png), "
            "not frame numbers"
        )
    parsed = []
    for row, frame in enumerate(poses.frames.tolist()):
        parts = str(frame).replace("\\", "/").split("/")
        number = frame_of_image(parts[-1])
        if number is None:
            raise LabelsError(
                f"{where} row {row + 1} ({frame}): no frame number at the end of the image "
                "name; expected labeled-data/<video>/img<frame>.png"
            )
        folder = parts[-2] if len(parts) > 1 else _stem(PLACEHOLDER_VIDEO)
        parsed.append((folder, number))
    folders = {folder for folder, _ in parsed}
    given = poses.video

    def video_of(folder: str) -> str:
        if given is not None and (len(folders) == 1 or _stem(given) == folder):
            return given
        return f"videos/{folder}.mp4"

    return [(video_of(folder), number) for folder, number in parsed]


def _prediction_targets(poses: Poses, where: str) -> list[tuple[str, int]]:
    if poses.frames.dtype.kind not in "iu":
        raise LabelsError(
            f"{where}: SLEAP predictions are of video frames; these rows are images "
            f"({poses.frames[0]}, ...)"
        )
    if poses.n_frames and poses.frames.min() < 0:
        row = int(np.argmin(poses.frames))
        raise LabelsError(f"{where} row {row + 1}: frame {poses.frames[row]} is negative")
    video = poses.video or PLACEHOLDER_VIDEO
    return [(video, f) for f in poses.frames.tolist()]


def to_sleap_labels(poses: Poses, where: str = "Poses") -> Any:
    """``poses`` as a ``sleap_io.Labels`` (see the module docstring); ``where`` names the
    table in errors.

    Raises:
        LabelsError: a row's image has no frame number, or two rows are the same frame.
        MissingDependencyError: sleap-io is not installed.
    """
    sio = _sleap_io()
    targets = (_label_targets if poses.is_labels else _prediction_targets)(poses, where)
    seen: dict[tuple[str, int], int] = {}
    for row, target in enumerate(targets):
        if target in seen:
            raise LabelsError(
                f"{where} rows {seen[target] + 1} and {row + 1}: both are frame {target[1]} of "
                f"{target[0]}; SLEAP holds one instance per frame of a single animal"
            )
        seen[target] = row
    skeleton = sio.Skeleton(list(poses.keypoints), edges=list(poses.skeleton or []))
    videos: dict[str, Any] = {}
    labeled_frames = []
    for row, (filename, frame) in enumerate(targets):
        video = videos.get(filename)
        if video is None:
            video = videos[filename] = sio.Video(filename=filename, open_backend=False)
            if poses.fps is not None:
                video.backend_metadata["fps"] = poses.fps
        instances = []
        if poses.is_labels:
            instances.append(sio.Instance.from_numpy(poses.coords[row], skeleton=skeleton))
        elif poses.visible[row].any() or np.isfinite(poses.likelihood[row]).any():
            scores = poses.likelihood[row]
            finite = scores[np.isfinite(scores)]
            instances.append(
                sio.PredictedInstance.from_numpy(
                    poses.coords[row],
                    point_scores=scores,
                    score=float(finite.mean()) if finite.size else float("nan"),
                    skeleton=skeleton,
                )
            )
        labeled_frames.append(sio.LabeledFrame(video=video, frame_idx=frame, instances=instances))
    kind = "labels" if poses.is_labels else "predictions"
    return sio.Labels(
        labeled_frames=labeled_frames,
        videos=list(videos.values()),
        skeletons=[skeleton],
        provenance={_SCORER_KEY: poses.scorer, _KIND_KEY: kind},
    )


def save_sleap(poses: Poses, path: str | Path) -> None:
    """Write ``poses`` as a SLEAP ``.slp`` (not atomic: use ``vidpose.io.write_poses``).

    Raises:
        LabelsError: as :func:`to_sleap_labels`.
        MissingDependencyError: sleap-io is not installed.
    """
    path = Path(path)
    _warn_dropped(poses, path)
    _sleap_io().save_slp(to_sleap_labels(poses, str(path)), str(path))


def _is_slp(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return all(key in f for key in ("metadata", "frames", "instances"))
    except Exception:  # not HDF5, or unreadable: not ours to judge
        return False


def _sniff_hdf5(head: bytes) -> bool:
    return head.startswith(_HDF5_MAGIC)


@register_format
class SleapFormat:
    """Registry entry for :func:`load_sleap` / :func:`save_sleap`."""

    name = "sleap"
    extensions = (".slp",)
    description = "SLEAP labels or predictions (.slp, .pkg.slp; needs sleap-io)"
    exact = False
    sniff = staticmethod(_sniff_hdf5)
    sniff_file = staticmethod(_is_slp)
    load = staticmethod(load_sleap)
    save = staticmethod(save_sleap)


# --- analysis HDF5 ------------------------------------------------------------------------------

# Axis names of SLEAP's analysis datasets in the order SLEAP itself writes them (for MATLAB);
# sleap-io records the order it used in each dataset's ``dims`` attribute.
_SLEAP_DIMS = {
    "tracks": ("track", "xy", "node", "frame"),
    "point_scores": ("track", "node", "frame"),
}
_WANTED = {
    "tracks": ("frame", "track", "node", "xy"),
    "point_scores": ("frame", "track", "node"),
}


def _frame_first(f: h5py.File, key: str, where: str) -> np.ndarray:
    """Dataset ``key`` as float64 with axes in the order of ``_WANTED[key]``."""
    ds = f[key]
    dims = _SLEAP_DIMS[key]
    if "dims" in ds.attrs:
        try:
            dims = tuple(json.loads(_text(ds.attrs["dims"])))
        except (ValueError, TypeError):
            raise LabelsError(
                f"{where}: {key}.attrs['dims'] is not a JSON list of axis names"
            ) from None
    if sorted(dims) != sorted(_WANTED[key]) or len(dims) != ds.ndim:
        raise LabelsError(
            f"{where}: {key} has {ds.ndim} axes named {list(dims)}; expected the axes "
            f"{list(_WANTED[key])} in some order"
        )
    return np.transpose(ds[()], [dims.index(d) for d in _WANTED[key]]).astype(np.float64)


def load_sleap_analysis(path: str | Path) -> Poses:
    """Read a SLEAP analysis HDF5 file (one video; see the module docstring).

    Raises:
        LabelsError: not a SLEAP analysis file, an unexpected layout, or several tracks with
            data (naming the first frame where a second track holds one).
    """
    path = Path(path)
    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("tracks", "node_names") if k not in f]
            if missing:
                raise LabelsError(
                    f"{where}: no {' or '.join(missing)} dataset; is it a SLEAP analysis file "
                    f"(datasets found: {', '.join(sorted(f)) or 'none'})?"
                )
            tracks = _frame_first(f, "tracks", where)
            keypoints = [_text(n) for n in f["node_names"][()]]
            n_frames, n_tracks, n_nodes = tracks.shape[:3]
            if n_nodes != len(keypoints) or tracks.shape[3] != 2:
                raise LabelsError(
                    f"{where}: tracks has shape {tracks.shape} in (frame, track, node, xy) "
                    f"order; expected {len(keypoints)} nodes (node_names) and 2 coordinates"
                )
            scores = np.full(tracks.shape[:3], np.nan)
            if "point_scores" in f:
                scores = _frame_first(f, "point_scores", where)
                if scores.shape != tracks.shape[:3]:
                    raise LabelsError(
                        f"{where}: point_scores has shape {scores.shape} in (frame, track, "
                        f"node) order; expected {tracks.shape[:3]} as tracks"
                    )
            track_names = [_text(n) for n in f["track_names"][()]] if "track_names" in f else []
            edges = (
                [(_text(a), _text(b)) for a, b in f["edge_names"][()]] if "edge_names" in f else []
            )
            video = _text(f["video_path"][()]) if "video_path" in f else ""
            provenance = json.loads(_text(f["provenance"][()])) if "provenance" in f else {}
            backend = json.loads(_text(f.attrs.get("video_backend_metadata", "{}")))
    except LabelsError:
        raise
    except Exception as exc:  # h5py raises many types for damaged or foreign files
        raise LabelsError(
            f"{where}: cannot read it as a SLEAP analysis HDF5 file ({type(exc).__name__}: {exc})"
        ) from None
    present = ~np.isnan(tracks).all(axis=(2, 3))  # (frame, track)
    used = np.flatnonzero(present.any(axis=0))
    if len(used) > 1:
        names = [track_names[t] if t < len(track_names) else f"track {t}" for t in used]
        together = np.flatnonzero(present[:, used].sum(axis=1) > 1)
        frame = int(together[0]) if len(together) else int(np.flatnonzero(present[:, used[1]])[0])
        raise LabelsError(
            f"{where}: frame {frame}: {len(used)} tracks hold an animal ({', '.join(names)}); "
            f"{_SINGLE_ANIMAL}"
        )
    track = int(used[0]) if len(used) else 0
    k = len(keypoints)
    coords = tracks[:, track] if n_tracks else np.full((n_frames, k, 2), np.nan)
    likelihood = scores[:, track] if n_tracks else np.full((n_frames, k), np.nan)
    fps = backend.get("fps") if isinstance(backend, dict) else None
    try:
        return Poses(
            coords=coords,
            keypoints=keypoints,
            frames=np.arange(n_frames),
            likelihood=likelihood,
            scorer=str(provenance.get(_SCORER_KEY) or DEFAULT_SCORER),
            is_labels=False,
            fps=fps or None,
            video=video if video and video != PLACEHOLDER_VIDEO else None,
            skeleton=edges,
        )
    except ValueError as exc:
        raise LabelsError(f"{where}: {exc}") from None


def save_sleap_analysis(poses: Poses, path: str | Path) -> None:
    """Write predictions as a SLEAP analysis HDF5 file through sleap-io (SLEAP's layout).

    Raises:
        LabelsError: ``poses`` are labels, or hold no frame.
        MissingDependencyError: sleap-io is not installed.
    """
    path = Path(path)
    if poses.is_labels:
        raise LabelsError(
            f"{path}: a SLEAP analysis file holds one video's predictions; write labels as .slp"
        )
    if not poses.n_frames:
        raise LabelsError(f"{path}: a SLEAP analysis file needs at least one frame")
    _warn_dropped(poses, path)
    _sleap_io().save_analysis_h5(to_sleap_labels(poses, str(path)), str(path))


def _is_analysis(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return "tracks" in f and "node_names" in f
    except Exception:  # not HDF5, or unreadable: not ours to judge
        return False


@register_format
class SleapAnalysisFormat:
    """Registry entry for :func:`load_sleap_analysis` / :func:`save_sleap_analysis`."""

    name = "sleap_analysis"
    extensions = (".analysis.h5",)
    description = "SLEAP analysis HDF5 of one video's tracks (writing needs sleap-io)"
    exact = False
    sniff = staticmethod(_sniff_hdf5)
    sniff_file = staticmethod(_is_analysis)
    load = staticmethod(load_sleap_analysis)
    save = staticmethod(save_sleap_analysis)
