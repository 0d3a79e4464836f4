"""Registry of unsupervised losses: each owns its parameters and default weight.

A loss is a subclass of :class:`UnsupervisedLoss`, registered with its parameter dataclass and
its default weight. The config's ``losses.<name>`` section (``weight`` plus the parameters,
with their help and bounds) is generated from the registry, so declaring the loss is all it
takes to configure, document and validate it. Built for one model from its parameters and a
:class:`LossSetup` (the training labels, the head), a loss maps a clip's predictions to
:class:`~vidpose.losses.unsupervised.LossTerms`.

How to add a loss (one file; or a new module added to ``UNSUPERVISED_LOSSES``' modules)::

    @dataclass
    class BoneLengthParams:
        tolerance_px: float = setting(5.0, "length change that costs nothing, px", ge=0)

    @register_unsupervised_loss("bone_length", params=BoneLengthParams, weight=0.01)
    class BoneLengthLoss(UnsupervisedLoss):
        \"\"\"Bones that change length beyond tolerance_px (help shown by vidpose list).\"\"\"

        def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:
            return bone_length_loss(inputs.coords_px, self.params.tolerance_px)

It is then ``model.losses=[bone_length]``, ``losses.bone_length.weight=...`` and
``losses.bone_length.tolerance_px=...``; the registry-driven tests give it a forward + backward
test. Override :meth:`UnsupervisedLoss.problems` when the loss cannot work with some projects
(too few labels, no views) and ``__init__`` to fit what it needs from the labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from torch import Generator, Tensor

from vidpose.errors import ConfigError
from vidpose.losses.unsupervised import LossTerms
from vidpose.models.heatmaps import DEFAULT_SIGMA
from vidpose.registry import Registry, first_line


@dataclass
class UnsupervisedInputs:
    """The model's predictions on one unlabeled clip of T frames (K keypoints).

    With C >= 2 synchronized cameras (a multi-camera project) the coordinates and confidences
    are *wide*: (T, C * K, ...), keypoint k of camera c at ``c * K + k`` (each camera's own
    original-frame pixels), so that losses over time and across cameras see one row per
    instant; :func:`per_camera` turns them back into one pose per image. The heatmaps stay
    per image, (C * T, K, ...), camera after camera.

    Attributes:
        coords_px: (T, K, 2) float x, y in *original-frame* pixels ((T, C * K, 2) wide).
        confidence: (T, K) in [0, 1] ((T, C * K) wide), or None.
        heatmap_logits: (T, K, h, w) heatmap logits, or None for heads without heatmaps.
        coords_hm: (T, K, 2) the same predictions in heatmap cells (e.g.
            ``input_to_heatmap(output.coords, output.heatmap_stride)``), or None.
        cameras: C, the synchronized cameras (1: one camera, nothing is wide).
    """

    coords_px: Tensor
    confidence: Tensor | None = None
    heatmap_logits: Tensor | None = None
    coords_hm: Tensor | None = None
    cameras: int = 1
    second: UnsupervisedInputs | None = None
    """The predictions on a second, differently transformed copy of the clip (same frames,
    mapped back to original-frame px), for losses with ``needs_second_view``; else None."""
    in_both: Tensor | None = None
    """(T, K) bool with ``second``: the keypoint's predicted position lies inside both views."""


