"""The 3D sections of ``vidpose evaluate`` for a multi-camera model (views and a calibration).

**Labeled frames.** A multi-camera project's label rows are every view's rows
(``Project.cameras``: ``views``, ``view_of_row`` and ``group_of_row``, rows of one labeled
instant sharing a group). Every instant with a row in each view is triangulated twice with
the model's calibration: the labels (every labeled view, all trusted) and the model's
predictions, as ``vidpose predict`` triangulates them (views below ``min_confidence`` left
out, outlier views dropped). Reported per split: the 3D error (the distance between the two
points, world units), the predictions' reprojection error (px: how well the views agree), and
the 2D error of the triangulated prediction reprojected into each view beside the raw 2D
error on the same points (what triangulating gains or costs in each camera's pixels); a
figure of the held-out instants with the largest 3D error, prediction over label.

**Video sessions.** The prediction tables of one session's views (``<session>_<view>``) are
shown in 3D: the 3D table ``vidpose predict`` wrote beside them when it is at least as new as
every one of them, else their triangulation here (the same defaults); how well the views
agreed, and the trajectories (:func:`~vidpose.viz.plots3d.plot_points_3d`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vidpose.errors import ProjectError, VidposeError
from vidpose.geometry import Calibration, triangulate, triangulate_tables
from vidpose.io.points3d import MAGIC, Points3D, read_points_3d
from vidpose.io.poses import Poses
from vidpose.predict.sessions import ModelCameras, Settings3D, group_sessions, points3d_name
from vidpose.viz.plots3d import plot_points_3d, plot_pose_pairs_3d
from vidpose.viz.report import Section

WORST_INSTANTS = 4
"""Held-out labeled instants drawn in 3D."""


def is_points3d_table(path: Path) -> bool:
    """Whether ``path`` is a 3D table (:mod:`vidpose.io.points3d`), by its first line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(MAGIC)
    except OSError:
        return False


# -- labeled frames ----------------------------------------------------------------------------


@dataclass
class Labeled3D:
    """The labeled instants of a multi-camera project, triangulated (G instants, V views, K
    keypoints).

    Attributes:
        views: the V views, in the calibration's order.
        rows: (G, V) the label row of each instant in each view.
        split: (G,) each instant's split (of its first view's row).
        predicted: (G, K, 3) the predictions triangulated; NaN where fewer than 2 views count.
        labels: (G, K, 3) the labels triangulated; NaN where fewer than 2 views are labeled.
        error: (G, K) distance between the two, world units; NaN where either is missing.
        reprojection_px: (G, K) the predictions' mean reprojection error over the views used.
        error_2d: (V, G, K) raw 2D prediction error against the label, px, where ``error``
            is defined and the view is labeled.
        error_2d_triangulated: (V, G, K) the same for the triangulated prediction reprojected.
        incomplete: labeled instants without a row in every view (left out).
        units: the world units (the calibration's), or None.
    """

    views: list[str]
    rows: np.ndarray
    split: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray
    error: np.ndarray
    reprojection_px: np.ndarray
    error_2d: np.ndarray
    error_2d_triangulated: np.ndarray
    incomplete: int
    units: str | None


def instant_rows(view_of_row: np.ndarray, group_of_row: np.ndarray, n_views: int) -> np.ndarray:
    """(G, V) the row of each labeled instant in each view, for the instants with exactly one
    row in every view, in group order.

    Raises:
        ProjectError: the arrays differ in length or name a view outside ``0..n_views-1``.
    """
    view_of_row = np.asarray(view_of_row, dtype=np.int64)
    group_of_row = np.asarray(group_of_row, dtype=np.int64)
    if view_of_row.shape != group_of_row.shape or view_of_row.ndim != 1:
        raise ProjectError(
            f"the project's camera layout is inconsistent: view_of_row {view_of_row.shape} "
            f"and group_of_row {group_of_row.shape} must be (N,) alike"
        )
    if len(view_of_row) == 0:
        return np.zeros((0, n_views), dtype=np.int64)
    if view_of_row.min() < 0 or view_of_row.max() >= n_views or group_of_row.min() < 0:
        raise ProjectError(
            f"the project's camera layout is inconsistent: views {sorted(set(view_of_row))} "
            f"for {n_views} cameras"
        )
    n_groups = int(group_of_row.max()) + 1
    idx = np.full((n_groups, n_views), -1, dtype=np.int64)
    count = np.zeros((n_groups, n_views), dtype=np.int64)
    np.add.at(count, (group_of_row, view_of_row), 1)
    idx[group_of_row, view_of_row] = np.arange(len(view_of_row))
    present = np.isin(np.arange(n_groups), group_of_row)
    complete = (count == 1).all(axis=1) & present
    return idx[complete]


