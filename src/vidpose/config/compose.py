"""Compose, validate, save and load the config; expand command-line sweeps.

Layers, later wins::

    the schema's defaults (vidpose.config.schema)
    -> the project's vidpose.yaml ``config:`` section
    -> command-line overrides (Hydra grammar: ``a.b=1``, ``model.losses=[temporal,unimodal]``,
       ``losses.temporal={weight:0.01,epsilon_px:10}``)

Each layer is checked key by key against the schema in :mod:`vidpose.config.schema` before it
is applied, so an unknown key or a value of the wrong type fails with a :class:`ConfigError`
that names the dotted key and the layer it came from. The composed config is then checked for
ranges and cross-field consistency, and returned as a typed :class:`VidposeConfig`: code past
this point reads attributes, never a DictConfig.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import os
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vidpose._atomic import atomic_write_text
from vidpose.config.schema import (
    LEGACY_KEYS,
    FieldSpec,
    Issue,
    VidposeConfig,
    find_issues,
    get_key,
    schema_fields,
    sections,
    strip_optional,
)
from vidpose.errors import ConfigError
from vidpose.registry import suggest

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

# Hydra's override grammar is imported where overrides are parsed, not with this module: loading
# a saved config (what `vidpose predict` does) needs OmegaConf only, and Hydra's parser costs
# ~0.5 s of start-up.

SOURCE_DEFAULTS = "defaults"
SOURCE_CLI = "command line"


@dataclasses.dataclass
class _Assignment:
    """One key set (or deleted) by one layer; ``origin`` quotes it for error messages."""

    key: str
    value: Any
    source: str
    origin: str
    delete: bool = False


# ---------------------------------------------------------------------------------------------
# Keys


def _kind(key: str) -> str | None:
    """'section', 'field' or 'entry' (of a mapping field like losses.weights); None if unknown."""
    if key in sections():
        return "section"
    specs = schema_fields()
    if key in specs:
        return "field"
    parent, _, name = key.rpartition(".")
    if parent in specs and specs[parent].is_mapping and name:
        return "entry"
    return None


def _legacy(key: str) -> tuple[str, ...] | None:
    """The keys that replaced ``key`` of an earlier vidpose (empty: removed); None if not one."""
    if key.startswith("losses.weights."):
        return (f"losses.{key.rpartition('.')[2]}.weight",)
    return LEGACY_KEYS.get(key)


def _unknown_key(key: str, source: str, origin: str) -> ConfigError:
    legacy = _legacy(key)
    if legacy is not None:
        now = (
            f"it is now {' and '.join(repr(k) for k in legacy)}"
            if legacy
            else "it was removed (it had no effect)"
            if key != "losses.weights"
            else "each loss's weight is now losses.<name>.weight, e.g. losses.temporal.weight"
        )
        return ConfigError(
            f"config key {key!r} ({source}: {origin}) is from an earlier vidpose: {now}"
        )
    # A top-level typo is a section name; deeper ones are leaf keys.
    known = list(sections()) if "." not in key else list(schema_fields())
    leaf = key.rpartition(".")[2]
    # The same name under another section is the likeliest fix (training.image_height).
    same_leaf = [k for k in schema_fields() if k.rpartition(".")[2] == leaf and k != key]
    close = same_leaf or suggest(key, known, n=1)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"unknown config key {key!r} ({source}: {origin}).{hint} "
        "`vidpose train --help-config` lists every key."
    )


def _spec_for(key: str) -> FieldSpec | None:
    specs = schema_fields()
    if key in specs:
        return specs[key]
    parent = key.rpartition(".")[0]
    return specs.get(parent)


def _expected(key: str) -> str:
    if key in sections():
        return f"a mapping of {key}.* keys"
    spec = _spec_for(key)
    if spec is None:
        return "a known key"
    if key != spec.key:  # an entry of a mapping field
        return spec.expected.rpartition(" to ")[2]
    return spec.expected


def _value_fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` (from YAML or the override parser) is acceptable for annotation ``tp``.

    Stricter than OmegaConf, which would turn ``true`` into the string "True" or 2 into True;
    looser where YAML needs it: PyYAML reads ``1e-3`` as a string, and ``precision: 32`` is an
    int that names a string choice.
    """
    if isinstance(value, str) and "${" in value:
        return True  # an interpolation: checked when resolved
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_value_fits(a, value) for a in args)
    if tp is type(None):
        return value is None
    if isinstance(value, bool):
        return tp is bool
    if tp is bool:
        return False
    if tp is int:
        return isinstance(value, int) or (isinstance(value, str) and _parses(int, value))
    if tp is float:
        return isinstance(value, int | float) or (isinstance(value, str) and _parses(float, value))
    if tp is str:
        return isinstance(value, str | int | float)
    if origin is list:
        return isinstance(value, list | tuple) and all(_value_fits(args[0], v) for v in value)
    if origin is dict:
        return isinstance(value, Mapping) and all(
            _value_fits(args[0], k) and _value_fits(args[1], v) for k, v in value.items()
        )
    return True


