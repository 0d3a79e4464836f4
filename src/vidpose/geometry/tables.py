"""Per-view 2D pose tables -> one 3D table (what ``vidpose triangulate`` runs).

Each view's predictions of one session (any format :func:`vidpose.io.read_poses` reads) are
checked against the others (the same keypoints, the same frames), triangulated with
:func:`~vidpose.geometry.triangulate` (lens undone, views weighted by their likelihood, views
below ``min_confidence`` left out, outlier views dropped) and written as a
:mod:`vidpose.io.points3d` table. An optional ``smoother`` (e.g.
:func:`vidpose.smooth.smooth_points_3d`) refines the 3D trajectories; the reprojection errors
written are then the smoothed points' in the views the triangulation used.

:class:`TriangulationSummary` says how well the views agree: the median reprojection error,
the share of keypoint-frames whose views disagree by more than ``disagree_px`` before outliers
are dropped (the largest reprojection error of a point solved from every usable view), the
share seen by fewer than 2 views, and per view the share of its observations dropped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from vidpose.errors import ConfigError, LabelsError
from vidpose.geometry.calibration import Calibration, read_calibration
from vidpose.geometry.triangulate import MIN_VIEWS, triangulate
from vidpose.io import Poses, read_poses
from vidpose.io.points3d import VIEW_SEPARATOR, Points3D, write_points_3d

DISAGREE_PX = 10.0
"""Views whose reprojections are further apart than this disagree (the summary's figure)."""
OUTLIER_PX = 20.0
"""Default of ``outlier_px``: a view reprojecting further than this is dropped (px)."""
MIN_CONFIDENCE = 0.5
"""Default of ``min_confidence``: 2D points less likely than this are not triangulated."""

Smoother = Callable[[Points3D], Points3D]
TableSource = str | os.PathLike | Poses


@dataclass(frozen=True)
class TriangulationSummary:
    """How a triangulation went (fractions in [0, 1]; NaN where nothing was counted).

    Attributes:
        keypoint_frames: frames x keypoints.
        triangulated: share of keypoint-frames with a 3D point.
        median_error_px: median reprojection error of the points written, px.
        disagree: share of keypoint-frames seen by at least 2 views whose views disagree by
            more than ``disagree_px`` before outlier removal.
        few_views: share of keypoint-frames seen by fewer than 2 usable views.
        dropped: per view, the share of its usable observations dropped as outliers.
        disagree_px: the threshold of ``disagree``, px.
    """

    keypoint_frames: int
    triangulated: float
    median_error_px: float
    disagree: float
    few_views: float
    dropped: dict[str, float]
    disagree_px: float = DISAGREE_PX

    def lines(self) -> list[str]:
        """The summary as a few lines of text."""
        dropped = ", ".join(f"{v} {_pct(f)}" for v, f in self.dropped.items())
        return [
            f"triangulated {_pct(self.triangulated)} of {self.keypoint_frames} keypoint-frames; "
            f"median reprojection error {self.median_error_px:.2f} px",
            f"views disagree by > {self.disagree_px:g} px before outlier removal: "
            f"{_pct(self.disagree)} of keypoint-frames seen by >= 2 views",
            f"seen by fewer than 2 views: {_pct(self.few_views)} of keypoint-frames",
            f"outliers dropped (share of each view's observations): {dropped}",
        ]


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f}%"


@dataclass(frozen=True)
class TableTriangulation:
    """What :func:`triangulate_tables` computed.

    Attributes:
        points: the table written (smoothed when a smoother was given).
        raw: the triangulation before smoothing (``points`` itself without a smoother).
        summary: how well the views agreed (:class:`TriangulationSummary`).
        spread_px: (N, K) how far the views disagree before outlier removal: the largest
            reprojection error of the point solved from every usable view, px; NaN where fewer
            than 2 views are usable.
        observed_px: (V, N, K, 2) each view's 2D points, px, views in ``points.views`` order.
        confidence: (V, N, K) their weights (likelihood; 1 where a table has none).
    """

    points: Points3D
    raw: Points3D
    summary: TriangulationSummary
    spread_px: np.ndarray
    observed_px: np.ndarray
    confidence: np.ndarray


