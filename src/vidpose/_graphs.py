"""Replay a function as CUDA graphs, one per input signature (training steps, prediction).

Eager PyTorch launches every kernel from Python; for a ResNet-50 at batch 16 that is a few
thousand launches a step, and the CPU sets the pace. A CUDA graph records the kernels once and
replays them with a single launch, so the host only copies the next inputs into fixed buffers.

:class:`StepGraphs` keys a graph by the call's *signature* (input shapes, and the host values a
call bakes in, like a clip's original frame size). A new signature first runs eagerly
``warmup`` times (on a side stream, as capture requires: cuDNN picks its algorithms and an
optimizer creates its state there); the next occurrence is captured and replayed, and every
later one only replayed. Every call, eager or replayed, does the real work.

What a captured function may not do: read a value back to the host, allocate host memory for a
device copy, or change shape with the data.

Randomness: draws from the default CUDA generator and from the generators given to
:class:`StepGraphs` advance on every replay (their states are registered with each graph).

Several threads may train at once (an ensemble's members, :mod:`vidpose.training.concurrent`),
each on its own CUDA stream with its own graphs (each graph with its own memory pool). Captures
are kept apart from the other threads' CUDA work by :data:`CAPTURE_GATE`.

This module imports only torch: prediction uses it without loading the training stack.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

StepFn = Callable[[dict[str, torch.Tensor], tuple], dict[str, torch.Tensor]]
"""``fn(tensors, consts) -> outputs``: one training step (including the optimizer update)."""

MAX_GRAPHS = 4
"""Signatures captured per run; further ones run eagerly (each graph keeps its activations)."""


def _signature(tensors: Mapping[str, torch.Tensor], consts: tuple) -> tuple:
    return (
        tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in sorted(tensors.items())),
        consts,
    )


def _autocast_like_outer() -> contextlib.AbstractContextManager:
    """The autocast that is on now (Lightning's bf16-mixed), without the weight-cast cache:
    cached casts made during capture would be freed behind the graph's back."""
    if not torch.is_autocast_enabled("cuda"):
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)


class CaptureGate:
    """Keeps a CUDA graph capture apart from the CUDA work of other threads that train at the
    same time (ensemble members trained together, :mod:`vidpose.training.concurrent`).

    A capture records kernels instead of running them, and some calls made by *another* thread
    while it is underway break it whatever its ``capture_error_mode``: a device-wide
    synchronize above all (``torch.cuda.graph`` starts with one, so two captures must not
    overlap either), and possibly the set-up of a cuDNN or cuBLAS handle, cuDNN's algorithm
    search, the allocator handing memory back to the driver; "thread_local" alone only keeps
    the other threads' harmless work from failing. So threads that train declare themselves
    (:meth:`running`) and call :meth:`pause_point` between steps; a capture (:meth:`exclusive`)
    first waits until every other running thread is paused there (or done), and they stay
    paused until it ends. A capture happens once per step shape, in the first steps, so the
    others wait a second or so per run. Threads that never declared themselves (the main
    thread, prediction) are never waited for: with no thread running, a capture starts at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0  # threads running, not paused
        self._waiting = 0  # captures waiting for the others to pause
        self._capturing = False
        self._local = threading.local()

    def _mine(self) -> bool:
        return getattr(self._local, "running", False)

    def _wait_no_capture(self) -> None:
        while self._capturing or self._waiting:
            self._cond.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """This thread trains (issues CUDA work) until the block ends, pausing only at
        :meth:`pause_point`."""
        with self._cond:
            self._wait_no_capture()
            self._running += 1
        self._local.running = True
        try:
            yield
        finally:
            self._local.running = False
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def pause_point(self) -> None:
        """A point where this thread has no CUDA work half-issued: wait here while another
        thread captures (or is about to). Returns at once otherwise, or when not running."""
        if not self._mine():
            return
        with self._cond:
            if not (self._capturing or self._waiting):
                return
            self._running -= 1
            self._cond.notify_all()
            self._wait_no_capture()
            self._running += 1

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The block runs while no other running thread does anything (they are paused)."""
        mine = self._mine()
        with self._cond:
            if mine:
                self._running -= 1
            self._waiting += 1
            self._cond.notify_all()
            while self._capturing or self._running:
                self._cond.wait()
            self._waiting -= 1
            self._capturing = True
        try:
            yield
        finally:
            with self._cond:
                self._capturing = False
                self._cond.notify_all()
                if mine:
                    self._wait_no_capture()
                    self._running += 1


CAPTURE_GATE = CaptureGate()
"""The process's one gate: every :class:`StepGraphs` capture goes through it."""


class _Captured:
    def __init__(self, graph: torch.cuda.CUDAGraph, inputs, outputs) -> None:
        self.graph = graph
        self.inputs: dict[str, torch.Tensor] = inputs
        self.outputs: dict[str, torch.Tensor] = outputs