def triangulate_labeled(
    calibration: Calibration,
    view_of_row: np.ndarray,
    group_of_row: np.ndarray,
    predicted_px: np.ndarray,
    confidence: np.ndarray,
    labels_px: np.ndarray,
    split: np.ndarray,
    *,
    settings: Settings3D | None = None,
) -> Labeled3D:
    """Triangulate the labeled instants (module docstring).

    Args:
        calibration: the cameras; view ``v`` of ``view_of_row`` is ``calibration`` camera v.
        view_of_row, group_of_row: (N,) each label row's view and labeled instant.
        predicted_px: (N, K, 2) the model's prediction on each row's image; NaN where none.
        confidence: (N, K) their likelihoods.
        labels_px: (N, K, 2) the labels; NaN where not labeled.
        split: (N,) each row's split ("train", "val", "test").
        settings: how predictions are triangulated (``vidpose predict``'s defaults).
    """
    settings = settings or Settings3D()
    n_views = len(calibration)
    groups = len(np.unique(np.asarray(group_of_row))) if len(group_of_row) else 0
    rows = instant_rows(view_of_row, group_of_row, n_views)  # (G, V)
    pred = np.moveaxis(np.asarray(predicted_px, float)[rows], 1, 0)  # (V, G, K, 2)
    conf = np.moveaxis(np.asarray(confidence, float)[rows], 1, 0)
    conf = np.where(np.isnan(conf), 1.0, conf)
    lab = np.moveaxis(np.asarray(labels_px, float)[rows], 1, 0)
    tri_pred = triangulate(
        calibration,
        pred,
        conf,
        outlier_px=settings.outlier_px,
        min_confidence=settings.min_confidence,
    )
    tri_lab = triangulate(calibration, lab, None, outlier_px=None)
    error = np.linalg.norm(tri_pred.points - tri_lab.points, axis=-1)
    has = np.isfinite(error)
    reprojected = np.stack([cam.project(tri_pred.points) for cam in calibration])  # (V, G, K, 2)
    labeled = np.isfinite(lab).all(-1) & has[None]
    raw = np.where(labeled, np.linalg.norm(pred - lab, axis=-1), np.nan)
    tri2d = np.where(labeled, np.linalg.norm(reprojected - lab, axis=-1), np.nan)
    units = calibration.metadata.get("units")
    return Labeled3D(
        views=list(calibration.names),
        rows=rows,
        split=np.asarray(split, dtype=object)[rows[:, 0]] if len(rows) else np.zeros(0, object),
        predicted=tri_pred.points,
        labels=tri_lab.points,
        error=error,
        reprojection_px=np.where(has, tri_pred.error_px, np.nan),
        error_2d=raw,
        error_2d_triangulated=tri2d,
        incomplete=groups - len(rows),
        units=units if isinstance(units, str) else None,
    )


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _median(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def _pct(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, 95)) if x.size else float("nan")


def _num(v: float, unit: str) -> str:
    return "–" if not np.isfinite(v) else f"{v:.2f}{unit}"


def _calibration_for(
    layout: Any, cameras: ModelCameras
) -> tuple[Calibration | None, list[str], str | None]:
    """(cameras in the layout's view order, those views, why there are none)."""
    views = list(getattr(layout, "views", None) or [])
    if len(views) < 2:
        return None, views, "the project's camera layout names fewer than 2 views"
    calibration = cameras.calibration or getattr(layout, "calibration", None)
    if calibration is None:
        return None, views, "neither the model nor the project has a calibration"
    try:
        return calibration.select(views), views, None
    except VidposeError as exc:
        return None, views, f"the calibration does not match the project's views ({exc})"


