"""Run a command-line module and print the stack the first time MODULE gets imported.

    python bench/import_trace.py MODULE -m vidpose.cli predict MODEL VIDEO ...

Finds what pulls a slow import (e.g. ``torch._dynamo``) into a process that should not need it.
"""

from __future__ import annotations

import runpy
import sys
import traceback


class _Tracer:
    def __init__(self, module: str) -> None:
        self.module = module
        self.seen = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.module and not self.seen:
            self.seen = True
            print(f"--- first import of {fullname} from:", file=sys.stderr)
            traceback.print_stack(file=sys.stderr)
        return None


def main() -> None:
    module, flag, target, *rest = sys.argv[1:]
    assert flag == "-m", "usage: import_trace.py MODULE -m PACKAGE ARGS..."
    sys.meta_path.insert(0, _Tracer(module))
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
