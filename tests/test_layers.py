"""The package's layers: no import cycle between packages, and prediction stays light.

Imports are read from the source (module level and inside functions alike), so a lazy import
that closes a cycle is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vidpose"


def _unit(module: str) -> str | None:
    """The layer a ``vidpose.*`` module belongs to: its package, or the top-level module."""
    parts = module.split(".")
    if parts[0] != "vidpose" or len(parts) < 2:
        return None
    return parts[1]


def package_graph() -> dict[str, set[str]]:
    """Layer -> the other layers it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        src = _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            for t in targets:
                dst = _unit(t)
                if src is not None and dst is not None and dst != src:
                    graph[src].add(dst)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle_between_packages():
    cycle = _find_cycle(package_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_lower_layers_know_nothing_of_models_training_or_prediction():
    graph = package_graph()
    high = {"models", "losses", "training", "predict", "viz", "cli", "build", "demo"}
    for low in ("io", "video", "errors", "_atomic", "registry", "model_dir"):
        assert not graph.get(low, set()) & high, (low, graph.get(low))


def test_importing_prediction_loads_neither_lightning_nor_dynamo_nor_kornia():
    """Nor numba (the smoother's): a single model's prediction does not smooth."""
    code = (
        "import sys, vidpose.predict, vidpose.predict.run; "
        "print([m for m in ('lightning', 'torch._dynamo', 'kornia', 'numba') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_prediction_never_imports_the_training_package():
    """Not even lazily: ``vidpose.training``'s package import loads Lightning (and with it
    torch._dynamo, ~10 s on a GPU host), which ``vidpose predict`` must never pay."""
    offenders = []
    for path in sorted((SRC / "predict").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}:{node.lineno} {n}" for n in names if n.startswith("vidpose.training")
            ]
    assert offenders == []
