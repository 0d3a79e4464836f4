"""Load a project folder into one typed :class:`Project`, or say exactly why it cannot be.

A project is laid out as Lightning Pose / DeepLabCut users know it::

    PROJECT/
      CollectedData.csv          # or CollectedData.h5, CollectedData_<scorer>.csv/.h5, or the
                                 # DLC layout labeled-data/<video>/CollectedData_<scorer>.csv
      labeled-data/**.png        # the labeled frames (extra, unlabeled images are fine)
      videos/*.mp4|avi|mov|mkv   # unlabeled videos for semi-supervised training (optional)
      vidpose.yaml               # optional: skeleton, flip pairs, views ... (see settings.py)

:func:`scan_project` reads everything it can without decoding pixels or video frames (label
table, PNG headers, video container metadata, settings, whose ``config:`` section it composes
as ``vidpose train`` does) and collects every :class:`Problem` it
finds instead of stopping at the first. :func:`load_project` turns a scan with no errors into a
:class:`Project` and raises :class:`~vidpose.errors.ProjectError` otherwise.
:mod:`vidpose.project.check` adds the slower checks (decoding a few frames of each video,
verifying image data) on top of the same scan.

Row numbers in messages are 1-based line numbers of the CSV file, as an editor or a
spreadsheet shows them (the first label row of a 3-header-row file is row 4).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from vidpose.errors import ConfigError, LabelsError, ProjectError, VidposeError
from vidpose.geometry import Calibration
from vidpose.io import FORMATS, detect_format, read_labels_folder, read_poses
from vidpose.io.csv_format import load_csv
from vidpose.io.poses import Poses
from vidpose.project.settings import (
    DLC_CONFIG_FILE,
    SETTINGS_FILE,
    ProjectSettings,
    load_settings,
)
from vidpose.video import VIDEO_SUFFIXES, probe_video, videos_in
from vidpose.video.base import VideoInfo

LABELS_STEM = "CollectedData"
LABELED_DATA_DIR = "labeled-data"
VIDEOS_DIR = "videos"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# A keypoint labeled in fewer than this fraction of frames gets a warning.
MOSTLY_MISSING_FRACTION = 0.5
# Row numbers listed in one message before the rest are counted.
MAX_ROWS_LISTED = 10

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a project.

    Attributes:
        severity: "error" makes the project unusable; "warning" does not.
        file: the file at fault, relative to the project when inside it (posix separators).
        where: row / frame / settings key inside that file, e.g. "row 14", "frame 993",
            "skeleton[2]"; None when the whole file is at fault.
        message: what is wrong and what was expected.
        code: a short stable kind, e.g. "image-missing", for grouping and tests.
    """

    severity: Severity
    file: str
    where: str | None
    message: str
    code: str = ""

    def __str__(self) -> str:
        loc = f"{self.file}:{self.where}" if self.where else self.file
        return f"{loc}: {self.message}"


@dataclass(frozen=True)
class RowSource:
    """Where label row i of the merged table came from.

    Attributes:
        file: label file relative to the project (posix).
        row: 1-based line number in a CSV, or 1-based position in an .h5 table.
    """

    file: str
    row: int

    @property
    def where(self) -> str:
        return f"row {self.row}"


@dataclass
class CameraLayout:
    """How a multi-camera project's label rows and videos map to cameras.

    The project's label table is every view's table, one after another (view-major): row
    ``v * n_groups + i`` is view ``v``'s image of labeled instant ``i``.

    Attributes:
        views: the camera names, in ``vidpose.yaml`` order.
        view_of_row: (N,) int, the view of each label row.
        group_of_row: (N,) int, the labeled instant of each row (rows of one instant, one per
            view, share it).
        image_sizes: (height, width) of each view's labeled images.
        sessions: session name -> its videos, one per view in ``views`` order (every view
            present, equal frame counts: checked).
        calibration: the cameras, in ``views`` order; None when the project names none.
        calibration_file: the file it was read from.
    """

    views: list[str]
    view_of_row: np.ndarray
    group_of_row: np.ndarray
    image_sizes: dict[str, tuple[int, int]]
    sessions: dict[str, list[VideoInfo]]
    calibration: Calibration | None = None
    calibration_file: Path | None = None

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def n_groups(self) -> int:
        """Labeled instants (rows per view)."""
        return int(self.group_of_row.max()) + 1 if len(self.group_of_row) else 0

    def expand(self, per_group: np.ndarray) -> np.ndarray:
        """A value per labeled instant -> the same value for each of its rows."""
        return np.asarray(per_group)[self.group_of_row]

    def wide(self, coords: np.ndarray) -> np.ndarray:
        """(N, K, ...) per row -> (n_groups, V * K, ...): each instant's views side by side
        (keypoint ``k`` of view ``v`` at ``v * K + k``), the layout the multi-camera losses see."""
        coords = np.asarray(coords)
        n_views, k = self.n_views, coords.shape[1]
        out = coords.reshape(n_views, self.n_groups, k, *coords.shape[2:])
        return np.moveaxis(out, 0, 1).reshape(self.n_groups, n_views * k, *coords.shape[2:])


