"""Training on several devices: one process per device, gradients averaged across them (DDP).

With ``training.devices`` N > 1, :func:`vidpose.training.train` checks the run and writes
``config.yaml`` and ``model.json`` as it does for one device, holds the model directory's lock,
and supervises N training processes (``python -m vidpose.training.ddp_worker``), one per GPU
(on CPU, N processes: a way to test). Each rebuilds the run from the saved config and trains
with Lightning's ``DDPStrategy``, joined through the environment set here (NCCL on GPUs, gloo
on CPU); ``manual_backward`` averages the gradients over the processes. Rank 0 writes the model
directory (checkpoints, logs, metrics, predictions); the others write nothing.

Why not Lightning's own launchers: ``strategy="ddp"`` re-runs ``sys.argv`` in each child, that
is whatever called ``train`` (a test session, a notebook, an ensemble or cross-validation loop),
and ``ddp_spawn`` pickles the module with its data and its decoding threads. Here the children
run one entry point with a small pickled :class:`WorkerSpec`, and only the supervisor speaks to
the user: when a process fails, the others are stopped and the first failure is raised once (a
:class:`~vidpose.errors.VidposeError` keeps its class); Ctrl-C stops them all as it stops
one-device training, leaving the last checkpoint for ``--resume``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy

from vidpose.errors import VidposeError

INTERRUPT_GRACE_S = 60.0
"""How long Ctrl-C waits for the processes to stop by themselves before killing them."""

FAILURE_GRACE_S = 2.0
"""How long the other processes get to stop by themselves once one has failed."""


@dataclass(frozen=True)
class Ranks:
    """This training process among all those of a run (one per device)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes the model directory (rank 0)."""
        return self.rank == 0


ONE_DEVICE = Ranks()
"""The one process of a one-device run."""


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a process's own random draws (augmentation, unlabeled clips): ``seed`` on
    rank 0, so that one device draws as it always has, else one derived from (seed, rank)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed % 2**32, rank]).generate_state(1)[0])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics, which each process updates
    from its own batch during a step)."""
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer, src=0)


STEP_SYNC_ENV = "VIDPOSE_DDP_STEP_SYNC"
"""Set (to anything) in the environment, multi-process training averages the gradients inside
the training step, as it does with CUDA graphs, also when the step runs eagerly: how the CPU
tests check that path. Never needed otherwise."""


class GradientAverager:
    """Averages the parameters' gradients over the processes while backward runs, as
    ``DistributedDataParallel`` does, but as a fixed sequence of kernels that a captured CUDA
    graph can hold (the graph replays the all-reduces; no hook runs then).

    The parameters are grouped into buckets of about ``bucket_mb`` in reverse order (backward
    produces the last layers' gradients first). A hook on each parameter counts the gradients
    of its bucket; when the last one is accumulated, the bucket is flattened and all-reduced
    asynchronously, overlapping the rest of backward. :meth:`finish` reduces what backward did
    not reach (parameters without a gradient this step are left out, in every process alike:
    they run the same model), waits, divides by the number of processes and copies the averages
    back. Every process issues the collectives in the same order: autograd's, deterministic for
    one graph.

    Use: :meth:`start` before backward, :meth:`finish` after it; :meth:`close` removes the
    hooks.
    """

    def __init__(self, params: Any, world_size: int, bucket_mb: float = 25.0) -> None:
        self.world_size = world_size
        limit = bucket_mb * 2**20
        self.buckets: list[list[torch.nn.Parameter]] = [[]]
        size = 0
        for p in reversed([p for p in params if p.requires_grad]):
            if size >= limit:
                self.buckets.append([])
                size = 0
            self.buckets[-1].append(p)
            size += p.numel() * p.element_size()
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b}
        self._left: list[int] = []
        self._launched: list[tuple[int, torch.Tensor, Any]] = []
        self._active = False
        self._handles = [
            p.register_post_accumulate_grad_hook(self._ready) for b in self.buckets for p in b
        ]

    def start(self) -> None:
        """Backward is about to run: watch for the buckets' gradients."""
        self._left = [len(b) for b in self.buckets]
        self._launched = []
        self._active = True

    def _ready(self, param: torch.Tensor) -> None:
        if not self._active:
            return
        i = self._bucket_of[id(param)]
        self._left[i] -= 1
        if self._left[i] == 0:
            self._launch(i)

    def _launch(self, i: int) -> None:
        grads = [p.grad for p in self.buckets[i] if p.grad is not None]
        if not grads:
            return
        flat = torch._utils._flatten_dense_tensors(grads)
        work = torch.distributed.all_reduce(flat, async_op=True)
        self._launched.append((i, flat, work))

    def finish(self) -> None:
        """Backward is done: reduce the rest, wait, and write the averages to ``.grad``."""
        if not self._active:
            return
        self._active = False
        done = {i for i, _, _ in self._launched}
        for i in range(len(self.buckets)):
            if i not in done and self._left[i] > 0:
                self._launch(i)
        for i, flat, work in self._launched:
            work.wait()
            flat.div_(self.world_size)
            grads = [p.grad for p in self.buckets[i] if p.grad is not None]
            torch._foreach_copy_(grads, torch._utils._unflatten_dense_tensors(flat, grads))
        self._launched = []

    def close(self) -> None:
        self._active = False
        for h in self._handles:
            h.remove()
        self._handles = []