class StepGraphs:
    """Runs ``fn`` eagerly for each new signature's first ``warmup`` calls, then captures it
    as a CUDA graph and replays it.

    Args:
        fn: one step; reads only ``tensors`` (whose shapes, dtypes and devices, with
            ``consts``, form the signature) and state it owns (parameters, optimizer state).
            Outputs are returned as tensors; after a replay they are the graph's static
            outputs, overwritten by the next replay (clone what must outlive it).
        generators: custom CUDA generators ``fn`` draws from (the default one is always
            registered).
        warmup: eager calls of a signature before it is captured (at least 1).
    """

    def __init__(
        self, fn: StepFn, generators: Iterable[torch.Generator] = (), warmup: int = 2
    ) -> None:
        self.fn = fn
        self.generators = list(generators)
        self.warmup = max(1, int(warmup))
        self._graphs: dict[tuple, _Captured] = {}
        self._seen: dict[tuple, int] = {}
        self._failed: set[tuple] = set()
        self._side: torch.cuda.Stream | None = None
        self.replays = 0
        self.eager_calls = 0

    def close(self) -> None:
        """Destroy the captured graphs now (their memory pools go with them); later calls
        capture afresh. A graph that holds a collective (the gradient all-reduce of multi-GPU
        training) must be gone before its NCCL communicator is: tearing the process group down
        under a live one hangs both processes."""
        if self._side is not None:
            self._side.synchronize()
        for entry in self._graphs.values():
            entry.graph.reset()
        self._graphs.clear()
        self._seen.clear()

    def _on_side_stream(self, call: Callable[[], Any]) -> Any:
        if self._side is None:
            self._side = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side), _autocast_like_outer():
            out = call()
        current.wait_stream(self._side)
        return out

    def __call__(
        self, tensors: Mapping[str, torch.Tensor], consts: tuple = ()
    ) -> dict[str, torch.Tensor]:
        tensors = dict(tensors)
        sig = _signature(tensors, consts)
        entry = self._graphs.get(sig)
        if entry is None:
            seen = self._seen.get(sig, 0)
            self._seen[sig] = seen + 1
            if seen < self.warmup or len(self._graphs) >= MAX_GRAPHS or sig in self._failed:
                self.eager_calls += 1
                return self._on_side_stream(lambda: self.fn(tensors, consts))
            failure: RuntimeError | None = None
            # No other thread's CUDA work while capturing, nor while synchronizing after a
            # failed capture (that would break another thread's capture).
            with CAPTURE_GATE.exclusive():
                try:
                    entry = self._capture(tensors, consts)
                except RuntimeError as exc:
                    # A capture that fails (an operation a graph cannot hold) costs speed, never
                    # the run: this signature stays eager. Nothing ran during the capture.
                    self._failed.add(sig)
                    torch.cuda.synchronize()  # re-raises if the failure broke the device
                    failure = exc
            if failure is not None:
                warnings.warn(
                    f"CUDA graph capture failed, training this step shape eagerly "
                    f"(slower, same result): {str(failure).splitlines()[0]}",
                    stacklevel=2,
                )
                self.eager_calls += 1
                return self._on_side_stream(lambda: self.fn(tensors, consts))
            self._graphs[sig] = entry
        else:
            for k, v in tensors.items():
                entry.inputs[k].copy_(v, non_blocking=True)
        entry.graph.replay()
        self.replays += 1
        return entry.outputs

    def _capture(self, tensors: dict[str, torch.Tensor], consts: tuple) -> _Captured:
        static = {k: v.clone() for k, v in tensors.items()}
        graph = torch.cuda.CUDAGraph()
        for g in self.generators:
            graph.register_generator_state(g)
        # Capture on a side stream that has seen the warm-up (the graph records the kernels,
        # it runs none of them; the replay below does the step).
        current = torch.cuda.current_stream()
        if self._side is None:
            self._side = torch.cuda.Stream()
        self._side.wait_stream(current)
        # No automatic garbage collection while capturing: freeing a pinned host tensor (an
        # earlier batch's, say) records a CUDA event, which invalidates the capture.
        enabled = gc.isenabled()
        gc.disable()
        try:
            outputs = self._record(graph, static, consts)
        finally:
            if enabled:
                gc.enable()
        current.wait_stream(self._side)
        return _Captured(graph, static, outputs)

    def _record(self, graph: torch.cuda.CUDAGraph, static, consts: tuple):
        assert self._side is not None
        with (
            torch.cuda.stream(self._side),
            _autocast_like_outer(),
            # thread_local: the clip loader's threads may allocate pinned memory meanwhile
            torch.cuda.graph(graph, stream=self._side, capture_error_mode="thread_local"),
        ):
            return self.fn(static, consts)
