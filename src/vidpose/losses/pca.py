"""Pose subspaces fitted to the training labels: single-view pose PCA and multiview PCA.

Both are fitted once, with numpy, before training; the unsupervised losses
(:func:`vidpose.losses.unsupervised.pca_loss` and ``multiview_pca_loss``) then penalise
predictions that fall too far from the subspace. Coordinates are original-frame pixels, so
reconstruction errors and margins (``epsilon_px``) are in real pixels.

**Single view** (:func:`fit_pose_pca`). Each labeled frame's PCA keypoints, stacked as
``(x0, y0, x1, y1, ...)``, is one vector of D = 2 * K_pca numbers. By default the fit is
*translation invariant*: the model is ``pose = centroid + mean_shape + components @ z``, i.e.
the per-frame centroid of the keypoints (the mean x and mean y) is removed before PCA. Why not
raw stacked coordinates (as Lightning Pose does): an animal's position in the arena is not a
property of its shape. In raw coordinates translation dominates the variance (hundreds of px
of travel against tens of px of shape change), so a 99 % variance threshold spends most of its
budget on two translation directions learned from a few dozen frames and drops real shape
modes into the discarded 1 %, and a pose at a place the labels never visited is penalised.
With the centroid removed, translation is exactly in the model (two fixed directions, no data
spent on them), ``variance`` is a fraction of *shape* variance, and a rigid move of the whole
animal never costs anything. ``align="translation"`` is that model, ``align="none"`` the
raw-coordinate one.

``align="similarity"`` (the default of the ``pca_singleview`` loss) also factors out **rotation
and size**: each pose is centred, scaled to unit RMS radius and rotated onto the mean shape
(orthogonal Procrustes, closed form in 2D) before it is projected, and the labels are aligned
the same way by generalised Procrustes analysis before the fit (Cootes et al.'s point
distribution model). Why: the same animal seen closer, further, from a moved camera or turned
on the floor has the same *shape*, and a subspace fitted in pixels penalises those poses. On
the shifted synthetic sessions (animal 0.74-1.35x the labeled size, camera zoomed and turned)
the translation-only model pulled correct poses towards the labels' size and made
semi-supervised training worse than supervised (bench/results/semisupervised_shift_*). Errors
are measured in units of the mean shape's RMS radius and converted back to px with the pose's
own size (detached, so that shrinking a pose never lowers its loss); the margins are stored in
px for an animal of the labels' median size (``scale_px``) and scale with each pose's size.

**Multiview** (:func:`fit_multiview_pca`). A body part seen by V cameras is one 3D point; an
affine camera maps it to ``A_v X + b_v``, so the stacked 2V-vector of its views lies on a
3-dimensional affine subspace, the same for every body part and frame. Each (frame, matched
body part) is one observation; the fit is raw (no centring: the mean holds the cameras'
offsets). Perspective cameras make this an approximation whose error the margins absorb.

**Missing labels** are the rule, not the exception, and dropping every frame with a missing
keypoint can leave very few frames. Both fits therefore use every usable row through
iterative imputation ("hard-impute" EM): fill missing entries with column means, then repeat
{fit the rank-C model to the filled matrix; replace the missing entries by the model's
reconstruction} until the squared error on the *observed* entries stops decreasing (by less
than :data:`DEFAULT_TOL` of the total variance per iteration, or :data:`DEFAULT_MAX_ITER`
iterations). Each step is a majorise-minimise step of that observed-entry error, so it
decreases monotonically, and at convergence each row's latent coordinates are the
least-squares fit to its observed entries alone.

**Choosing C.** When ``n_components`` is not fixed, C is the smallest rank whose fit explains
``variance`` of the observed entries' variance, ``1 - RSS_C / RSS_0`` (RSS_0: the mean-shape
model); with complete labels this is exactly ordinary PCA's explained-variance ratio. The
fraction grows with C, so C is found by bisection, each EM warm-started from a lower rank.
Cost: milliseconds for complete labels; with missing ones ~0.1 s for 100 frames x 10
keypoints and 1-3 s for 1000 frames x 20-30 keypoints (one CPU thread).

**Margins** (``epsilon_px``): by default the ``epsilon_percentile`` percentile of the labels'
own reconstruction error, per keypoint (per view and body part for multiview), so clean labeled
poses are (almost) never penalised. Per keypoint rather than one number because keypoints
differ in label noise and in how well the subspace explains them (a tail tip wanders more than
an ear); a single pooled margin would be set by the worst keypoint and never bite on the rest.
These are in-sample errors, so they are slightly optimistic for new poses; keep several times
more labeled frames than components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from vidpose._device import device_constant
from vidpose.errors import ConfigError

_P = TypeVar("_P", "PosePCA", "MultiviewPCA")

DEFAULT_MAX_ITER = 300
"""Iterations cap of the imputation EM, per rank tried."""

DEFAULT_TOL = 1e-6
"""EM stops when an iteration changes the explained-variance fraction by less than this."""


@dataclass(frozen=True, eq=False)
class PosePCA:
    """Single-view pose subspace (see the module docstring for the model).

    Attributes:
        keypoint_idx: (K_pca,) indices of the keypoints it models, in label-table order.
        mean: (D,) mean pose, D = 2 * K_pca interleaved ``x0, y0, x1, y1, ...``: in px for
            ``align="none"``; the mean *shape* (centroid 0) in px for ``"translation"``; the
            mean shape at unit RMS radius for ``"similarity"``.
        components: (D, C) orthonormal columns spanning the pose (shape) variation; C may be 0
            when every label has the same shape.
        explained_variance: (C,) variance along each component, in squared units of ``mean``.
        explained_variance_ratio: fraction of the (shape) variance the C components explain.
        epsilon_px: (K_pca,) loss margin per keypoint, original-frame px (for ``"similarity"``:
            at size ``scale_px``; a pose of size s gets ``epsilon_px * s / scale_px``).
        align: what a pose may change at no cost: ``"none"``, ``"translation"`` or
            ``"similarity"`` (translation, rotation and size).
        scale_px: median RMS radius (px) of the labeled poses; 1.0 unless ``"similarity"``.
        n_frames: labeled frames the fit used.
    """

    keypoint_idx: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: float
    epsilon_px: np.ndarray
    align: str
    scale_px: float
    n_frames: int

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    @property
    def translation_invariant(self) -> bool:
        return self.align != "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON / YAML / checkpoint friendly)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PosePCA:
        """Inverse of :meth:`to_dict` (also reads models saved before ``align`` existed)."""
        if "align" not in data:
            data = dict(data)
            data["align"] = "translation" if data.pop("translation_invariant", True) else "none"
            data["scale_px"] = 1.0
        return _from_plain(cls, data)


@dataclass(frozen=True, eq=False)
class MultiviewPCA:
    """Multiview subspace of matched keypoints (see the module docstring for the model).

    Attributes:
        view_matches: (M, V) int keypoint indices; row m names body part m in each view.
        mean: (2V,) mean of the stacked ``x_view0, y_view0, x_view1, ...`` in px.
        components: (2V, C) orthonormal columns, C = 3 for a 3D point seen by affine cameras.
        explained_variance: (C,) variance along each component, px**2.
        explained_variance_ratio: fraction of the observations' variance the C components explain.
        epsilon_px: (M, V) loss margin per body part and view, original-frame px.
        n_observations: (frame, body part) observations the fit used.
    """

    view_matches: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: float
    epsilon_px: np.ndarray
    n_observations: int

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON / YAML / checkpoint friendly)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MultiviewPCA:
        """Inverse of :meth:`to_dict`."""
        return _from_plain(cls, data)


ALIGNMENTS: tuple[str, ...] = ("similarity", "translation", "none")
"""What a pose may change at no cost in the single-view pose PCA (module docstring)."""

_INT_ARRAYS = {"keypoint_idx", "view_matches"}
_SHAPED = {"components"}  # (D, C) with C possibly 0: keep D when C is 0


def _to_plain(obj: PosePCA | MultiviewPCA) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
    out["dim"] = int(obj.mean.shape[0])
    return out


def _from_plain(cls: type[_P], data: dict[str, Any]) -> _P:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        value = data[f.name]
        if f.name in _INT_ARRAYS:
            value = np.asarray(value, dtype=np.int64)
        elif f.name in _SHAPED:
            value = np.asarray(value, dtype=np.float64).reshape(int(data["dim"]), -1)
        elif isinstance(value, list):
            value = np.asarray(value, dtype=np.float64)
        kwargs[f.name] = value
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# Fitting (numpy)


@dataclass(frozen=True)
class _SubspaceFit:
    """A rank-C fit of an (N, D) matrix with missing entries.

    Attributes:
        mean: (D,); components: (D, C); variances: (C,) px**2.
        residual: (N, D) data minus reconstruction, NaN at missing entries.
        explained_ratio: ``1 - RSS_C / RSS_0`` on observed entries.
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    residual: np.ndarray
    explained_ratio: float


