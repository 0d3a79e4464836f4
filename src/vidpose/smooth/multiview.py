"""Multiview / mirrored ensemble smoother: matched keypoints share a 3-D latent trajectory.

A body part seen in V views (or mirror halves) is one D = 2V vector per frame,
``(x_view1, y_view1, x_view2, y_view2, ...)``. Whatever the cameras, those D numbers are
functions of one 3-D point, so labelled frames of the body part lie close to a 3-D affine
subspace of R^D: ``obs = mean + A z`` with ``A (D, 3)`` the top principal directions of the
stacked views' labels (orthonormal columns, so ``z`` is in px). The state-space model per body
part is the singleview one lifted to that latent::

    z[t] = z[t-1] + w[t],                w[t] ~ N(0, q I_3)
    y[t] = mean + A z[t] + v[t],         v[t] ~ N(0, diag(r[t]))   (ensemble centre, variance)

Because every view is explained by the same ``z``, the smoothed views agree with each other
(their disagreement is confined to what the 3-D subspace allows), and a view that lost the
keypoint is filled in from the others. ``q`` per body part is the mean of the singleview
``q`` (chosen per keypoint, ``auto``, or the fixed value) over its views: the latent is in px,
and a full multiview likelihood search is left for later.

The filter is written in information form: with ``W = diag(1 / r)`` (0 for a missing
coordinate), ``P_f = (P_p^-1 + A^T W A)^-1`` and ``m_f = P_f (P_p^-1 m_p + A^T W (y - mean))``,
so only 3x3 matrices are inverted, missing coordinates simply drop out, and ``A^T W A`` and
``A^T W (y - mean)`` are computed for all frames at once before the recursion. Keypoints in no
match row are smoothed singleview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidpose.errors import ConfigError
from vidpose.io.poses import Poses
from vidpose.smooth.ensemble import align_members
from vidpose.smooth.singleview import SmoothedEnsemble, posterior_likelihood, smooth_ensemble

LATENT_DIM = 3
DIFFUSE_VAR = 1e8  # px^2; smaller than the singleview one: 3x3 inverses must stay accurate


@dataclass(frozen=True)
class ViewSubspaces:
    """Per matched body part, the affine 3-D subspace of its stacked views' coordinates.

    Attributes:
        matches: (J, V) keypoint indices, one row per body part, one column per view.
        mean: (J, D) float64 mean of the stacked coordinates, px; D = 2V, (x, y) per view.
        components: (J, D, 3) float64 orthonormal principal directions.
    """

    matches: np.ndarray
    mean: np.ndarray
    components: np.ndarray


def _stack_views(coords: np.ndarray, matches: np.ndarray) -> np.ndarray:
    """(N, K, 2) -> (N, J, 2V): body part j's views side by side."""
    n = coords.shape[0]
    j, v = matches.shape
    return coords[:, matches].reshape(n, j, 2 * v)


def fit_view_subspaces(coords: np.ndarray, matches: np.ndarray) -> ViewSubspaces:
    """PCA (3 components) of each body part's stacked views over frames where all are seen.

    Args:
        coords: (N, K, 2) labelled (or trusted) positions, px; NaN where missing.
        matches: (J, V) keypoint indices.

    Raises:
        ValueError: a body part has fewer than 4 frames with every view present.
    """
    stacked = _stack_views(coords, matches)  # (N, J, D)
    j, d = stacked.shape[1:]
    if d < LATENT_DIM:
        raise ValueError(f"multiview needs at least 2 views (D >= 3), got D = {d}")
    mean = np.empty((j, d))
    comps = np.empty((j, d, LATENT_DIM))
    for b in range(j):  # a handful of body parts: a loop over SVDs of (frames, D)
        rows = stacked[:, b]
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) < LATENT_DIM + 1:
            raise ValueError(
                f"body part {b} (keypoints {matches[b].tolist()}): {len(rows)} frames with every "
                f"view present; at least {LATENT_DIM + 1} are needed to fit its 3-D subspace"
            )
        mean[b] = rows.mean(axis=0)
        _, _, vt = np.linalg.svd(rows - mean[b], full_matrices=False)
        comps[b] = vt[:LATENT_DIM].T
    return ViewSubspaces(matches=matches, mean=mean, components=comps)


