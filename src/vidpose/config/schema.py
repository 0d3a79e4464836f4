"""The typed training/prediction config: dataclasses, per-key help, and value checks.

The dataclasses below are the single source of truth for every config key: its type (used by
OmegaConf as a structured config), its default, its help text, its allowed values or bounds
(all declared with :func:`vidpose._schema.setting`). ``config_help()``, ``to_yaml(comments=True)``
and the error messages are all derived from them. Keys whose values are names (backbones, heads,
losses, readers) declare the registry they come from and are checked against it.

The ``losses`` section is generated from the unsupervised-loss registry: one subsection
``losses.<name>`` per registered loss with its ``weight`` and the parameters it declares
(:mod:`vidpose.losses.builtin`), plus ``losses.ramp_epochs``.

How to add a key: add a field to the right section with ``setting(default, help, ...)`` and
make some code read it (a test fails for a key that no code reads); add a cross-field check to
:func:`find_issues` if its valid values depend on other keys.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from vidpose._schema import bound_problems, describe_bounds, setting
from vidpose.losses.registry import UNSUPERVISED_LOSSES
from vidpose.registry import get_registry, suggest

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "multistep", "cosine")
TRAIN_PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
PREDICT_PRECISIONS = ("auto", "32", "bf16")
HEATMAP_STRIDES = (2, 4)


@dataclass
class DataConfig:
    """Labeled frames: model input size and the train/val/test split."""

    image_height: int = setting(
        256, "model input height in px; frames are resized to it (multiple of 32)", gt=0
    )
    image_width: int = setting(
        256, "model input width in px; frames are resized to it (multiple of 32)", gt=0
    )
    val_fraction: float = setting(
        0.1, "fraction of labeled frames held out for validation", ge=0, lt=1
    )
    test_fraction: float = setting(
        0.1, "fraction of labeled frames held out for testing", ge=0, lt=1
    )
    split_seed: int = setting(0, "random seed of the train/val/test split of labeled frames")
    split_file: str | None = setting(
        None,
        "CSV (header image,split) assigning every labeled image to train, val or test; "
        "relative to the project; overrides val_fraction, test_fraction and split_seed",
    )


@dataclass
class ModelConfig:
    """Network: backbone, head and which losses train it."""

    backbone: str = setting("resnet50", "feature extractor", registry="backbones")
    pretrained: bool = setting(True, "start the backbone from ImageNet-pretrained weights")
    head: str = setting("heatmap_fpn", "pose head", registry="heads")
    heatmap_stride: int = setting(
        4, "input px per heatmap px (heatmap = image / stride)", choices=HEATMAP_STRIDES
    )
    sigma: float = setting(2.0, "std of the Gaussian target, in heatmap px", gt=0)
    supervised_loss: str = setting("heatmap_mse", "loss on labeled frames", registry="losses")
    losses: list[str] = setting(
        help="unsupervised losses on unlabeled video, e.g. [temporal,pca_singleview]; "
        "empty = supervised only",
        registry="unsupervised-losses",
        factory=list,
    )
    context_frames: int = setting(
        5,
        "frames seen by a temporal-context head (heatmap_context), centred on the target (odd)",
        ge=1,
    )


@dataclass
class UnlabeledConfig:
    """Unlabeled video clips fed to the unsupervised losses."""

    clip_length: int = setting(16, "consecutive frames per unlabeled clip", ge=1)
    reader: str = setting(
        "auto", "video reader backend for training clips", registry="readers", extra=("auto",)
    )


@dataclass
class TrainingConfig:
    """Optimisation, schedule, hardware and logging."""

    batch_size: int = setting(
        16,
        "labeled frames per training step on each device (a step trains on batch_size x "
        "training.devices frames)",
        ge=1,
    )
    max_epochs: int = setting(100, "training length in epochs", ge=1)
    max_steps: int = setting(-1, "training length in steps; -1 = use max_epochs", ge=-1)
    steps_per_epoch: int | None = setting(
        None,
        "steps per epoch; null = one pass over the training labels (batch_size x devices "
        "frames a step)",
        ge=1,
    )
    optimizer: str = setting("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = setting(
        1e-3,
        "peak learning rate; used as given whatever training.devices (not scaled with the "
        "frames of a step)",
        gt=0,
    )
    weight_decay: float = setting(0.0, "weight decay", ge=0)
    scheduler: str = setting("multistep", "learning-rate schedule", choices=SCHEDULERS)
    milestones: list[float] = setting(
        help="multistep: points where lr is multiplied by gamma, as fractions of the training "
        "length (so they follow max_epochs / max_steps)",
        factory=lambda: [0.5, 0.75, 0.9],
        gt=0,
        lt=1,
    )
    gamma: float = setting(0.5, "multistep: lr factor at each milestone", gt=0, le=1)
    warmup_epochs: float = setting(0.0, "epochs of linear lr warm-up from 0 to lr (0 = none)", ge=0)
    seed: int = setting(0, "random seed of weights, sampling, augmentation")
    precision: str = setting(
        "auto",
        "numeric precision; auto = bf16-mixed on a GPU that has it",
        choices=TRAIN_PRECISIONS,
    )
    device: str = setting("auto", "where to train", choices=DEVICES)
    devices: int = setting(
        1,
        "GPUs to train on: N > 1 trains one process per GPU (DDP), each on batch_size frames "
        "a step, gradients averaged; no CUDA graphs; on CPU, N processes (for testing); "
        "fixed for a run (--resume keeps it)",
        ge=1,
    )
    val_every_n_epochs: int = setting(1, "validate every n epochs", ge=1)
    log_every_n_steps: int = setting(10, "log metrics every n steps", ge=1)
    checkpoint_every_n_steps: int = setting(
        500, "save checkpoints/last.ckpt (for --resume) every n steps and at the end", ge=1
    )
    early_stopping_patience: int | None = setting(
        None,
        "stop after this many validations without a lower val pixel error; null = never",
        ge=1,
    )
    compile: bool = setting(
        False,
        "torch.compile the network's forward pass (compiling takes about a minute: pays off "
        "on long runs on a GPU)",
    )
    channels_last: bool = setting(True, "channels_last memory format (faster convs on GPU)")
    cudnn_benchmark: bool = setting(
        False,
        "let cuDNN time its convolution algorithms at the start (measured on an H200: about "
        "8 s more start-up for no faster step with bf16 and channels_last)",
    )
    cuda_graphs: bool | None = setting(
        None,
        "run each training step as one captured CUDA graph (the same computation, without "
        "per-kernel launch costs; on several devices the gradient all-reduce is in the graph); "
        "null = on when training on CUDA without compile",
    )
    ensemble_concurrency: int | None = setting(
        None,
        "ensembles (--seeds): members trained at once on the one device, each in its own "
        "thread and CUDA stream (same results as one after another); null = all of them on "
        "one CUDA device, one at a time on CPU or with devices > 1 or compile",
        ge=1,
    )


@dataclass
class AugmentConfig:
    """Augmentation of training frames and clips (on the training device).

    ``strength`` multiplies every magnitude (rotation, scale and translation ranges, brightness,
    contrast, blur sigma, noise std) but no probability; ``strength=0`` leaves only flips.
    Brightness is a gain (black stays black, as when a camera's exposure changes); contrast is
    a factor about the image mean.
    """

    enabled: bool = setting(True, "augment labeled frames and clips")
    rotation_deg: float = setting(15.0, "max rotation, degrees", ge=0, le=180)
    scale_min: float = setting(0.85, "min zoom factor", gt=0)
    scale_max: float = setting(1.15, "max zoom factor", gt=0)
    translate_fraction: float = setting(
        0.05, "max shift, as a fraction of image size", ge=0, le=0.5
    )
    hflip_prob: float = setting(
        0.0, "horizontal flip probability (needs flip_pairs in vidpose.yaml)", ge=0, le=1
    )
    vflip_prob: float = setting(0.0, "vertical flip probability", ge=0, le=1)
    brightness: float = setting(0.2, "max relative brightness change", ge=0)
    contrast: float = setting(0.2, "max relative contrast change", ge=0)
    blur_prob: float = setting(0.2, "Gaussian blur probability", ge=0, le=1)
    blur_sigma_max: float = setting(1.5, "max blur sigma, px", ge=0)
    noise_std: float = setting(0.02, "std of additive Gaussian noise, intensity in [0, 1]", ge=0)
    strength: float = setting(
        1.0, "global multiplier on geometric and photometric magnitudes (0 = none)", ge=0
    )


@dataclass
class PredictConfig:
    """Video inference defaults of a model (command-line options override them)."""

    batch_size: int = setting(64, "frames per forward pass", ge=1)
    reader: str = setting("auto", "video reader backend", registry="readers", extra=("auto",))
    device: str = setting("auto", "where to predict", choices=DEVICES)
    precision: str = setting(
        "auto", "numeric precision; auto = bf16 on a GPU that has it", choices=PREDICT_PRECISIONS
    )
    compile: bool = setting(False, "torch.compile the network (pays off on long videos)")
    fold_batchnorm: bool = setting(
        True,
        "in float32 prediction (CPU by default), fold each batch normalisation into the "
        "convolution before it when the model is loaded: the same function, checked on a probe "
        "input, with fewer kernels (ResNet-50 on 2 CPU cores: 1.4x frames/s); never in bf16, "
        "where it was slower on an H200",
    )
    fuse_conv_relu: bool = setting(
        True,
        "on a GPU, fold the batch normalisations and fuse each convolution with the ReLU (and "
        "residual sum) after it, in cuDNN, when the model is loaded: checked on a probe input "
        "like the folding; the ResNet-50 trunk ran 2x faster in bf16 on an H200",
    )
    aot: bool = setting(
        True,
        "on CPU, use the network compiled ahead of time by `vidpose export --format aoti` "
        "when it was compiled from this checkpoint by this torch",
    )
    decoders: str = setting(
        "auto",
        "how videos are decoded for prediction: threads, processes (worker processes with a "
        "GIL each, filling shared buffers; CUDA buffers with reader nvdec; tables then written "
        "in processes too), or auto = processes when PyAV feeds a GPU (measured 1.3-1.5x "
        "faster on H200 hosts), else threads",
        choices=("auto", "threads", "processes"),
    )


@dataclass
class OutputConfig:
    """Where results go."""

    dir: str | None = setting(None, "model directory; null = PROJECT/models/<timestamp>")


def _losses_section() -> type:
    """``losses``: the ramp, and one subsection per registered unsupervised loss."""
    sections: list[tuple[str, Any, Any]] = [
        (
            "ramp_epochs",
            float,
            setting(10.0, "epochs over which loss weights ramp linearly from 0 to full", ge=0),
        )
    ]
    for spec in UNSUPERVISED_LOSSES:
        hints = typing.get_type_hints(spec.params)
        own = [(f.name, hints[f.name], _copy_field(f)) for f in dataclasses.fields(spec.params)]
        weight = setting(spec.weight, f"weight of the {spec.name} loss (after the ramp)", ge=0)
        name = "".join(p.title() for p in spec.name.split("_")) + "LossConfig"
        cls = make_dataclass(name, [("weight", float, weight), *own])
        cls.__doc__ = f"model.losses={spec.name}: {spec.help}"
        sections.append((spec.name, cls, field(default_factory=cls)))
    cls = make_dataclass("LossesConfig", sections)
    cls.__doc__ = "Unsupervised losses: the ramp and each loss's weight and parameters."
    return cls


def _copy_field(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory, metadata=f.metadata)
    return field(default=f.default, metadata=f.metadata)


LossesConfig = _losses_section()


@dataclass
class VidposeConfig:
    """Everything a training or prediction run is configured with."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossesConfig = field(default_factory=LossesConfig)  # type: ignore[valid-type]
    unlabeled: UnlabeledConfig = field(default_factory=UnlabeledConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    "losses.weights": (),  # expanded entry by entry: losses.weights.X -> losses.X.weight
    "losses.temporal_epsilon_px": ("losses.temporal.epsilon_px",),
    "losses.temporal_min_confidence": ("losses.temporal.min_confidence",),
    "losses.pca_variance": ("losses.pca_singleview.variance",),
    "losses.pca_components": ("losses.pca_singleview.components",),
    "losses.pca_epsilon_percentile": (
        "losses.pca_singleview.epsilon_percentile",
        "losses.pca_multiview.epsilon_percentile",
    ),
    "losses.pca_epsilon_px": (
        "losses.pca_singleview.epsilon_px",
        "losses.pca_multiview.epsilon_px",
    ),
    "data.num_workers": (),
    "data.cache_images": (),
    "unlabeled.clips_per_step": (),
}
"""Keys of earlier vidpose versions -> the keys that replaced them (empty: removed). Model
directories written with them still load; a user's config gets an error naming the new key."""


# ---------------------------------------------------------------------------------------------
# Schema index: dotted key -> type, default, help, choices


@dataclass(frozen=True)
class FieldSpec:
    """One leaf key of the schema.

    Attributes:
        key: full dotted key, e.g. ``"training.lr"``.
        type: the resolved annotation, e.g. ``int``, ``list[str]``, ``int | None``.
        default: the dataclass default value.
        help: one-line description.
        choices: allowed values for enum-like keys, else None.
        registry: the kind (``vidpose list <kind>``) whose names are the allowed values.
        extra: names allowed besides the registry's (e.g. "auto").
        bounds: ``ge``/``gt``/``le``/``lt`` limits of a number.
    """

    key: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    registry: str | None = None
    extra: tuple[str, ...] = ()
    bounds: dict[str, float] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        """What a valid value looks like, for error messages and ``config_help``."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.registry is not None:
            names = [*self.extra, *get_registry(self.registry).names()]
            many = typing.get_origin(strip_optional(self.type)) is list
            return ("a list of " if many else "one of ") + ", ".join(names)
        text = describe_type(self.type)
        if self.bounds:
            text += ", " + describe_bounds(self.bounds)
        return text

    @property
    def is_mapping(self) -> bool:
        return typing.get_origin(strip_optional(self.type)) is dict


def strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def describe_type(tp: Any) -> str:
    """Readable name of a schema annotation: ``list of str``, ``int or null``, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        names = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {describe_type(args[0])}, e.g. [a,b]"
    if origin is dict:
        return f"mapping of {describe_type(args[0])} to {describe_type(args[1])}"
    if tp is bool:
        return "true or false"
    return getattr(tp, "__name__", str(tp))


@functools.cache
def sections() -> dict[str, tuple[type, str]]:
    """Every section and subsection, dotted path -> (dataclass, one-line help), schema order."""
    out: dict[str, tuple[type, str]] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            sub = hints[f.name]
            if dataclasses.is_dataclass(sub):
                key = f"{prefix}{f.name}"
                out[key] = (sub, (sub.__doc__ or "").strip().splitlines()[0])
                walk(sub, key + ".")

    walk(VidposeConfig, "")
    return out


@functools.cache
def schema_fields() -> dict[str, FieldSpec]:
    """Every leaf key of :class:`VidposeConfig`, dotted key -> FieldSpec, in schema order."""
    out: dict[str, FieldSpec] = {}
    for section, (cls, _) in sections().items():
        hints = typing.get_type_hints(cls)
        instance = cls()
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                continue
            key = f"{section}.{f.name}"
            out[key] = FieldSpec(
                key=key,
                type=hints[f.name],
                default=getattr(instance, f.name),
                help=f.metadata.get("help", ""),
                choices=f.metadata.get("choices"),
                registry=f.metadata.get("registry"),
                extra=f.metadata.get("extra", ()),
                bounds=f.metadata.get("bounds") or {},
            )
    return out


# ---------------------------------------------------------------------------------------------
# Value checks on a resolved config


@dataclass(frozen=True)
class Issue:
    """One problem found in a resolved config.

    Attributes:
        keys: the dotted keys involved (the first is the one to change).
        message: what is wrong and what is expected.
    """

    keys: tuple[str, ...]
    message: str


def get_key(cfg: Any, key: str) -> Any:
    """The value of dotted ``key`` in a config (or a section of one)."""
    obj = cfg
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def find_issues(cfg: VidposeConfig) -> list[Issue]:
    """Every out-of-range value, unknown name and cross-field inconsistency in ``cfg`` (pure;
    empty if fine).

    Types are already guaranteed by the structured schema; this checks each key's declared
    choices, registry and bounds, then the relations between keys.
    """
    issues: list[Issue] = []

    def need(ok: bool, key: str, expected: str, *others: str) -> None:
        if not ok:
            issues.append(Issue((key, *others), f"must be {expected}"))

    for spec in schema_fields().values():
        value = get_key(cfg, spec.key)
        if spec.choices is not None and value not in spec.choices:
            close = suggest(str(value), [str(c) for c in spec.choices])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            issues.append(Issue((spec.key,), f"must be {spec.expected}{hint}"))
        if spec.registry is not None:
            registry = get_registry(spec.registry)
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                if v not in spec.extra and v not in registry:
                    at = f"[{i}] " if isinstance(value, list) else ""
                    issues.append(Issue((spec.key,), at + registry.unknown(v, "", spec.extra)))
    for section in sections():
        obj = get_key(cfg, section)
        for name, message in bound_problems(obj):
            issues.append(Issue((f"{section}.{name}",), message))

    d, m, u, t, a = cfg.data, cfg.model, cfg.unlabeled, cfg.training, cfg.augment
    for key in ("data.image_height", "data.image_width"):
        v = get_key(cfg, key)
        need(v % 32 == 0, key, "a positive multiple of 32 (the backbone downsamples 32x)")
    need(
        d.val_fraction + d.test_fraction < 1.0,
        "data.val_fraction",
        f"such that val_fraction + test_fraction < 1 (now {d.val_fraction + d.test_fraction:g}), "
        "leaving frames to train on",
        "data.test_fraction",
    )
    need(m.context_frames % 2 == 1, "model.context_frames", "odd (frames centred on the target)")
    dupes = sorted({x for x in m.losses if m.losses.count(x) > 1})
    need(not dupes, "model.losses", f"a list without repeats (repeated: {dupes})")
    if "temporal" in m.losses:
        need(
            u.clip_length >= 2,
            "unlabeled.clip_length",
            ">= 2 when model.losses has temporal (it compares consecutive frames)",
            "model.losses",
        )
    need(t.max_steps != 0, "training.max_steps", "-1 (use epochs) or >= 1")
    need(
        all(a_ < b_ for a_, b_ in zip(t.milestones, t.milestones[1:])),
        "training.milestones",
        "increasing fractions of the training length in (0, 1), e.g. [0.5,0.75]",
    )
    need(
        t.warmup_epochs < t.max_epochs,
        "training.warmup_epochs",
        f"< training.max_epochs ({t.max_epochs})",
        "training.max_epochs",
    )
    need(
        not (t.device == "cpu" and t.precision == "16-mixed"),
        "training.precision",
        "32 or bf16-mixed when training.device=cpu (float16 mixed precision needs a GPU)",
        "training.device",
    )
    at_once = t.ensemble_concurrency
    need(
        at_once is None or at_once == 1 or t.devices == 1,
        "training.ensemble_concurrency",
        f"1 or null when training.devices={t.devices} (each member already trains in one "
        "process per device)",
        "training.devices",
    )
    need(
        at_once is None or at_once == 1 or not t.compile,
        "training.ensemble_concurrency",
        "1 or null with training.compile=true (members trained at once run in threads, "
        "and torch.compile is not used from several threads)",
        "training.compile",
    )
    need(
        a.scale_min <= a.scale_max,
        "augment.scale_max",
        f">= augment.scale_min ({a.scale_min:g})",
        "augment.scale_min",
    )
    for key in ("augment.brightness", "augment.contrast"):
        need(
            get_key(cfg, key) * a.strength < 1.0,
            key,
            "such that it times augment.strength is < 1 (a factor <= 0 would blank or invert "
            "the image)",
            "augment.strength",
        )
    return issues
