"""Registry of pose-table file formats, and the format-agnostic read_poses / write_poses.

Every format is a small class registered with :func:`register_format`; the registry knows its
name, the file extensions it owns, how to recognise its bytes, and its ``load`` / ``save`` pair.
Allowed ``format=`` names and error messages are derived from the registry, never repeated.

How to add a format:

1. Write ``src/vidpose/io/<name>.py`` with a class decorated by ``@register_format`` that has
   ``name``, ``extensions`` (lower case, with the dot; the longest matching one wins, so
   ``.analysis.h5`` can belong to another format than ``.h5``), ``description``, and three
   static methods: ``sniff(head: bytes) -> bool`` (True only when the first bytes clearly
   belong to this format, or to the container it shares with others, e.g. HDF5),
   ``load(path: Path) -> Poses`` (raise :class:`~vidpose.errors.LabelsError` naming the file
   and row on bad input) and ``save(poses: Poses, path: Path) -> None`` (write straight to
   ``path``; :func:`write_poses` makes it atomic). Optional:

   - ``sniff_file(path: Path) -> bool``: a look inside the file (e.g. its HDF5 keys), asked
     when the first bytes match several formats; a format without one stays a candidate
     until another format claims the file.
   - ``exact = False`` when the format cannot hold everything a :class:`Poses` holds (extra
     columns, any frame ids, the scorer): the registry's exact round-trip tests then leave it
     to its own tests.
   - ``needs_fps = True`` when it cannot write a table without ``Poses.fps`` (``vidpose
     convert`` then asks for ``--fps``).
   - ``check(poses) -> None``: raise :class:`~vidpose.errors.ConfigError` for a table the
     format cannot hold; :func:`write_poses` calls it before it creates any file.
2. Add the module to the ``modules`` of :data:`FORMATS` below, so that the registry is
   complete however ``vidpose.io`` was imported.
3. Add it to the round-trip tests in ``tests/io/test_registry.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vidpose._atomic import atomic_path, discard_staged, staged_path
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
    exact: bool = True

    def sniff(self, head: bytes) -> bool:
        return bool(self.cls.sniff(head))

    def sniff_file(self, path: Path) -> bool | None:
        """The format's look inside the file; None when it has none."""
        look = getattr(self.cls, "sniff_file", None)
        return None if look is None else bool(look(path))

    def load(self, path: Path) -> Poses:
        return self.cls.load(path)

    def save(self, poses: Poses, path: Path) -> None:
        self.cls.save(poses, path)

    @property
    def needs_fps(self) -> bool:
        """Whether it writes only tables whose ``fps`` is known."""
        return bool(getattr(self.cls, "needs_fps", False))

    def check(self, poses: Poses, path: str | os.PathLike) -> None:
        """Raise :class:`ConfigError` naming ``path`` if this format cannot hold ``poses``."""
        check = getattr(self.cls, "check", None)
        if check is None:
            return
        try:
            check(poses)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None


FORMATS: Registry[PoseFormat] = Registry(
    "format",
    key="format",
    modules=("vidpose.io.csv_format", "vidpose.io.dlc_h5", "vidpose.io.nwb", "vidpose.io.sleap"),
    columns=lambda f: ", ".join(f.extensions),
)


def register_format(cls: type) -> type:
    """Class decorator adding a pose-table format to the registry (see module docstring)."""
    name = cls.name
    extensions = tuple(e.lower() for e in cls.extensions)
    for attr in ("sniff", "load", "save"):
        if not callable(getattr(cls, attr, None)):
            raise TypeError(f"pose format {name!r} must define a static method {attr}()")
    if hasattr(cls, "sniff_file") and not callable(cls.sniff_file):
        raise TypeError(f"pose format {name!r}: sniff_file must be a static method")
    for other in FORMATS:
        clash = set(extensions) & set(other.extensions)
        if clash:
            raise ValueError(
                f"pose format {name!r}: extensions {sorted(clash)} already used by {other.name!r}"
            )
    exact = bool(getattr(cls, "exact", True))
    FORMATS.add(PoseFormat(name, extensions, cls.description, cls, exact))
    return cls


def _known() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.extensions)}): {f.help}" for f in FORMATS)


def _by_extension(path: Path) -> PoseFormat | None:
    """The format owning the longest extension that ends ``path``'s name."""
    name = path.name.lower()
    owners = [(len(e), f) for f in FORMATS for e in f.extensions if name.endswith(e)]
    return max(owners, key=lambda owner: owner[0])[1] if owners else None


def _look_inside(candidates: list[PoseFormat], path: Path) -> list[PoseFormat]:
    """Narrow formats whose first bytes all match by their ``sniff_file``: those that claim
    the file, else those that have no such look (they were not ruled out)."""
    answers = [(f, f.sniff_file(path)) for f in candidates]
    claimed = [f for f, answer in answers if answer]
    return claimed or [f for f, answer in answers if answer is None]


def detect_format(path: str | os.PathLike) -> PoseFormat:
    """The format of an existing file: its content when that is unambiguous, else its extension.

    Content wins so that, e.g., a DeepLabCut .h5 renamed to .csv is still read correctly
    instead of failing as "not UTF-8". When the first bytes match several formats (HDF5 is
    DeepLabCut's, SLEAP's .slp and SLEAP's analysis files), each one's ``sniff_file`` looks
    inside.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    sniffed = [f for f in FORMATS if f.sniff(head)]
    if len(sniffed) > 1:
        sniffed = _look_inside(sniffed, path)
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
        ConfigError: no format for ``path`` (see :func:`output_format`), or its format cannot
            hold ``poses`` (e.g. NWB without ``fps``); nothing is written then.
    """
    path = Path(path)
    fmt = output_format(path, format)
    fmt.check(poses, path)
    with atomic_path(path) as tmp:
        fmt.save(poses, tmp)


def stage_poses(poses: Poses, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write ``poses`` as :func:`write_poses` would to ``path``, but to a temporary file beside
    it, and return that file: ``vidpose._atomic.commit_staged`` renames it onto ``path`` (from
    any process of this machine), ``discard_staged`` drops it. For tables that must appear
    only once others are written (an ensemble's smoothed table after its members').

    Raises:
        ConfigError: as :func:`write_poses`; nothing is left behind then.
    """
    path = Path(path)
    fmt = output_format(path, format)
    fmt.check(poses, path)
    tmp = staged_path(path)
    try:
        fmt.save(poses, tmp)
    except BaseException:
        discard_staged([tmp])
        raise
    return tmp
