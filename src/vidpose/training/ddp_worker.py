"""One training process of a multi-device run: ``python -m vidpose.training.ddp_worker SPEC RANK``.

Started by :func:`vidpose.training.ddp.train_processes`, never by hand. Whatever ends the
process early is recorded next to ``SPEC`` for the supervisor, which tells the user; nothing is
printed here (``VIDPOSE_DEBUG=1`` prints the traceback as well).
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from pathlib import Path

from vidpose.training.ddp import exit_with, record_path, write_record
from vidpose.training.run import train_rank


def main(argv: list[str]) -> int:
    spec_path, rank = Path(argv[0]), int(argv[1])
    try:
        spec = pickle.loads(spec_path.read_bytes())
        exit_with(spec.supervisor_pid)
        train_rank(spec, rank)
    except BaseException as exc:
        write_record(record_path(spec_path.parent, rank), exc)
        if os.environ.get("VIDPOSE_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
