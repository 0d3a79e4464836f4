"""Registry of unsupervised losses, their prerequisites, and the ramp of their weights.

A registered loss is ``fn(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms``;
``needs`` names what it reads beyond the coordinates:

* ``"confidence"``: ``inputs.confidence``;
* ``"heatmaps"``: ``inputs.heatmap_logits`` and ``inputs.coords_hm`` (a heatmap head);
* ``"pca"``: ``ctx.pose_pca``, fitted to the training labels;
* ``"multiview_pca"``: ``ctx.multiview_pca``, fitted to labels of ``view_matches`` keypoints.

When the model is built, :func:`check_loss_prerequisites` turns every unmet need of the losses
named in ``model.losses`` into one ConfigError, so a loss is never silently a no-op; then
:func:`build_unsupervised_context` fits what they need. The allowed names
(:func:`available_unsupervised_losses`) come from this registry. To add a loss::

    @register_unsupervised_loss("bone_length", needs=())
    def _bone_length(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
        \"\"\"One line of help (shown in listings).\"\"\"
        return bone_length_loss(inputs.coords_px, ...)

and give it a weight in the config's ``losses.weights``; if it needs something new, add the need
to ``_NEED_CHECKS`` (build-time check) and ``_missing_at_call`` (call-time check).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from vidpose.errors import ConfigError
from vidpose.losses.pca import MultiviewPCA, PosePCA, fit_multiview_pca, fit_pose_pca
from vidpose.losses.unsupervised import (
    LossTerms,
    multiview_pca_loss,
    pca_loss,
    temporal_loss,
    unimodal_loss,
)
from vidpose.models.heatmaps import DEFAULT_SIGMA

NEEDS = ("confidence", "heatmaps", "pca", "multiview_pca")
"""Everything a registered loss may declare in ``needs``."""

MIN_PCA_LABELS = 2
"""Fewest labeled training frames for single-view PCA (one component needs two poses)."""

MIN_MULTIVIEW_LABELS = 4
"""Fewest labeled training frames for multiview PCA (a 3D subspace needs four points)."""


@dataclass
class UnsupervisedInputs:
    """The model's predictions on one unlabeled clip of T frames (K keypoints).

    Attributes:
        coords_px: (T, K, 2) float x, y in *original-frame* pixels.
        confidence: (T, K) in [0, 1], or None.
        heatmap_logits: (T, K, h, w) heatmap logits, or None for heads without heatmaps.
        coords_hm: (T, K, 2) the same predictions in heatmap cells (e.g.
            ``input_to_heatmap(output.coords, output.heatmap_stride)``), or None.
    """

    coords_px: Tensor
    confidence: Tensor | None = None
    heatmap_logits: Tensor | None = None
    coords_hm: Tensor | None = None


@dataclass(frozen=True)
class UnsupervisedContext:
    """What the losses need beyond the clip, fixed when the model is built.

    Attributes:
        temporal_epsilon_px: per-frame motion that the temporal loss allows, original px.
        temporal_min_confidence: the temporal loss skips pairs less confident than this.
        pose_pca: single-view pose subspace, or None.
        multiview_pca: multiview subspace, or None.
        heatmap_sigma: Gaussian width of the unimodal target, heatmap cells.
        pca_min_confidence: the PCA losses skip keypoints less confident than this.
    """

    temporal_epsilon_px: float = 20.0
    temporal_min_confidence: float = 0.9
    pose_pca: PosePCA | None = None
    multiview_pca: MultiviewPCA | None = None
    heatmap_sigma: float = DEFAULT_SIGMA
    pca_min_confidence: float = 0.0


LossFn = Callable[[UnsupervisedInputs, UnsupervisedContext], LossTerms]


def _missing_at_call(need: str, inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> bool:
    if need == "confidence":
        return inputs.confidence is None
    if need == "heatmaps":
        return inputs.heatmap_logits is None or inputs.coords_hm is None
    if need == "pca":
        return ctx.pose_pca is None
    if need == "multiview_pca":
        return ctx.multiview_pca is None
    raise AssertionError(f"unknown need {need!r}")


@dataclass(frozen=True)
class UnsupervisedLoss:
    """A registered unsupervised loss.

    Attributes:
        name: registry name, as written in ``model.losses`` and ``losses.weights``.
        fn: ``fn(UnsupervisedInputs, UnsupervisedContext) -> LossTerms``.
        needs: what it reads besides ``coords_px`` (a subset of :data:`NEEDS`).
        help: one line describing it.
    """

    name: str
    fn: LossFn
    needs: tuple[str, ...]
    help: str

    def __call__(self, inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
        missing = [n for n in self.needs if _missing_at_call(n, inputs, ctx)]
        if missing:
            raise ConfigError(
                f"unsupervised loss {self.name!r} needs {missing} but was not given them; "
                "run check_loss_prerequisites and build_unsupervised_context when building "
                "the model"
            )
        return self.fn(inputs, ctx)


_LOSSES: dict[str, UnsupervisedLoss] = {}


def register_unsupervised_loss(
    name: str, *, needs: Sequence[str] = ()
) -> Callable[[LossFn], LossFn]:
    """Decorator registering ``fn(inputs, ctx) -> LossTerms`` under ``name``."""
    unknown = sorted(set(needs) - set(NEEDS))
    if unknown:
        raise ValueError(f"loss {name!r}: unknown needs {unknown}; known: {list(NEEDS)}")

    def deco(fn: LossFn) -> LossFn:
        if name in _LOSSES:
            raise ValueError(f"unsupervised loss {name!r} is already registered")
        doc = inspect.getdoc(fn) or ""
        _LOSSES[name] = UnsupervisedLoss(name, fn, tuple(needs), doc.splitlines()[0] if doc else "")
        return fn

    return deco


def available_unsupervised_losses() -> list[str]:
    """Registered unsupervised loss names, sorted."""
    return sorted(_LOSSES)


def get_unsupervised_loss(name: str) -> UnsupervisedLoss:
    """The loss registered under ``name``; ConfigError listing the allowed names otherwise."""
    try:
        return _LOSSES[name]
    except KeyError:
        raise ConfigError(
            f"model.losses: unknown unsupervised loss {name!r}; choose from "
            f"{available_unsupervised_losses()}"
        ) from None


@dataclass(frozen=True)
class _BuildFacts:
    n_train_labels: int
    n_keypoints: int
    has_view_matches: bool
    head_has_heatmaps: bool


def _check_pca(f: _BuildFacts) -> str | None:
    if f.n_keypoints < 2:
        return f"pose PCA needs at least 2 keypoints and the project has {f.n_keypoints}"
    if f.n_train_labels < MIN_PCA_LABELS:
        return (
            f"pose PCA needs at least {MIN_PCA_LABELS} labeled training frames and there "
            f"are {f.n_train_labels}"
        )
    return None


def _check_heatmaps(f: _BuildFacts) -> str | None:
    if f.head_has_heatmaps:
        return None
    return "the model's head produces no heatmaps (use a heatmap head, e.g. model.head=heatmap)"


def _check_multiview(f: _BuildFacts) -> str | None:
    if not f.has_view_matches:
        return "vidpose.yaml has no view_matches (add views and view_matches)"
    if f.n_train_labels < MIN_MULTIVIEW_LABELS:
        return (
            f"multiview PCA needs at least {MIN_MULTIVIEW_LABELS} labeled training frames and "
            f"there are {f.n_train_labels}"
        )
    return None


_NEED_CHECKS: dict[str, Callable[[_BuildFacts], str | None]] = {
    # Every head emits confidences (HeadOutput.confidence), so this need is always met.
    "confidence": lambda f: None,
    "heatmaps": _check_heatmaps,
    "pca": _check_pca,
    "multiview_pca": _check_multiview,
}


def check_loss_prerequisites(
    names: Iterable[str],
    *,
    n_train_labels: int,
    n_keypoints: int,
    has_view_matches: bool,
    head_has_heatmaps: bool,
) -> list[UnsupervisedLoss]:
    """Check that every loss in ``model.losses`` can work with this project and model.

    Args:
        names: the unsupervised loss names (``model.losses``).
        n_train_labels: labeled frames in the training split.
        n_keypoints: keypoints entering single-view pose PCA (``pca_keypoints``, or all).
        has_view_matches: whether ``vidpose.yaml`` has ``view_matches``.
        head_has_heatmaps: whether the model's head produces heatmaps.

    Returns:
        The registered losses, in the order named.

    Raises:
        ConfigError: unknown names, or unmet needs; one message lists every problem, e.g.
            ``model.losses includes pca_multiview but vidpose.yaml has no view_matches``.
    """
    facts = _BuildFacts(n_train_labels, n_keypoints, has_view_matches, head_has_heatmaps)
    losses = [get_unsupervised_loss(n) for n in names]
    problems = []
    for loss in losses:
        for need in loss.needs:
            reason = _NEED_CHECKS[need](facts)
            if reason:
                problems.append(f"model.losses includes {loss.name} but {reason}")
    if problems:
        raise ConfigError("; ".join(problems))
    return losses


def build_unsupervised_context(
    names: Iterable[str],
    *,
    labels_px: np.ndarray,
    pca_keypoint_idx: Sequence[int] | None = None,
    view_matches: np.ndarray | Sequence[Sequence[int]] | None = None,
    keypoint_names: Sequence[str] | None = None,
    pca_variance: float = 0.99,
    pca_components: int | None = None,
    pca_epsilon_percentile: float = 99.0,
    pca_epsilon_px: float | None = None,
    temporal_epsilon_px: float = 20.0,
    temporal_min_confidence: float = 0.9,
    heatmap_sigma: float = DEFAULT_SIGMA,
) -> UnsupervisedContext:
    """Fit the subspaces that the named losses need (only those) from the training labels.

    Args:
        names: the unsupervised loss names (``model.losses``), already checked.
        labels_px: (N, K, 2) training-split labels in original-frame px, NaN where missing.
        pca_keypoint_idx: indices of ``pca_keypoints``; None for all K.
        view_matches: (M, V) keypoint indices, or None.
        keypoint_names: the K names, for error messages.
        pca_*: see ``losses.*`` in the config; temporal_*: likewise; heatmap_sigma: the
            supervised targets' sigma in heatmap cells.

    Raises:
        ConfigError: from the fits (too few labels, ...).
    """
    needs = {n for name in names for n in get_unsupervised_loss(name).needs}
    labels_px = np.asarray(labels_px, dtype=np.float64)
    pose_pca = None
    if "pca" in needs:
        idx = range(labels_px.shape[1]) if pca_keypoint_idx is None else pca_keypoint_idx
        pose_pca = fit_pose_pca(
            labels_px,
            list(idx),
            variance=pca_variance,
            n_components=pca_components,
            epsilon_percentile=pca_epsilon_percentile,
            epsilon_px=pca_epsilon_px,
            keypoint_names=keypoint_names,
        )
    multiview = None
    if "multiview_pca" in needs:
        if view_matches is None or len(view_matches) == 0:
            raise ConfigError("pca_multiview needs view_matches; vidpose.yaml has none")
        multiview = fit_multiview_pca(
            labels_px,
            np.asarray(view_matches),
            epsilon_percentile=pca_epsilon_percentile,
            epsilon_px=pca_epsilon_px,
        )
    return UnsupervisedContext(
        temporal_epsilon_px=temporal_epsilon_px,
        temporal_min_confidence=temporal_min_confidence,
        pose_pca=pose_pca,
        multiview_pca=multiview,
        heatmap_sigma=heatmap_sigma,
    )


def ramp_weight(epoch: float, ramp_epochs: float) -> float:
    """Factor on unsupervised weights: 0 -> 1 linearly over ``ramp_epochs``, then 1.

    Args:
        epoch: fractional epoch (e.g. ``epoch + batch / batches_per_epoch``).
        ramp_epochs: epochs to full weight; 0 means full weight from the start.
    """
    if ramp_epochs <= 0:
        return 1.0
    return float(min(max(epoch / ramp_epochs, 0.0), 1.0))


# ---------------------------------------------------------------------------------------------
# The built-in losses


@register_unsupervised_loss("temporal", needs=("confidence",))
def _temporal(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
    """Frame-to-frame jumps beyond temporal_epsilon_px (confident pairs only)."""
    return temporal_loss(
        inputs.coords_px, inputs.confidence, ctx.temporal_epsilon_px, ctx.temporal_min_confidence
    )


@register_unsupervised_loss("pca_singleview", needs=("pca",))
def _pca_singleview(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
    """Distance of each pose from the labels' pose subspace beyond its margin."""
    assert ctx.pose_pca is not None
    return pca_loss(inputs.coords_px, ctx.pose_pca, inputs.confidence, ctx.pca_min_confidence)


@register_unsupervised_loss("pca_multiview", needs=("multiview_pca",))
def _pca_multiview(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
    """Disagreement between views of matched keypoints (3D subspace) beyond its margin."""
    assert ctx.multiview_pca is not None
    return multiview_pca_loss(
        inputs.coords_px, ctx.multiview_pca, inputs.confidence, ctx.pca_min_confidence
    )


@register_unsupervised_loss("unimodal", needs=("heatmaps",))
def _unimodal(inputs: UnsupervisedInputs, ctx: UnsupervisedContext) -> LossTerms:
    """KL from a single Gaussian at the prediction to the heatmap (penalises extra peaks)."""
    assert inputs.heatmap_logits is not None and inputs.coords_hm is not None
    return unimodal_loss(inputs.heatmap_logits, inputs.coords_hm, ctx.heatmap_sigma)
