"""A whole training step as one CUDA graph: gather, augment, forward, losses, backward, update.

Eager PyTorch launches every kernel of a step from Python: for a ResNet-50 at batch 16 that is
a few thousand launches, and the CPU, not the GPU, sets the pace (a step took ~80 ms of host
time for ~24 ms of GPU work). A CUDA graph records the kernels of one step once and replays
them with a single launch, so the host only copies the next batch's inputs (row indices, the
unlabeled clip) into fixed buffers and queues the replay.

:class:`StepGraphs` keys a graph by the step's *signature* (input shapes, and the host values a
step bakes in, like the clip's original frame size). A new signature first runs eagerly
``warmup`` times (on a side stream, as capture requires: cuDNN picks its algorithms and the
optimizer creates its state there); the next occurrence is captured and replayed, and every later
one only replayed. Every call, eager or replayed, is a real training step.

What a captured step may not do: read a value back to the host, allocate host memory for a
device copy, or change shape with the data. vidpose's augmentation and losses are written that
way (no ``.item()``, masks instead of boolean indexing; ``bench/sync_points.py`` checks).

Randomness: draws from the default CUDA generator and from the generators given to
:class:`StepGraphs` advance on every replay (their states are registered with each graph), so
each step gets new augmentations.

The optimizer update is part of the graph. Its learning rate therefore lives in a device tensor
(:func:`lr_to_tensors`) that the LR scheduler fills in place, and Adam/AdamW are built with
``capturable=True``. Lightning sees a :class:`ReplayOptimizer` whose ``step(closure)`` only
runs the closure (the replay), so its step counting, hooks and checkpoints work unchanged.

:class:`StepGraphs` itself lives in :mod:`vidpose._graphs` (prediction replays graphs too,
without importing this package).
"""

from __future__ import annotations

from typing import Any

import torch

from vidpose._graphs import StepGraphs

__all__ = ["ReplayOptimizer", "StepGraphs", "lr_to_tensors"]


def lr_to_tensors(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Put each parameter group's learning rate in a device tensor (in place), so that a
    captured update reads the value the scheduler wrote for this step instead of a constant
    recorded at capture."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], torch.Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


def _floats(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict whose tensor learning rates are floats: loadable into any optimizer."""
    groups = []
    for g in state["param_groups"]:
        g = dict(g)
        for key in ("lr", "initial_lr"):
            if isinstance(g.get(key), torch.Tensor):
                g[key] = float(g[key])
        groups.append(g)
    return {**state, "param_groups": groups}


class ReplayOptimizer(torch.optim.Optimizer):
    """What Lightning steps when the update is inside a captured graph.

    ``step(closure)`` only calls the closure (which replays the graph, update included); the
    parameter groups and state are those of the wrapped optimizer, so LR schedulers, checkpoints
    and ``--resume`` see the real thing. Saved learning rates are plain floats.
    """

    def __init__(self, inner: torch.optim.Optimizer) -> None:
        # No super().__init__: the wrapped optimizer owns the parameters and their state.
        self.inner = inner
        self.defaults = inner.defaults
        self._optimizer_step_pre_hooks: dict = {}
        self._optimizer_step_post_hooks: dict = {}

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.inner.param_groups = value

    @property  # type: ignore[override]
    def state(self):
        return self.inner.state

    @state.setter
    def state(self, value) -> None:
        self.inner.state = value

    def step(self, closure=None):  # type: ignore[override]
        return None if closure is None else closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Nothing: the captured backward writes every gradient afresh."""

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return _floats(self.inner.state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self.inner.load_state_dict(_floats(state_dict))

    def __repr__(self) -> str:
        return f"ReplayOptimizer({self.inner!r})"