def _row_shift(filled: np.ndarray, centred: bool) -> np.ndarray:
    """(N, D) interleaved x, y -> (N, D) per-row centroid repeated per keypoint (or 0)."""
    if not centred:
        return np.zeros_like(filled)
    n, d = filled.shape
    return np.tile(filled.reshape(n, d // 2, 2).mean(axis=1), d // 2)


def _em_at_rank(
    x: np.ndarray,
    observed: np.ndarray,
    filled: np.ndarray,
    rank: int,
    centred: bool,
    max_iter: int,
    tol: float,
    reference_rss: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Hard-impute EM at a fixed rank.

    Args:
        x: (N, D) data, NaN at missing entries.
        observed: (N, D) bool, ``isfinite(x)``.
        filled: (N, D) starting values (x with the missing entries filled).
        rank: C, number of components.
        centred: remove each row's keypoint centroid (translation-invariant model).
        max_iter: iterations cap.
        tol: stop when one iteration lowers the observed-entry squared error by less than
            ``tol * reference_rss`` (``tol *`` the current error when None).

    Returns:
        mean (D,), components (D, C), variances (C,), reconstruction (N, D) and the squared
        error on observed entries, all of the last fit; the returned reconstruction's missing
        entries are the imputed values.
    """
    missing = ~observed
    has_missing = bool(missing.any())
    n = x.shape[0]
    previous = np.inf
    x_observed = x[observed]
    for _ in range(max_iter):
        shift = _row_shift(filled, centred)
        centred_rows = filled - shift
        mean = centred_rows.mean(axis=0)
        dev = centred_rows - mean
        # D is small (2 x keypoints): eigh of the D x D scatter matrix is several times faster
        # than an SVD of the (N, D) deviations once N reaches the hundreds.
        evals, evecs = np.linalg.eigh(dev.T @ dev)
        components = np.ascontiguousarray(evecs[:, ::-1][:, :rank])
        variances = np.clip(evals[::-1][:rank], 0.0, None) / max(n - 1, 1)
        recon = shift + mean + (dev @ components) @ components.T
        rss = float(np.sum((x_observed - recon[observed]) ** 2))
        scale = previous if reference_rss is None else reference_rss
        converged = np.isfinite(previous) and previous - rss <= tol * scale
        if not has_missing or converged:
            break
        filled = np.where(missing, recon, x)
        previous = rss
    return mean, components, variances, recon, rss


def _fit_subspace(
    x: np.ndarray,
    *,
    centred: bool,
    n_components: int | None,
    variance: float,
    max_components: int,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
) -> _SubspaceFit:
    """Fit a (translation-invariant) affine subspace to rows with missing entries.

    Args:
        x: (N, D) interleaved x, y per keypoint; NaN where missing. Every column must have an
            observed value.
        n_components: fixed C, or None for the smallest C in 1..max_components explaining
            ``variance`` (found by bisection: the explained fraction grows with C), or
            ``max_components`` if none does.
        max_components: largest C tried when choosing by variance.
    """
    observed = np.isfinite(x)
    filled = np.where(observed, x, np.nanmean(x, axis=0))
    # Shape variation below round-off counts as none: the mean shape is then the whole model.
    tiny = 1e-12 * float(np.sum(x[observed] ** 2))
    fits: dict[int, tuple] = {}

    def run(rank: int) -> float:
        start = (
            np.where(observed, x, fits[max(r for r in fits if r <= rank)][3]) if fits else filled
        )
        # Past rank 0, stop when the explained fraction (1 - RSS / RSS_0) stalls: above the
        # data's true rank the observed-entry error keeps creeping down for thousands of
        # iterations (fitting noise into the gaps) while the fit itself no longer changes.
        reference = fits[0][4] if fits else None
        fits[rank] = _em_at_rank(x, observed, start, rank, centred, max_iter, tol, reference)
        rss0 = fits[0][4]
        return 1.0 - fits[rank][4] / rss0 if rss0 > tiny else 1.0

    ratios = {0: run(0)}
    if n_components is not None:
        chosen = n_components
        ratios[chosen] = run(chosen)
    elif ratios[0] >= variance:
        chosen = 0
    else:
        lo, hi = 0, max_components  # ratio(lo) < variance; the answer lies in (lo, hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ratios[mid] = run(mid)
            lo, hi = (lo, mid) if ratios[mid] >= variance else (mid, hi)
        chosen = hi
        if chosen not in fits:
            ratios[chosen] = run(chosen)
    mean, components, variances, recon, _ = fits[chosen]
    return _SubspaceFit(mean, components, variances, x - recon, float(ratios[chosen]))


GPA_MAX_ITER = 100
"""Iterations cap of the generalised Procrustes alignment of the labels."""


def _align_rows(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-align poses with missing keypoints onto a reference shape.

    Each row is centred on its observed keypoints' centroid, scaled to the RMS radius the
    reference has on the same keypoints and rotated onto it (least squares), then placed at
    the reference's centroid of those keypoints.

    Args:
        x: (N, K, 2), NaN where a keypoint is missing (at least 2 observed per row).
        ref: (K, 2) finite.

    Returns:
        aligned (N, K, 2) (NaN kept), size (N,): each row's RMS radius in px divided by the
        reference's on the same keypoints.
    """
    obs = np.isfinite(x).all(axis=-1)
    w = obs[..., None].astype(np.float64)
    n_obs = obs.sum(axis=1)[:, None]
    xf = np.where(w > 0, x, 0.0)
    cx = (xf * w).sum(axis=1) / n_obs
    cr = (ref[None] * w).sum(axis=1) / n_obs
    z = (xf - cx[:, None]) * w
    r = (ref[None] - cr[:, None]) * w
    zc = z[..., 0] + 1j * z[..., 1]
    rc = r[..., 0] + 1j * r[..., 1]
    zz = np.sqrt(np.sum(np.abs(zc) ** 2, axis=1))
    rr = np.sqrt(np.sum(np.abs(rc) ** 2, axis=1))
    size = zz / np.maximum(rr, 1e-300)
    cross = np.sum(np.conj(zc) * rc, axis=1)
    rot = np.where(np.abs(cross) > 0, cross / np.maximum(np.abs(cross), 1e-300), 1.0)
    ac = rot[:, None] * zc / np.maximum(size, 1e-300)[:, None]
    aligned = np.stack([ac.real, ac.imag], axis=-1) + cr[:, None]
    return np.where(w > 0, aligned, np.nan), size


def _unit_shape(shape: np.ndarray) -> np.ndarray:
    """(K, 2) centred and scaled to RMS radius 1."""
    c = shape - shape.mean(axis=0)
    return c / max(float(np.sqrt(np.mean(np.sum(c**2, axis=-1)))), 1e-300)


def _procrustes_labels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised Procrustes analysis of (N, K, 2) poses with missing keypoints.

    Returns:
        aligned (N, K, 2) in units of the mean shape's RMS radius (NaN kept) and each row's
        size (N,) in px per unit.
    """
    start = int(np.argmax(np.isfinite(x).all(axis=-1).sum(axis=1)))
    ref = _unit_shape(np.where(np.isfinite(x[start]), x[start], np.nanmean(x, axis=0)))
    for _ in range(GPA_MAX_ITER):
        aligned, _ = _align_rows(x, ref)
        new = _unit_shape(np.nanmean(aligned, axis=0))
        # keep the reference's orientation (the mean of rotated copies may turn slightly)
        new, _ = _align_rows(new[None], ref)
        new = _unit_shape(new[0])
        done = float(np.max(np.abs(new - ref))) < 1e-10
        ref = new
        if done:
            break
    return _align_rows(x, ref)


def _keypoint_label(k: int, keypoint_names: Sequence[str] | None) -> str:
    if keypoint_names is not None and 0 <= k < len(keypoint_names):
        return f"'{keypoint_names[k]}' (index {k})"
    return f"index {k}"


def _check_margin_args(epsilon_percentile: float, epsilon_px: float | None) -> None:
    if not 0.0 < epsilon_percentile <= 100.0:
        raise ConfigError(f"PCA epsilon_percentile must be in (0, 100], got {epsilon_percentile}")
    if epsilon_px is not None and not epsilon_px >= 0.0:
        raise ConfigError(f"PCA epsilon_px must be >= 0, got {epsilon_px}")


def _check_coords(coords: np.ndarray, what: str) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"{what}: coords must be (N, K, 2), got {coords.shape}")
    return coords


def fit_pose_pca(
    coords: np.ndarray,
    keypoint_idx: Sequence[int],
    variance: float = 0.99,
    n_components: int | None = None,
    epsilon_percentile: float = 99.0,
    epsilon_px: float | None = None,
    *,
    align: str = "translation",
    keypoint_names: Sequence[str] | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
) -> PosePCA:
    """Fit the single-view pose subspace to labeled poses (module docstring: model, EM, margins).

    Args:
        coords: (N, K, 2) labeled x, y in original-frame px; NaN where a keypoint is unlabeled.
        keypoint_idx: indices (into K) of the keypoints to model, e.g. ``pca_keypoints``.
        variance: fraction of the (shape) variance to keep, in (0, 1]; ignored when
            ``n_components`` is given.
        n_components: fixed number of components C.
        epsilon_percentile: margin = this percentile of each keypoint's own label error.
        epsilon_px: fixed margin in px for every keypoint (overrides the percentile); for
            ``align="similarity"``, at the labels' median size.
        align: ``"translation"``, ``"similarity"`` or ``"none"`` (see the module docstring).
        keypoint_names: the K keypoint names, only for error messages.
        max_iter: EM iterations cap per rank.

    Returns:
        The fitted :class:`PosePCA`.

    Raises:
        ConfigError: bad keypoint indices or settings; a keypoint labeled in fewer than 2
            usable frames; fewer usable frames than C + 1 (the message gives both counts); a
            fixed C that leaves no constraint.

    A frame is usable when it has at least 2 of the PCA keypoints labeled (1 for the raw
    model, 3 for the similarity model): its other keypoints are imputed by the EM, not
    discarded with it.
    """
    coords = _check_coords(coords, "fit_pose_pca")
    n_frames, n_kp, _ = coords.shape
    idx = [int(i) for i in keypoint_idx]
    if not idx:
        raise ConfigError("pose PCA: no keypoints selected (pca_keypoints is empty)")
    bad = [i for i in idx if not 0 <= i < n_kp]
    if bad:
        raise ConfigError(f"pose PCA: keypoint indices {bad} out of range for {n_kp} keypoints")
    if len(set(idx)) != len(idx):
        raise ConfigError(f"pose PCA: repeated keypoint indices in {idx}")
    if not 0.0 < variance <= 1.0:
        raise ConfigError(f"pose PCA variance must be in (0, 1], got {variance}")
    _check_margin_args(epsilon_percentile, epsilon_px)

    if align not in ALIGNMENTS:
        raise ConfigError(f"pose PCA align must be one of {', '.join(ALIGNMENTS)}; got {align!r}")
    k_pca = len(idx)
    dim = 2 * k_pca
    # dims a shape can vary in, and the fewest keypoints a pose needs to have any
    free_dims, min_labeled = {"none": (dim, 1), "translation": (dim - 2, 2)}.get(
        align, (dim - 4, 3)
    )
    model = {"none": "raw-coordinate", "translation": "translation-invariant"}.get(
        align, "similarity-invariant"
    )
    if free_dims < 2:
        raise ConfigError(
            f"{model} pose PCA needs at least {min_labeled} keypoints to constrain "
            f"anything; got {k_pca}"
        )
    if n_components is not None and not 1 <= n_components <= free_dims - 1:
        raise ConfigError(
            f"pose PCA n_components={n_components}: {k_pca} keypoints leave {free_dims} "
            f"{'shape ' if align != 'none' else ''}dimensions, so use 1..{free_dims - 1} "
            "(as many as the dimensions would penalise nothing)"
        )

    sub = coords[:, idx, :]  # (N, K_pca, 2)
    kp_observed = np.isfinite(sub).all(axis=-1)  # (N, K_pca)
    usable = kp_observed.sum(axis=1) >= min_labeled
    n_usable = int(usable.sum())
    needed = (n_components if n_components is not None else 1) + 1
    if n_usable < needed:
        comps = f"{n_components} component(s)" if n_components is not None else "1+ components"
        raise ConfigError(
            f"pose PCA with {comps} needs at least {needed} labeled frames with {min_labeled}+ "
            f"of its {k_pca} keypoints labeled; got {n_usable} (of {n_frames} frames)"
        )
    per_kp = kp_observed[usable].sum(axis=0)
    rare = np.flatnonzero(per_kp < 2)
    if rare.size:
        j = int(rare[0])
        raise ConfigError(
            f"pose PCA: keypoint {_keypoint_label(idx[j], keypoint_names)} is labeled in "
            f"{per_kp[j]} usable frame(s), at least 2 needed; label it more or leave it out "
            "of pca_keypoints"
        )

    x = sub[usable].copy()
    x[~kp_observed[usable]] = np.nan  # a keypoint with only x or only y is missing
    scale_px = 1.0
    if align == "similarity":
        x, sizes = _procrustes_labels(x)
        scale_px = float(np.median(sizes))
    x = x.reshape(n_usable, dim)
    fit = _fit_subspace(
        x,
        centred=align != "none",
        n_components=n_components,
        variance=variance,
        max_components=min(n_usable - 1, free_dims - 1),
        max_iter=max_iter,
    )
    if epsilon_px is not None:
        eps = np.full(k_pca, float(epsilon_px))
    else:
        err = np.linalg.norm(fit.residual.reshape(n_usable, k_pca, 2), axis=-1)
        eps = np.nanpercentile(err, epsilon_percentile, axis=0) * scale_px
    return PosePCA(
        keypoint_idx=np.asarray(idx, dtype=np.int64),
        mean=fit.mean,
        components=fit.components,
        explained_variance=fit.variances,
        explained_variance_ratio=fit.explained_ratio,
        epsilon_px=eps,
        align=align,
        scale_px=scale_px,
        n_frames=n_usable,
    )


def fit_multiview_pca(
    coords: np.ndarray,
    view_matches: np.ndarray | Sequence[Sequence[int]],
    n_components: int = 3,
    epsilon_percentile: float = 99.0,
    epsilon_px: float | None = None,
    *,
    max_iter: int = DEFAULT_MAX_ITER,
) -> MultiviewPCA:
    """Fit the multiview subspace to labeled poses (module docstring: model, EM, margins).

    Args:
        coords: (N, K, 2) labeled x, y in original-frame px; NaN where unlabeled.
        view_matches: (M, V) keypoint indices; row m is body part m in each of the V views
            (``vidpose.yaml`` ``view_matches`` mapped to indices).
        n_components: C, 3 for a 3D point seen by affine cameras.
        epsilon_percentile: margin = this percentile of each (body part, view)'s own error.
        epsilon_px: fixed margin in px everywhere (overrides the percentile).
        max_iter: EM iterations cap.

    Returns:
        The fitted :class:`MultiviewPCA`.

    Raises:
        ConfigError: fewer than 2 views, no matches, bad indices, C >= 2V, or fewer than C + 1
            usable (frame, body part) observations (the message gives both counts).

    An observation is usable when the body part is labeled in at least 2 views (with 2 views:
    in both); views it is missing from are imputed by the EM.
    """
    coords = _check_coords(coords, "fit_multiview_pca")
    n_frames, n_kp, _ = coords.shape
    matches = np.asarray(view_matches)
    if matches.ndim != 2 or matches.shape[0] == 0:
        raise ConfigError(
            f"multiview PCA needs view_matches as (body parts, views) indices with at least one "
            f"row; got shape {matches.shape}"
        )
    n_parts, n_views = matches.shape
    if n_views < 2:
        raise ConfigError(f"multiview PCA needs at least 2 views; view_matches has {n_views}")
    if not np.issubdtype(matches.dtype, np.integer):
        raise ConfigError(f"multiview PCA view_matches must be keypoint indices, got {matches}")
    if matches.min() < 0 or matches.max() >= n_kp:
        raise ConfigError(f"multiview PCA: view_matches index out of range for {n_kp} keypoints")
    dim = 2 * n_views
    if not 1 <= n_components <= dim - 1:
        raise ConfigError(
            f"multiview PCA with {n_views} views has {dim} coordinates per body part, so "
            f"n_components must be in 1..{dim - 1}; got {n_components}"
        )
    _check_margin_args(epsilon_percentile, epsilon_px)

    obs = coords[:, matches, :]  # (N, M, V, 2)
    seen = np.isfinite(obs).all(axis=-1)  # (N, M, V)
    usable = seen.sum(axis=-1) >= 2  # (N, M)
    n_usable = int(usable.sum())
    if n_usable < n_components + 1:
        raise ConfigError(
            f"multiview PCA with {n_components} components needs at least {n_components + 1} "
            f"(frame, body part) observations labeled in 2+ views; got {n_usable} "
            f"({n_frames} frames x {n_parts} matched body parts)"
        )
    x = obs.copy()
    x[~seen] = np.nan
    x = x[usable].reshape(n_usable, dim)
    # Views missing from every usable observation (possible with V >= 3) cannot be imputed.
    unseen = np.flatnonzero(~np.isfinite(x).reshape(n_usable, n_views, 2).any(axis=(0, 2)))
    if unseen.size:
        raise ConfigError(
            f"multiview PCA: view {int(unseen[0])} is never labeled together with another view"
        )
    fit = _fit_subspace(
        x,
        centred=False,
        n_components=n_components,
        variance=1.0,
        max_components=n_components,
        max_iter=max_iter,
    )
    if epsilon_px is not None:
        eps = np.full((n_parts, n_views), float(epsilon_px))
    else:
        err_obs = np.linalg.norm(fit.residual.reshape(n_usable, n_views, 2), axis=-1)
        err = np.full((n_frames, n_parts, n_views), np.nan)
        err[usable] = err_obs
        pooled = float(np.nanpercentile(err_obs, epsilon_percentile))
        has = np.isfinite(err).any(axis=0)  # (M, V)
        eps = np.full((n_parts, n_views), pooled)
        # Body parts never seen in a view take the pooled margin instead of NaN.
        if has.any():
            flat = err.reshape(n_frames, -1)[:, has.ravel()]
            eps[has] = np.nanpercentile(flat, epsilon_percentile, axis=0)
    return MultiviewPCA(
        view_matches=matches.astype(np.int64),
        mean=fit.mean,
        components=fit.components,
        explained_variance=fit.variances,
        explained_variance_ratio=fit.explained_ratio,
        epsilon_px=eps,
        n_observations=n_usable,
    )


# ---------------------------------------------------------------------------------------------
# Reconstruction errors (torch for losses, numpy for metrics)


def safe_norm(v: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm along ``dim`` whose gradient is 0 (not NaN) at the zero vector."""
    sq = (v * v).sum(dim)
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), 0.0)


def _projection_residual_t(flat: Tensor, pca: PosePCA | MultiviewPCA) -> Tensor:
    """(..., D) float32 -> (..., D) residual off the affine subspace ``mean + span(components)``
    of ``pca`` (its arrays are copied to the device once, see device_constant)."""
    m = device_constant(pca, "mean", pca.mean, flat.device, torch.float32)
    u = device_constant(pca, "components", pca.components, flat.device, torch.float32)
    dev = flat - m
    return dev - (dev @ u) @ u.T


def _projection_residual_np(flat: np.ndarray, mean: np.ndarray, components: np.ndarray):
    dev = flat - mean
    return dev - (dev @ components) @ components.T


def _pose_size_t(z: Tensor, ref: Tensor) -> Tensor:
    """(...) RMS radius of centred poses z (..., K, 2) in units of ``ref``'s (K, 2)."""
    return safe_norm(z.flatten(-2)) / ref.square().sum().sqrt()


def _similarity_align_t(x: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """(..., K, 2) poses -> (aligned (..., K, 2) in ``ref``'s units, size (...) px per unit):
    centred, scaled to ``ref``'s RMS radius and rotated onto ``ref`` (a (K, 2) centred shape).
    Differentiable; a pose with every keypoint at one point is left unrotated."""
    z = x - x.mean(dim=-2, keepdim=True)
    zx, zy = z[..., 0], z[..., 1]
    rx, ry = ref[:, 0], ref[:, 1]
    size = _pose_size_t(z, ref)
    dot = (zx * rx + zy * ry).sum(-1)
    crs = (zx * ry - zy * rx).sum(-1)
    norm = safe_norm(torch.stack([dot, crs], dim=-1))
    ok = norm > 0
    safe = torch.where(ok, norm, torch.ones_like(norm))
    cos = torch.where(ok, dot / safe, torch.ones_like(dot))[..., None]
    sin = torch.where(ok, crs / safe, torch.zeros_like(crs))[..., None]
    inv = 1.0 / size.clamp_min(1e-6)[..., None]
    aligned = torch.stack([(cos * zx - sin * zy) * inv, (cos * zy + sin * zx) * inv], dim=-1)
    return aligned, size


def _similarity_align_np(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of :func:`_similarity_align_t` (NaN in, NaN out)."""
    z = x - x.mean(axis=-2, keepdims=True)
    zc = z[..., 0] + 1j * z[..., 1]
    rc = ref[:, 0] + 1j * ref[:, 1]
    size = np.sqrt(np.sum(np.abs(zc) ** 2, axis=-1)) / np.sqrt(np.sum(np.abs(rc) ** 2))
    cross = np.sum(np.conj(zc) * rc, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rot = np.where(np.abs(cross) > 0, cross / np.abs(cross), 1.0)
        ac = rot[..., None] * zc / np.maximum(size, 1e-6)[..., None]
    return np.stack([ac.real, ac.imag], axis=-1), size


def pca_reconstruction_error(coords: Tensor | np.ndarray, pca: PosePCA) -> Tensor | np.ndarray:
    """Per-keypoint distance between each pose and its projection onto the pose subspace.

    For ``align="similarity"`` the distance is measured on the aligned pose and converted to
    px with the pose's own size (a detached factor in the tensor case: the loss never rewards
    shrinking a pose), and so is comparable with ``pca.epsilon_px * size / pca.scale_px``;
    :func:`pca_margin` gives that margin.

    Args:
        coords: (B, K, 2) x, y in original-frame px (all K keypoints; the PCA ones are picked
            with ``pca.keypoint_idx``). A tensor (differentiable, computed in float32) or a
            numpy array (float64, for metrics).
        pca: the fitted :class:`PosePCA`.

    Returns:
        (B, K_pca) px, same kind as ``coords``. numpy only: a frame with any PCA keypoint NaN
        gives NaN for all its keypoints (its centroid and projection are undefined).
    """
    k = len(pca.keypoint_idx)
    if isinstance(coords, np.ndarray):
        x = np.asarray(coords, dtype=np.float64)[..., pca.keypoint_idx, :]
        size = None
        if pca.align == "similarity":
            x, size = _similarity_align_np(x, pca.mean.reshape(k, 2))
        elif pca.align == "translation":
            x = x - x.mean(axis=-2, keepdims=True)
        flat = x.reshape(*x.shape[:-2], -1)
        res = _projection_residual_np(flat, pca.mean, pca.components)
        err = np.linalg.norm(res.reshape(x.shape), axis=-1)
        return err if size is None else err * size[..., None]
    with torch.autocast(device_type=coords.device.type, enabled=False):
        idx = device_constant(pca, "keypoint_idx", pca.keypoint_idx, coords.device, torch.long)
        x = coords.float().index_select(-2, idx)
        size = None
        if pca.align == "similarity":
            ref = device_constant(pca, "mean", pca.mean, coords.device, torch.float32)
            x, size = _similarity_align_t(x, ref.reshape(k, 2))
        elif pca.align == "translation":
            x = x - x.mean(dim=-2, keepdim=True)
        flat = x.reshape(*x.shape[:-2], -1)
        res = _projection_residual_t(flat, pca)
        err = safe_norm(res.reshape(x.shape))
        return err if size is None else err * size.detach()[..., None]


def pca_margin(coords: Tensor, pca: PosePCA) -> Tensor:
    """(B, K_pca) margin in px for each pose of ``coords`` (B, K, 2): ``pca.epsilon_px``,
    scaled with the pose's size for ``align="similarity"`` (no gradient)."""
    eps = device_constant(pca, "epsilon_px", pca.epsilon_px, coords.device, torch.float32)
    if pca.align != "similarity":
        return eps.expand(*coords.shape[:-2], -1)
    with torch.no_grad(), torch.autocast(device_type=coords.device.type, enabled=False):
        idx = device_constant(pca, "keypoint_idx", pca.keypoint_idx, coords.device, torch.long)
        x = coords.float().index_select(-2, idx)
        z = x - x.mean(dim=-2, keepdim=True)
        k = len(pca.keypoint_idx)
        ref = device_constant(pca, "mean", pca.mean, coords.device, torch.float32).reshape(k, 2)
        return eps * (_pose_size_t(z, ref) / pca.scale_px)[..., None]


def multiview_reconstruction_error(
    coords: Tensor | np.ndarray, mv: MultiviewPCA
) -> Tensor | np.ndarray:
    """Per-(body part, view) distance between each view's keypoint and its multiview projection.

    Args:
        coords: (B, K, 2) x, y in original-frame px, tensor (differentiable, float32) or numpy.
        mv: the fitted :class:`MultiviewPCA`.

    Returns:
        (B, M, V) px, same kind as ``coords``. numpy only: a body part missing (NaN) in any
        view gives NaN in all its views.
    """
    n_parts, n_views = mv.view_matches.shape
    if isinstance(coords, np.ndarray):
        x = np.asarray(coords, dtype=np.float64)[..., mv.view_matches, :]  # (B, M, V, 2)
        flat = x.reshape(*x.shape[:-2], 2 * n_views)
        res = _projection_residual_np(flat, mv.mean, mv.components)
        return np.linalg.norm(res.reshape(x.shape), axis=-1)
    with torch.autocast(device_type=coords.device.type, enabled=False):
        idx = device_constant(mv, "matches", mv.view_matches.reshape(-1), coords.device, torch.long)
        x = coords.float().index_select(-2, idx)  # (B, M * V, 2)
        flat = x.reshape(*x.shape[:-2], n_parts, 2 * n_views)
        res = _projection_residual_t(flat, mv)
        return safe_norm(res.reshape(*x.shape[:-2], n_parts, n_views, 2))
