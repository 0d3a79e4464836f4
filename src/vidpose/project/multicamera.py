"""Multi-camera projects: one label table per camera (Lightning Pose's multiview layout).

A project whose ``vidpose.yaml`` names ``views`` and that has a table
``CollectedData_<view>.csv`` (or ``.h5``) for any of them is a multi-camera project::

    PROJECT/
      vidpose.yaml                          views: [cam0, cam1, ...]; calibration: calibration.toml
      calibration.toml                      Anipose cameras, named as the views (optional)
      CollectedData_<view>.csv              one label table per view, the same keypoints
      labeled-data/<session>_<view>/img*.png
      videos/<session>_<view>.mp4           one synchronized video per view and session

Every table labels the same frames, rows in the same order: a row's image
``labeled-data/<session>_<view>/img00012.png`` stands for frame 12 of ``<session>``. Folder and
video names carry the view as a ``_``/``-``/``.``-separated token, at the end (as above), at
the start or inside. Each session's videos have the same frame count and frame rate.

:func:`scan_cameras` checks all this on top of the single-table checks of each view's table
(:mod:`vidpose.project.load`), reporting every problem at once. :func:`camera_project` turns a
clean scan into the :class:`~vidpose.project.load.Project` that training reads: every view's
rows one after another, and a :class:`~vidpose.project.load.CameraLayout` saying which row is
which view and instant, and which videos make each session.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from vidpose.errors import ConfigError
from vidpose.geometry import read_calibration
from vidpose.io.poses import Poses
from vidpose.project.load import (
    LABELED_DATA_DIR,
    LABELS_STEM,
    VIDEOS_DIR,
    CameraLayout,
    Project,
    ProjectScan,
    _and,
    _check_any_coordinates,
    _check_rows,
    _check_settings_keypoints,
    _note_unlabeled_images,
    _scan_images,
    _scan_videos,
    _wxh,
    read_labels,
    strip_path_prefix,
)
from vidpose.project.settings import (
    SETTINGS_FILE,
    ProjectSettings,
    calibration_path,
    camera_name_mismatch,
)
from vidpose.video.base import VideoInfo

_SEPARATORS = "_-."
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")
# Frames listed in one message before the rest are counted.
_MAX_LISTED = 10


def view_tables(root: Path, views: list[str]) -> dict[str, Path | None]:
    """Each view's ``CollectedData_<view>.csv`` (else ``.h5``) at the project's top level."""
    out: dict[str, Path | None] = {}
    for view in views:
        found = [root / f"{LABELS_STEM}_{view}{ext}" for ext in (".csv", ".h5")]
        out[view] = next((p for p in found if p.is_file()), None)
    return out


def is_multicamera(root: Path, settings: ProjectSettings) -> bool:
    """Whether the project has separate cameras: views, and a table of its own for one."""
    return len(settings.views) >= 2 and any(view_tables(root, settings.views).values())


def split_view(name: str, views: list[str]) -> tuple[str, str] | None:
    """(session, view) of a folder or video stem naming one of ``views`` as a token: at the
    end (``s1_top``), the start (``top_s1``) or inside (``s1_top_day2`` -> ``s1_day2``);
    longer view names are tried first. None when it names none; session "" for the bare view.
    """
    ordered = sorted(views, key=len, reverse=True)
    for view in ordered:
        if name == view:
            return "", view
    for view in ordered:
        for sep in _SEPARATORS:
            if name.endswith(sep + view):
                return name[: -len(view) - 1], view
            if name.startswith(view + sep):
                return name[len(view) + 1 :], view
    for view in ordered:
        for a in _SEPARATORS:
            for b in _SEPARATORS:
                token = a + view + b
                if token in name:
                    return name.replace(token, a, 1), view
    return None


def frame_key(image: str, views: list[str]) -> tuple[str, str, str | int] | None:
    """(view, session, frame) of a label row's image ``labeled-data/<session>_<view>/img12.png``:
    the frame is the last number in the file name (the name itself when it has none). None
    when the image's folder names no view."""
    path = PurePosixPath(image)
    split = split_view(path.parent.name, views)
    if split is None:
        return None
    session, view = split
    number = _LAST_NUMBER.search(path.stem)
    return view, session, int(number.group(1)) if number else path.name


def _session(session: str) -> str:
    return f"session {session!r}" if session else "the session"


def _describe(session: str, frame: str | int) -> str:
    what = "frame" if isinstance(frame, int) else "image"
    return f"{_session(session)} {what} {frame}"