def labeled_3d_section(
    project: Any,
    pred_coords: np.ndarray,
    pred_confidence: np.ndarray | None,
    project_rows: Sequence[int],
    split: np.ndarray,
    cameras: ModelCameras,
    skeleton: Sequence[tuple[str, str]] | None,
    add_figure: Callable[..., Any],
    who: str,
) -> Section | None:
    """The labeled frames in 3D for a multi-camera project; None for a single-camera one.

    Args:
        project: the loaded project; its ``cameras`` (views, view_of_row, group_of_row,
            calibration) say which label row is which camera's image of which instant.
        pred_coords, pred_confidence: (M, K, 2) and (M, K) labeled predictions, keypoints in
            the labels' order; row ``i`` is the image of label row ``project_rows[i]``.
        project_rows: the label row of each prediction row.
        split: each prediction row's split.
        cameras: the model's views and calibration (preferred to the project's).
        skeleton: edges drawn in the figure.
        add_figure: ``(figure, name, caption) -> report figure`` (the evaluation's collector).
        who: whose predictions they are, for the note.
    """
    layout = getattr(project, "cameras", None)
    if layout is None:
        return None
    sec = Section("Labeled frames in 3D", "labeled-3d")
    calibration, views, why = _calibration_for(layout, cameras)
    if calibration is None:
        sec.notes.append(f"No 3D evaluation: {why}.")
        return sec
    labels = project.labels
    n = labels.n_frames
    k = labels.n_keypoints
    predicted = np.full((n, k, 2), np.nan)
    confidence = np.full((n, k), np.nan)
    row_split = np.full(n, "", dtype=object)
    rows = np.asarray(project_rows, dtype=np.int64)
    predicted[rows] = pred_coords
    confidence[rows] = 1.0 if pred_confidence is None else pred_confidence
    row_split[rows] = split
    try:
        res = triangulate_labeled(
            calibration,
            layout.view_of_row,
            layout.group_of_row,
            predicted,
            confidence,
            labels.coords,
            row_split,
        )
    except (VidposeError, AttributeError, IndexError, ValueError) as exc:
        sec.notes.append(f"No 3D evaluation: the project's camera layout cannot be used ({exc}).")
        return sec
    if not len(res.rows):
        sec.notes.append("No labeled instant has a label row in every view: nothing to show.")
        return sec
    unit = f" {res.units}" if res.units else ""
    kp = list(labels.keypoints)
    for name in ("train", "val", "test"):
        g = res.split == name
        if g.any():
            sec.kpis.append(
                (_num(_mean(res.error[g]), unit), f"{name} mean 3D error ({int(g.sum())} instants)")
            )
    held = res.split == "test"
    if not held.any():
        held = res.split == "val"
    which = "held-out" if held.any() else "all"
    if not held.any():
        held = np.ones(len(res.rows), dtype=bool)
    sec.kpis += [
        (_num(_median(res.reprojection_px[held]), " px"), f"{which} median reprojection error"),
        (
            f"{_num(_median(res.error_2d[:, held]), '')} → "
            f"{_num(_median(res.error_2d_triangulated[:, held]), ' px')}",
            f"{which} median 2D error: raw → triangulated and reprojected",
        ),
        (
            f"{100 * float(np.isfinite(res.predicted[held]).all(-1).mean()):.0f}%",
            f"{which} keypoint-instants triangulated",
        ),
    ]
    settings = Settings3D()
    sec.notes.append(
        f"{who.capitalize()}'s predictions on the labeled frames of every view "
        f"({', '.join(res.views)}), triangulated as `vidpose predict` does (likelihood below "
        f"{settings.min_confidence:g} left out, views reprojecting beyond "
        f"{settings.outlier_px:g} px dropped), against the labels triangulated from every "
        f"labeled view. 3D error in the calibration's units ({res.units or 'not given'}); "
        "reprojection error: how far the views used are from the triangulated point (px); "
        "2D error: each view's raw prediction and the triangulated point reprojected, against "
        "that view's label, on the same keypoints."
    )
    if not np.isfinite(res.predicted[held]).all(-1).any():
        sec.notes.append(
            f"No {which} keypoint was predicted with a likelihood of at least "
            f"{settings.min_confidence:g} in 2 views: nothing to triangulate (an undertrained "
            "model, or one whose likelihoods run low)."
        )
    if res.incomplete:
        sec.notes.append(
            f"{res.incomplete} labeled instant(s) without a label row in every view are left out."
        )
    sec.items.append("3D error per keypoint")
    sec.items.append(
        pd.DataFrame(
            {
                "keypoint": kp,
                f"{which} median 3D error": [_median(res.error[held, k]) for k in range(len(kp))],
                f"{which} p95 3D error": [_pct(res.error[held, k]) for k in range(len(kp))],
                "median reprojection px": [
                    _median(res.reprojection_px[held, k]) for k in range(len(kp))
                ],
                "raw 2D median px": [_median(res.error_2d[:, held, k]) for k in range(len(kp))],
                "triangulated 2D median px": [
                    _median(res.error_2d_triangulated[:, held, k]) for k in range(len(kp))
                ],
            }
        )
    )
    candidates = np.flatnonzero(held & np.isfinite(res.error).any(axis=1))
    if candidates.size:
        with np.errstate(all="ignore"):
            worst = candidates[np.argsort(-np.nanmean(res.error[candidates], axis=1))]
        worst = worst[:WORST_INSTANTS]
        titles = [
            f"{_instant_name(project, res.rows[g, 0], views)}\n"
            f"mean 3D error {_mean(res.error[g]):.2f}{unit}"
            for g in worst
        ]
        sec.items.append(
            add_figure(
                plot_pose_pairs_3d(
                    res.predicted[worst], res.labels[worst], kp, titles, skeleton, res.units
                ),
                "labeled_3d_worst",
                f"The {which} labeled instants with the largest mean 3D error: the triangulated "
                "prediction (coloured circles, grey skeleton) over the triangulated labels "
                "(black crosses, dashed skeleton), each keypoint's two points joined in red.",
            )
        )
    return sec