def broadcast_state(module: torch.nn.Module) -> None:
    """Give every process rank 0's parameters and buffers."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            torch.distributed.broadcast(t.data, src=0)


class StepSyncDDPStrategy(DDPStrategy):
    """Lightning's DDP without the ``DistributedDataParallel`` wrapper: the training step
    averages the gradients itself (:class:`GradientAverager`, driven by
    :class:`~vidpose.training.module.PoseModule` between backward and the update).

    Why: with CUDA graphs the whole step, backward included, is one replay, so the wrapper's
    backward hooks, which start its all-reduces, never run. Everything else (process group,
    ranks, ``reduce`` of the validation sums, barriers, checkpoints written by rank 0) is
    Lightning's DDP.
    """

    averages_in_step = True

    def configure_ddp(self) -> None:
        broadcast_state(self.model)  # as DistributedDataParallel does when it wraps


class RankError(RuntimeError):
    """A training process failed, and not for a reason the user can fix."""


@dataclass
class WorkerSpec:
    """What every training process of a run is given.

    Attributes:
        project: the project folder.
        model_dir: the model directory, already holding ``config.yaml`` and ``model.json``.
        resume: continue from ``ckpt``.
        ckpt: the checkpoint to continue from, or None.
        accelerator: "cuda" or "cpu".
        world_size: the number of processes (devices).
        port: the TCP port on 127.0.0.1 where the processes meet.
        progress: show a progress bar (rank 0).
        callbacks: extra Lightning callbacks, one copy per process.
        supervisor_pid: the process that started them; they exit when it is gone.
    """

    project: str
    model_dir: str
    resume: bool
    ckpt: str | None
    accelerator: str
    world_size: int
    port: int
    progress: bool
    callbacks: list[Any]
    supervisor_pid: int


def check_picklable(callbacks: Sequence[Any], devices: int) -> None:
    """TypeError unless ``callbacks`` can be sent to the training processes."""
    try:
        pickle.dumps(list(callbacks))
    except Exception as exc:
        raise TypeError(
            f"training on several devices (training.devices={devices}) sends each process a copy "
            f"of the callbacks, but they cannot be pickled ({type(exc).__name__}: {exc}); define "
            "their classes at the top level of an importable module"
        ) from exc


def train_processes(
    *,
    project: Path,
    model_dir: Path,
    resume: bool,
    ckpt: Path | None,
    accelerator: str,
    world_size: int,
    progress: bool,
    callbacks: Sequence[Any],
) -> None:
    """Run the ``world_size`` training processes of a run to their end.

    Raises:
        The first failure of a process: its own class for a VidposeError, else RankError.
        KeyboardInterrupt: once every process has stopped.
    """
    with tempfile.TemporaryDirectory(prefix="vidpose-ddp-") as tmp:
        folder = Path(tmp)
        spec = WorkerSpec(
            project=str(project),
            model_dir=str(model_dir),
            resume=resume,
            ckpt=None if ckpt is None else str(ckpt),
            accelerator=accelerator,
            world_size=world_size,
            port=_free_port(),
            progress=progress,
            callbacks=list(callbacks),
            supervisor_pid=os.getpid(),
        )
        spec_path = folder / "spec.pkl"
        spec_path.write_bytes(pickle.dumps(spec))
        procs: list[subprocess.Popen] = []
        try:
            for rank in range(world_size):
                procs.append(_start(spec_path, spec, rank))
            _supervise(procs, folder)
        finally:
            _stop(procs, grace_s=0.0)  # nothing outlives the supervisor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record_path(folder: Path, rank: int) -> Path:
    """Where process ``rank`` records the exception that ended it."""
    return folder / f"rank{rank}.error.json"


def log_path(folder: Path, rank: int) -> Path:
    """The output of process ``rank`` > 0 (rank 0 writes to this process's console)."""
    return folder / f"rank{rank}.log"


def _start(spec_path: Path, spec: WorkerSpec, rank: int) -> subprocess.Popen:
    env = dict(os.environ)
    # The processes import what this one does: a source tree, a test module, a callback's module.
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) if p else os.getcwd() for p in sys.path)
    env.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(spec.port),
        WORLD_SIZE=str(spec.world_size),
        NODE_RANK="0",
        LOCAL_RANK=str(rank),
        RANK=str(rank),
        PYTHONUNBUFFERED="1",
    )
    cmd = [sys.executable, "-m", "vidpose.training.ddp_worker", str(spec_path), str(rank)]
    out = None if rank == 0 else log_path(spec_path.parent, rank).open("wb")
    try:
        # Their own session: Ctrl-C reaches the supervisor only, which passes it on once.
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if out is not None:
            out.close()