def scan_cameras(scan: ProjectScan) -> None:
    """Scan a multi-camera project (module docstring) into ``scan``: each view's table as a
    single-table project would be, then what must agree across views, the calibration and the
    videos."""
    views = list(scan.settings.views)
    tables = view_tables(scan.root, views)
    have = [v for v, path in tables.items() if path is not None]
    for view, path in tables.items():
        if path is None:
            scan.add(
                "error",
                f"{LABELS_STEM}_{view}.csv",
                None,
                f"missing: a multi-camera project has one label table per view of "
                f"{SETTINGS_FILE} (views {views}); found tables for {have}",
                "camera-table-missing",
            )
            continue
        sub = ProjectScan(
            root=scan.root, settings=scan.settings, problems=scan.problems, notes=scan.notes
        )
        read_labels(sub, [path], "file")
        if sub.labels is not None and sub.labels.n_frames:
            _check_any_coordinates(sub)
            _scan_images(sub)
            _check_rows(sub)
        scan.cameras[view] = sub
    _note_stray_tables(scan, views)
    read = {v: s for v, s in scan.cameras.items() if s.labels is not None and s.labels.n_frames}
    if read:
        _check_settings_keypoints(next(iter(read.values())))
        _check_keypoints(scan, read)
        _check_frames(scan, read, views)
        every = ProjectScan(root=scan.root, notes=scan.notes)
        every.image_paths = [p for s in read.values() for p in s.image_paths]
        _note_unlabeled_images(every)
    _scan_calibration(scan)
    _scan_videos(scan)
    _check_videos(scan, views)


def _note_stray_tables(scan: ProjectScan, views: list[str]) -> None:
    """Warn about top-level label tables that no view owns (a typo in a view name?)."""
    owned = {p for s in scan.cameras.values() for p in s.label_files}
    for path in sorted(scan.root.glob(f"{LABELS_STEM}*")):
        if path.suffix not in (".csv", ".h5") or path in owned:
            continue
        if path.with_suffix(".csv") in owned:  # the .h5 twin of a view's .csv
            continue
        scan.add(
            "warning",
            path,
            None,
            f"ignored: a multi-camera project's labels are {LABELS_STEM}_<view>.csv, one per "
            f"view of {SETTINGS_FILE} (views {views})",
            "camera-table-unknown",
        )


def _check_keypoints(scan: ProjectScan, read: dict[str, ProjectScan]) -> None:
    """Every view's table lists the first one's keypoints, in its order."""
    (ref_view, ref), *others = read.items()
    assert ref.labels is not None
    want = list(ref.labels.keypoints)
    ref_file = scan.rel(ref.label_files[0])
    for _, sub in others:
        assert sub.labels is not None
        got = list(sub.labels.keypoints)
        if got == want:
            continue
        missing = [k for k in want if k not in got]
        extra = [k for k in got if k not in want]
        if missing or extra:
            what = f"missing {missing}, not in {ref_file} {extra}"
        else:
            what = f"the same names in another order: {got} (there: {want})"
        scan.add(
            "error",
            sub.label_files[0],
            None,
            f"keypoints differ from {ref_file} (view {ref_view}): {what}; every view's table "
            "has the same keypoints in the same order",
            "camera-keypoints-mismatch",
        )


