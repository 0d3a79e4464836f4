"""Run a peer tool's reader script in its own throwaway uv environment (the compatibility
benches: the peer is checked with its own pinned dependencies, not vidpose's)."""

from __future__ import annotations

import json
import subprocess
import sys


def run_in_env(package: str, script: str, *args: str) -> dict | None:
    """``python -c script *args`` with ``package`` installed (``uv run --with``); the JSON of
    its last output line, or None (its stderr printed) if it failed."""
    proc = subprocess.run(
        ["uv", "run", "--no-project", "--with", package, "python", "-c", script, *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