def _instant_name(project: Any, row: int, views: list[str]) -> str:
    """``<session> frame <n>`` of a label row (its image path), else the path."""
    from vidpose.project.multicamera import frame_key

    image = str(project.labels.frames[row])
    key = frame_key(image, views)
    if key is None:
        return image
    _, session, frame = key
    return f"{session or 'session'} frame {frame}"


# -- video sessions ----------------------------------------------------------------------------


def session_sections(
    tables: Mapping[str, tuple[Poses, Path]],
    cameras: ModelCameras,
    skeleton: Sequence[tuple[str, str]] | None,
    add_figure: Callable[..., Any],
    log: Callable[[str], object] = lambda _msg: None,
) -> list[Section]:
    """One section per session of the model's views among ``tables`` (stem -> (its
    predictions, the table file)) with at least 2 views; [] without views or calibration."""
    if not cameras.triangulates:
        return []
    plan = group_sessions({stem: stem for stem in tables}, cameras.views)
    out = []
    for session, by_view in plan.sessions.items():
        if len(by_view) < 2:
            continue
        views = [v for v in cameras.views if v in by_view]
        sec = Section(
            f"Session {session or '(bare view names)'} in 3D", f"session-3d-{session or 'x'}"
        )
        missing = [v for v in cameras.views if v not in by_view]
        if missing:
            sec.notes.append(f"No predictions of view(s) {', '.join(missing)}: 3D from the others.")
        try:
            points, source, summary = _session_points(
                session, {v: tables[by_view[v]] for v in views}, cameras
            )
        except VidposeError as exc:
            sec.notes.append(f"The views' predictions cannot be triangulated together: {exc}")
            out.append(sec)
            continue
        sec.kpis.append((f"{points.n_frames:,}", "frames"))
        has = np.isfinite(points.points).all(-1)
        sec.kpis.append((f"{100 * float(has.mean()):.1f}%", "keypoint-frames in 3D"))
        sec.kpis.append((_num(_median(points.error_px), " px"), "median reprojection error"))
        if summary is not None:
            sec.kpis.append(
                (
                    f"{100 * summary.disagree:.1f}%" if np.isfinite(summary.disagree) else "–",
                    f"views disagree by > {summary.disagree_px:g} px",
                )
            )
            sec.kpis.append(
                (
                    f"{100 * summary.few_views:.1f}%" if np.isfinite(summary.few_views) else "–",
                    "seen by fewer than 2 views",
                )
            )
        sec.notes.append(source)
        sec.items.append(
            add_figure(
                plot_points_3d(points, skeleton, title=f"session {session}" if session else None),
                f"session_{session or 'x'}_3d",
                "Left: a few evenly spaced 3D poses of the session, darker for later frames "
                "(frame numbers beside them). Right: each keypoint's x, y and z over the "
                "frames: smooth traces without jumps are what agreeing views give; gaps are "
                "frames where fewer than 2 views saw the keypoint confidently.",
            )
        )
        log(f"session {session}: {points.n_frames} frames in 3D ({', '.join(views)})")
        out.append(sec)
    return out


def _session_points(
    session: str, tables: Mapping[str, tuple[Poses, Path]], cameras: ModelCameras
) -> tuple[Points3D, str, Any]:
    """(the session in 3D, where it came from, the triangulation's summary or None)."""
    folders = {path.parent for _, path in tables.values()}
    if len(folders) == 1:
        written = next(iter(folders)) / points3d_name(session)
        newest = max(path.stat().st_mtime_ns for _, path in tables.values())
        if written.is_file() and written.stat().st_mtime_ns >= newest:
            try:
                points = read_points_3d(written)
            except VidposeError:
                points = None
            if points is not None and set(points.views) == set(tables):
                return points, f"3D table: {written} (written by `vidpose predict`).", None
    assert cameras.calibration is not None
    settings = Settings3D()
    tri = triangulate_tables(
        cameras.calibration,
        {view: poses for view, (poses, _) in tables.items()},
        outlier_px=settings.outlier_px,
        min_confidence=settings.min_confidence,
    )
    source = (
        "Triangulated here from the views' prediction tables as `vidpose predict` does (no 3D "
        "table newer than them beside them); `vidpose predict` on the session's videos writes "
        f"{points3d_name(session)}."
    )
    return tri.points, source, tri.summary