def _check_frames(scan: ProjectScan, read: dict[str, ProjectScan], views: list[str]) -> None:
    """Every table labels the same (session, frame)s in the same order, each in its own view's
    folders."""
    keys: dict[str, list[tuple[str, str | int] | None]] = {}
    for view, sub in read.items():
        assert sub.labels is not None
        row_keys: list[tuple[str, str | int] | None] = []
        for i, image in enumerate(sub.labels.frames.tolist()):
            found = frame_key(image, views)
            src = sub.rows[i]
            if found is None or found[0] != view:
                named = "" if found is None else f" (it is in view {found[0]}'s folder)"
                scan.add(
                    "error",
                    src.file,
                    src.where,
                    f"image {image} is not in a folder of view {view}{named}: this table's "
                    f"images are {LABELED_DATA_DIR}/<session>_{view}/<image>",
                    "camera-frame-view",
                )
                row_keys.append(None)
                continue
            row_keys.append(found[1:])
        keys[view] = row_keys

    sets = {v: {k for k in ks if k is not None} for v, ks in keys.items()}
    common = set.intersection(*sets.values())
    unmatched: list[tuple[str, int, tuple[str, str | int]]] = []  # at the first view with it
    seen: set[tuple[str, str | int]] = set()
    for view, ks in keys.items():
        for i, key in enumerate(ks):
            if key is not None and key not in common and key not in seen:
                seen.add(key)
                unmatched.append((view, i, key))
    for view, i, key in unmatched[:_MAX_LISTED]:
        sub = read[view]
        assert sub.labels is not None
        with_it = [v for v in keys if key in sets[v]]
        without = [v for v in keys if key not in sets[v]]
        files = ", ".join(scan.rel(read[v].label_files[0]) for v in without)
        src = sub.rows[i]
        scan.add(
            "error",
            src.file,
            src.where,
            f"{_describe(*key)} ({sub.labels.frames[i]}) is labeled in view(s) "
            f"{_and(with_it)} but not in {_and(without)} ({files}); every view's table "
            "labels the same frames",
            "camera-frame-unmatched",
        )
    if len(unmatched) > _MAX_LISTED:
        scan.add(
            "error",
            LABELED_DATA_DIR,
            None,
            f"... and {len(unmatched) - _MAX_LISTED} more frames labeled in some views only",
            "camera-frame-unmatched",
        )

    (ref_view, ref_keys), *others = keys.items()
    ref_order = [k for k in ref_keys if k in common]
    ref_rows = [read[ref_view].rows[i].row for i, k in enumerate(ref_keys) if k in common]
    ref_file = scan.rel(read[ref_view].label_files[0])
    for view, ks in others:
        order = [(i, k) for i, k in enumerate(ks) if k in common]
        for j, (i, key) in enumerate(order):
            if j < len(ref_order) and key != ref_order[j]:
                src = read[view].rows[i]
                scan.add(
                    "error",
                    src.file,
                    src.where,
                    f"rows are in another order than in {ref_file}: this row is "
                    f"{_describe(*key)}, row {ref_rows[j]} there is {_describe(*ref_order[j])}; "
                    "every view's table lists the frames in the same order",
                    "camera-row-order",
                )
                break


def _scan_calibration(scan: ProjectScan) -> None:
    """Read the cameras; their names must be the views, their sizes those of the images."""
    path = calibration_path(scan.root, scan.settings)
    if path is None:
        scan.add(
            "warning",
            SETTINGS_FILE,
            "calibration",
            "no calibration: labels and videos can be checked, but 3D (triangulation, "
            "multi-camera losses) will need the cameras; add 'calibration: calibration.toml' "
            "(Anipose format)",
            "calibration-missing",
        )
        return
    if not path.is_file():
        scan.add(
            "error",
            SETTINGS_FILE,
            "calibration",
            f"{scan.rel(path)} does not exist",
            "calibration-invalid",
        )
        return
    try:
        calibration = read_calibration(path)
    except (ConfigError, OSError) as exc:  # its message names the section and key
        message = strip_path_prefix(str(exc), path, scan.root)
        scan.add("error", path, None, message, "calibration-invalid")
        return
    mismatch = camera_name_mismatch(calibration, scan.settings.views)
    if mismatch:
        scan.add("error", path, None, mismatch, "calibration-views-mismatch")
        return
    scan.calibration = calibration.select(scan.settings.views)
    for view, sub in scan.cameras.items():
        if sub.image_size is None:
            continue
        width, height = scan.calibration[view].size
        if sub.image_size != (height, width):
            scan.add(
                "error",
                sub.label_files[0],
                None,
                f"labeled images of view {view} are {_wxh(sub.image_size)} but camera {view} "
                f"in {scan.rel(path)} is {width}x{height} (width x height); the calibration "
                "must be of the images' size",
                "camera-size-mismatch",
            )


