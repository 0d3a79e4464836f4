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
2. Add the module to the ``modules`` of :data:`FORMATS` below, so that the registry is
   complete however ``vidpose.io`` was imported.
3. Add it to the round-trip tests in ``tests/io/test_registry.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidpose._atomic import atomic_path
from vidpose.errors import ConfigError, LabelsError
from vidpose.io.poses import Poses
from vidpose.registry import Registry

_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class PoseFormat:
    """One registered format (see the module docstring for what each field means)."""

    name: str
    extensions: tuple[str, ...]
    help: str
    cls: type

    def sniff(self, head: bytes) -> bool:
        return bool(self.cls.sniff(head))

    def load(self, path: Path) -> Poses:
        return self.cls.load(path)

    def save(self, poses: Poses, path: Path) -> None:
        self.cls.save(poses, path)


FORMATS: Registry[PoseFormat] = Registry(
    "format",
    key="format",
    modules=("vidpose.io.csv_format", "vidpose.io.dlc_h5"),
    columns=lambda f: ", ".join(f.extensions),
)


def register_format(cls: type) -> type:
    """Class decorator adding a pose-table format to the registry (see module docstring)."""
    name = cls.name
    extensions = tuple(e.lower() for e in cls.extensions)
    for attr in ("sniff", "load", "save"):
        if not callable(getattr(cls, attr, None)):
            raise TypeError(f"pose format {name!r} must define a static method {attr}()")
    for other in FORMATS:
        clash = set(extensions) & set(other.extensions)
        if clash:
            raise ValueError(
                f"pose format {name!r}: extensions {sorted(clash)} already used by {other.name!r}"
            )
    FORMATS.add(PoseFormat(name, extensions, cls.description, cls))
    return cls


def _known() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.extensions)}): {f.help}" for f in FORMATS)


def _by_extension(path: Path) -> PoseFormat | None:
    suffix = path.suffix.lower()
    for fmt in FORMATS:
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
    sniffed = [f for f in FORMATS if f.sniff(head)]
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
        format: a name in :data:`FORMATS` (``vidpose list formats``); by default it is
            recognised from the file's content, then its extension.

    Raises:
        LabelsError: the file is missing, unreadable or malformed; the message names the file,
            the row and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise LabelsError(f"{path} {what}")
    fmt = FORMATS.get(format, key="format") if format is not None else detect_format(path)
    return fmt.load(path)


def output_format(path: str | os.PathLike, format: str | None = None) -> PoseFormat:
    """The format :func:`write_poses` would write ``path`` in; checks an output name before any
    work is done.

    Raises:
        ConfigError: unknown ``format``, or no format owns the extension of ``path``.
    """
    if format is not None:
        return FORMATS.get(format, key="format")
    fmt = _by_extension(Path(path))
    if fmt is None:
        raise ConfigError(
            f"{path}: no pose table format uses the extension {Path(path).suffix!r}; "
            f"use one of {', '.join(e for f in FORMATS for e in f.extensions)} "
            f"(known formats: {_known()})"
        )
    return fmt


def write_poses(poses: Poses, path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``poses`` to ``path`` atomically (a crash leaves the old file or the new one).

    Args:
        poses: the table to write.
        path: destination; parent folders are created.
        format: a name in :data:`FORMATS`; by default chosen from the extension of ``path``.

    Raises:
        ConfigError: no format for ``path`` (see :func:`output_format`).
    """
    path = Path(path)
    fmt = output_format(path, format)
    with atomic_path(path) as tmp:
        fmt.save(poses, tmp)
