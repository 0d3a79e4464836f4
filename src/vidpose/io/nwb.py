"""NWB files with the ndx-pose extension: a video's keypoints as one ``PoseEstimation``.

What :func:`save_nwb` writes (and :func:`load_nwb` reads back)::

    /processing/behavior/Skeletons/skeleton     nodes = keypoints (in order), edges = skeleton
    /processing/behavior/PoseEstimation         scorer, source_software "vidpose" (+ version),
                                                original_videos [video], link to the skeleton
        <keypoint>: PoseEstimationSeries        data (N, 2) float64 x, y in "pixels";
                                                confidence (N,) = likelihood (predictions only)

Time: frames ``f0 .. f0 + N - 1`` are written as ``rate = fps`` and ``starting_time = f0 / fps``;
other frame numbers as ``timestamps = frames / fps`` (stored once, linked by the other series).
Times are seconds from the video's first frame, so writing needs ``Poses.fps``; reading gives
frame numbers ``round(time * fps)``, ``fps`` being the series' rate, else the rate of a linked
source video, else one over the timestamps' step (see :func:`_rate_of`): every other frame
alone reads back at half the rate.

Choices, following ndx-pose 0.4's documentation:

- Labels of a video's frames are a ``PoseEstimation`` without confidence (read back as labels).
  ndx-pose meant ``PoseTraining`` for ground truth, but its ``TrainingFrame`` points into an
  ``ImageSeries`` of the source video, which needs the video's frame count (and, for labelled
  image files, frame times they do not have). Tables of image files are therefore refused:
  CSV and DeepLabCut ``.h5`` hold them.
- The source video goes in ``original_videos``. ndx-pose 0.4 deprecates it for a link to an
  external ``ImageSeries``, which again needs the video's frame count, unknown to a pose table;
  readers of both are supported.
- NWB requires ``session_start_time``, the start of the recording, which a pose table does not
  know: by default it is when the file is written (UTC), and the session description says so;
  :func:`save_nwb` takes the real one.
- Extra columns (ensemble variances, per-frame columns) have no place in ndx-pose and are not
  written (a warning names them).

pynwb and ndx-pose are imported on first use: ``uv pip install 'vidpose[nwb]'``.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vidpose import __version__
from vidpose.errors import ConfigError, LabelsError, VidposeError
from vidpose.io.poses import Poses
from vidpose.io.registry import register_format

MODULE = "behavior"
"""The processing module ndx-pose recommends (and movement reads by default)."""

POSE_ESTIMATION = "PoseEstimation"
SKELETON = "skeleton"
REFERENCE_FRAME = (
    "(0, 0) is the centre of the top-left pixel of the video frame; x grows to the right, "
    "y downwards, in pixels of the original frame"
)
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _nwb() -> tuple[Any, Any]:
    """The ``pynwb`` and ``ndx_pose`` modules."""
    try:
        import ndx_pose
        import pynwb
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            "reading and writing NWB files needs pynwb and ndx-pose: uv pip install 'vidpose[nwb]'"
        ) from exc
    return pynwb, ndx_pose


def check_nwb(poses: Poses) -> None:
    """Raise :class:`ConfigError` if ``poses`` cannot be written as NWB (see the module)."""
    if poses.frames.dtype.kind != "i":
        kind = "labels" if poses.is_labels else "predictions"
        example = poses.frames[0] if poses.n_frames else "?"
        raise ConfigError(
            f"NWB holds a video's frames over time, but these {kind} are of image files (e.g. "
            f"{example!r}); keep them as .csv or .h5"
        )
    if poses.fps is None:
        raise ConfigError(
            "NWB stores time in seconds, so it needs the video's frame rate, which this table "
            "does not carry: pass it (e.g. vidpose convert --fps 30 SRC DST.nwb)"
        )
    bad = [k for k in poses.keypoints if "/" in k or ":" in k]
    if bad:
        raise ConfigError(f"NWB names cannot contain '/' or ':'; rename the keypoints {bad}")


def save_nwb(
    poses: Poses,
    path: str | Path,
    *,
    session_start_time: datetime | None = None,
    session_description: str | None = None,
    identifier: str | None = None,
) -> None:
    """Write ``poses`` as an NWB file (not atomic: use :func:`vidpose.io.write_poses`).

    Args:
        poses: a video's predictions or labels (frame numbers) with ``fps`` set.
        path: the file to write.
        session_start_time: when the recording started (timezone-aware); default now (UTC).
        session_description: default says what the file holds and how its times count.
        identifier: the file's unique identifier; default a random UUID.

    Raises:
        ConfigError: the table cannot be written as NWB (see :func:`check_nwb`).
    """
    check_nwb(poses)
    pynwb, ndx_pose = _nwb()
    assert poses.fps is not None
    extras = [*poses.keypoint_columns, *poses.frame_columns]
    if extras:
        warnings.warn(
            f"NWB (ndx-pose) holds x, y and confidence only; not written: {', '.join(extras)}",
            stacklevel=2,
        )
    kind = "labels" if poses.is_labels else "predictions"
    source = poses.video or "a video"
    if session_start_time is None:
        session_start_time = datetime.now(timezone.utc)
        when = "session_start_time is when this file was written (the recording's is unknown)"
    else:
        when = "session_start_time is the recording's start"
    nwbfile = pynwb.NWBFile(
        session_description=session_description
        or f"{kind} of {poses.n_keypoints} keypoints in {source} by {poses.scorer}; times are "
        f"seconds from the video's first frame; {when}",
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=session_start_time,
    )
    index = {k: i for i, k in enumerate(poses.keypoints)}
    edges = None
    if poses.skeleton is not None:
        dtype = np.uint8 if poses.n_keypoints <= 256 else np.uint32
        pairs = [(index[a], index[b]) for a, b in poses.skeleton]
        edges = np.array(pairs, dtype=dtype).reshape(-1, 2)
    skeleton = ndx_pose.Skeleton(name=SKELETON, nodes=list(poses.keypoints), edges=edges)

    frames, fps, n = poses.frames, poses.fps, poses.n_frames
    consecutive = n == 0 or np.array_equal(frames, frames[0] + np.arange(n))
    series: list[Any] = []
    for j, name in enumerate(poses.keypoints):
        if consecutive:
            timing: dict[str, Any] = {"rate": fps, "starting_time": frames[0] / fps if n else 0.0}
        else:
            timing = {"timestamps": series[0] if series else frames / fps}
        series.append(
            ndx_pose.PoseEstimationSeries(
                name=name,
                description=f"x, y of {name}",
                data=np.ascontiguousarray(poses.coords[:, j, :]),
                unit="pixels",
                reference_frame=REFERENCE_FRAME,
                confidence=None if poses.is_labels else poses.likelihood[:, j].copy(),
                confidence_definition=None
                if poses.is_labels
                else f"likelihood in [0, 1] given by {poses.scorer}",
                **timing,
            )
        )
    with warnings.catch_warnings():
        # original_videos is deprecated in ndx-pose 0.4 for an ImageSeries link (module docstring)
        warnings.filterwarnings("ignore", ".*original_videos.*", DeprecationWarning)
        estimation = ndx_pose.PoseEstimation(
            name=POSE_ESTIMATION,
            pose_estimation_series=series,
            description=f"{kind} by {poses.scorer}, written by vidpose {__version__}",
            original_videos=None if poses.video is None else [poses.video],
            scorer=poses.scorer,
            source_software="vidpose",
            source_software_version=__version__,
            skeleton=skeleton,
        )
    behavior = nwbfile.create_processing_module(name=MODULE, description="pose estimation")
    behavior.add(ndx_pose.Skeletons(skeletons=[skeleton]))
    behavior.add(estimation)
    with warnings.catch_warnings():
        # write_poses writes to a temporary name first; the final name ends in .nwb
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'.*")
        with pynwb.NWBHDF5IO(str(path), mode="w") as io:
            io.write(nwbfile)


def load_nwb(path: str | Path) -> Poses:
    """Read the one ``PoseEstimation`` of an NWB file (vidpose's, or another tool's).

    Raises:
        LabelsError: not an NWB file, no or several ``PoseEstimation`` objects, 3-D or non-pixel
            data, or series of different lengths or times; the message names what is there.
    """
    path = Path(path)
    pynwb, _ = _nwb()
    try:
        with pynwb.NWBHDF5IO(str(path), mode="r") as io:
            return _poses_from_nwbfile(io.read(), str(path))
    except VidposeError:
        raise
    except Exception as exc:  # h5py / hdmf raise many types for damaged or foreign files
        raise LabelsError(
            f"{path}: cannot read it as an NWB file ({type(exc).__name__}: {exc})"
        ) from None


def _find(nwbfile: Any, where: str) -> Any:
    """The file's one single-camera PoseEstimation."""
    _, ndx_pose = _nwb()
    found, multi, training = [], [], []
    for module in nwbfile.processing.values():
        for name, obj in module.data_interfaces.items():
            if isinstance(obj, ndx_pose.PoseEstimation):
                found.append((f"{module.name}/{name}", obj))
            elif isinstance(obj, ndx_pose.MultiCameraPoseEstimation):
                multi.append(f"{module.name}/{name}")
            elif isinstance(obj, ndx_pose.PoseTraining):
                training.append(f"{module.name}/{name}")
    if len(found) == 1:
        return found[0][1]
    if found:
        names = ", ".join(n for n, _ in found)
        raise LabelsError(
            f"{where}: {len(found)} PoseEstimation objects ({names}); vidpose reads one animal "
            "seen by one camera: write one NWB file per animal and camera"
        )
    if multi:
        raise LabelsError(
            f"{where}: only multi-camera (3-D) MultiCameraPoseEstimation ({', '.join(multi)}); "
            "vidpose reads a single camera's PoseEstimation"
        )
    what = f"only training frames (PoseTraining: {', '.join(training)})" if training else "none"
    raise LabelsError(f"{where}: expected an ndx-pose PoseEstimation in /processing; found {what}")