def _supervise(procs: list[subprocess.Popen], folder: Path) -> None:
    try:
        while True:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                return
            if any(c not in (None, 0) for c in codes):
                break
            time.sleep(0.1)
        # The others cannot go on without it: their next all-reduce would wait for ever.
        killed = _stop(procs, grace_s=FAILURE_GRACE_S)
        raise _failure(procs, folder, killed)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.send_signal(signal.SIGINT)
        _stop(procs, grace_s=INTERRUPT_GRACE_S)
        raise


def _stop(procs: list[subprocess.Popen], grace_s: float) -> set[int]:
    """Wait up to ``grace_s`` for the processes to end, then kill the others; their ranks."""
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = set()
    for rank, p in enumerate(procs):
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.kill()
            p.wait()
            killed.add(rank)
    return killed


def _failure(procs: list[subprocess.Popen], folder: Path, killed: set[int]) -> BaseException:
    """The error to raise for a failed run: the first process to fail for its own reason."""
    n = len(procs)
    failed = []
    for rank, p in enumerate(procs):
        if rank in killed or p.returncode == 0:
            continue
        try:
            record = json.loads(record_path(folder, rank).read_text())
        except (OSError, ValueError):
            record = None
        if record is None:
            order = (0, 0.0)  # died without a word: a signal (the OOM killer), a crash
        elif record["distributed"]:
            order = (2, record["time"])  # lost a peer: a consequence of another failure
        else:
            order = (1, record["time"])
        failed.append((order, rank, p.returncode, record))
    _, rank, code, record = min(failed, key=lambda f: f[0])
    who = f"training process {rank} of {n}"
    if record is None:
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            err: BaseException = RankError(f"{who} was killed by {name}{hint}")
        else:
            err = RankError(f"{who} exited with code {code}")
        tail = _tail(log_path(folder, rank)) if rank else ""
        if tail:
            err.add_note(f"last output of {who}:\n{tail}")
        return err
    if record["interrupted"]:
        return RankError(f"{who} was interrupted")
    if record["vidpose"]:
        err = _vidpose_error(record["module"], record["name"], f"{record['message']} ({who})")
    else:
        err = RankError(f"{who} failed: {record['name']}: {record['message']}")
    err.add_note(f"traceback in {who}:\n{record['traceback']}")
    return err


def _vidpose_error(module: str, name: str, message: str) -> VidposeError:
    """The VidposeError subclass ``module.name`` with ``message`` (VidposeError if unknown)."""
    with contextlib.suppress(Exception):
        cls = getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, VidposeError):
            return cls(message)
    return VidposeError(message)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- in the training processes -----------------------------------------------------------------


_LOST_PEER = "Connection closed by peer"
"""What gloo raises (a plain RuntimeError) in a process whose peer has died."""


def write_record(path: Path, exc: BaseException) -> None:
    """Record the exception that ends this process, for the supervisor to report."""
    dist_error = getattr(torch.distributed, "DistError", ())
    record = {
        "name": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "vidpose": isinstance(exc, VidposeError),
        "distributed": isinstance(exc, dist_error) or _LOST_PEER in str(exc),
        "interrupted": isinstance(exc, (KeyboardInterrupt, SystemExit)),
        "time": time.time(),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    path.write_text(json.dumps(record))


def exit_with(pid: int) -> None:
    """End this process at once when process ``pid`` (its supervisor) is gone, e.g. killed."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="vidpose-supervisor-watch", daemon=True).start()