def _parses(kind: type, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def _type_of(key: str) -> Any:
    """Annotation a value assigned to ``key`` must fit (an entry's is its mapping's value type)."""
    spec = _spec_for(key)
    if spec is None:
        return Any
    if key != spec.key:
        return typing.get_args(strip_optional(spec.type))[1]
    return spec.type


def _flatten(data: Any, prefix: str, source: str, origin_of: Any = None) -> list[_Assignment]:
    """Split a nested mapping under ``prefix`` into per-key assignments, rejecting unknown keys.

    Mapping-typed fields (``losses.weights``) are leaves: their value is assigned as a whole and
    merged into the existing mapping.
    """
    if data is None:
        return []
    if not isinstance(data, Mapping):
        origin = origin_of(prefix, data) if origin_of else f"{prefix}: {_show(data)}"
        expected = _expected(prefix) if prefix else "a mapping of config sections"
        raise ConfigError(
            f"config key {prefix or '(top level)'!r} ({source}: {origin}): expected {expected}, "
            f"got {_show(data)}"
        )
    out: list[_Assignment] = []
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        origin = origin_of(key, value) if origin_of else f"{key}: {value!r}"
        kind = _kind(key) if isinstance(name, str) else None
        if kind is None:
            raise _unknown_key(key, source, origin)
        if kind == "section":
            out += _flatten(value, key, source, origin_of)
        else:
            out.append(_Assignment(key, value, source, origin))
    return out


# ---------------------------------------------------------------------------------------------
# Command-line overrides


def _parse(overrides: Sequence[str] | str) -> list[Override]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if isinstance(overrides, str):
        overrides = [overrides]
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as exc:
            raise ConfigError(
                f"cannot parse override {text!r} ({SOURCE_CLI}): expected key=value, "
                f"e.g. training.lr=3e-4 or model.losses=[temporal,unimodal] ({exc})"
            ) from exc
    return parsed


def _override_assignments(ov: Override) -> list[_Assignment]:
    from hydra.core.override_parser.types import OverrideType

    text = ov.input_line or ov.key_or_group
    key = ov.key_or_group
    if ov.package is not None:
        raise ConfigError(f"override {text!r} ({SOURCE_CLI}): '@package' is not supported")
    if ov.is_sweep_override():
        raise ConfigError(
            f"override {text!r} ({SOURCE_CLI}) gives several values; `vidpose train` takes one "
            f"value per key (a list value is written {key}=[a,b])"
        )
    kind = _kind(key)
    if kind is None:
        raise _unknown_key(key, SOURCE_CLI, text)
    if ov.type == OverrideType.DEL:
        if kind != "entry":
            default = schema_fields()[key].default if kind == "field" else None
            how = f"; to restore the default write {key}={default!r}" if kind == "field" else ""
            raise ConfigError(
                f"override {text!r} ({SOURCE_CLI}): {key!r} is part of the schema and cannot "
                f"be deleted{how}"
            )
        return [_Assignment(key, ov.value(), SOURCE_CLI, text, delete=True)]
    if ov.type == OverrideType.ADD and kind != "entry":
        raise ConfigError(
            f"override {text!r} ({SOURCE_CLI}): '+' adds a new key, but {key!r} already exists "
            f"in the schema; write {key}=... without '+'"
        )
    value = ov.value()
    if kind == "section":
        return _flatten(value, key, SOURCE_CLI, lambda _k, _v: text)
    return [_Assignment(key, value, SOURCE_CLI, text)]


def expand_sweep(overrides: Sequence[str]) -> list[list[str]]:
    """Expand comma sweeps and ranges into one plain override list per run (cartesian product).

    ``["training.lr=1e-3,1e-4", "model.backbone=resnet18,resnet50", "data.split_seed=range(2)"]``
    gives 2 x 2 x 2 = 8 lists. Plain overrides are repeated unchanged in every run. Lists are
    values, not sweeps: ``model.losses=[temporal,unimodal]`` is one run.

    Raises:
        ConfigError: unparsable override, or a sweep that cannot be enumerated (``interval``).
    """
    from hydra.core.override_parser.types import ValueType

    axes: list[list[str]] = []
    for ov in _parse(overrides):
        if not ov.is_sweep_override():
            axes.append([ov.input_line])
            continue
        if ov.value_type not in (
            ValueType.CHOICE_SWEEP,
            ValueType.SIMPLE_CHOICE_SWEEP,
            ValueType.RANGE_SWEEP,
        ):
            raise ConfigError(
                f"override {ov.input_line!r} ({SOURCE_CLI}): only comma lists, choice(...) and "
                "range(...) sweeps can be expanded into runs"
            )
        key = ov.get_key_element()
        axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
    return [list(run) for run in itertools.product(*axes)]


# ---------------------------------------------------------------------------------------------
# Composition


@functools.cache
def _defaults() -> DictConfig:
    """The schema's defaults as a structured config, built once: a copy of it is 5x faster
    than building it again (13 -> 2.4 ms), as every config load did."""
    return OmegaConf.structured(VidposeConfig)


class _Composer:
    """Applies layers to a structured DictConfig and remembers which layer set each key."""

    def __init__(self, base: VidposeConfig | None = None, base_source: str = "") -> None:
        self.cfg: DictConfig = (
            OmegaConf.structured(base) if base is not None else copy.deepcopy(_defaults())
        )
        self.sources: dict[str, str] = {k: base_source for k in schema_fields()} if base else {}

    def apply(self, assignments: Iterable[_Assignment], *, merge_mappings: bool = True) -> None:
        """Set each key in order; ``merge_mappings=False`` replaces mapping fields whole."""
        for a in assignments:
            bad_type = ConfigError(
                f"config key {a.key!r} ({a.source}: {a.origin}): expected "
                f"{_expected(a.key)}, got {_show(a.value)}"
            )
            if not a.delete and not _value_fits(_type_of(a.key), a.value):
                raise bad_type
            try:
                if a.delete:
                    self._delete(a)
                else:
                    OmegaConf.update(self.cfg, a.key, a.value, merge=merge_mappings)
            except OmegaConfBaseException as exc:
                raise bad_type from exc
            self.sources[a.key] = a.source

    def _delete(self, a: _Assignment) -> None:
        parent_key, _, name = a.key.rpartition(".")
        parent = OmegaConf.select(self.cfg, parent_key)
        if name not in parent:
            raise ConfigError(
                f"override {a.origin!r} ({a.source}): {parent_key} has no entry {name!r} to "
                f"delete (entries: {', '.join(parent.keys())})"
            )
        if a.value is not None and parent[name] != a.value:
            raise ConfigError(
                f"override {a.origin!r} ({a.source}): {a.key} is {parent[name]!r}, not {a.value!r}"
            )
        del parent[name]

    def source_of(self, key: str) -> str:
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return SOURCE_DEFAULTS

    def finish(self) -> VidposeConfig:
        try:
            cfg = OmegaConf.to_object(self.cfg)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or "?"
            raise ConfigError(
                f"config key {key!r} ({self.source_of(key)}): cannot resolve: "
                f"{str(getattr(exc, 'msg', exc)).splitlines()[0]}"
            ) from exc
        assert isinstance(cfg, VidposeConfig)
        issues = find_issues(cfg)
        if issues:
            raise ConfigError(
                "invalid config:\n  " + "\n  ".join(self._describe(cfg, i) for i in issues)
            )
        return cfg

    def _describe(self, cfg: VidposeConfig, issue: Issue) -> str:
        values = "; ".join(
            f"{k}={_show(get_key(cfg, k))} from {self.source_of(k)}" for k in issue.keys
        )
        gap = "" if issue.message.startswith("[") else " "  # model.losses[1] 'x' is no ...
        return f"{issue.keys[0]}{gap}{issue.message} [{values}]"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    return _yaml_value(value)


# libyaml's loader where PyYAML was built with it: the same safe constructors, 9x faster on a
# model's config.yaml (4.5 -> 0.5 ms), which every model load reads (five for an ensemble)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml_mapping(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config sections, got {data!r}")
    return data


def compose_config(
    project_settings_config: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    project_file: str | os.PathLike | None = None,
    base: VidposeConfig | None = None,
    base_source: str = "saved config",
) -> VidposeConfig:
    """The validated config: defaults, then project settings, then overrides.

    Args:
        project_settings_config: the ``config:`` mapping of the project's ``vidpose.yaml``
            (``ProjectSettings.config``), nested like the schema; None for none.
        overrides: command-line overrides in Hydra grammar, applied in order. Sweeps are
            refused here: expand them first with :func:`expand_sweep`.
        project_file: path of that ``vidpose.yaml``, named in error messages.
        base: start from this config instead of the defaults (a resumed run's saved config);
            ``base_source`` names it in error messages.

    Raises:
        ConfigError: naming the dotted key, the layer it came from, and what was expected.
    """
    project_source = f"{project_file or 'vidpose.yaml'}, config section"
    composer = _Composer(base, base_source)
    composer.apply(_flatten(dict(project_settings_config or {}), "", project_source))
    for ov in _parse(overrides):
        composer.apply(_override_assignments(ov))
    return composer.finish()


def compose_sweep(
    project_settings_config: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    *,
    project_file: str | os.PathLike | None = None,
) -> list[tuple[list[str], VidposeConfig]]:
    """Expand a sweep and compose every run's config, so that a bad run fails before any starts.

    Returns:
        (plain overrides of the run, its config) per run, in :func:`expand_sweep` order.
    """
    return [
        (run, compose_config(project_settings_config, run, project_file=project_file))
        for run in expand_sweep(overrides)
    ]


def default_config() -> VidposeConfig:
    """The packaged defaults, validated."""
    return compose_config()


# ---------------------------------------------------------------------------------------------
# YAML in and out


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 30).strip()
    # safe_dump ends a lone scalar with an explicit document-end marker.
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