def _check_videos(scan: ProjectScan, views: list[str]) -> None:
    """Every video names a view; each session has one per view, of equal length and rate."""
    sessions: dict[str, dict[str, VideoInfo]] = defaultdict(dict)
    for info in scan.videos:
        split = split_view(info.path.stem, views)
        if split is None:
            scan.add(
                "error",
                info.path,
                None,
                f"does not name a view: a multi-camera project's videos are {VIDEOS_DIR}/"
                f"<session>_<view>{info.path.suffix} with a view of {SETTINGS_FILE} ({views})",
                "camera-video-unnamed",
            )
            continue
        session, view = split
        other = sessions[session].get(view)
        if other is not None:
            scan.add(
                "error",
                info.path,
                None,
                f"a second video of {_session(session)} in view {view}, beside "
                f"{scan.rel(other.path)}; keep one",
                "camera-video-duplicate",
            )
            continue
        sessions[session][view] = info
        _check_video_size(scan, view, info)
    for session, by_view in sessions.items():
        suffix = next(iter(by_view.values())).path.suffix
        for view in views:
            if view not in by_view:
                stem = f"{session}_{view}" if session else view
                scan.add(
                    "error",
                    f"{VIDEOS_DIR}/{stem}{suffix}",
                    None,
                    f"missing: session {session!r} has videos of {_and(list(by_view))} but "
                    f"not of view {view}; every session has one video per view",
                    "camera-video-missing",
                )
        ordered = [by_view[v] for v in views if v in by_view]
        ref = ordered[0]
        for info in ordered[1:]:
            if info.n_frames != ref.n_frames:
                scan.add(
                    "error",
                    info.path,
                    None,
                    f"{info.n_frames} frames but {scan.rel(ref.path)} has {ref.n_frames}; a "
                    "session's videos (synchronized cameras) have the same number of frames",
                    "camera-video-frames",
                )
            if abs(info.fps - ref.fps) > 1e-3 * max(abs(ref.fps), 1.0):
                scan.add(
                    "error",
                    info.path,
                    None,
                    f"{info.fps:g} fps but {scan.rel(ref.path)} has {ref.fps:g}; a session's "
                    "videos have the same frame rate",
                    "camera-video-fps",
                )


def _check_video_size(scan: ProjectScan, view: str, info: VideoInfo) -> None:
    """A view's video against its labeled images (warning) and its camera (error)."""
    size = (info.height, info.width)
    sub = scan.cameras.get(view)
    if sub is not None and sub.image_size is not None and sub.image_size != size:
        scan.add(
            "warning",
            info.path,
            None,
            f"frames are {info.width}x{info.height} but view {view}'s labeled images are "
            f"{_wxh(sub.image_size)} (width x height); predictions on this video will be at a "
            "different scale than the labels",
            "video-size-mismatch",
        )
    if scan.calibration is not None:
        width, height = scan.calibration[view].size
        if (info.width, info.height) != (width, height):
            scan.add(
                "error",
                info.path,
                None,
                f"frames are {info.width}x{info.height} but camera {view} in the calibration "
                f"is {width}x{height} (width x height); the calibration must be of the "
                "videos' size",
                "camera-size-mismatch",
            )


def sessions_of(videos: list[VideoInfo], views: list[str]) -> dict[str, list[VideoInfo]]:
    """Session -> its videos in ``views`` order, for the sessions that have every view (the
    others, and videos naming no view, are left out)."""
    found: dict[str, dict[str, VideoInfo]] = defaultdict(dict)
    for info in videos:
        split = split_view(info.path.stem, views)
        if split is not None:
            found[split[0]].setdefault(split[1], info)
    return {
        session: [by_view[v] for v in views]
        for session, by_view in sorted(found.items())
        if all(v in by_view for v in views)
    }


def camera_project(scan: ProjectScan) -> Project:
    """The project training reads from a multi-camera scan without errors: the views' tables
    stacked view after view (same keypoints, same instants in the same order: checked by
    :func:`scan_cameras`), with its :class:`~vidpose.project.load.CameraLayout`."""
    views = list(scan.settings.views)
    subs = [scan.cameras[v] for v in views]
    tables: list[Poses] = []
    for sub in subs:
        assert sub.labels is not None
        tables.append(sub.labels)
    first = tables[0]
    n = first.n_frames
    labels = Poses(
        coords=np.concatenate([t.coords for t in tables]),
        keypoints=list(first.keypoints),
        frames=np.concatenate([t.frames for t in tables]),
        likelihood=np.concatenate([t.likelihood for t in tables]),
        scorer=first.scorer,
        is_labels=True,
    )
    sizes: dict[str, tuple[int, int]] = {}
    for view, sub in zip(views, subs, strict=True):
        assert sub.image_size is not None
        sizes[view] = sub.image_size
    layout = CameraLayout(
        views=views,
        view_of_row=np.repeat(np.arange(len(views)), n),
        group_of_row=np.tile(np.arange(n), len(views)),
        image_sizes=sizes,
        sessions=sessions_of(list(scan.videos), views),
        calibration=scan.calibration,
        calibration_file=calibration_path(scan.root, scan.settings),
    )
    return Project(
        root=scan.root,
        labels=labels,
        image_paths=[p for s in subs for p in s.image_paths],
        image_size=sizes[views[0]],
        videos=list(scan.videos),
        settings=scan.settings,
        label_files=[p for s in subs for p in s.label_files],
        cameras=layout,
    )
