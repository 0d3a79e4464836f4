"""``vidpose check``: validate a project and list every problem."""

from __future__ import annotations

import argparse
from pathlib import Path

import vidpose
from vidpose.cli._common import console, need_dir


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="validate a project and list every problem")
    p.add_argument(
        "project_dir", type=Path, metavar="PROJECT_DIR", help="the project folder, e.g. my-project"
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    need_dir(args.project_dir, "PROJECT_DIR")
    return vidpose.run_check(args.project_dir, console=console)
