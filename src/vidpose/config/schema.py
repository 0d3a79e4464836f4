"""The typed training/prediction config: dataclasses, per-key help, and value checks.

The dataclasses below are the single source of truth for every config key: its type (used by
OmegaConf as a structured config), its default, its help text (``field(metadata={"help": ...})``)
and, for enum-like strings, its allowed values (``metadata={"choices": ...}``). ``config_help()``,
the packaged ``defaults.yaml`` and the error messages are all derived from them.

Names that come from a registry (backbones, heads, losses) are plain strings here; the code that
owns the registry checks them with :func:`validate_choices`.

How to add a key: add a field to the right section with a default and ``metadata=_help(...)``,
add it to ``defaults.yaml`` (a test checks that the two agree), and add a range check to
:func:`find_issues` if some values make no sense.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vidpose.errors import ConfigError

READERS = ("auto", "pyav", "nvdec", "dali")
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "multistep", "cosine")
TRAIN_PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
PREDICT_PRECISIONS = ("auto", "32", "bf16")
HEATMAP_STRIDES = (2, 4)


def _help(text: str, choices: tuple[Any, ...] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"help": text}
    if choices is not None:
        meta["choices"] = choices
    return meta


@dataclass
class DataConfig:
    """Labeled frames: model input size, train/val/test split, loading."""

    image_height: int = field(
        default=256,
        metadata=_help("model input height in px; frames are resized to it (multiple of 32)"),
    )
    image_width: int = field(
        default=256,
        metadata=_help("model input width in px; frames are resized to it (multiple of 32)"),
    )
    val_fraction: float = field(
        default=0.1, metadata=_help("fraction of labeled frames held out for validation")
    )
    test_fraction: float = field(
        default=0.1, metadata=_help("fraction of labeled frames held out for testing")
    )
    split_seed: int = field(
        default=0, metadata=_help("random seed of the train/val/test split of labeled frames")
    )
    num_workers: int = field(
        default=0, metadata=_help("data loader worker processes (0 = load in the main process)")
    )
    cache_images: bool = field(
        default=True, metadata=_help("decode labeled frames once and keep them in memory")
    )


@dataclass
class ModelConfig:
    """Network: backbone, head and which losses train it."""

    backbone: str = field(
        default="resnet50", metadata=_help("feature extractor, a name in the backbone registry")
    )
    pretrained: bool = field(
        default=True, metadata=_help("start the backbone from ImageNet-pretrained weights")
    )
    head: str = field(
        default="heatmap_fpn",
        metadata=_help("pose head, a name in the head registry (heatmap_fpn, heatmap, regression)"),
    )
    heatmap_stride: int = field(
        default=4,
        metadata=_help("input px per heatmap px (heatmap = image / stride)", HEATMAP_STRIDES),
    )
    sigma: float = field(default=2.0, metadata=_help("std of the Gaussian target, in heatmap px"))
    supervised_loss: str = field(
        default="heatmap_mse", metadata=_help("loss on labeled frames, a name in the loss registry")
    )
    losses: list[str] = field(
        default_factory=list,
        metadata=_help(
            "unsupervised losses on unlabeled video, e.g. [temporal,pca_singleview,"
            "pca_multiview,unimodal]; empty = supervised only"
        ),
    )
    context_frames: int = field(
        default=5,
        metadata=_help("frames seen by a temporal-context head, centred on the target (odd)"),
    )


def _default_loss_weights() -> dict[str, float]:
    # The pixel-valued losses (px beyond their margin) are ~10-100x the normalised heatmap
    # loss when they fire; these weights keep them a correction, not the objective.
    return {"temporal": 0.005, "pca_singleview": 0.01, "pca_multiview": 0.01, "unimodal": 0.1}


@dataclass
class LossesConfig:
    """Settings of the unsupervised losses (those named in model.losses are used)."""

    weights: dict[str, float] = field(
        default_factory=_default_loss_weights,
        metadata=_help("weight of each unsupervised loss, by name (after the ramp)"),
    )
    ramp_epochs: int = field(
        default=10, metadata=_help("epochs over which loss weights ramp linearly from 0 to full")
    )
    temporal_epsilon_px: float = field(
        default=20.0,
        metadata=_help("frame-to-frame jump (original-frame px) below which temporal loss is 0"),
    )
    temporal_min_confidence: float = field(
        default=0.9,
        metadata=_help("temporal loss ignores frame pairs with a confidence below this"),
    )
    pca_variance: float = field(
        default=0.99, metadata=_help("keep enough PCA components to explain this variance")
    )
    pca_components: int | None = field(
        default=None, metadata=_help("fixed number of PCA components (overrides pca_variance)")
    )
    pca_epsilon_percentile: float = field(
        default=99.0,
        metadata=_help("PCA loss margin = this percentile of the labels' own reconstruction error"),
    )
    pca_epsilon_px: float | None = field(
        default=None,
        metadata=_help("fixed PCA loss margin in px (overrides pca_epsilon_percentile)"),
    )


@dataclass
class UnlabeledConfig:
    """Unlabeled video clips fed to the unsupervised losses."""

    clip_length: int = field(default=16, metadata=_help("consecutive frames per unlabeled clip"))
    clips_per_step: int = field(default=1, metadata=_help("unlabeled clips per training step"))
    reader: str = field(
        default="auto", metadata=_help("video reader backend for training clips", READERS)
    )


@dataclass
class TrainingConfig:
    """Optimisation, schedule, hardware and logging."""

    batch_size: int = field(default=16, metadata=_help("labeled frames per training step"))
    max_epochs: int = field(default=100, metadata=_help("training length in epochs"))
    max_steps: int = field(
        default=-1, metadata=_help("training length in steps; -1 = use max_epochs")
    )
    steps_per_epoch: int | None = field(
        default=None,
        metadata=_help("steps per epoch; null = one pass over the training labels"),
    )
    optimizer: str = field(default="adam", metadata=_help("optimizer", OPTIMIZERS))
    lr: float = field(default=1e-3, metadata=_help("peak learning rate"))
    weight_decay: float = field(default=0.0, metadata=_help("weight decay"))
    scheduler: str = field(
        default="multistep", metadata=_help("learning-rate schedule", SCHEDULERS)
    )
    milestones: list[float] = field(
        default_factory=lambda: [0.5, 0.75, 0.9],
        metadata=_help(
            "multistep: points where lr is multiplied by gamma, as fractions of the training "
            "length (so they follow max_epochs / max_steps)"
        ),
    )
    gamma: float = field(default=0.5, metadata=_help("multistep: lr factor at each milestone"))
    warmup_epochs: int = field(
        default=0, metadata=_help("epochs of linear lr warm-up from 0 (0 = none)")
    )
    seed: int = field(default=0, metadata=_help("random seed of weights, sampling, augmentation"))
    precision: str = field(
        default="auto",
        metadata=_help(
            "numeric precision; auto = bf16-mixed on a GPU that has it", TRAIN_PRECISIONS
        ),
    )
    device: str = field(default="auto", metadata=_help("where to train", DEVICES))
    devices: int = field(default=1, metadata=_help("number of devices (GPUs) to train on"))
    val_every_n_epochs: int = field(default=1, metadata=_help("validate every n epochs"))
    log_every_n_steps: int = field(default=10, metadata=_help("log metrics every n steps"))
    checkpoint_every_n_steps: int = field(
        default=500,
        metadata=_help("save checkpoints/last.ckpt (for --resume) every n steps and at the end"),
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata=_help("stop after this many validations without improvement; null = never"),
    )
    compile: bool = field(
        default=False,
        metadata=_help(
            "torch.compile the network's forward pass (compiling takes about a minute: pays "
            "off on long runs on a GPU)"
        ),
    )
    channels_last: bool = field(
        default=True, metadata=_help("channels_last memory format (faster convs on GPU)")
    )


@dataclass
class AugmentConfig:
    """Augmentation of training frames (on the training device)."""

    enabled: bool = field(default=True, metadata=_help("augment labeled frames and clips"))
    rotation_deg: float = field(default=15.0, metadata=_help("max rotation, degrees"))
    scale_min: float = field(default=0.85, metadata=_help("min zoom factor"))
    scale_max: float = field(default=1.15, metadata=_help("max zoom factor"))
    translate_fraction: float = field(
        default=0.05, metadata=_help("max shift, as a fraction of image size")
    )
    hflip_prob: float = field(
        default=0.0,
        metadata=_help("horizontal flip probability (needs flip_pairs in vidpose.yaml)"),
    )
    vflip_prob: float = field(default=0.0, metadata=_help("vertical flip probability"))
    brightness: float = field(default=0.2, metadata=_help("max relative brightness change"))
    contrast: float = field(default=0.2, metadata=_help("max relative contrast change"))
    blur_prob: float = field(default=0.2, metadata=_help("Gaussian blur probability"))
    blur_sigma_max: float = field(default=1.5, metadata=_help("max blur sigma, px"))
    noise_std: float = field(
        default=0.02, metadata=_help("std of additive Gaussian noise, intensity in [0, 1]")
    )
    strength: float = field(
        default=1.0,
        metadata=_help("global multiplier on geometric and photometric magnitudes (0 = none)"),
    )


@dataclass
class PredictConfig:
    """Video inference."""

    batch_size: int = field(default=64, metadata=_help("frames per forward pass"))
    reader: str = field(default="auto", metadata=_help("video reader backend", READERS))
    device: str = field(default="auto", metadata=_help("where to predict", DEVICES))
    precision: str = field(
        default="auto",
        metadata=_help("numeric precision; auto = bf16 on a GPU that has it", PREDICT_PRECISIONS),
    )
    compile: bool = field(default=False, metadata=_help("torch.compile the model"))


@dataclass
class OutputConfig:
    """Where results go."""

    dir: str | None = field(
        default=None,
        metadata=_help("model directory; null = PROJECT/models/<timestamp>"),
    )


@dataclass
class VidposeConfig:
    """Everything a training or prediction run is configured with."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossesConfig = field(default_factory=LossesConfig)
    unlabeled: UnlabeledConfig = field(default_factory=UnlabeledConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


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
    """

    key: str
    type: Any
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    @property
    def expected(self) -> str:
        """What a valid value looks like, for error messages and ``config_help``."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        return describe_type(self.type)

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
    """Section name -> (dataclass, one-line help), in schema order."""
    hints = typing.get_type_hints(VidposeConfig)
    out = {}
    for f in dataclasses.fields(VidposeConfig):
        cls = hints[f.name]
        out[f.name] = (cls, (cls.__doc__ or "").strip().splitlines()[0])
    return out


@functools.cache
def schema_fields() -> dict[str, FieldSpec]:
    """Every leaf key of :class:`VidposeConfig`, dotted key -> FieldSpec, in schema order."""
    out: dict[str, FieldSpec] = {}
    for section, (cls, _) in sections().items():
        hints = typing.get_type_hints(cls)
        instance = cls()
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            out[key] = FieldSpec(
                key=key,
                type=hints[f.name],
                default=getattr(instance, f.name),
                help=f.metadata.get("help", ""),
                choices=f.metadata.get("choices"),
            )
    return out


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``candidates`` (difflib), best first."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


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


def _get(cfg: VidposeConfig, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def find_issues(cfg: VidposeConfig) -> list[Issue]:
    """Every out-of-range value and cross-field inconsistency in ``cfg`` (pure; empty if fine).

    Types are already guaranteed by the structured schema; this checks allowed sets, ranges
    and relations between keys.
    """
    issues: list[Issue] = []

    def need(ok: bool, key: str, expected: str, *others: str) -> None:
        if not ok:
            issues.append(Issue((key, *others), f"must be {expected}"))

    for spec in schema_fields().values():
        if spec.choices is not None:
            value = _get(cfg, spec.key)
            if value not in spec.choices:
                close = suggest(str(value), [str(c) for c in spec.choices], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                issues.append(Issue((spec.key,), f"must be {spec.expected}{hint}"))

    d, m, lo, u, t, a, p = (
        cfg.data,
        cfg.model,
        cfg.losses,
        cfg.unlabeled,
        cfg.training,
        cfg.augment,
        cfg.predict,
    )
    for key in ("data.image_height", "data.image_width"):
        v = _get(cfg, key)
        need(v > 0 and v % 32 == 0, key, "a positive multiple of 32 (the backbone downsamples 32x)")
    need(0.0 <= d.val_fraction < 1.0, "data.val_fraction", "in [0, 1)")
    need(0.0 <= d.test_fraction < 1.0, "data.test_fraction", "in [0, 1)")
    need(
        d.val_fraction + d.test_fraction < 1.0,
        "data.val_fraction",
        f"such that val_fraction + test_fraction < 1 (now {d.val_fraction + d.test_fraction:g}), "
        "leaving frames to train on",
        "data.test_fraction",
    )
    need(d.num_workers >= 0, "data.num_workers", ">= 0")

    need(m.sigma > 0, "model.sigma", "> 0")
    need(
        m.context_frames >= 1 and m.context_frames % 2 == 1,
        "model.context_frames",
        "an odd integer >= 1 (frames centred on the target)",
    )
    dupes = sorted({x for x in m.losses if m.losses.count(x) > 1})
    need(not dupes, "model.losses", f"a list without repeats (repeated: {dupes})")
    if "temporal" in m.losses:
        need(
            u.clip_length >= 2,
            "unlabeled.clip_length",
            ">= 2 when model.losses has temporal (it compares consecutive frames)",
            "model.losses",
        )

    bad_weights = sorted(k for k, w in lo.weights.items() if not w >= 0)
    need(not bad_weights, "losses.weights", f">= 0 for every loss (bad: {bad_weights})")
    need(lo.ramp_epochs >= 0, "losses.ramp_epochs", ">= 0")
    need(lo.temporal_epsilon_px >= 0, "losses.temporal_epsilon_px", ">= 0")
    need(0.0 <= lo.temporal_min_confidence <= 1.0, "losses.temporal_min_confidence", "in [0, 1]")
    need(0.0 < lo.pca_variance <= 1.0, "losses.pca_variance", "in (0, 1]")
    need(
        lo.pca_components is None or lo.pca_components >= 1,
        "losses.pca_components",
        "null or >= 1",
    )
    need(0.0 < lo.pca_epsilon_percentile <= 100.0, "losses.pca_epsilon_percentile", "in (0, 100]")
    need(lo.pca_epsilon_px is None or lo.pca_epsilon_px >= 0, "losses.pca_epsilon_px", ">= 0")

    need(u.clip_length >= 1, "unlabeled.clip_length", ">= 1")
    need(u.clips_per_step >= 1, "unlabeled.clips_per_step", ">= 1")

    need(t.batch_size >= 1, "training.batch_size", ">= 1")
    need(t.max_epochs >= 1, "training.max_epochs", ">= 1")
    need(t.max_steps == -1 or t.max_steps >= 1, "training.max_steps", "-1 (use epochs) or >= 1")
    need(
        t.steps_per_epoch is None or t.steps_per_epoch >= 1,
        "training.steps_per_epoch",
        "null or >= 1",
    )
    need(t.lr > 0, "training.lr", "> 0")
    need(t.weight_decay >= 0, "training.weight_decay", ">= 0")
    need(
        all(0.0 < x < 1.0 for x in t.milestones)
        and all(a_ < b_ for a_, b_ in zip(t.milestones, t.milestones[1:])),
        "training.milestones",
        "increasing fractions of the training length in (0, 1), e.g. [0.5,0.75]",
    )
    need(0.0 < t.gamma <= 1.0, "training.gamma", "in (0, 1]")
    need(
        0 <= t.warmup_epochs < t.max_epochs,
        "training.warmup_epochs",
        f">= 0 and < training.max_epochs ({t.max_epochs})",
        "training.max_epochs",
    )
    need(t.devices >= 1, "training.devices", ">= 1")
    need(t.val_every_n_epochs >= 1, "training.val_every_n_epochs", ">= 1")
    need(t.log_every_n_steps >= 1, "training.log_every_n_steps", ">= 1")
    need(t.checkpoint_every_n_steps >= 1, "training.checkpoint_every_n_steps", ">= 1")
    need(
        t.early_stopping_patience is None or t.early_stopping_patience >= 1,
        "training.early_stopping_patience",
        "null or >= 1",
    )
    need(
        not (t.device == "cpu" and t.precision == "16-mixed"),
        "training.precision",
        "32 or bf16-mixed when training.device=cpu (float16 mixed precision needs a GPU)",
        "training.device",
    )

    for key in (
        "augment.rotation_deg",
        "augment.translate_fraction",
        "augment.brightness",
        "augment.contrast",
        "augment.blur_sigma_max",
        "augment.noise_std",
        "augment.strength",
    ):
        need(_get(cfg, key) >= 0, key, ">= 0")
    need(a.rotation_deg <= 180, "augment.rotation_deg", "<= 180")
    need(a.translate_fraction <= 0.5, "augment.translate_fraction", "<= 0.5")
    need(a.scale_min > 0, "augment.scale_min", "> 0")
    need(
        a.scale_min <= a.scale_max,
        "augment.scale_max",
        f">= augment.scale_min ({a.scale_min:g})",
        "augment.scale_min",
    )
    for key in ("augment.hflip_prob", "augment.vflip_prob", "augment.blur_prob"):
        need(0.0 <= _get(cfg, key) <= 1.0, key, "a probability in [0, 1]")

    need(p.batch_size >= 1, "predict.batch_size", ">= 1")
    return issues


def validate_choices(
    cfg: VidposeConfig,
    *,
    backbones: Iterable[str] | None = None,
    heads: Iterable[str] | None = None,
    losses: Iterable[str] | None = None,
    supervised_losses: Iterable[str] | None = None,
) -> None:
    """Check registry-backed names; called by the code that owns each registry.

    Each argument is the registry's list of names; None skips that check. ``losses`` checks
    both ``model.losses`` and the keys of ``losses.weights``.

    Raises:
        ConfigError: listing every unknown name with a suggestion and the allowed names.
    """
    problems: list[str] = []

    def check(key: str, value: str, allowed: Iterable[str] | None, what: str) -> None:
        if allowed is None:
            return
        allowed = sorted(allowed)
        if value in allowed:
            return
        close = suggest(value, allowed, n=1)
        hint = f" did you mean {close[0]!r}?" if close else ""
        problems.append(
            f"{key}: unknown {what} {value!r};{hint} allowed: {', '.join(allowed) or '(none)'}"
        )

    check("model.backbone", cfg.model.backbone, backbones, "backbone")
    check("model.head", cfg.model.head, heads, "head")
    check("model.supervised_loss", cfg.model.supervised_loss, supervised_losses, "loss")
    if losses is not None:
        allowed = list(losses)
        for i, name in enumerate(cfg.model.losses):
            check(f"model.losses[{i}]", name, allowed, "unsupervised loss")
        for name in cfg.losses.weights:
            check(f"losses.weights.{name}", name, allowed, "unsupervised loss")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