def multiview_kalman_smooth(
    y: np.ndarray, r: np.ndarray, sub: ViewSubspaces, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random-walk RTS smoother in each body part's 3-D latent (module docstring).

    Args:
        y: (N, J, D) stacked observations, px; NaN where missing.
        r: (N, J, D) observation variances, px^2 (non-finite = missing).
        sub: the body parts' subspaces.
        q: (J,) latent process variance per frame, px^2.

    Returns:
        Smoothed stacked coordinates (N, J, D), px, and their posterior variances (N, J, D).
    """
    n, j, _ = y.shape
    a = sub.components  # (J, D, L)
    eye = np.eye(LATENT_DIM)
    observed = np.isfinite(y) & np.isfinite(r) & (r > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(observed, 1.0 / np.where(observed, r, 1.0), 0.0)
    resid = np.where(observed, y - sub.mean, 0.0)
    # A^T W A (N, J, L, L) and A^T W (y - mean) (N, J, L), for every frame at once.
    atwa = np.einsum("jdl,njd,jdm->njlm", a, w, a, optimize=True)
    atwy = np.einsum("jdl,njd->njl", a, w * resid, optimize=True)

    qi = q[:, None, None] * eye  # (J, L, L)
    m_f = np.empty((n, j, LATENT_DIM))
    p_f = np.empty((n, j, LATENT_DIM, LATENT_DIM))
    pp_inv = np.empty((n, j, LATENT_DIM, LATENT_DIM))
    m = np.zeros((j, LATENT_DIM))
    p = np.broadcast_to(DIFFUSE_VAR * eye, (j, LATENT_DIM, LATENT_DIM)) - qi
    for t in range(n):
        ppi = np.linalg.inv(p + qi)
        pp_inv[t] = ppi
        p = np.linalg.inv(ppi + atwa[t])
        p_f[t] = p
        m = np.matmul(p, (np.matmul(ppi, m[..., None])[..., 0] + atwy[t])[..., None])[..., 0]
        m_f[t] = m

    # RTS with F = I: G = P_f[t] P_p[t+1]^-1; m_s = m_f + G (m_s' - m_f);
    # P_s = P_f + G (P_s' - P_p[t+1]) G^T, with P_p[t+1] = P_f[t] + q I.
    gain = np.matmul(p_f[:-1], pp_inv[1:])  # (N-1, J, L, L)
    gain_t = np.swapaxes(gain, -1, -2)
    p_pred_next = p_f[:-1] + qi
    m_s = m_f
    p_s = p_f
    for t in range(n - 2, -1, -1):
        m_s[t] = m_f[t] + np.matmul(gain[t], (m_s[t + 1] - m_f[t])[..., None])[..., 0]
        p_s[t] = p_f[t] + gain[t] @ (p_s[t + 1] - p_pred_next[t]) @ gain_t[t]
    out = sub.mean + np.einsum("jdl,njl->njd", a, m_s, optimize=True)
    var = np.einsum("jdl,njlm,jdm->njd", a, p_s, a, optimize=True)
    return out, var


def resolve_matches(keypoints: Sequence[str], view_matches: Sequence[Sequence[str]]) -> np.ndarray:
    """Keypoint names per body part and view -> (J, V) indices; ConfigError names unknowns."""
    lookup = {k: i for i, k in enumerate(keypoints)}
    rows = []
    for i, row in enumerate(view_matches):
        unknown = [name for name in row if name not in lookup]
        if unknown:
            raise ConfigError(
                f"view_matches[{i}]: keypoints {unknown} are not in the predictions "
                f"(known: {list(keypoints)})"
            )
        rows.append([lookup[name] for name in row])
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise ConfigError(
            f"view_matches must be rows of one keypoint per view (>= 2 views), got {view_matches}"
        )
    flat = [k for r in rows for k in r]
    if len(set(flat)) != len(flat):
        raise ConfigError(f"view_matches: a keypoint appears in more than one place: {rows}")
    return np.asarray(rows, dtype=np.int64)


def smooth_multiview(
    poses_list: Sequence[Poses],
    view_matches: Sequence[Sequence[str]],
    labels: Poses | None = None,
    smoothing: Literal["auto"] | float = "auto",
    center: Literal["median", "mean"] = "median",
    min_likelihood: float = 0.0,
    likelihood_radius_px: float = 5.0,
) -> SmoothedEnsemble:
    """Ensemble and smooth, sharing a 3-D latent across the views of each matched body part.

    Args:
        poses_list: M predictions of the same frames, all views' keypoints in one table.
        view_matches: rows of keypoint names, one per view (vidpose.yaml ``view_matches``).
        labels: labelled frames used to fit each body part's 3-D subspace; None fits it to the
            ensemble centre on frames where every view is present.
        smoothing, center, min_likelihood, likelihood_radius_px: as for
            :func:`vidpose.smooth.smooth_ensemble`.

    Returns:
        As :func:`vidpose.smooth.smooth_ensemble`; ``process_var`` is the singleview one.
    """
    members = align_members(poses_list)
    single = smooth_ensemble(
        members,
        smoothing=smoothing,
        center=center,
        min_likelihood=min_likelihood,
        likelihood_radius_px=likelihood_radius_px,
    )
    keypoints = members[0].keypoints
    matches = resolve_matches(keypoints, view_matches)
    if labels is not None:
        flat = matches.reshape(-1)
        lab = np.full((labels.n_frames, len(keypoints), 2), np.nan)
        lab[:, flat] = labels.coords[:, labels.keypoint_index([keypoints[k] for k in flat])]
        sub = fit_view_subspaces(lab, matches)
    else:
        sub = fit_view_subspaces(single.stats.center, matches)
    q = single.process_var[matches].mean(axis=1)
    y = _stack_views(single.stats.center, matches)
    r = _stack_views(single.stats.variance, matches)
    out, var = multiview_kalman_smooth(y, r, sub, q)

    n = out.shape[0]
    coords = single.poses.coords.copy()
    post = np.stack(
        [
            single.poses.keypoint_columns["x_posterior_var"],
            single.poses.keypoint_columns["y_posterior_var"],
        ],
        axis=2,
    )
    flat = matches.reshape(-1)
    coords[:, flat] = out.reshape(n, -1, 2)
    post[:, flat] = var.reshape(n, -1, 2)
    columns = dict(single.poses.keypoint_columns)
    columns["x_posterior_var"] = post[..., 0]
    columns["y_posterior_var"] = post[..., 1]
    poses = Poses(
        coords=coords,
        keypoints=list(keypoints),
        frames=single.poses.frames,
        likelihood=np.nan_to_num(posterior_likelihood(post, likelihood_radius_px), nan=0.0),
        scorer=single.poses.scorer,
        is_labels=False,
        keypoint_columns=columns,
    )
    return SmoothedEnsemble(
        poses=poses, process_var=single.process_var, stats=single.stats, loglik=single.loglik
    )
