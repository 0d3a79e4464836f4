"""Ensemble statistics: centre and confidence-aware variance of several models' predictions.

Rule for the variance (per frame, keypoint and coordinate), with M members of which
``n_valid`` are valid (finite x and y, and likelihood >= ``min_likelihood`` or no likelihood):

1. ``spread`` = population variance of the valid members (ddof=0).
2. Where fewer than 2 members are valid the spread is unknown; it is replaced by the median
   spread of that keypoint coordinate over the frames where it is known (or the floor when
   there is no such frame, e.g. a single-model "ensemble").
3. ``spread`` is floored at ``var_floor_px2``: members that agree exactly (copies, a rounded
   tool output) must not make an observation infinitely trusted.
4. Inflation for missing and unsure members: multiplied by ``M / n_valid`` (fewer members
   means a less reliable centre) and by ``1 / mean_likelihood`` of the valid members, that
   mean clipped to ``[LIKELIHOOD_CLIP, 1]`` so the inflation is at most 20x; members without
   a likelihood (NaN, e.g. labels) count as fully confident.

Where no member is valid the centre and variance are NaN: the smoother bridges the gap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidpose.errors import LabelsError
from vidpose.io.poses import Poses

LIKELIHOOD_CLIP = 0.05


@dataclass(frozen=True)
class EnsembleStats:
    """Per-frame summary of an ensemble of M predictions of the same video.

    Attributes:
        center: (N, K, 2) float64 ensemble centre (median or mean of valid members), px; NaN
            where no member is valid.
        variance: (N, K, 2) float64 confidence-aware variance (module docstring), px^2; NaN
            where no member is valid.
        n_valid: (N, K) int64 number of valid members.
        spread: (N, K, 2) float64 raw population variance of the valid members, px^2 (NaN
            where fewer than 2 are valid).
    """

    center: np.ndarray
    variance: np.ndarray
    n_valid: np.ndarray
    spread: np.ndarray


def align_members(poses_list: Sequence[Poses], names: Sequence[str] | None = None) -> list[Poses]:
    """Check that the members describe the same frames and keypoints; reorder keypoints.

    Args:
        poses_list: the ensemble members.
        names: how to call each member in error messages (file paths); default "member i".

    Returns:
        The members with their keypoints in the first member's order.

    Raises:
        LabelsError: no member, different frames, or different keypoint sets.
    """
    if not poses_list:
        raise LabelsError("an ensemble needs at least one predictions table; got none")
    names = list(names) if names is not None else [f"member {i}" for i in range(len(poses_list))]
    ref = poses_list[0]
    out = [ref]
    for name, p in zip(names[1:], poses_list[1:], strict=True):
        if set(p.keypoints) != set(ref.keypoints):
            missing = sorted(set(ref.keypoints) - set(p.keypoints))
            extra = sorted(set(p.keypoints) - set(ref.keypoints))
            raise LabelsError(
                f"{name}: keypoints differ from {names[0]}: missing {missing}, extra {extra}"
            )
        if p.n_frames != ref.n_frames or not np.array_equal(p.frames, ref.frames):
            raise LabelsError(
                f"{name}: {p.n_frames} frames ({_frames_span(p)}) but {names[0]} has "
                f"{ref.n_frames} ({_frames_span(ref)}); ensemble members must predict the "
                f"same frames of the same video"
            )
        if p.keypoints != ref.keypoints:
            idx = p.keypoint_index(ref.keypoints)
            p = Poses(
                coords=p.coords[:, idx],
                keypoints=list(ref.keypoints),
                frames=p.frames,
                likelihood=p.likelihood[:, idx],
                scorer=p.scorer,
                is_labels=p.is_labels,
            )
        out.append(p)
    return out


def _nanmean0(xy: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; ``cnt`` the number of non-NaN entries (NaN where 0)."""
    return np.where(np.isnan(xy), 0.0, xy).sum(axis=0) / cnt


def _nanmedian0(xy: np.ndarray, n_valid: np.ndarray) -> np.ndarray:
    """Median over the (small) member axis 0 ignoring NaN, via one sort (NaN sorts last).

    ``np.nanmedian`` over a 5-long axis is an order of magnitude slower on long videos.
    """
    srt = np.sort(xy, axis=0)
    n = n_valid[None, ..., None]
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0), axis=0)[0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0), axis=0)[0]
    return 0.5 * (lo + hi)


def _all_valid(members: Sequence[Poses], min_likelihood: float) -> bool:
    """Whether every member is valid on every frame and keypoint, with finite coordinates."""
    for p in members:
        if not np.isfinite(p.coords).all():
            return False
        lik = p.likelihood
        if (lik < min_likelihood).any() or (min_likelihood > 1.0 and np.isnan(lik).any()):
            return False
    return True


_BLOCK = 4096  # frames per block of the all-valid path: its temporaries stay in cache


