"""``vidpose list KIND``: what can be named in configs and options (from the registries)."""

from __future__ import annotations

import argparse

import vidpose
from vidpose.cli._common import say
from vidpose.registry import KINDS


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "list",
        help="list backbones, heads, losses, readers or formats",
        description="One line per registered entry: name, details, help.",
    )
    p.add_argument("kind", choices=list(KINDS), metavar="KIND", help=" | ".join(KINDS))
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    registry = vidpose.get_registry(args.kind)
    rows = [(name, details.strip(), help) for name, details, help in registry.rows()]
    rows += [(name, "unavailable here:", why) for name, why in registry.import_errors.items()]
    name_w = max((len(r[0]) for r in rows), default=0)
    details_w = max((len(r[1]) for r in rows), default=0)
    for name, details, help in rows:
        say(f"{name:<{name_w}}  {details:<{details_w}}  {help}".rstrip())
    return 0
