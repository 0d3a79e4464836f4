"""The ``vidpose`` command line: one module per command in :mod:`vidpose.cli.commands`.

Each command module has ``register(subparsers)``, which adds its parser and checks what
argparse can check (types, ranges, choices), and ``handle(args) -> int``, which checks input
and output paths before any work and then calls the public API (``vidpose.<name>``, imported
lazily, so that ``vidpose --help`` and ``vidpose check`` do not load torch).

:func:`main` turns every error a user can cause into a message without a traceback:
``VidposeError`` exits 2, ``OSError`` 1 (``cannot write PATH: reason``), Ctrl-C 130, and
anything else 1 with a line saying it is a bug (``VIDPOSE_DEBUG=1`` prints the traceback).
Argument errors are argparse's (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from rich.text import Text

from vidpose import __version__
from vidpose.cli._common import UsageError, err_console, os_error_message, print_error
from vidpose.errors import VidposeError

COMMANDS = (
    "synthesize",
    "check",
    "train",
    "predict",
    "smooth",
    "triangulate",
    "evaluate",
    "extract_frames",
    "label_video",
    "export",
    "convert",
    "import_sleap",
    "demo",
    "list",
)
"""Command modules under vidpose.cli.commands, in the order ``vidpose --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidpose",
        description="Video-centric, semi-supervised animal pose estimation.",
    )
    parser.add_argument("--version", action="version", version=f"vidpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vidpose.cli.commands.{name}").register(sub)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; key=value overrides may also follow options
    (``vidpose train P --no-progress a.b=1``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [t for t in extra if t.startswith("-") or "=" not in t]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _debug() -> bool:
    return os.environ.get("VIDPOSE_DEBUG", "") not in ("", "0")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one ``warning: message`` line on stderr, not Python's file:line and source
    line (those with ``VIDPOSE_DEBUG=1``)."""
    text = Text("warning:", style="bold yellow")
    text.append(f" {message}")
    err_console.print(text, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (argument errors raise SystemExit(2)).

    Run as the command (``argv`` None), warnings print as ``warning: message`` lines; called
    with ``argv`` (tests, scripts), the caller's warning handling stays as it is."""
    shown = warnings.showwarning
    if argv is None and not _debug():
        warnings.showwarning = _show_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = shown


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = parse_args(argv)
        return int(args.handle(args) or 0)
    except VidposeError as exc:
        if _debug():
            traceback.print_exc()
        label = "error" if isinstance(exc, UsageError) else type(exc).__name__
        print_error(exc, label)
        return 2
    except BrokenPipeError:
        # the reader of our output went away (`vidpose list backbones | head -1`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stops the flush at exit failing
        return 1
    except OSError as exc:
        if _debug():
            traceback.print_exc()
        print_error(os_error_message(exc))
        return 1
    except KeyboardInterrupt:
        err_console.print(Text("interrupted", style="yellow"))
        return 130
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        print_error(
            f"{type(exc).__name__}: {exc}  -- this is a bug in vidpose {__version__}; please "
            "report it (run with VIDPOSE_DEBUG=1 to see the traceback)",
            "internal error",
        )
        return 1