@dataclass
class Project:
    """A loaded, validated project.

    Attributes:
        root: the project folder (absolute).
        labels: the label table; ``labels.frames`` are image paths relative to ``root``.
        image_paths: absolute path of each label row's image, (N,) in label-row order.
        image_size: (height, width) in pixels, shared by every labeled image (of the first
            view in a multi-camera project; ``cameras.image_sizes`` has each view's).
        videos: metadata of ``videos/*.mp4|avi|mov|mkv``, sorted by file name; may be empty.
        settings: parsed ``vidpose.yaml`` (defaults when absent).
        label_files: the file(s) the labels were read from.
        cameras: for a multi-camera project, how rows and videos map to its cameras (the
            labels are every view's table, view after view); None for one camera.
    """

    root: Path
    labels: Poses
    image_paths: list[Path]
    image_size: tuple[int, int]
    videos: list[VideoInfo]
    settings: ProjectSettings
    label_files: list[Path] = field(default_factory=list)
    cameras: CameraLayout | None = None

    @property
    def keypoints(self) -> list[str]:
        return self.labels.keypoints

    @property
    def n_labeled(self) -> int:
        return self.labels.n_frames


@dataclass
class ProjectScan:
    """Everything :func:`scan_project` could read, and every problem it found.

    Fields are filled as far as reading got: ``labels`` is None when no label table could be
    read; ``image_sizes[i]`` is None where label row i's image is missing or unreadable.

    A multi-camera project (see :mod:`vidpose.project.multicamera`) has no single table:
    ``labels`` stays None and ``cameras`` holds one scan per view (its table, rows and images,
    sharing this scan's problems and notes); ``calibration`` its cameras when readable.
    """

    root: Path
    label_files: list[Path] = field(default_factory=list)
    labels: Poses | None = None
    rows: list[RowSource] = field(default_factory=list)
    image_paths: list[Path] = field(default_factory=list)
    image_sizes: list[tuple[int, int] | None] = field(default_factory=list)
    image_size: tuple[int, int] | None = None
    video_paths: list[Path] = field(default_factory=list)
    videos: list[VideoInfo] = field(default_factory=list)
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cameras: dict[str, ProjectScan] = field(default_factory=dict)
    calibration: Calibration | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def rel(self, path: Path) -> str:
        """``path`` relative to the project root when inside it, posix separators."""
        return _rel(path, self.root)

    def add(
        self, severity: Severity, file: str | Path, where: str | None, message: str, code: str
    ) -> None:
        name = self.rel(file) if isinstance(file, Path) else file
        self.problems.append(Problem(severity, name, where, message, code))


def load_project(project_dir: str | Path) -> Project:
    """Read and validate a project folder.

    Reads the label table, every labeled image's header (not its pixels), each video's
    container metadata (no frames are decoded) and ``vidpose.yaml``.

    Raises:
        ProjectError: the project is unusable; the message lists the errors found (run
            ``vidpose check`` for the full report, warnings included).

    A multi-camera project (:mod:`vidpose.project.multicamera`) loads as one project whose
    label rows are every view's rows (``Project.cameras`` says which is which).
    """
    scan = scan_project(project_dir)
    errors = scan.errors
    if errors:
        raise ProjectError(summarize_errors(scan.root, errors))
    if scan.cameras:
        from vidpose.project.multicamera import camera_project

        return camera_project(scan)
    assert scan.labels is not None and scan.image_size is not None
    return Project(
        root=scan.root,
        labels=scan.labels,
        image_paths=list(scan.image_paths),
        image_size=scan.image_size,
        videos=list(scan.videos),
        settings=scan.settings,
        label_files=list(scan.label_files),
    )


