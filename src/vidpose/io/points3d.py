"""3D keypoint tables: triangulated predictions and 3D ground truth, one CSV layout.

A table written by :func:`write_points_3d`::

    # vidpose points3d {"units": "mm", "views": ["top", "side", "front"]}
    frame,nose_x,nose_y,nose_z,nose_error_px,nose_n_views,nose_views,ear_left_x,...
    0,12.5,-3.25,40.0,0.61,3,top+side+front,...
    1,12.75,-3.5,40.25,1.2,2,top+front,...
    2,nan,nan,nan,nan,0,,...

- The first line is metadata, a JSON object after ``# vidpose points3d``: ``units`` (the world
  units of the calibration, or null) and ``views`` (the cameras, in the calibration's order).
  pandas reads the rest with ``pandas.read_csv(path, comment="#")``.
- ``frame``: the video frame index.
- ``<kp>_x, <kp>_y, <kp>_z``: the world position, in ``units``; ``nan`` where there is none.
- Only in tables with views (triangulations): ``<kp>_error_px``, the mean reprojection error
  over the views used (px); ``<kp>_n_views``, how many views the point was solved from;
  ``<kp>_views``, their names joined by ``+`` (empty when none), in ``views`` order. A view
  left out was missing, below the confidence threshold or dropped as an outlier.

Ground truth (``vidpose synthesize --cameras``) has no views: ``frame`` and x, y, z per
keypoint. A file without the metadata line reads as ``units`` None, no views. Numbers are
written as the shortest text that reads back to the same float, so a table round-trips
exactly. Every malformed value is a :class:`~vidpose.errors.LabelsError` naming the file,
line and column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidpose._atomic import atomic_path
from vidpose.errors import LabelsError

MAGIC = "# vidpose points3d"
VIEW_SEPARATOR = "+"
_XYZ = ("x", "y", "z")
_MEASURED = ("error_px", "n_views", "views")


@dataclass(eq=False)
class Points3D:
    """3D positions of K keypoints over N frames, as triangulated from V views (or true).

    Attributes:
        points: (N, K, 3) float64 world (x, y, z) in ``units``; NaN where there is no point.
        keypoints: K keypoint names, unique.
        frames: (N,) int64 frame indices.
        views: V view (camera) names the points were triangulated from; empty for ground
            truth, which then has neither ``error_px`` nor ``views_used``.
        error_px: (N, K) float64 mean reprojection error over the views used, px; NaN where
            there is no point. All NaN when not given (with views).
        views_used: (N, K, V) bool, the views each point was solved from. All False when not
            given (with views).
        units: the world units (the calibration's), e.g. ``"mm"``; None when unknown.
    """

    points: np.ndarray
    keypoints: list[str]
    frames: np.ndarray
    views: list[str] = field(default_factory=list)
    error_px: np.ndarray | None = None
    views_used: np.ndarray | None = None
    units: str | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        self.keypoints = [str(k) for k in self.keypoints]
        self.views = [str(v) for v in self.views]
        if self.points.ndim != 3 or self.points.shape[2] != 3:
            raise ValueError(f"points must be (N, K, 3), got {self.points.shape}")
        n, k, _ = self.points.shape
        if len(self.keypoints) != k or len(set(self.keypoints)) != k:
            raise ValueError(f"expected {k} unique keypoint names, got {self.keypoints}")
        self.frames = np.asarray(self.frames)
        if self.frames.shape != (n,) or (n and self.frames.dtype.kind not in "iu"):
            raise ValueError(f"frames must be {n} integers, got {self.frames!r}")
        self.frames = self.frames.astype(np.int64)
        if len(set(self.views)) != len(self.views):
            raise ValueError(f"view names must be unique, got {self.views}")
        bad = [v for v in self.views if not v or VIEW_SEPARATOR in v]
        if bad:
            raise ValueError(f"view names must be non-empty, without {VIEW_SEPARATOR!r}: {bad}")
        if not self.views:
            if self.error_px is not None or self.views_used is not None:
                raise ValueError("error_px and views_used describe views: name them in views")
            return
        v = len(self.views)
        error = np.full((n, k), np.nan) if self.error_px is None else self.error_px
        used = np.zeros((n, k, v), dtype=bool) if self.views_used is None else self.views_used
        self.error_px = np.asarray(error, dtype=np.float64)
        self.views_used = np.asarray(used, dtype=bool)
        if self.error_px.shape != (n, k):
            raise ValueError(f"error_px must be ({n}, {k}), got {self.error_px.shape}")
        if self.views_used.shape != (n, k, v):
            raise ValueError(f"views_used must be ({n}, {k}, {v}), got {self.views_used.shape}")

    @property
    def n_frames(self) -> int:
        return self.points.shape[0]

    @property
    def n_views(self) -> np.ndarray:
        """(N, K) int64 number of views each point was solved from (0 without views)."""
        if self.views_used is None:
            return np.zeros(self.points.shape[:2], dtype=np.int64)
        return self.views_used.sum(axis=2).astype(np.int64)

    def equals(self, other: Points3D) -> bool:
        """Exact equality of every array (NaN equal to NaN), names and units."""
        if not isinstance(other, Points3D):
            return False
        if (self.keypoints, self.views, self.units) != (other.keypoints, other.views, other.units):
            return False
        pairs = [(self.points, other.points), (self.frames, other.frames)]
        if self.views:
            pairs += [(self.error_px, other.error_px), (self.views_used, other.views_used)]
        return all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            for a, b in pairs
        )

    def __repr__(self) -> str:
        views = f", views {self.views}" if self.views else ""
        return (
            f"Points3D({self.n_frames} frames x {len(self.keypoints)} keypoints"
            f"{views}, units={self.units!r})"
        )


def header(keypoints: Sequence[str], with_views: bool) -> list[str]:
    """The column names of a table of ``keypoints`` (with the measured columns or not)."""
    per = _XYZ + (_MEASURED if with_views else ())
    return ["frame"] + [f"{k}_{c}" for k in keypoints for c in per]


def _number(x: float) -> str:
    return repr(float(x))


def write_points_3d(points: Points3D, path: str | os.PathLike) -> None:
    """Write ``points`` in the layout of the module docstring, atomically."""
    with_views = bool(points.views)
    meta = json.dumps({"units": points.units, "views": points.views}, ensure_ascii=False)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        fh.write(f"{MAGIC} {meta}\n")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header(points.keypoints, with_views))
        n_views = points.n_views
        for t, frame in enumerate(points.frames.tolist()):
            row: list[object] = [frame]
            for k in range(len(points.keypoints)):
                row += [_number(x) for x in points.points[t, k]]
                if with_views:
                    used = points.views_used[t, k]
                    names = VIEW_SEPARATOR.join(v for v, u in zip(points.views, used) if u)
                    row += [_number(points.error_px[t, k]), int(n_views[t, k]), names]
            writer.writerow(row)


def _metadata(line: str, path: Path) -> tuple[str | None, list[str]]:
    try:
        meta = json.loads(line[len(MAGIC) :])
    except json.JSONDecodeError as exc:
        raise LabelsError(
            f"{path} line 1: metadata after {MAGIC!r} is not JSON ({exc.msg}); expected e.g. "
            '{"units": "mm", "views": ["top", "side"]}'
        ) from None
    units, views = (meta.get("units"), meta.get("views")) if isinstance(meta, dict) else (0, 0)
    ok_views = isinstance(views, list) and all(isinstance(v, str) and v for v in views)
    if not ok_views or not (units is None or isinstance(units, str)):
        raise LabelsError(
            f"{path} line 1: metadata must be an object with 'units' (a string or null) and "
            f"'views' (a list of names), got {line[len(MAGIC) :].strip()}"
        )
    if len(set(views)) != len(views) or any(VIEW_SEPARATOR in v for v in views):
        raise LabelsError(
            f"{path} line 1: view names must be unique and without {VIEW_SEPARATOR!r}, got {views}"
        )
    return units, views


def _keypoint_names(cols: list[str], with_views: bool, path: Path, line: int) -> list[str]:
    per = _XYZ + (_MEASURED if with_views else ())
    names = [c.removesuffix("_x") for c in cols[1 :: len(per)]]
    if cols[:1] != ["frame"] or not names or cols != header(names, with_views):
        what = ", ".join(f"<kp>_{c}" for c in per)
        raise LabelsError(
            f"{path} line {line}: expected 'frame' then '{what}' per keypoint, got {','.join(cols)}"
        )
    return names


def read_points_3d(path: str | os.PathLike) -> Points3D:
    """Read a table written by :func:`write_points_3d` (or a ground truth without metadata).

    Raises:
        LabelsError: the file is missing or empty, the metadata or header is not the layout of
            the module docstring, or a cell is malformed (file, line and column named).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LabelsError(f"{path}: not a UTF-8 text (CSV) file: {exc}") from None
    units, views, header_line = None, [], 1
    if text.startswith(MAGIC):
        meta, _, text = text.partition("\n")
        units, views = _metadata(meta.rstrip("\r"), path)
        header_line = 2
    reader = csv.reader(io.StringIO(text, newline=""))
    cols = next(reader, None)
    if cols is None:
        raise LabelsError(f"{path}: no header; expected 'frame,<kp>_x,<kp>_y,<kp>_z,...'")
    names = _keypoint_names(cols, bool(views), path, header_line)
    n_per = 6 if views else 3
    frames, values, used = [], [], []
    for row in reader:
        line = header_line - 1 + reader.line_num
        if not row:  # a blank line
            continue
        if len(row) != len(cols):
            raise LabelsError(f"{path} line {line}: {len(row)} cells, expected {len(cols)}")
        frames.append(_int(row[0], path, line, "frame"))
        for k, name in enumerate(names):
            cells = row[1 + k * n_per : 1 + (k + 1) * n_per]
            for c, cell in enumerate(cells[:4] if views else cells):
                values.append(_float(cell, path, line, cols[1 + k * n_per + c]))
            if views:
                used.append(_views(cells[5], _int(cells[4], path, line, f"{name}_n_views"), views))
                if used[-1] is None:
                    raise LabelsError(
                        f"{path} line {line}: column {name}_views {cells[5]!r} must name "
                        f"{cells[4]} of the views {views}, joined by {VIEW_SEPARATOR!r}"
                    )
    n, k = len(frames), len(names)
    table = np.array(values, dtype=np.float64).reshape(n, k, 4 if views else 3)
    return Points3D(
        points=table[..., :3],
        keypoints=names,
        frames=np.array(frames, dtype=np.int64),
        views=views,
        error_px=table[..., 3] if views else None,
        views_used=np.array(used, dtype=bool).reshape(n, k, len(views)) if views else None,
        units=units,
    )


def _float(cell: str, path: Path, line: int, column: str) -> float:
    if cell.strip() == "":
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise LabelsError(
            f"{path} line {line}: could not convert {cell!r} to a number (column {column})"
        ) from None


def _int(cell: str, path: Path, line: int, column: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise LabelsError(
            f"{path} line {line}: could not convert {cell!r} to an integer (column {column})"
        ) from None


def _views(cell: str, count: int, views: list[str]) -> list[bool] | None:
    """The views-used mask of a ``<kp>_views`` cell; None when it is not ``count`` of ``views``
    in their order."""
    names = cell.split(VIEW_SEPARATOR) if cell else []
    mask = [v in names for v in views]
    ordered = [v for v, m in zip(views, mask) if m]
    return mask if names == ordered and len(names) == count else None
