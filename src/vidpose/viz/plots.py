"""Diagnostic figures (matplotlib, non-interactive Agg canvas; no pyplot state is touched).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`figure_png` renders it as
PNG bytes. Keypoint colours come from :mod:`vidpose.viz.colors`, so a keypoint has the
same colour here as in labeled videos.

Labeled frames: :func:`plot_keypoint_errors`, :func:`plot_error_vs_confidence`,
:func:`plot_worst_frames`. Per video: :func:`plot_traces`, :func:`plot_confidence`.
Sweeps: :func:`plot_sweep_errors`.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from vidpose.io.poses import Poses
from vidpose.viz.colors import keypoint_colors
from vidpose.viz.outliers import CRITERIA_TEXT, FrameScores, temporal_step

DPI = 90
SHORT = {
    "jump": "temporal norm",
    "pca_singleview": "PCA error",
    "pca_multiview": "view PCA err.",
    "ensemble_std": "ensemble std",
}


def figure_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def plot_loss_activity(summary: dict[str, dict]) -> Figure:
    """Per unsupervised loss and epoch: the share of its terms whose hinge was active (left)
    and its weighted size relative to the supervised loss (right), from ``metrics.json``'s
    ``unsupervised`` section."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_a, ax_r = fig.subplots(1, 2)
    for name, s in summary.items():
        epochs = np.arange(1, len(s["per_epoch"]) + 1)
        ax_a.plot(epochs, [100 * e["active_fraction"] for e in s["per_epoch"]], label=name)
        ax_r.plot(epochs, [e["relative_size"] for e in s["per_epoch"]], label=name)
    ax_a.set(xlabel="epoch", ylabel="active terms (%)", ylim=(0, 100))
    ax_a.axhline(1, color="0.6", lw=0.8, ls=":")  # below this a loss is reported as inactive
    ax_r.set(xlabel="epoch", ylabel="weighted loss / supervised loss")
    ax_a.legend(fontsize="small")
    return fig


def _eval_rows(split: np.ndarray) -> tuple[np.ndarray, str]:
    """Rows to show held-out error for: test, else val, else all (with a label saying so)."""
    for name in ("test", "val"):
        rows = np.flatnonzero(split == name)
        if rows.size:
            return rows, name
    return np.arange(len(split)), "all"