def _stats_all_valid(
    members: Sequence[Poses], center: Literal["median", "mean"], var_floor_px2: float
) -> EnsembleStats:
    """:func:`ensemble_stats` when every member is valid everywhere (the common case).

    Same numbers as the general path, operation for operation (members summed in order, the
    median an order statistic), without its (M, N, K, 2) stack, NaN masks and sort.
    """
    n_members = len(members)
    n, k = members[0].coords.shape[:2]
    centre = np.empty((n, k, 2))
    spread = np.empty((n, k, 2))
    var = np.empty((n, k, 2))
    for start in range(0, n, _BLOCK):
        sl = slice(start, min(start + _BLOCK, n))
        xs = [p.coords[sl] for p in members]
        mean = xs[0] + xs[1]
        for x in xs[2:]:
            mean += x
        mean /= n_members
        acc, d = spread[sl], np.empty_like(mean)
        np.subtract(xs[0], mean, out=acc)
        np.multiply(acc, acc, out=acc)
        for x in xs[1:]:
            np.subtract(x, mean, out=d)
            np.multiply(d, d, out=d)
            acc += d
        acc /= n_members
        if center == "mean":
            centre[sl] = mean
        else:
            centre[sl] = _median(xs)
        liks = [np.where(np.isnan(p.likelihood[sl]), 1.0, p.likelihood[sl]) for p in members]
        mean_lik = liks[0] + liks[1]
        for lik in liks[2:]:
            mean_lik += lik
        mean_lik /= n_members
        np.clip(mean_lik, LIKELIHOOD_CLIP, 1.0, out=mean_lik)
        inflation = 1.0 / mean_lik  # n_members / n_valid = 1
        np.maximum(acc, var_floor_px2, out=var[sl])
        var[sl] *= inflation[..., None]
    n_valid = np.full((n, k), n_members, dtype=np.int64)
    return EnsembleStats(center=centre, variance=var, n_valid=n_valid, spread=spread)


def _median(xs: list[np.ndarray]) -> np.ndarray:
    """Elementwise median of M same-shaped arrays without NaN."""
    if len(xs) == 3:
        a, b, c = xs
        return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    if len(xs) == 5:
        # The smaller of the two pair minima and the larger of the two pair maxima cannot be
        # the median; the median of the 5 is the median of the 3 that remain.
        a, b, c, d, e = xs
        lo = np.maximum(np.minimum(a, b), np.minimum(d, e))
        hi = np.minimum(np.maximum(a, b), np.maximum(d, e))
        return np.maximum(np.minimum(lo, hi), np.minimum(np.maximum(lo, hi), c))
    return np.median(np.stack(xs), axis=0)


def _frames_span(p: Poses) -> str:
    if p.n_frames == 0:
        return "none"
    return f"{p.frames[0]!s} .. {p.frames[-1]!s}"


def ensemble_stats(
    poses_list: Sequence[Poses],
    center: Literal["median", "mean"] = "median",
    min_likelihood: float = 0.0,
    var_floor_px2: float = 0.25,
) -> EnsembleStats:
    """Centre and confidence-aware variance of M aligned predictions (module docstring).

    Args:
        poses_list: M members with the same frames and keypoints (see :func:`align_members`).
        center: "median" (robust to one member's gross error) or "mean".
        min_likelihood: members below this likelihood at a frame/keypoint count as missing.
        var_floor_px2: lowest variance given to an observation, px^2.
    """
    if center not in ("median", "mean"):
        raise ValueError(f"center must be 'median' or 'mean', got {center!r}")
    members = align_members(poses_list)
    if len(members) >= 2 and _all_valid(members, min_likelihood):
        return _stats_all_valid(members, center, var_floor_px2)
    coords = np.stack([p.coords for p in members])  # (M, N, K, 2)
    lik = np.stack([p.likelihood for p in members])  # (M, N, K)
    n_members = coords.shape[0]
    lik_or_one = np.where(np.isnan(lik), 1.0, lik)
    valid = ~np.isnan(coords).any(axis=3) & (lik_or_one >= min_likelihood)
    n_valid = valid.sum(axis=0)
    xy = np.where(valid[..., None], coords, np.nan)

    cnt = n_valid[..., None]  # (N, K, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = _nanmedian0(xy, n_valid) if center == "median" else _nanmean0(xy, cnt)
        mean = _nanmean0(xy, cnt)
        spread = np.where(valid[..., None], (xy - mean) ** 2, 0.0).sum(axis=0) / cnt
        spread[n_valid < 2] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # keypoints never seen twice
            fallback = np.nanmedian(spread, axis=0)  # (K, 2)
        fallback = np.where(np.isnan(fallback), var_floor_px2, fallback)
        var = np.where(np.isnan(spread), fallback[None], spread)
        var = np.maximum(var, var_floor_px2)
        mean_lik = np.where(valid, lik_or_one, 0.0).sum(axis=0) / np.maximum(n_valid, 1)
        mean_lik = np.clip(mean_lik, LIKELIHOOD_CLIP, 1.0)
        inflation = n_members / np.maximum(n_valid, 1) / mean_lik
        var = var * inflation[..., None]
    none = n_valid == 0
    var[none] = np.nan
    centre[none] = np.nan
    return EnsembleStats(
        center=centre, variance=var, n_valid=n_valid.astype(np.int64), spread=spread
    )
