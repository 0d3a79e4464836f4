"""The frames most worth labeling next, and why.

Each criterion is a per-frame, per-keypoint quantity in pixels (or, for confidence, in
likelihood units):

* ``jump``: ``max(spike, step / 2)`` where ``spike = min(|p_t - p_t-1|, |p_t+1 - p_t|)``: the
  keypoint jumped to frame t *and* back, which a real movement rarely does, and ``step =
  |p_t - p_t-1|`` catches a jump that stays for a while (e.g. to the other paw) at half weight,
  since a fast real movement is large on one side too. The first and last frames use their
  one step as the spike.
* ``pca_singleview`` / ``pca_multiview``: distance from the pose subspace fitted to the labels
  (:mod:`vidpose.predict.metrics`).
* ``ensemble_std``: sqrt of the ensemble variance (mean of x and y), when the predictions come
  from an ensemble (``x_ens_var``/``y_ens_var`` columns of the smoothed output's
  ``_ensemble`` table).
* ``low_confidence``: ``1 - likelihood``.

Per video, each criterion's frame value is its worst keypoint; it is turned into a robust
z-score, ``(v - median) / max(1.4826 MAD, floor)`` with a floor (2 px, or 0.05 likelihood)
so that a still animal's tiny spread does not make every movement an outlier. A frame is
*flagged* for a criterion when its z-score exceeds ``z_threshold``; its outlier score is its
largest z-score. :func:`select_outliers` takes the highest-scoring flagged frames, at least
``min_gap`` frames apart within a video so that one event does not fill the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidpose._atomic import atomic_path
from vidpose.io.poses import Poses

# Robust-scale floor per criterion kind: px for geometric ones, likelihood for confidence.
SCALE_FLOOR = {"px": 2.0, "likelihood": 0.05}
CRITERIA_TEXT = {
    "jump": "temporal jump",
    "pca_singleview": "off the pose subspace",
    "pca_multiview": "views disagree",
    "ensemble_std": "ensemble disagrees",
    "low_confidence": "low confidence",
}
OUTLIER_COLUMNS = ["video", "frame", "score", "criteria", "reason"]


@dataclass(eq=False)
class FrameScores:
    """Per-frame criterion values of one video.

    Attributes:
        values: criterion -> (N, K) value per frame and keypoint (NaN where unknown).
        keypoints: criterion -> the K keypoint names of its columns.
        units: criterion -> "px" or "likelihood".
        z: criterion -> (N,) robust z-score of the frame's worst keypoint.
        frames: (N,) frame indices.
    """

    values: dict[str, np.ndarray]
    keypoints: dict[str, list[str]]
    units: dict[str, str]
    z: dict[str, np.ndarray]
    frames: np.ndarray

    def flagged(self, criterion: str, z_threshold: float) -> np.ndarray:
        """(N,) bool: frames whose worst keypoint is an outlier for ``criterion``."""
        return self.z[criterion] > z_threshold

    def score(self) -> np.ndarray:
        """(N,) the largest z-score over criteria (0 when none is known)."""
        if not self.z:
            return np.zeros(len(self.frames))
        return np.nanmax(np.stack([np.nan_to_num(z, nan=0.0) for z in self.z.values()]), axis=0)


def temporal_step(coords: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N - 1, K): the temporal norm, |p_t - p_t-1| for t = 1 .. N-1 (px)."""
    return np.linalg.norm(np.diff(coords, axis=0), axis=2)


def spike_magnitude(coords: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N, K): how far each keypoint jumped to frame t and back (px)."""
    step = temporal_step(coords)  # step[t-1] = |p_t - p_t-1|
    n = coords.shape[0]
    out = np.full(coords.shape[:2], np.nan)
    if n < 2:
        return out
    out[1:-1] = np.fmin(step[:-1], step[1:])
    out[0] = step[0]
    out[-1] = step[-1]
    return out


def jump_magnitude(coords: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N, K): the ``jump`` criterion, max(spike, step / 2) (px); see above."""
    out = spike_magnitude(coords)
    step = np.full(coords.shape[:2], np.nan)
    step[1:] = temporal_step(coords) / 2.0
    return np.fmax(out, step)


def robust_z(v: np.ndarray, floor: float) -> np.ndarray:
    """Robust z-score of a 1-D array, NaN kept; scale = max(1.4826 MAD, floor)."""
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.full_like(v, np.nan, dtype=float)
    med = np.median(finite)
    scale = max(1.4826 * float(np.median(np.abs(finite - med))), floor)
    return (v - med) / scale


