"""What every command shares: the consoles, argument types, path checks and error printing.

User text (paths, messages, help) is always printed as :class:`rich.text.Text`, never parsed as
markup: ``[float, >= 0]`` or a folder named ``run[1]`` must come out as written. Only fixed
prefixes get a colour.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from vidpose.errors import VidposeError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class UsageError(VidposeError):
    """An argument that cannot work (a missing input, an output that cannot be written)."""


# -- printing ----------------------------------------------------------------------------------


def say(message: object, prefix: str = "", style: str = "green") -> None:
    """Print ``message`` as plain text, after an optional coloured ``prefix``."""
    text = Text()
    if prefix:
        text.append(prefix, style=style)
        text.append(" ")
    text.append(str(message))
    console.print(text, soft_wrap=True)


def working(message: str):
    """A spinner with ``message`` (and the elapsed time) on a terminal while the block runs;
    elsewhere (logs, pipes) nothing, so that output stays plain."""
    import contextlib

    if not console.is_terminal:
        return contextlib.nullcontext()
    return console.status(Text(message), spinner="dots")


def log(message: object) -> None:
    """The ``log=`` callback given to the library: one plain line per notice."""
    console.print(Text(str(message)), soft_wrap=True)


def print_error(message: object, label: str = "error") -> None:
    """``label: message`` on stderr, the label in red."""
    text = Text(f"{label}:", style="bold red")
    text.append(" ")
    text.append(str(message))
    err_console.print(text, soft_wrap=True)


def print_err_plain(message: object) -> None:
    """A plain line on stderr (the details under an error)."""
    err_console.print(Text(str(message)), soft_wrap=True)


def print_plain(text: str) -> None:
    """A block of text (help, listings) exactly as it is."""
    console.print(Text(text), soft_wrap=True)


# -- argument types (argparse ``type=``; errors name the option through argparse) ---------------


def _bounds(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"<= {hi:g}"
    return ""


def int_type(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi]."""
    what = f"an integer {_bounds(lo, hi)}".rstrip()

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def float_type(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> Callable[[str], float]:
    """A finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    what = f"a number {_bounds(lo, hi, lo_open)}".rstrip()

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        if not math.isfinite(value) or too_low or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


def int_list_type(lo: int | None = 0, *, unique: bool = False) -> Callable[[str], list[int]]:
    """Comma-separated integers >= ``lo`` (``0,1,2``), at least one."""
    what = f"comma-separated integers {_bounds(lo, None)}, e.g. 0,1,2".replace("  ", " ")

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not values or (lo is not None and min(values) < lo):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if unique and len(set(values)) != len(values):
            twice = sorted({v for v in values if values.count(v) > 1})
            raise argparse.ArgumentTypeError(
                f"{', '.join(map(str, twice))} given more than once in {text!r}"
            )
        return values

    parse.__name__ = what
    return parse


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_type(text: str) -> str:
    """auto, cpu, cuda or cuda:N."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    return text


OUTLIER_PX = 20.0
MIN_CONFIDENCE = 0.5
"""Defaults of the 3D options: ``vidpose.geometry.tables``' (equal, checked by a test; not
imported from there, which would load the geometry package at every command's start)."""


def add_3d_options(p: argparse.ArgumentParser, context: str = "") -> None:
    """``--outlier-px`` and ``--min-confidence``: how 2D points become 3D ones (``vidpose
    triangulate``; ``vidpose predict`` for multi-camera models, ``context`` prefixing the help).
    """
    p.add_argument(
        "--outlier-px",
        type=float_type(0, lo_open=True),
        default=OUTLIER_PX,
        metavar="PX",
        help=f"{context}drop a view reprojecting further than this from the point while more "
        f"than 2 views remain (default {OUTLIER_PX:g}), e.g. --outlier-px 15",
    )
    p.add_argument(
        "--min-confidence",
        type=float_type(0, 1),
        default=MIN_CONFIDENCE,
        metavar="P",
        help=f"{context}leave out 2D points with a likelihood below this (default "
        f"{MIN_CONFIDENCE:g}; 0 keeps all), e.g. --min-confidence 0.8",
    )


def smoothing_type(text: str) -> str | float:
    """auto, or a process noise variance > 0 (px^2 per frame)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"expected auto or a number > 0 (px^2 per frame), got {text!r}"
        )
    return value


def reader_type(text: str) -> str:
    """auto or a registered video reader; the registry is read only when a name is given."""
    from vidpose.video import READER_CHOICES, READERS

    if text in READER_CHOICES or text in READERS:
        return text
    message = READERS.unknown(text, key="--reader", extra=READER_CHOICES)
    raise argparse.ArgumentTypeError(message.removeprefix("--reader: "))


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
"""The x264 speed presets, fastest first."""

X264_CRF = (0, 51)
"""The range of x264's constant rate factor (8-bit)."""


# -- paths: checked before any work -------------------------------------------------------------


def need_file(path: Path, what: str) -> Path:
    """``path`` must be an existing file; ``what`` names the argument."""
    if not path.exists():
        raise UsageError(f"{what} {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder, expected a file")
    return path


def need_dir(path: Path, what: str) -> Path:
    """``path`` must be an existing folder; ``what`` names the argument."""
    if not path.exists():
        raise UsageError(f"{what} {path}: no such folder")
    if not path.is_dir():
        raise UsageError(f"{what} {path}: is a file, expected a folder")
    return path


def _can_create_in(path: Path, what: str) -> None:
    """The nearest existing folder above ``path`` must be a folder this process can write."""
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise UsageError(f"{what} {path}: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot write into {above} (permission denied)")


def writable_file(path: Path, what: str) -> Path:
    """``path`` must be a file this process can create or replace (not a folder)."""
    if path.is_dir():
        raise UsageError(f"{what} {path}: is a folder, expected a file name")
    # an existing file is replaced by renaming a new one beside it: its folder must be writable
    _can_create_in(path, what)
    return path


def writable_dir(path: Path, what: str) -> Path:
    """``path`` must be a folder this process can write, or one it can create."""
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{what} {path}: is a file, expected a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path}: cannot write into it (permission denied)")
        return path
    _can_create_in(path, what)
    return path


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


# -- errors --------------------------------------------------------------------------------------

_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
# atomic writes go through ".<name>.<random>.tmp" beside the target (vidpose._atomic)
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")


def _user_path(filename: object) -> str:
    path = Path(os.fsdecode(filename))  # type: ignore[arg-type]
    m = _TEMP_NAME.fullmatch(path.name)
    return str(path.with_name(m["name"]) if m else path)


def os_error_message(exc: OSError) -> str:
    """``cannot write PATH: reason`` (or read / read or write), the path a user named."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    filename = exc.filename2 if exc.filename2 is not None else exc.filename
    if filename is None:
        return reason
    if exc.errno in _WRITE_ERRNOS:
        verb = "write"
    elif exc.errno == errno.ENOENT:
        verb = "read"
    else:
        verb = "read or write"
    return f"cannot {verb} {_user_path(filename)}: {reason}"
