"""Figures of 3D trajectories (matplotlib, Agg canvas; no pyplot state, no torch).

:func:`plot_points_3d`: a few evenly spaced poses in 3D (skeleton edges when given) beside each
keypoint's x, y and z over time, in the keypoint colours of every vidpose figure and video.
:func:`write_points_3d_figure` writes it as a PNG, atomically (``vidpose triangulate
--figure``). :func:`plot_pose_pairs_3d`: predicted poses over true ones, one 3D panel each
(the labeled frames of ``vidpose evaluate``'s 3D section).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vidpose._atomic import atomic_write_bytes
from vidpose.errors import ProjectError
from vidpose.io.points3d import Points3D
from vidpose.viz.colors import keypoint_colors
from vidpose.viz.plots import figure_png

N_POSES = 5


def pose_frames(points: Points3D, n_poses: int = N_POSES) -> np.ndarray:
    """Row indices of up to ``n_poses`` evenly spaced frames that have any 3D point."""
    rows = np.flatnonzero(np.isfinite(points.points).all(axis=2).any(axis=1))
    if len(rows) <= n_poses:
        return rows
    return rows[np.round(np.linspace(0, len(rows) - 1, n_poses)).astype(int)]


def plot_points_3d(
    points: Points3D,
    skeleton: Sequence[tuple[str, str]] | None = None,
    n_poses: int = N_POSES,
    title: str | None = None,
) -> Figure:
    """Left: ``n_poses`` evenly spaced poses in 3D, darker for later frames; right: x, y and z
    of every keypoint against the frame index.

    Raises:
        ProjectError: a skeleton edge names a keypoint the table does not have.
    """
    index = {k: i for i, k in enumerate(points.keypoints)}
    unknown = sorted({k for edge in skeleton or [] for k in edge if k not in index})
    if unknown:
        raise ProjectError(
            f"skeleton keypoint(s) {unknown} not in the 3D table "
            f"(keypoints: {', '.join(points.keypoints)})"
        )
    edges = [(index[a], index[b]) for a, b in skeleton or []]
    colors = keypoint_colors(points.keypoints)
    unit = f" ({points.units})" if points.units else ""
    xyz = points.points

    fig = Figure(figsize=(12, 6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
    ax = left.add_subplot(projection="3d")
    rows = pose_frames(points, n_poses)
    shades = np.linspace(0.75, 0.15, max(len(rows), 1))
    for shade, row in zip(shades, rows):
        pose = xyz[row]
        for a, b in edges:
            ax.plot(*pose[[a, b]].T, color=str(shade), linewidth=1.5)
        ax.scatter(*pose.T, c=colors, s=18, depthshade=False)
        centre = np.nanmean(pose, axis=0)
        ax.text(*centre, f"  {points.frames[row]}", color=str(shade), fontsize=8)
    if len(rows):
        shown = xyz[rows].reshape(-1, 3)
        span = np.nanmax(shown, axis=0) - np.nanmin(shown, axis=0)
        ax.set_box_aspect(np.maximum(span, 1e-3 * max(span.max(), 1e-9)))  # equal units
    ax.set_xlabel("x" + unit)
    ax.set_ylabel("y" + unit)
    ax.set_zlabel("z" + unit)
    ax.set_title(f"poses at frames {', '.join(str(points.frames[r]) for r in rows)}", fontsize=9)

    axes = right.subplots(3, 1, sharex=True)
    for c, axis in enumerate(axes):
        for k, name in enumerate(points.keypoints):
            axis.plot(points.frames, xyz[:, k, c], color=colors[k], linewidth=1, label=name)
        axis.set_ylabel("xyz"[c] + unit)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("frame")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def plot_pose_pairs_3d(
    predicted: np.ndarray,
    truth: np.ndarray,
    keypoints: Sequence[str],
    titles: Sequence[str],
    skeleton: Sequence[tuple[str, str]] | None = None,
    units: str | None = None,
) -> Figure:
    """One 3D panel per pose: the predicted pose (keypoint colours, circles, skeleton in
    grey) over the true one (black crosses, dashed skeleton), each keypoint's two positions
    joined by a red line: its 3D error.

    Args:
        predicted, truth: (P, K, 3) world points; NaN where missing.
        keypoints: the K names (for colours and the skeleton).
        titles: P panel titles.
        skeleton: edges by keypoint name (unknown names are left out).
        units: the world units, for the axis labels.
    """
    predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
    index = {k: i for i, k in enumerate(keypoints)}
    edges = [(index[a], index[b]) for a, b in skeleton or [] if a in index and b in index]
    colors = keypoint_colors(list(keypoints))
    unit = f" ({units})" if units else ""
    n = max(len(predicted), 1)
    fig = Figure(figsize=(4.2 * n, 4.4), layout="constrained")
    for p in range(len(predicted)):
        ax = fig.add_subplot(1, n, p + 1, projection="3d")
        pred, true = predicted[p], truth[p]
        for a, b in edges:
            ax.plot(*true[[a, b]].T, color="black", linewidth=1, linestyle="--")
            ax.plot(*pred[[a, b]].T, color="0.5", linewidth=1.5)
        for k in range(len(keypoints)):
            if np.isfinite(pred[k]).all() and np.isfinite(true[k]).all():
                ax.plot(*np.stack([pred[k], true[k]]).T, color="red", linewidth=0.8)
        ax.scatter(*true.T, c="black", marker="x", s=20, depthshade=False)
        ax.scatter(*pred.T, c=colors, s=18, depthshade=False)
        both = np.concatenate([pred, true])
        both = both[np.isfinite(both).all(axis=1)]
        if len(both):
            span = both.max(axis=0) - both.min(axis=0)
            ax.set_box_aspect(np.maximum(span, 1e-3 * max(span.max(), 1e-9)))  # equal units
        ax.set_xlabel("x" + unit, fontsize=8)
        ax.set_ylabel("y" + unit, fontsize=8)
        ax.set_zlabel("z" + unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(titles[p], fontsize=9)
    return fig


def write_points_3d_figure(
    points: Points3D,
    path: str | Path,
    skeleton: Sequence[tuple[str, str]] | None = None,
    n_poses: int = N_POSES,
) -> Path:
    """Write :func:`plot_points_3d` as a PNG at ``path`` (atomically); returns the path."""
    path = Path(path)
    fig = plot_points_3d(points, skeleton, n_poses)
    atomic_write_bytes(path, figure_png(fig))
    return path