def plot_keypoint_errors(err: np.ndarray, split: np.ndarray, keypoints: Sequence[str]) -> Figure:
    """Box plot of held-out pixel error per keypoint, with the training-set median marked."""
    rows, which = _eval_rows(split)
    k = len(keypoints)
    colors = keypoint_colors(keypoints)
    fig = Figure(figsize=(max(6.0, 0.45 * k + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    data = [e[np.isfinite(e)] for e in err[rows].T]
    box = ax.boxplot(
        [d if d.size else [np.nan] for d in data],
        patch_artist=True,
        showfliers=True,
        widths=0.6,
        medianprops={"color": "black"},
        flierprops={"markersize": 3},
    )
    for patch, c in zip(box["boxes"], colors, strict=True):
        patch.set_facecolor((*c, 0.55))
        patch.set_edgecolor(c)
    train = np.flatnonzero(split == "train")
    if train.size and which != "all":
        with np.errstate(all="ignore"):
            med = np.nanmedian(err[train], axis=0)
        ax.plot(np.arange(1, k + 1), med, "D", color="tab:red", markersize=5, label="train median")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xticks(np.arange(1, k + 1), list(keypoints), rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("pixel error (px)")
    n = len(rows)
    ax.set_title(f"Pixel error per keypoint, {which} frames (n={n})")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_error_vs_confidence(
    err: np.ndarray, likelihood: np.ndarray, split: np.ndarray, keypoints: Sequence[str]
) -> Figure:
    """Held-out pixel error against the model's confidence, one colour per keypoint."""
    rows, which = _eval_rows(split)
    colors = keypoint_colors(keypoints)
    fig = Figure(figsize=(8.5, 4.5), layout="constrained")
    ax = fig.subplots()
    e, lk = err[rows], likelihood[rows]
    for j, name in enumerate(keypoints):
        ok = np.isfinite(e[:, j]) & np.isfinite(lk[:, j])
        ax.scatter(lk[ok, j], e[ok, j], s=14, color=colors[j], label=name, alpha=0.8)
    ok = np.isfinite(e) & np.isfinite(lk)
    if ok.sum() >= 10:  # median error per confidence bin: does confidence mean anything?
        edges = np.quantile(lk[ok], np.linspace(0, 1, 6))
        mids, meds = [], []
        for lo, hi in itertools.pairwise(edges):
            b = ok & (lk >= lo) & (lk <= hi)
            if b.any():
                mids.append(float(np.median(lk[b])))
                meds.append(float(np.median(e[b])))
        ax.plot(mids, meds, "k-o", lw=2, ms=4, label="median (quintiles)")
    ax.set_xlabel("confidence (likelihood)")
    ax.set_ylabel("pixel error (px)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(f"Error vs confidence, {which} frames: low confidence should mean large error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_worst_frames(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    preds: np.ndarray,
    titles: Sequence[str],
    keypoints: Sequence[str],
    columns: int = 4,
) -> Figure:
    """A grid of frames with labels (+) and predictions (o) joined by a line per keypoint.

    Args:
        images: (H, W, 3) uint8 images.
        labels, preds: (M, K, 2) px coordinates in each image (NaN where absent).
        titles: one caption per image (name and error).
    """
    m = len(images)
    colors = keypoint_colors(keypoints)
    cols = min(columns, max(m, 1))
    nrows = max(1, int(np.ceil(m / cols)))
    fig = Figure(figsize=(3.3 * cols, 3.5 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for i in range(m):
        ax = axes[i]
        ax.imshow(images[i])
        _zoom(ax, labels[i], preds[i], images[i].shape[:2])
        for j in range(len(keypoints)):
            lx, ly = labels[i, j]
            px, py = preds[i, j]
            if np.isfinite([lx, ly, px, py]).all():
                ax.plot([lx, px], [ly, py], color=colors[j], lw=1)
            if np.isfinite([lx, ly]).all():
                ax.plot(lx, ly, "+", color=colors[j], ms=9, mew=2)
            if np.isfinite([px, py]).all():
                ax.plot(px, py, "o", mfc="none", mec=colors[j], ms=7, mew=1.5)
        ax.set_title(titles[i], fontsize=8)
    fig.suptitle("Worst held-out frames: + label, o prediction", fontsize=11)
    return fig


def _zoom(ax, labels: np.ndarray, preds: np.ndarray, hw: tuple[int, int]) -> None:
    """Limit ``ax`` to the keypoints' bounding box plus a margin (square, inside the image)."""
    pts = np.concatenate([labels, preds])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) * 0.65, 24.0)
    h, w = hw
    x0, x1 = max(centre[0] - half, -0.5), min(centre[0] + half, w - 0.5)
    y0, y1 = max(centre[1] - half, -0.5), min(centre[1] + half, h - 0.5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)


def _shade(ax, frames: np.ndarray, flagged: np.ndarray, color: str) -> None:
    """Shade runs of flagged frames on ``ax``."""
    if not flagged.any():
        return
    idx = np.flatnonzero(flagged)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    for s, e in zip(starts, ends, strict=True):
        ax.axvspan(frames[s] - 0.5, frames[e] + 0.5, color=color, alpha=0.25, lw=0)


def plot_traces(
    poses: Poses,
    scores: FrameScores,
    z_threshold: float,
    title: str,
    max_keypoints: int | None = None,
) -> Figure:
    """x and y over time per keypoint, confidence beneath, and each criterion's worst keypoint
    per frame on top; frames an outlier criterion flags are shaded (one colour per criterion).
    """
    frames = np.asarray(poses.frames, dtype=float)
    k = poses.n_keypoints if max_keypoints is None else min(poses.n_keypoints, max_keypoints)
    crit = [c for c in scores.z if c != "low_confidence"]
    colors = keypoint_colors(poses.keypoints)
    shade = dict(
        zip(
            CRITERIA_TEXT,
            ["tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:gray"],
            strict=True,
        )
    )
    n_rows = len(crit) + k
    heights = [1.0] * len(crit) + [1.25] * k
    fig = Figure(figsize=(13, 0.95 * sum(heights) + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, 1, sharex=True, height_ratios=heights))
    any_flag = np.zeros(len(frames), dtype=bool)
    for ax, c in zip(axes[: len(crit)], crit, strict=True):
        v = scores.values[c]
        if c == "jump":  # show the temporal norm itself; the spike criterion decides the flags
            v = np.vstack([np.full((1, poses.n_keypoints), np.nan), temporal_step(poses.coords)])
        with np.errstate(all="ignore"):
            worst = np.where(
                np.isnan(v).all(axis=1), np.nan, np.nanmax(np.nan_to_num(v, nan=-1), axis=1)
            )
        ax.plot(frames, worst, color="black", lw=0.7)
        flagged = scores.flagged(c, z_threshold)
        any_flag |= flagged
        _shade(ax, frames, flagged, shade[c])
        ax.set_ylabel(f"{SHORT[c]}\n(px, worst)", fontsize=8)
        ax.text(
            0.995,
            0.9,
            f"{int(flagged.sum())} flagged",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color=shade[c],
        )
        ax.set_ylim(bottom=0)
    for c in scores.z:  # the keypoint rows show every criterion's flags, confidence too
        any_flag |= scores.flagged(c, z_threshold)
    lk = poses.likelihood
    for j in range(k):
        ax = axes[len(crit) + j]
        x, y = poses.coords[:, j, 0], poses.coords[:, j, 1]
        ax.plot(frames, x - np.nanmedian(x), color=colors[j], lw=0.8, label="x")
        ax.plot(frames, y - np.nanmedian(y), color=colors[j], lw=0.8, ls="--", label="y")
        _shade(ax, frames, any_flag, "tab:red")
        ax.set_ylabel(f"{poses.keypoints[j]}\n(px − median)", fontsize=8)
        if lk is not None:
            ax2 = ax.twinx()
            ax2.plot(frames, lk[:, j], color="0.55", lw=0.6)
            ax2.set_ylim(0, 1.05)
            ax2.set_yticks([0, 1])
            ax2.tick_params(labelsize=7)
            ax.set_zorder(ax2.get_zorder() + 1)
            ax.patch.set_visible(False)
        if j == 0:
            ax.legend(loc="upper left", fontsize=7, ncol=2)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    axes[-1].set_xlabel("frame")
    fig.suptitle(
        f"{title}: x (solid) and y (dashed) per keypoint, confidence as a grey line (right axis); "
        f"red bands: frames some criterion flags",
        fontsize=10,
    )
    return fig


def plot_confidence(poses: Poses, min_likelihood: float = 0.9) -> Figure:
    """Histogram of every confidence, and per keypoint the share of frames below
    ``min_likelihood``."""
    colors = keypoint_colors(poses.keypoints)
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.4])
    lk = poses.likelihood if poses.likelihood is not None else np.full(poses.coords.shape[:2], 0)
    v = lk[np.isfinite(lk)]
    ax1.hist(v, bins=np.linspace(0, 1, 41), color="0.35")
    ax1.set_yscale("log")
    ax1.axvline(min_likelihood, color="tab:red", ls="--", lw=1)
    ax1.set_xlabel("confidence (likelihood)")
    ax1.set_ylabel("keypoint-frames")
    ax1.set_title("All confidences", fontsize=10)
    with np.errstate(all="ignore"):
        low = np.mean(~(lk >= min_likelihood), axis=0)
    ax2.bar(np.arange(poses.n_keypoints), 100 * low, color=colors)
    ax2.set_xticks(
        np.arange(poses.n_keypoints), poses.keypoints, rotation=60, ha="right", fontsize=8
    )
    ax2.set_ylabel("% of frames")
    ax2.set_title(f"Frames with confidence < {min_likelihood:g} (or missing)", fontsize=10)
    ax2.grid(axis="y", alpha=0.3)
    return fig


def plot_sweep_errors(
    trials: Sequence[str],
    errors: np.ndarray,
    sd: np.ndarray | None,
    values: dict[str, Sequence[str]],
    metric: str,
    order: dict[str, Sequence[str]] | None = None,
) -> Figure:
    """A sweep's error per trial, best first (bars, ± ``sd`` over folds when given), and for
    each swept key every trial's error against the key's value (the best per value joined).

    Args:
        trials: trial names; ``errors``, ``sd`` and each of ``values`` are aligned with them
            (NaN error: the trial has none, e.g. it failed).
        values: swept key -> each trial's value (text).
        metric: the y-axis label.
        order: swept key -> its values in sweep order (default: first appearance).
    """
    errors = np.asarray(errors, dtype=float)
    n_keys = len(values)
    width = max(6.0, 0.32 * len(trials) + 2.5)
    fig = Figure(
        figsize=(width + 3.6 * n_keys, 4.2),
        layout="constrained",
    )
    axes = np.atleast_1d(
        fig.subplots(1, 1 + n_keys, width_ratios=[width / 3.6] + [1.0] * n_keys, sharey=True)
    )
    ok = np.isfinite(errors)
    rank = np.argsort(np.where(ok, errors, np.inf), kind="stable")
    rank = rank[ok[rank]]
    ax = axes[0]
    x = np.arange(len(rank))
    yerr = None if sd is None else np.nan_to_num(np.asarray(sd, dtype=float)[rank])
    ax.bar(x, errors[rank], yerr=yerr, color="tab:blue", alpha=0.8, capsize=3)
    if len(rank):
        ax.bar([0], errors[rank[:1]], color="tab:orange", alpha=0.9, label="best")
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xticks(x, [trials[i] for i in rank], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    missing = int((~ok).sum())
    ax.set_title(
        "Error per trial, best first" + (f" ({missing} without a result)" if missing else ""),
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    for ax, (key, vals) in zip(axes[1:], values.items(), strict=True):
        vals = [str(v) for v in vals]
        levels = list(order[key]) if order and key in order else list(dict.fromkeys(vals))
        pos = {v: i for i, v in enumerate(levels)}
        xs = np.array([pos.get(v, np.nan) for v in vals], dtype=float)
        jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(xs))
        ax.scatter(xs[ok] + jitter[ok], errors[ok], s=22, color="tab:blue", alpha=0.75)
        best = [
            np.min(errors[ok & (xs == i)]) if np.any(ok & (xs == i)) else np.nan
            for i in range(len(levels))
        ]
        ax.plot(np.arange(len(levels)), best, "-o", color="tab:orange", ms=5, label="best")
        ax.set_xticks(np.arange(len(levels)), levels, rotation=30, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.set_title(key, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if n_keys:
        axes[1].legend(loc="upper left", fontsize=8)
    axes[0].set_ylim(bottom=0)
    return fig
