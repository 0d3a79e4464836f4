"""Declaring a config setting: default, one line of help, allowed values or bounds.

Used by the config schema (:mod:`vidpose.config.schema`) and by the parameter dataclasses that
each loss declares next to itself (:mod:`vidpose.losses.builtin`), so that both are documented,
listed and range-checked the same way::

    epsilon_px: float = setting(20.0, "jump per frame (original px) that costs nothing", ge=0)
"""

from __future__ import annotations

import dataclasses
from typing import Any

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    choices: tuple[Any, ...] | None = None,
    registry: str | None = None,
    extra: tuple[str, ...] = (),
    factory: Any = dataclasses.MISSING,
    **bounds: float,
) -> Any:
    """A dataclass field carrying the setting's help and checks in its metadata.

    Args:
        default: the default value (or ``factory`` for mutable defaults).
        help: one line, shown by ``--help-config`` and in the YAML comments.
        choices: the allowed values of an enum-like setting.
        registry: a kind of :data:`vidpose.registry.KINDS` whose names are the allowed values
            (for a list-valued setting, of every element); ``extra`` adds names such as "auto".
        **bounds: ``ge``/``gt``/``le``/``lt`` limits of a number (None passes).
    """
    unknown = sorted(set(bounds) - set(_BOUNDS))
    if unknown:
        raise TypeError(f"setting(): unknown bounds {unknown}; use {sorted(_BOUNDS)}")
    meta: dict[str, Any] = {"help": help, "bounds": bounds}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if registry is not None:
        meta["registry"] = registry
        meta["extra"] = tuple(extra)
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe_bounds(bounds: dict[str, float]) -> str:
    """``{"ge": 0, "lt": 1}`` -> ``">= 0 and < 1"``."""
    return " and ".join(f"{_BOUNDS[k]} {v:g}" for k, v in bounds.items())


def bound_problems(obj: Any) -> list[tuple[str, str]]:
    """(field name, "must be ...") for every numeric field of the dataclass instance ``obj``
    outside the bounds its :func:`setting` declared."""
    out = []
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get("bounds") or {}
        value = getattr(obj, f.name)
        if not bounds or value is None or isinstance(value, bool):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        ok = all(isinstance(v, int | float) and _within(float(v), bounds) for v in values)
        if not ok:
            out.append((f.name, f"must be {describe_bounds(bounds)}"))
    return out


def _within(v: float, bounds: dict[str, float]) -> bool:
    checks = {
        "ge": lambda b: v >= b,
        "gt": lambda b: v > b,
        "le": lambda b: v <= b,
        "lt": lambda b: v < b,
    }
    return all(checks[k](b) for k, b in bounds.items())
