"""Registry of pose-table file formats, and the format-agnostic read_poses / write_poses.

Every format is a small class registered with :func:`register_format`; the registry knows its
name, the file extensions it owns, how to recognise its bytes, and its ``load`` / ``save`` pair.
Allowed ``format=`` names and error messages are derived from the registry, never repeated.

How to add a format:

1. Write ``src/vidpose/io/<name>.py`` with a class decorated by ``@register_format`` that has
   ``name``, ``extensions`` (lower case, with the dot), ``description``, and three static
   methods: ``sniff(head: bytes) -> bool`` (True only when the first bytes clearly belong to
   this format), ``load(path: Path) -> Poses`` (raise :class:`~vidpose.errors.LabelsError`
   naming the file and row on bad input) and ``save(poses: Poses, path: Path) -> None`` (write
   straight to ``path``; :func:`write_poses` makes it atomic).
2. Add the module to :data:`BUILTIN_FORMAT_MODULES` below, so that the registry is complete
   however ``vidpose.io`` was imported.
3. Add it to the round-trip tests in ``tests/io/test_registry.py``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from vidpose._atomic import atomic_path
from vidpose.errors import LabelsError
from vidpose.io.poses import Poses

BUILTIN_FORMAT_MODULES: tuple[str, ...] = ("vidpose.io.csv_format", "vidpose.io.dlc_h5")
"""Modules whose import registers the built-in formats; imported on first registry lookup."""

_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class PoseFormat:
    """One registered format (see the module docstring for what each field means)."""

    name: str
    extensions: tuple[str, ...]
    description: str
    cls: type

    def sniff(self, head: bytes) -> bool:
        return bool(self.cls.sniff(head))

    def load(self, path: Path) -> Poses:
        return self.cls.load(path)

    def save(self, poses: Poses, path: Path) -> None:
        self.cls.save(poses, path)


_FORMATS: dict[str, PoseFormat] = {}


def register_format(cls: type) -> type:
    """Class decorator adding a pose-table format to the registry (see module docstring)."""
    name = cls.name
    extensions = tuple(e.lower() for e in cls.extensions)
    for attr in ("sniff", "load", "save"):
        if not callable(getattr(cls, attr, None)):
            raise TypeError(f"pose format {name!r} must define a static method {attr}()")
    if name in _FORMATS and _FORMATS[name].cls is not cls:
        raise ValueError(f"pose format {name!r} is already registered")
    for other in _FORMATS.values():
        clash = set(extensions) & set(other.extensions)
        if other.name != name and clash:
            raise ValueError(
                f"pose format {name!r}: extensions {sorted(clash)} already used by {other.name!r}"
            )
    _FORMATS[name] = PoseFormat(name, extensions, cls.description, cls)
    return cls


def _registry() -> dict[str, PoseFormat]:
    for module in BUILTIN_FORMAT_MODULES:
        importlib.import_module(module)
    return _FORMATS


def available_formats() -> dict[str, PoseFormat]:
    """Registered formats by name (a copy)."""
    return dict(_registry())


def _known() -> str:
    return "; ".join(
        f"{f.name} ({', '.join(f.extensions)}): {f.description}" for f in _registry().values()
    )


def get_format(name: str) -> PoseFormat:
    """The format registered as ``name``; ValueError listing the known ones otherwise."""
    formats = _registry()
    if name not in formats:
        raise ValueError(f"unknown pose table format {name!r}; known: {_known()}")
    return formats[name]


def _by_extension(path: Path) -> PoseFormat | None:
    suffix = path.suffix.lower()
    for fmt in _registry().values():
        if suffix in fmt.extensions:
            return fmt
    return None


def detect_format(path: str | os.PathLike) -> PoseFormat:
    """The format of an existing file: its content when that is unambiguous, else its extension.

    Content wins so that, e.g., a DeepLabCut .h5 renamed to .csv is still read correctly
    instead of failing as "not UTF-8".
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    sniffed = [f for f in _registry().values() if f.sniff(head)]
    if len(sniffed) == 1:
        return sniffed[0]
    fmt = _by_extension(path)
    if fmt is not None:
        return fmt
    raise LabelsError(
        f"{path}: cannot tell which pose table format this is from its extension "
        f"{path.suffix!r} or its content; pass format=... (known: {_known()})"
    )


def read_poses(path: str | os.PathLike, format: str | None = None) -> Poses:
    """Read a labels or predictions table into a :class:`Poses`.

    Args:
        path: the file to read.
        format: a registered format name (see :func:`available_formats`); by default it is
            recognised from the file's content, then its extension.

    Raises:
        LabelsError: the file is missing, unreadable or malformed; the message names the file,
            the row and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise LabelsError(f"{path} {what}")
    fmt = get_format(format) if format is not None else detect_format(path)
    return fmt.load(path)


def write_poses(poses: Poses, path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``poses`` to ``path`` atomically (a crash leaves the old file or the new one).

    Args:
        poses: the table to write.
        path: destination; parent folders are created.
        format: a registered format name; by default chosen from the extension of ``path``.
    """
    path = Path(path)
    if format is not None:
        fmt = get_format(format)
    else:
        fmt = _by_extension(path)
        if fmt is None:
            raise ValueError(
                f"{path}: no pose table format uses the extension {path.suffix!r}; "
                f"pass format=... (known: {_known()})"
            )
    with atomic_path(path) as tmp:
        fmt.save(poses, tmp)