def to_yaml(cfg: VidposeConfig, *, comments: bool = False) -> str:
    """YAML text of a resolved config, in schema order; :func:`load_config` reads it back exactly.

    Args:
        comments: append each key's help as a comment (``vidpose train --help-config``
            shows the same, with defaults).
    """
    lines: list[str] = []
    specs = schema_fields()

    def emit(obj: Any, path: str, depth: int) -> None:
        pad = "  " * depth
        for f in dataclasses.fields(obj):
            key = f"{path}.{f.name}" if path else f.name
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                if comments and depth == 0 and lines:
                    lines.append("")
                head = f"{pad}{f.name}:"
                lines.append(f"{head}  # {sections()[key][1]}" if comments else head)
                emit(value, key, depth + 1)
                continue
            line = f"{pad}{f.name}: {_yaml_value(value)}"
            if comments:
                spec = specs[key]
                choices = f" [{'|'.join(map(str, spec.choices))}]" if spec.choices else ""
                line = f"{line:<36}  # {spec.help}{choices}"
            lines.append(line)

    emit(cfg, "", 0)
    return "\n".join(lines) + "\n"


def load_config(path: str | os.PathLike) -> VidposeConfig:
    """Read a resolved ``config.yaml`` (e.g. a model directory's) and validate it.

    Keys missing from the file take the defaults and renamed keys of earlier versions are
    migrated (:func:`migrate_legacy`), so that a model directory written by an older vidpose
    still loads; unknown keys are errors.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    composer = _Composer()
    data = migrate_legacy(_read_yaml_mapping(text, str(path)))
    # A resolved file states each mapping in full: an entry it lacks was deleted, not forgotten.
    layer = _flatten(data, "", str(path))
    composer.apply(layer, merge_mappings=False)
    return composer.finish()


def migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """A saved config of an earlier vidpose with its keys renamed to today's (removed ones
    dropped), so that older model directories still load."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key == "losses.weights" and isinstance(v, Mapping):
                for name, w in v.items():
                    flat[f"losses.{name}.weight"] = w
            elif isinstance(v, Mapping) and key in sections():
                walk(v, key + ".")
            else:
                for new in _legacy(key) if _legacy(key) is not None else (key,):
                    flat[new] = v

    walk(data, "")
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def save_config(cfg: VidposeConfig, path: str | os.PathLike) -> None:
    """Write :func:`to_yaml` of ``cfg`` to ``path`` atomically."""
    atomic_write_text(path, to_yaml(cfg))