def _times(series: Any) -> np.ndarray:
    """Seconds of each sample of a TimeSeries, from its timestamps or rate."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    n = series.data.shape[0]
    return float(series.starting_time or 0.0) + np.arange(n) / float(series.rate)


def _rate_of(times: np.ndarray) -> float | None:
    """Frames per second of increasing timestamps: one over the shortest step when every step
    is a whole number of it (frames with gaps), else the median rate; None if not increasing."""
    steps = np.diff(times)
    if len(steps) == 0 or np.any(steps <= 0):
        return None
    ratio = steps / steps.min()
    if np.allclose(ratio, np.rint(ratio), rtol=0, atol=1e-6):
        return float(1.0 / steps.min())
    return float(np.median(1.0 / steps))


def _source_video(estimation: Any) -> str | None:
    videos = getattr(estimation, "original_videos", None)
    if videos is not None and len(videos):
        return str(videos[0])
    linked = getattr(estimation, "source_video", None)
    if linked is not None and linked.external_file is not None and len(linked.external_file):
        return str(linked.external_file[0])
    return None


def _poses_from_nwbfile(nwbfile: Any, where: str) -> Poses:
    estimation = _find(nwbfile, where)
    series = dict(estimation.pose_estimation_series)
    if not series:
        raise LabelsError(f"{where}: PoseEstimation {estimation.name!r} has no series")
    names = list(series)  # HDF5 keeps names sorted; the skeleton keeps their order
    skeleton = estimation.skeleton
    nodes = None if skeleton is None else [str(n) for n in skeleton.nodes[:]]
    if nodes is not None and sorted(nodes) == sorted(names):
        names = nodes
    else:
        skeleton = None
    first = series[names[0]]
    times = _times(first)
    coords = np.full((len(times), len(names), 2), np.nan)
    likelihood = np.full((len(times), len(names)), np.nan)
    with_confidence = False
    for j, name in enumerate(names):
        s = series[name]
        data = np.asarray(s.data[:], dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != 2:
            raise LabelsError(
                f"{where}: series {name!r} holds data of shape {data.shape}; vidpose reads 2-D "
                "(x, y) positions"
            )
        if str(s.unit).lower() not in ("pixels", "pixel", "px"):
            raise LabelsError(f"{where}: series {name!r} is in {s.unit!r}; vidpose reads pixels")
        t = _times(s)
        if t.shape != times.shape or not np.allclose(t, times, rtol=0, atol=1e-9):
            raise LabelsError(
                f"{where}: series {name!r} has {len(t)} samples at other times than "
                f"{names[0]!r} ({len(times)}); vidpose needs one time axis for all keypoints"
            )
        if len(data) != len(times):
            raise LabelsError(
                f"{where}: series {name!r} has {len(data)} positions for {len(times)} times"
            )
        scale, offset = float(s.conversion), float(s.offset or 0.0)
        coords[:, j] = data if (scale, offset) == (1.0, 0.0) else data * scale + offset
        if s.confidence is not None:
            likelihood[:, j] = np.asarray(s.confidence[:], dtype=np.float64)
            with_confidence = True
    linked = getattr(estimation, "source_video", None)
    if first.rate is not None:
        fps = float(first.rate)
    elif linked is not None and linked.rate is not None:
        fps = float(linked.rate)
    else:
        fps = _rate_of(times)
    frames = np.rint(times * fps).astype(np.int64) if fps else np.arange(len(times))
    edges = None
    if skeleton is not None and skeleton.edges is not None:
        edges = [(nodes[int(a)], nodes[int(b)]) for a, b in np.asarray(skeleton.edges[:])]
    return Poses(
        coords=coords,
        keypoints=names,
        frames=frames,
        likelihood=likelihood if with_confidence else None,
        scorer=str(estimation.scorer or estimation.source_software or "nwb"),
        fps=fps,
        video=_source_video(estimation),
        skeleton=edges,
    )


def _sniff(head: bytes) -> bool:
    return head.startswith(_HDF5_MAGIC)


def _sniff_file(path: Path) -> bool:
    """An HDF5 file whose root says it is an NWB file (the first bytes only say HDF5)."""
    try:
        with h5py.File(path, "r") as h5:
            kind = h5.attrs.get("neurodata_type")
    except Exception:  # not HDF5 after all, or damaged: not ours to explain
        return False
    return (kind.decode() if isinstance(kind, bytes) else kind) == "NWBFile"


@register_format
class NwbFormat:
    """Registry entry for :func:`load_nwb` / :func:`save_nwb`."""

    name = "nwb"
    extensions = (".nwb",)
    description = "NWB with ndx-pose: one PoseEstimation (needs the frame rate)"
    exact = False  # no extra columns, no image-file frames (module docstring)
    needs_fps = True
    sniff = staticmethod(_sniff)
    sniff_file = staticmethod(_sniff_file)
    check = staticmethod(check_nwb)
    load = staticmethod(load_nwb)
    save = staticmethod(save_nwb)