def reprojection_error_px(
    calibration: Calibration, points: np.ndarray, observed_px: np.ndarray, used: np.ndarray
) -> np.ndarray:
    """Mean distance, over the views used, between points and their observations.

    Args:
        calibration: V cameras, in the order of ``observed_px``.
        points: (N, K, 3) world points.
        observed_px: (V, N, K, 2) pixels.
        used: (V, N, K) bool, the views to average over.

    Returns:
        (N, K) px; NaN where no view is used or the point is missing.
    """
    dist = np.stack(
        [
            np.linalg.norm(cam.project(points) - observed_px[v], axis=-1)
            for v, cam in enumerate(calibration)
        ]
    )
    with np.errstate(invalid="ignore"):
        return np.where(used, dist, 0.0).sum(0) / used.sum(0)


def _load_calibration(calibration: Calibration | str | os.PathLike) -> Calibration:
    return calibration if isinstance(calibration, Calibration) else read_calibration(calibration)


def _where(view: str, source: TableSource) -> str:
    return f"view {view}'s table" if isinstance(source, Poses) else str(source)


def _aligned(sources: Mapping[str, TableSource]) -> tuple[Poses, np.ndarray, np.ndarray]:
    """The first view's table, and every view's (V, N, K, 2) points and (V, N, K) likelihoods
    in its keypoint order; LabelsError (both files named) when keypoints or frames differ."""
    tables = {
        view: src if isinstance(src, Poses) else read_poses(src) for view, src in sources.items()
    }
    for view, table in tables.items():
        if table.n_frames == 0:
            raise LabelsError(f"{_where(view, sources[view])}: no rows; expected predictions")
        if table.frames.dtype.kind not in "iu":
            raise LabelsError(
                f"{_where(view, sources[view])}: rows are images ({table.frames[0]}), not video "
                "frames; triangulate takes predictions of synchronized videos"
            )
    (ref_view, ref), *_ = tables.items()
    ref_where = _where(ref_view, sources[ref_view])
    coords, likelihood = [], []
    for view, table in tables.items():
        where = _where(view, sources[view])
        missing = [k for k in ref.keypoints if k not in table.keypoints]
        extra = [k for k in table.keypoints if k not in ref.keypoints]
        if missing or extra:
            raise LabelsError(
                f"{where}: keypoints differ from {ref_where} (view {ref_view}): missing "
                f"{missing}, not there {extra}; every view's table has the same keypoints"
            )
        if table.n_frames != ref.n_frames:
            raise LabelsError(
                f"{where}: {table.n_frames} frames but {ref_where} (view {ref_view}) has "
                f"{ref.n_frames}; the views' tables are of one session's synchronized videos"
            )
        if not np.array_equal(table.frames, ref.frames):
            i = int(np.argmax(table.frames.astype(object) != ref.frames.astype(object)))
            raise LabelsError(
                f"{where} row {i + 1}: frame {table.frames[i]} but {ref_where} (view "
                f"{ref_view}) has frame {ref.frames[i]}; the views' tables list the same frames"
            )
        order = table.keypoint_index(ref.keypoints)
        coords.append(table.coords[:, order])
        likelihood.append(table.likelihood[:, order])
    return ref, np.stack(coords), np.stack(likelihood)