def to_dict(cfg: VidposeConfig) -> dict[str, Any]:
    """Nested plain dict of ``cfg`` (for loggers' hyperparameter tables)."""
    return dataclasses.asdict(cfg)


def changed_keys(a: VidposeConfig, b: VidposeConfig) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key whose value differs, schema order."""
    out = []
    for key in schema_fields():
        va, vb = get_key(a, key), get_key(b, key)
        if va != vb:
            out.append((key, va, vb))
    return out


# ---------------------------------------------------------------------------------------------
# Help


def config_help() -> str:
    """Every key with its type, default and help, grouped by section (``--help-config``)."""
    lines = [
        "Config keys (set in vidpose.yaml under `config:`, or on the command line as key=value):",
        "",
    ]
    specs = schema_fields()
    for section, (_, section_help) in sections().items():
        lines.append(f"{section}: {section_help}")
        for spec in specs.values():
            if spec.key.rpartition(".")[0] == section:
                lines.append(f"  {spec.key} = {_yaml_value(spec.default)}   [{spec.expected}]")
                lines.append(f"      {spec.help}")
        lines.append("")
    lines.append(
        "Examples: training.max_epochs=50  model.losses=[temporal,pca_singleview]  "
        "losses.temporal.weight=0.01  losses.temporal={weight:0.01,epsilon_px:10}"
    )
    return "\n".join(lines)