def summarize_errors(root: Path, errors: list[Problem], limit: int = 10) -> str:
    """A ProjectError message: how many errors, then the first ``limit`` of them."""
    head = f"project {root} is not usable: {len(errors)} error{'s' if len(errors) != 1 else ''}"
    lines = [f"  {p}" for p in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more; run `vidpose check {root}`")
    return "\n".join([head + ":", *lines])


VISIBLE_COLUMN = "visible"
"""A per-keypoint labels column (Lightning Pose's and SLEAP's visibility flag): 1/true keeps the
label, 0/false makes it missing (a position given for an occluded keypoint is not trained on)."""


def _apply_visible_flags(scan: ProjectScan, labels: Poses) -> None:
    """Honour a ``visible`` column: hidden keypoints become missing labels; any value other
    than 0, 1 or empty is an error naming the row and keypoint."""
    flags = labels.keypoint_columns.pop(VISIBLE_COLUMN)
    bad = ~np.isnan(flags) & (flags != 0) & (flags != 1)
    for r, k in list(zip(*np.nonzero(bad)))[:MAX_ROWS_LISTED]:
        scan.add(
            "error",
            scan.rows[r].file,
            f"{scan.rows[r].where} ({labels.frames[r]})",
            f"keypoint {labels.keypoints[k]!r}: visible is {flags[r, k]!r}; expected 1 "
            f"(visible), 0 (hidden) or empty",
            "labels-visible-flag",
        )
    hidden = (flags == 0) & labels.visible
    if hidden.any():
        labels.coords[hidden] = np.nan
        scan.notes.append(
            f"{int(hidden.sum())} labeled position(s) flagged visible=0 are treated as missing"
        )


def scan_project(project_dir: str | Path) -> ProjectScan:
    """Read what the project holds without decoding pixels; collect every problem found."""
    root = Path(project_dir).expanduser().resolve()
    scan = ProjectScan(root=root)
    if not root.is_dir():
        if root.exists():
            message = (
                f"is a file, but a project folder is expected (the folder holding "
                f"{LABELS_STEM}.csv, {LABELED_DATA_DIR}/ and {VIDEOS_DIR}/)"
            )
            folder = _project_folder_of(root)
            if folder is not None:
                message += f"; did you mean its folder {folder}?"
            scan.add("error", str(root), None, message, "project-not-a-folder")
        else:
            scan.add("error", str(root), None, "does not exist", "project-missing")
        return scan
    _scan_settings(scan)
    # imported here: it builds on this module's scanners
    from vidpose.project.multicamera import is_multicamera, scan_cameras

    if is_multicamera(root, scan.settings):
        scan_cameras(scan)
        return scan
    _scan_labels(scan)
    if scan.labels is not None and scan.settings.keypoint_order:
        _apply_keypoint_order(scan)
    if scan.labels is not None and scan.labels.n_frames:
        _check_any_coordinates(scan)
        _scan_images(scan)
        _note_unlabeled_images(scan)
        _check_rows(scan)
        _check_settings_keypoints(scan)
    _scan_videos(scan)
    return scan


def _project_folder_of(path: Path) -> Path | None:
    """The project a labels table or ``vidpose.yaml`` belongs to; None for other files."""
    if path.name != SETTINGS_FILE and not _looks_like_pose_table(path):
        return None
    if path.parent.parent.name == LABELED_DATA_DIR:  # labeled-data/<video>/CollectedData_x.csv
        return path.parent.parent.parent
    return path.parent


def _looks_like_pose_table(path: Path) -> bool:
    if path.name.startswith(LABELS_STEM) and path.suffix.lower() in (".csv", ".h5"):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return any(fmt.sniff(head) for fmt in FORMATS)


# --- settings ---------------------------------------------------------------------------------


def _scan_settings(scan: ProjectScan) -> None:
    path = scan.root / SETTINGS_FILE
    try:
        scan.settings = load_settings(scan.root)
    except ProjectError as exc:
        scan.add(
            "error", path, None, strip_path_prefix(str(exc), path, scan.root), "settings-invalid"
        )
        return


def _apply_keypoint_order(scan: ProjectScan) -> None:
    """Keypoints in the order of a DeepLabCut config.yaml's ``bodyparts``; an error naming the
    differences when the labels and the config disagree on the names."""
    from vidpose.io.ops import reorder_keypoints

    assert scan.labels is not None and scan.settings.keypoint_order is not None
    order = scan.settings.keypoint_order
    have = list(scan.labels.keypoints)
    missing = [k for k in order if k not in have]
    extra = [k for k in have if k not in order]
    where = scan.root / DLC_CONFIG_FILE
    if missing or extra:
        scan.add(
            "error",
            where,
            "bodyparts",
            f"the labels and config.yaml name different keypoints: in bodyparts but not in the "
            f"labels {missing}; in the labels but not in bodyparts {extra}",
            "dlc-bodyparts-mismatch",
        )
        return
    if order != have:
        scan.labels = reorder_keypoints(scan.labels, order)
        scan.notes.append(f"keypoints ordered as config.yaml's bodyparts ({len(order)})")


def check_config_section(scan: ProjectScan) -> None:
    """Compose the ``config:`` section as ``vidpose train`` does, so ``vidpose check`` refuses
    what train would; one Problem per key the ConfigError names (``where``: ``config.<key>``).

    Not part of :func:`scan_project`: commands that only read a project (evaluate, smooth)
    must keep working while its training settings are being fixed."""
    if not scan.settings.config:
        return
    # imported here: Hydra is slow to import and only projects with a config section need it
    from vidpose.config import compose_config

    path = scan.root / SETTINGS_FILE
    try:
        compose_config(scan.settings.config, [], project_file=str(path))
    except ConfigError as exc:
        for key, message in _config_error_items(str(exc).replace(str(path), SETTINGS_FILE)):
            where = f"config.{key}" if key else "config"
            scan.add("error", path, where, message, "settings-config-invalid")


def _config_error_items(message: str) -> list[tuple[str | None, str]]:
    """(dotted key or None, message) per error in a ConfigError's text.

    One error names its key as ``config key 'a.b'``; several come as a header line ending in
    ":" and one indented line each, naming the key first or as ``[a.b=value from ...]``.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    items = lines[1:] if len(lines) > 1 and lines[0].endswith(":") else [" ".join(lines)]
    out: list[tuple[str | None, str]] = []
    for item in items:
        found = (
            re.search(r"config key '([^']+)'", item)
            or re.search(r"\[([\w.]+)=", item)
            or re.match(r"([A-Za-z_]\w*(?:\.\w+)+)\b", item)
        )
        out.append((found.group(1) if found else None, item))
    return out


def _check_settings_keypoints(scan: ProjectScan) -> None:
    assert scan.labels is not None
    known = set(scan.labels.keypoints)
    label_name = _label_source_name(scan)
    for where, name in scan.settings.referenced_keypoints():
        if name not in known:
            scan.add(
                "error",
                SETTINGS_FILE,
                where,
                f"keypoint {name!r} is not in {label_name} (keypoints there: "
                f"{', '.join(scan.labels.keypoints)})",
                "settings-unknown-keypoint",
            )


# --- labels -----------------------------------------------------------------------------------


def find_label_files(root: Path) -> tuple[list[Path], str]:
    """The label file(s) of a project and how to read them.

    Looks, in order, for ``CollectedData.csv``, ``CollectedData.h5``, then a single
    ``CollectedData_<scorer>.csv`` / ``.h5`` at the top level, then the DeepLabCut layout
    ``labeled-data/<video>/CollectedData_<scorer>.csv`` (or ``.h5``).

    Returns:
        (files, kind): kind is "file" (one table, ``files[0]``), "folders" (DLC layout, every
        per-video table in ``files``), "ambiguous" (several top-level scorer tables) or
        "none". A multi-camera project's ``CollectedData_<view>.csv`` tables are found by
        :func:`vidpose.project.multicamera.view_tables` instead.
    """
    for name in (f"{LABELS_STEM}.csv", f"{LABELS_STEM}.h5"):
        if (root / name).is_file():
            return [root / name], "file"
    scorer_tables = _prefer_csv(
        sorted(root.glob(f"{LABELS_STEM}_*.csv")) + sorted(root.glob(f"{LABELS_STEM}_*.h5"))
    )
    if len(scorer_tables) == 1:
        return scorer_tables, "file"
    if len(scorer_tables) > 1:
        return scorer_tables, "ambiguous"
    per_video: list[Path] = []
    labeled = root / LABELED_DATA_DIR
    folders = sorted(p for p in labeled.iterdir() if p.is_dir()) if labeled.is_dir() else []
    for folder in folders:
        # as vidpose.io.read_labels_folder: a folder's .csv tables, else its .h5 ones
        per_video += sorted(folder.glob(f"{LABELS_STEM}*.csv")) or sorted(
            folder.glob(f"{LABELS_STEM}*.h5")
        )
    if per_video:
        return per_video, "folders"
    return [], "none"


def _prefer_csv(paths: list[Path]) -> list[Path]:
    """Drop an .h5 table when a .csv with the same stem sits beside it (DLC writes both)."""
    csv_stems = {p.with_suffix("") for p in paths if p.suffix == ".csv"}
    return [p for p in paths if p.suffix == ".csv" or p.with_suffix("") not in csv_stems]


def _scan_labels(scan: ProjectScan) -> None:
    root = scan.root
    files, kind = find_label_files(root)
    scan.label_files = files
    if kind == "none":
        scan.add(
            "error",
            f"{LABELS_STEM}.csv",
            None,
            f"no labels found: expected {LABELS_STEM}.csv (or .h5, or {LABELS_STEM}_<scorer>"
            f".csv) in {root}, or {LABELED_DATA_DIR}/<video>/{LABELS_STEM}_<scorer>.csv"
            + _sleap_hint(root),
            "labels-missing",
        )
        return
    if kind == "ambiguous":
        names = ", ".join(p.name for p in files)
        views = [p.stem.removeprefix(f"{LABELS_STEM}_") for p in files]
        scan.add(
            "error",
            files[0].name,
            None,
            f"several label tables at the top level ({names}); keep one, or merge them into "
            f"{LABELS_STEM}.csv; if they are separate cameras, name them in {SETTINGS_FILE}: "
            f"'views: [{', '.join(views)}]'",
            "labels-ambiguous",
        )
        return
    read_labels(scan, files, kind)


def read_labels(scan: ProjectScan, files: list[Path], kind: str) -> None:
    """Read the label table(s) ``files`` (``kind`` "file" or "folders", as
    :func:`find_label_files` says) into ``scan``; every problem becomes a Problem."""
    root = scan.root
    scan.label_files = files
    row_errors: list[str] = []
    try:
        if kind == "file" and detect_format(files[0]).name == "csv":
            # Row-level problems are collected so the rest of the project is still checked.
            labels = load_csv(files[0], row_errors=row_errors)
        else:
            labels = read_poses(files[0]) if kind == "file" else read_labels_folder(root)
    except Exception as exc:  # any failure to parse a user's file is reported, not raised
        # the rows collected before the failure are real problems too
        for message in row_errors:
            _add_labels_error(scan, LabelsError(message), files)
        _add_labels_error(scan, exc, files)
        return
    for message in row_errors:
        _add_labels_error(scan, LabelsError(message), files)
    if len(files) > 1:
        scan.notes.append(f"labels merged from {len(files)} per-video tables in {LABELED_DATA_DIR}")
    if labels.n_frames and labels.frames.dtype.kind != "O":
        scan.add(
            "error",
            files[0],
            None,
            "the first column must hold image paths relative to the project, got numbers",
            "labels-frames-not-paths",
        )
        return
    frames = [_normalize_frame(f) for f in labels.frames.tolist()]
    labels.frames = np.array(frames, dtype=object)
    scan.labels = labels
    if labels.n_frames == 0:
        scan.add(
            "error",
            files[0] if len(files) == 1 else LABELED_DATA_DIR,
            None,
            "no label rows: the table has a header but no labeled frames",
            "labels-empty",
        )
        return
    scan.rows = _locate_rows(root, files, frames)
    if VISIBLE_COLUMN in labels.keypoint_columns:
        _apply_visible_flags(scan, labels)
    scan.image_paths = [_resolve_image(root, scan.rows[i], f) for i, f in enumerate(frames)]


def _sleap_hint(root: Path) -> str:
    """How to import the SLEAP labels files lying in ``root``, if any."""
    found = sorted(p for p in root.glob("*.slp") if p.is_file())
    if not found:
        return ""
    names = ", ".join(p.name for p in found)
    try:
        shown = found[0].relative_to(Path.cwd())
    except ValueError:
        shown = found[0]
    return f"; found {names}: import it with `vidpose import-sleap {shown} DIR` (a new folder)"


def _add_labels_error(scan: ProjectScan, exc: Exception, files: list[Path]) -> None:
    """Turn a reader's exception into a Problem naming the file and, when given, the row."""
    message = str(exc) or type(exc).__name__
    file: Path | str = files[0] if len(files) == 1 else LABELED_DATA_DIR
    named = [p for p in files if str(p) in message or scan.rel(p) in message]
    named = named or [p for p in files if p.name in message and len(files) == 1]
    if named:
        file = named[0]
        message = strip_path_prefix(message, file, scan.root)
    where = None
    # the io layer writes "row N (frame): what"; lift the row into Problem.where
    leading = re.match(r"row (\d+)(?: \(([^)]*)\))?[:,]?\s*(.*)$", message, re.DOTALL)
    if leading:
        where = f"row {leading.group(1)}"
        frame, rest = leading.group(2), leading.group(3)
        message = f"{frame}: {rest}" if frame else rest
    else:
        inner = re.search(r"\brow (\d+)\b", message)
        where = f"row {inner.group(1)}" if inner else None
    if not isinstance(exc, VidposeError):
        # not a message written for users: keep the exception type for the bug report
        message = f"{type(exc).__name__}: {message}"
    scan.add("error", file, where, message, "labels-unreadable")


def _normalize_frame(frame: str) -> str:
    # DLC projects made on Windows store labeled-data\\video\\img.png.
    return str(frame).replace("\\", "/")


def _locate_rows(root: Path, files: list[Path], frames: list[str]) -> list[RowSource]:
    """Map each label row to its file and line, so messages point where the user can look."""
    lookup: dict[str, RowSource] = {}
    for path in files:
        if path.suffix == ".csv":
            for frame, line in _csv_first_column_lines(path, root, len(files) > 1):
                lookup.setdefault(frame, RowSource(_rel(path, root), line))
    out: list[RowSource] = []
    seen: Counter[str] = Counter()
    for i, frame in enumerate(frames):
        seen[frame] += 1
        src = lookup.get(frame)
        if src is not None and seen[frame] > 1:
            # duplicates: the k-th occurrence in the table is the k-th line with that path
            src = _nth_line(files, root, frame, seen[frame]) or src
        if src is None:
            src = RowSource(_owner_file(root, files, frame), i + 1)
        out.append(src)
    return out


def _nth_line(files: list[Path], root: Path, frame: str, n: int) -> RowSource | None:
    count = 0
    for path in files:
        if path.suffix != ".csv":
            continue
        for f, line in _csv_first_column_lines(path, root, len(files) > 1):
            if f == frame:
                count += 1
                if count == n:
                    return RowSource(_rel(path, root), line)
    return None


def _csv_first_column_lines(path: Path, root: Path, per_video: bool) -> list[tuple[str, int]]:
    """(image path, 1-based line) for each row of a CSV, image paths spelled as the io layer
    returns them: DLC's 3-column index joined, and in a per-video table (``per_video``) bare
    image names prefixed with the table's folder."""
    folder = _rel(path.parent, root)
    out: list[tuple[str, int]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            for cells in reader:
                if not cells:
                    continue
                if cells[0] == LABELED_DATA_DIR and len(cells) > 2:
                    frame = "/".join(c for c in cells[:3] if c)
                else:
                    frame = _normalize_frame(cells[0])
                if per_video and "/" not in frame:
                    frame = f"{folder}/{frame}"
                # line_num is the line a row ends on; a row starts there unless quoted cells
                # span lines, which image paths never do
                out.append((frame, reader.line_num))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return out


def _owner_file(root: Path, files: list[Path], frame: str) -> str:
    if len(files) == 1:
        return _rel(files[0], root)
    parent = (root / frame).parent
    for path in files:
        if path.parent == parent:
            return _rel(path, root)
    return LABELED_DATA_DIR


def _resolve_image(root: Path, src: RowSource, frame: str) -> Path:
    path = Path(frame)
    if path.is_absolute():
        return path
    candidate = (root / path).resolve()
    if not candidate.exists():
        # some DLC tables store paths relative to their own folder
        beside = ((root / src.file).parent / path).resolve()
        if beside.exists():
            return beside
    return candidate


def _label_source_name(scan: ProjectScan) -> str:
    if len(scan.label_files) == 1:
        return scan.rel(scan.label_files[0])
    return f"the labels in {LABELED_DATA_DIR}"


# --- images -----------------------------------------------------------------------------------


def read_image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, without decoding pixels.

    Raises:
        OSError: the file is missing or not an image PIL can identify.
    """
    with Image.open(path) as im:
        width, height = im.size
    return height, width


def _scan_images(scan: ProjectScan) -> None:
    assert scan.labels is not None
    sizes: list[tuple[int, int] | None] = []
    cache: dict[Path, tuple[int, int] | None] = {}
    for i, path in enumerate(scan.image_paths):
        if path in cache:
            sizes.append(cache[path])
            continue
        src = scan.rows[i]
        frame = scan.labels.frames[i]
        size: tuple[int, int] | None = None
        if not path.is_file():
            scan.add("error", src.file, src.where, f"image {frame} does not exist", "image-missing")
        else:
            try:
                size = read_image_size(path)
            except UnidentifiedImageError:
                scan.add(
                    "error",
                    src.file,
                    src.where,
                    f"image {frame} cannot be read: not a PNG/JPEG image (unknown format)",
                    "image-unreadable",
                )
            except (OSError, ValueError) as exc:
                why = _short(exc).replace(str(path), path.name)
                scan.add(
                    "error",
                    src.file,
                    src.where,
                    f"image {frame} cannot be read: {why}",
                    "image-unreadable",
                )
        cache[path] = size
        sizes.append(size)
    scan.image_sizes = sizes
    # each image counts once, however many rows name it
    counts = Counter(s for s in cache.values() if s is not None)
    if not counts:
        return
    (majority, n_majority), *others = counts.most_common()
    scan.image_size = majority
    if others:
        n_read = sum(counts.values())
        for i, size in enumerate(sizes):
            if size is not None and size != majority:
                src = scan.rows[i]
                scan.add(
                    "error",
                    src.file,
                    src.where,
                    f"image {scan.labels.frames[i]} is {_wxh(size)} but {n_majority} of "
                    f"{n_read} labeled images are {_wxh(majority)} (width x height); all "
                    "labeled frames must have one size",
                    "image-size-mismatch",
                )


def _note_unlabeled_images(scan: ProjectScan) -> None:
    folder = scan.root / LABELED_DATA_DIR
    if not folder.is_dir():
        return
    labeled = set(scan.image_paths)
    extra = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.resolve() not in labeled
    ]
    if extra:
        scan.notes.append(
            f"{len(extra)} image{'s' if len(extra) != 1 else ''} in {LABELED_DATA_DIR} "
            "without labels (ignored)"
        )


# --- label rows -------------------------------------------------------------------------------


def _check_any_coordinates(scan: ProjectScan) -> None:
    """A table whose every keypoint cell is empty would train on nothing: an error."""
    assert scan.labels is not None
    labels = scan.labels
    if labels.visible.any():
        return
    file = scan.label_files[0] if len(scan.label_files) == 1 else LABELED_DATA_DIR
    across = "" if len(scan.label_files) == 1 else f" (in {len(scan.label_files)} label files)"
    scan.add(
        "error",
        file,
        None,
        f"no keypoint is labeled in any row: all {labels.n_frames} rows{across} have every x "
        f"and y cell empty, so there is nothing to train on; label some frames (is this the "
        f"right table?)",
        "labels-no-coordinates",
    )


def _check_rows(scan: ProjectScan) -> None:
    assert scan.labels is not None
    labels = scan.labels
    _check_duplicates(scan)
    if not labels.visible.any():
        return  # _check_any_coordinates said it; per-row and per-keypoint notes add nothing
    _check_empty_rows(scan)
    coords = labels.coords
    for i in range(labels.n_frames):
        size = scan.image_sizes[i] if i < len(scan.image_sizes) else None
        size = size or scan.image_size
        if size is None:
            continue
        height, width = size
        x, y = coords[i, :, 0], coords[i, :, 1]
        # NaN compares False: missing keypoints are never outside
        outside = (x < 0) | (x > width) | (y < 0) | (y > height)
        for k in np.nonzero(outside)[0]:
            src = scan.rows[i]
            scan.add(
                "error",
                src.file,
                src.where,
                f"keypoint {labels.keypoints[k]} at (x={_num(x[k])}, y={_num(y[k])}) is outside "
                f"the {_wxh(size)} (width x height) image {labels.frames[i]}",
                "coord-outside-image",
            )
    _check_mostly_missing(scan)


def _check_empty_rows(scan: ProjectScan) -> None:
    """Rows that label no keypoint: one warning per label file, listing the rows."""
    assert scan.labels is not None
    empty = np.flatnonzero(~scan.labels.visible.any(axis=1))
    by_file: dict[str, list[int]] = {}
    for i in empty.tolist():
        by_file.setdefault(scan.rows[i].file, []).append(scan.rows[i].row)
    for file, rows in by_file.items():
        if len(rows) == 1:
            where = f"row {rows[0]}"
            message = (
                "no keypoint is labeled in this row (every x and y cell is empty): it gives "
                "the supervised loss nothing to learn from; label it or delete the row"
            )
        else:
            listed = [str(r) for r in rows[:MAX_ROWS_LISTED]]
            if len(rows) > MAX_ROWS_LISTED:
                listed.append(f"{len(rows) - MAX_ROWS_LISTED} more")
            where = None
            message = (
                f"{len(rows)} rows label no keypoint (every x and y cell is empty): rows "
                f"{_and(listed)}; they give the supervised loss nothing to learn from; label "
                "them or delete the rows"
            )
        scan.add("warning", file, where, message, "labels-empty-row")


def _check_duplicates(scan: ProjectScan) -> None:
    assert scan.labels is not None
    by_frame: dict[str, list[int]] = {}
    for i, frame in enumerate(scan.labels.frames.tolist()):
        by_frame.setdefault(frame, []).append(i)
    for frame, idx in by_frame.items():
        if len(idx) < 2:
            continue
        srcs = [scan.rows[i] for i in idx]
        if len({s.file for s in srcs}) == 1:
            rows = "rows " + _and([str(s.row) for s in srcs])
        else:
            rows = _and([f"{s.file} row {s.row}" for s in srcs])
        times = "twice" if len(idx) == 2 else f"{len(idx)} times"
        scan.add(
            "error",
            srcs[0].file,
            srcs[0].where,
            f"image {frame} is labeled {times} ({rows}); keep one row",
            "labels-duplicate-row",
        )


def _check_mostly_missing(scan: ProjectScan) -> None:
    assert scan.labels is not None
    labels = scan.labels
    n = labels.n_frames
    missing = (~labels.visible).sum(axis=0)
    file = _label_source_name(scan) if len(scan.label_files) == 1 else LABELED_DATA_DIR
    for k, n_missing in enumerate(missing.tolist()):
        if n_missing == n:
            message = f"never labeled (missing in all {n} labeled frames)"
        elif n_missing > MOSTLY_MISSING_FRACTION * n:
            message = (
                f"missing in {n_missing} of {n} labeled frames ({100 * n_missing / n:.0f}%); "
                "the model will learn it poorly"
            )
        else:
            continue
        scan.add(
            "warning", file, f"keypoint {labels.keypoints[k]}", message, "keypoint-mostly-missing"
        )


# --- videos -----------------------------------------------------------------------------------


def find_videos(root: Path) -> list[Path]:
    """``videos/*.mp4|avi|mov|mkv`` sorted by name, skipping hidden files (macOS ``._x.mp4``)."""
    folder = root / VIDEOS_DIR
    if not folder.is_dir():
        return []
    return videos_in(folder)


def _scan_videos(scan: ProjectScan) -> None:
    folder = scan.root / VIDEOS_DIR
    if not folder.is_dir():
        scan.add(
            "warning",
            f"{VIDEOS_DIR}/",
            None,
            "no videos folder: supervised training works, semi-supervised training and "
            "unlabeled-frame losses need videos/*.mp4",
            "videos-missing",
        )
        return
    scan.video_paths = find_videos(scan.root)
    if not scan.video_paths:
        scan.add(
            "warning",
            f"{VIDEOS_DIR}/",
            None,
            f"no videos ({', '.join(VIDEO_SUFFIXES)}): semi-supervised training needs some",
            "videos-missing",
        )
        return
    for path in scan.video_paths:
        try:
            info = probe_video(path)
        except Exception as exc:  # a corrupt video is a finding, whatever the demuxer raises
            why = strip_path_prefix(_short(exc), path, scan.root)
            scan.add("error", path, None, f"cannot be opened: {why}", "video-unreadable")
            continue
        if info.n_frames <= 0:
            scan.add("error", path, None, "the video reports 0 frames", "video-empty")
            continue
        scan.videos.append(info)
        if scan.image_size is not None and (info.height, info.width) != scan.image_size:
            scan.add(
                "warning",
                path,
                None,
                f"frames are {info.width}x{info.height} but labeled images are "
                f"{_wxh(scan.image_size)} (width x height); predictions on this video will "
                "be at a different scale than the labels",
                "video-size-mismatch",
            )
        if not info.fps or info.fps <= 0:
            scan.add("warning", path, None, f"fps is {info.fps}", "video-fps")


# --- helpers ----------------------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def strip_path_prefix(message: str, path: Path, root: Path) -> str:
    """Drop a leading 'PATH: ' (or 'PATH ') from a message, as Problem.file names it already."""
    for prefix in (str(path), _rel(path, root), path.name):
        if message.startswith(prefix):
            rest = message[len(prefix) :].lstrip(":").strip()
            return rest or message
    return message


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _wxh(size: tuple[int, int]) -> str:
    height, width = size
    return f"{width}x{height}"


def _num(v: float) -> str:
    return "missing" if np.isnan(v) else f"{v:g}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