def per_camera(x: Tensor | np.ndarray, cameras: int) -> Tensor | np.ndarray:
    """Wide (N, C * K, ...) -> (N * C, K, ...): one row per image (camera c of instant n at
    ``n * C + c``); unchanged for one camera."""
    if cameras == 1:
        return x
    n, ck = x.shape[:2]
    return x.reshape(n * cameras, ck // cameras, *x.shape[2:])


@dataclass(frozen=True)
class LossSetup:
    """What losses may need beyond a clip, known when the model is built.

    Attributes:
        labels_px: (N, K, 2) training-split labels in original-frame px, NaN where missing.
        keypoints: the K keypoint names.
        pca_keypoint_idx: indices of ``pca_keypoints`` (vidpose.yaml), None for all K.
        view_matches: (M, V) keypoint indices of the same body part in each view, or None.
            For separate cameras, indices into the wide layout (``c * K + k``).
        head_has_heatmaps: whether the model's head produces heatmaps.
        heatmap_sigma: width of the supervised Gaussian targets, heatmap cells.
        cameras: the names of a multi-camera project's C cameras (empty for one camera); then
            ``labels_px`` is wide, (N, C * K, 2) (see :class:`UnsupervisedInputs`), one row
            per labeled instant.
        calibration: the cameras' calibration (a ``vidpose.geometry.Calibration``, in
            ``cameras`` order), or None.
    """

    labels_px: np.ndarray
    keypoints: Sequence[str]
    pca_keypoint_idx: Sequence[int] | None = None
    view_matches: np.ndarray | None = None
    head_has_heatmaps: bool = True
    heatmap_sigma: float = DEFAULT_SIGMA
    cameras: Sequence[str] = ()
    calibration: Any = None

    @property
    def n_train_labels(self) -> int:
        """Labeled training instants (rows of ``labels_px``)."""
        return int(self.labels_px.shape[0])

    @property
    def n_cameras(self) -> int:
        return max(1, len(self.cameras))


class UnsupervisedLoss:
    """Base class of unsupervised losses.

    Attributes:
        name: the registry name (set by :func:`register_unsupervised_loss`).
        needs_heatmaps: the loss reads ``inputs.heatmap_logits`` / ``coords_hm``.
        needs_second_view: the loss reads ``inputs.second``; the training step then runs the
            network on :meth:`second_view` of the clip too.
        params: this loss's parameters (an instance of its registered dataclass).
    """

    name: ClassVar[str] = ""
    needs_heatmaps: ClassVar[bool] = False
    needs_second_view: ClassVar[bool] = False
    gates: ClassVar[str] = ""
    """What keeps a term from counting or its hinge from firing, in words naming the settings
    (``losses.<name>.*``); told to a user whose loss stayed inactive."""

    def __init__(self, params: Any, setup: LossSetup) -> None:
        self.params = params

    @classmethod
    def problems(cls, params: Any, setup: LossSetup) -> list[str]:
        """Why this loss cannot work with this project and model (empty: it can)."""
        if cls.needs_heatmaps and not setup.head_has_heatmaps:
            return [
                "the model's head makes no heatmaps (use a heatmap head, e.g. model.head=heatmap)"
            ]
        return []

    def __call__(self, inputs: UnsupervisedInputs) -> LossTerms:  # pragma: no cover - abstract
        raise NotImplementedError

    def second_view(
        self, frames: Tensor, generator: Generator | None = None
    ) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """(T, 3, H, W) clip frames -> a transformed copy and its (3, 3) input-pixel matrix
        (frames -> copy); only for losses with ``needs_second_view``. Random draws come from
        ``generator`` (on the frames' device; training passes the run's own, so that runs in
        other threads draw nothing from it), else from torch's default generator."""
        raise NotImplementedError

    def fitted(self) -> dict[str, Any]:
        """What the loss fitted to the labels, JSON-ready (saved as ``unsupervised.json``)."""
        return {}


@dataclass(frozen=True)
class UnsupervisedLossSpec:
    """A registered unsupervised loss.

    Attributes:
        name: as written in ``model.losses`` and ``losses.<name>``.
        cls: the :class:`UnsupervisedLoss` subclass.
        params: its parameter dataclass (every field has a default and help).
        weight: the default weight (after the ramp) of its term in the training loss.
        help: one line (the class docstring's first line).
    """

    name: str
    cls: type[UnsupervisedLoss]
    params: type
    weight: float
    help: str


UNSUPERVISED_LOSSES: Registry[UnsupervisedLossSpec] = Registry(
    "unsupervised loss",
    key="model.losses",
    modules=("vidpose.losses.builtin",),
    columns=lambda s: f"weight {s.weight:<7g}",
    listing="unsupervised-losses",
)

L = TypeVar("L", bound=type[UnsupervisedLoss])


@dataclass
class NoParams:
    """A loss without parameters of its own."""


def register_unsupervised_loss(
    name: str, *, weight: float, params: type = NoParams
) -> Callable[[L], L]:
    """Class decorator registering an :class:`UnsupervisedLoss` with its parameter dataclass
    and default ``weight`` (see the module docstring)."""
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"unsupervised loss {name!r}: params must be a dataclass, got {params!r}")
    missing = [
        f.name
        for f in dataclasses.fields(params)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing or "weight" in {f.name for f in dataclasses.fields(params)}:
        raise TypeError(
            f"unsupervised loss {name!r}: every parameter needs a default ({missing}) and "
            "'weight' is declared by register_unsupervised_loss, not the params"
        )
    if not weight >= 0:
        raise ValueError(f"unsupervised loss {name!r}: weight must be >= 0, got {weight}")

    def deco(cls: L) -> L:
        cls.name = name
        UNSUPERVISED_LOSSES.add(
            UnsupervisedLossSpec(name, cls, params, float(weight), first_line(cls.__doc__))
        )
        return cls

    return deco


def loss_params(spec: UnsupervisedLossSpec, section: Any) -> Any:
    """The loss's parameter dataclass filled from its config section ``losses.<name>``."""
    names = [f.name for f in dataclasses.fields(spec.params)]
    return spec.params(**{n: getattr(section, n) for n in names})


@dataclass
class WeightedLoss:
    """A built loss and the weight of its term (before the ramp)."""

    loss: UnsupervisedLoss
    weight: float

    @property
    def name(self) -> str:
        return self.loss.name


def build_unsupervised_losses(
    names: Sequence[str], sections: Any, setup: LossSetup
) -> list[WeightedLoss]:
    """Check that the named losses fit this project and model, then build them.

    Args:
        names: ``model.losses``.
        sections: the ``losses`` config section (``sections.<name>`` has ``weight`` and the
            loss's parameters).
        setup: the facts they need.

    Raises:
        ConfigError: one message listing every loss that cannot work and why, e.g.
            ``model.losses includes pca_multiview but vidpose.yaml has no view_matches``.
    """
    specs = [UNSUPERVISED_LOSSES.get(n) for n in names]
    params = [loss_params(s, getattr(sections, s.name)) for s in specs]
    problems = [
        f"model.losses includes {s.name} but {why}"
        for s, p in zip(specs, params)
        for why in s.cls.problems(p, setup)
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    return [
        WeightedLoss(s.cls(p, setup), float(getattr(sections, s.name).weight))
        for s, p in zip(specs, params)
    ]


def ramp_weight(epoch: float, ramp_epochs: float) -> float:
    """Factor on unsupervised weights: 0 -> 1 linearly over ``ramp_epochs``, then 1.

    Args:
        epoch: fractional epoch (e.g. ``epoch + batch / batches_per_epoch``).
        ramp_epochs: epochs to full weight; 0 means full weight from the start.
    """
    if ramp_epochs <= 0:
        return 1.0
    return float(min(max(epoch / ramp_epochs, 0.0), 1.0))