def triangulate_tables(
    calibration: Calibration | str | os.PathLike,
    tables: Mapping[str, TableSource],
    out: str | os.PathLike | None = None,
    *,
    outlier_px: float | None = OUTLIER_PX,
    min_confidence: float = MIN_CONFIDENCE,
    units: str | None = None,
    smoother: Smoother | None = None,
    disagree_px: float = DISAGREE_PX,
) -> TableTriangulation:
    """Triangulate one session's per-view 2D predictions into a 3D table.

    Args:
        calibration: the cameras, or their ``calibration.toml``.
        tables: view (camera) name -> that view's predictions (a path or a :class:`Poses`); at
            least 2 views, each a camera of ``calibration``.
        out: where to write the 3D table (:func:`vidpose.io.write_points_3d`); None writes
            nothing.
        outlier_px: drop a view reprojecting further than this from its point while more than
            2 views remain, px; None keeps every usable view.
        min_confidence: leave out 2D points whose likelihood is below this.
        units: the world units recorded in the table; default the calibration's metadata
            ``units`` (None when it has none).
        smoother: applied to the triangulated table, e.g. :func:`vidpose.smooth.smooth_points_3d`
            (returns a table of the same frames, keypoints and views).
        disagree_px: the summary's disagreement threshold, px.

    Raises:
        ConfigError: fewer than 2 views, or a view that is not a camera of the calibration.
        LabelsError: a table is unreadable, or the tables' keypoints or frames differ (the
            files are named).
    """
    calibration = _load_calibration(calibration)
    if len(tables) < MIN_VIEWS:
        raise ConfigError(
            f"triangulation needs the tables of at least {MIN_VIEWS} views, got {list(tables)}"
        )
    for view in tables:
        calibration.index(view)  # ConfigError naming the cameras
    bad = [v for v in tables if VIEW_SEPARATOR in v]
    if bad:
        raise ConfigError(f"camera names {bad} contain {VIEW_SEPARATOR!r}; rename them")
    views = [name for name in calibration.names if name in tables]
    cameras = calibration.select(views)
    ref, observed, likelihood = _aligned({v: tables[v] for v in views})
    confidence = np.where(np.isnan(likelihood), 1.0, likelihood)

    tri = triangulate(
        cameras, observed, confidence, outlier_px=outlier_px, min_confidence=min_confidence
    )
    every = triangulate(
        cameras, observed, confidence, outlier_px=None, min_confidence=min_confidence
    )
    if units is None and isinstance(calibration.metadata.get("units"), str):
        units = calibration.metadata["units"]
    raw = Points3D(
        points=tri.points,
        keypoints=list(ref.keypoints),
        frames=ref.frames,
        views=views,
        error_px=tri.error_px,
        views_used=np.moveaxis(tri.used, 0, -1),
        units=units,
    )
    points = raw
    if smoother is not None:
        smoothed = smoother(raw)
        points = Points3D(
            points=smoothed.points,
            keypoints=raw.keypoints,
            frames=raw.frames,
            views=views,
            error_px=reprojection_error_px(cameras, smoothed.points, observed, tri.used),
            views_used=raw.views_used,
            units=units,
        )
    usable = np.isfinite(observed).all(-1) & (confidence >= min_confidence) & (confidence > 0)
    solved = every.used.any(0)
    spread = np.where(every.used, np.nan_to_num(every.view_error_px, nan=np.inf), -np.inf).max(0)
    spread[~solved] = np.nan
    summary = _summarize(points, tri.used, every.used, spread, usable, disagree_px)
    if out is not None:
        write_points_3d(points, out)
    return TableTriangulation(points, raw, summary, spread, observed, confidence)


def _summarize(
    points: Points3D,
    used: np.ndarray,
    used_all: np.ndarray,
    spread_px: np.ndarray,
    usable: np.ndarray,
    disagree_px: float,
) -> TriangulationSummary:
    """The summary; arrays (V, N, K): views used robustly, used without outlier removal, and
    usable observations; ``spread_px`` (N, K) as in :class:`TableTriangulation`."""
    has = np.isfinite(points.points).all(-1)
    solved = np.isfinite(spread_px)
    error = points.error_px[np.isfinite(points.error_px)]
    dropped = {}
    for v, view in enumerate(points.views):
        n = used_all[v].sum()
        dropped[view] = float((used_all[v] & ~used[v]).sum() / n) if n else math.nan
    return TriangulationSummary(
        keypoint_frames=int(has.size),
        triangulated=float(has.mean()) if has.size else math.nan,
        median_error_px=float(np.median(error)) if error.size else math.nan,
        disagree=float((spread_px[solved] > disagree_px).mean()) if solved.any() else math.nan,
        few_views=float((usable.sum(0) < MIN_VIEWS).mean()) if has.size else math.nan,
        dropped=dropped,
        disagree_px=disagree_px,
    )