def _worst(values: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        all_nan = np.isnan(values).all(axis=1)
        out = np.nanmax(np.where(all_nan[:, None], 0.0, values), axis=1)
    out[all_nan] = np.nan
    return out


def frame_scores(poses: Poses, metrics: dict[str, pd.DataFrame] | None = None) -> FrameScores:
    """Every criterion's values and z-scores for one video's predictions.

    Args:
        poses: predictions (one row per frame); ``x_ens_var``/``y_ens_var`` keypoint columns,
            when present, add the ``ensemble_std`` criterion.
        metrics: :func:`vidpose.predict.metrics.video_metrics` tables; their
            ``pca_*_error`` tables add the PCA criteria.
    """
    values: dict[str, np.ndarray] = {"jump": jump_magnitude(poses.coords)}
    names: dict[str, list[str]] = {"jump": list(poses.keypoints)}
    units = {"jump": "px"}
    for name in ("pca_singleview", "pca_multiview"):
        table = (metrics or {}).get(f"{name}_error")
        if table is not None:
            values[name] = table.to_numpy(dtype=float)
            names[name] = [str(c) for c in table.columns]
            units[name] = "px"
    cols = poses.keypoint_columns
    # LP/EKS names (vidpose now), or those of older vidpose outputs
    for vx, vy in (("x_ens_var", "y_ens_var"), ("ens_var_x", "ens_var_y")):
        if vx in cols and vy in cols:
            values["ensemble_std"] = np.sqrt((cols[vx] + cols[vy]) / 2.0)
            break
    if "ensemble_std" in values:
        names["ensemble_std"] = list(poses.keypoints)
        units["ensemble_std"] = "px"
    if poses.likelihood is not None and np.isfinite(poses.likelihood).any():
        values["low_confidence"] = 1.0 - poses.likelihood
        names["low_confidence"] = list(poses.keypoints)
        units["low_confidence"] = "likelihood"
    z = {c: robust_z(_worst(v), SCALE_FLOOR[units[c]]) for c, v in values.items()}
    return FrameScores(values, names, units, z, np.asarray(poses.frames))


def _reason(scores: FrameScores, i: int, criteria: list[str]) -> str:
    parts = []
    for c in criteria:
        row = scores.values[c][i]
        j = int(np.nanargmax(row))
        kp = scores.keypoints[c][j]
        if scores.units[c] == "px":
            parts.append(f"{CRITERIA_TEXT[c]}: {kp} {row[j]:.1f} px")
        else:
            parts.append(f"{CRITERIA_TEXT[c]}: {kp} likelihood {1.0 - row[j]:.2f}")
    return "; ".join(parts)


def select_outliers(
    per_video: dict[str, FrameScores],
    n: int = 20,
    *,
    z_threshold: float = 5.0,
    min_gap: int = 10,
) -> pd.DataFrame:
    """The ``n`` best frames to label next over all videos (columns ``OUTLIER_COLUMNS``).

    Only flagged frames qualify (some criterion's z-score > ``z_threshold``); they are taken by
    decreasing score, skipping any within ``min_gap`` frames of one already taken from the same
    video. ``reason`` names, per flagged criterion, the worst keypoint and its value.
    """
    candidates = []
    for video, s in per_video.items():
        score = s.score()
        for i in np.flatnonzero(score > z_threshold):
            candidates.append((float(score[i]), video, int(i)))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    taken: dict[str, list[int]] = {}
    rows = []
    for score, video, i in candidates:
        s = per_video[video]
        frame = int(s.frames[i])
        if any(abs(frame - f) < min_gap for f in taken.get(video, [])):
            continue
        taken.setdefault(video, []).append(frame)
        crit = [c for c in s.z if np.nan_to_num(s.z[c][i], nan=0.0) > z_threshold]
        crit.sort(key=lambda c: -s.z[c][i])
        rows.append(
            {
                "video": video,
                "frame": frame,
                "score": round(score, 2),
                "criteria": ",".join(crit),
                "reason": _reason(s, i, crit),
            }
        )
        if len(rows) >= n:
            break
    return pd.DataFrame(rows, columns=OUTLIER_COLUMNS)


def write_outliers(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the outlier table as CSV, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def read_outliers(path: str | Path) -> pd.DataFrame:
    """Read an outliers.csv, checking it has the ``video`` and ``frame`` columns."""
    from vidpose.errors import VidposeError

    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise VidposeError(f"{path}: cannot be read as an outliers table: {exc}") from exc
    missing = [c for c in ("video", "frame") if c not in table.columns]
    if missing:
        raise VidposeError(
            f"{path}: expected columns 'video' and 'frame' (as written by vidpose evaluate); "
            f"missing {', '.join(missing)}"
        )
    bad = pd.to_numeric(table["frame"], errors="coerce")
    rows = np.flatnonzero(bad.isna() | (bad < 0) | (bad % 1 != 0))
    if rows.size:
        r = int(rows[0])
        raise VidposeError(
            f"{path}: row {r + 2}: frame {table['frame'].iloc[r]!r} is not a frame index "
            f"(a whole number >= 0)"
        )
    table["frame"] = bad.astype(np.int64)
    return table
