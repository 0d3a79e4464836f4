"""Ensemble members trained at once in one process, on one device.

One member's training step on a GPU is a replayed CUDA graph (:mod:`vidpose.training.graphed`)
that leaves the GPU idle part of the time, and late in a ResNet its kernels are too small to
fill it. Members trained at the same time fill those gaps. :func:`train_concurrently` trains
each member (a whole :func:`vidpose.train` run) in its own thread, with its own CUDA stream, so
that the kernels and graph replays of different members overlap on the GPU; the GIL is not in
the way, since a replayed step costs the host little more than a launch.

What keeps a member's results those of training it alone:

- Each member seeds and builds its network holding :data:`SEEDED_BUILD` (the global RNG is
  seeded, then drawn from for the initial weights: one member at a time). It holds the lock
  again from the start of its fit to its first step, where Lightning saves the global RNGs'
  states and puts them back (which would rewind another member's draws). Everything drawn
  later comes from the member's own generators: data order (``RandomBatchSampler``),
  augmentation and the equivariance loss's second view (the data module's generator),
  unlabeled clips (``ClipSampler``), the data loaders' worker seeds; nothing in a step draws
  from the global RNGs (``tests/training/test_ensemble_concurrent.py`` checks that members
  trained at once equal members trained alone, to the last bit, on CPU).
- Each member has its own CUDA stream, its own captured graphs (each with its own memory pool)
  and its own generators registered with them. Captures go through
  :data:`vidpose._graphs.CAPTURE_GATE`: while one member captures, the others wait between two
  steps, since another thread's synchronize or cuDNN set-up would break a capture.
- Lightning's CUDA accelerator empties the allocator's cache and frees cuBLAS's workspaces
  when a run starts and ends; other members' captured graphs use those workspaces, so a member
  trained with others uses :class:`SharedCUDAAccelerator`, which leaves them alone.

Lightning in a thread: it installs its SIGTERM handler only in the main thread (so members
install none). Ctrl-C (and SIGTERM) reaches the main thread, which sets a stop flag; each member
stops at its next step by raising :class:`MemberStopped` from a callback (Lightning's own
handling of KeyboardInterrupt, which calls ``signal.signal`` and ``sys.exit``, works in the
main thread only), its last checkpoint kept. When a member fails, the others are stopped the
same way and the failure is raised once, naming the member.

The members' progress is one display (a bar per member) or, without it, a line per member
when it starts and ends; each member's notices are prefixed with its name.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator

from vidpose._graphs import CAPTURE_GATE
from vidpose.errors import VidposeError

Log = Callable[[str], object]

SEEDED_BUILD = threading.Lock()
"""Held while a run seeds the global RNG and draws its network's initial weights from it, and
by a member trained with others while Lightning saves and restores the global RNGs' states
(from the start of its fit to its first step)."""


class MemberStopped(BaseException):
    """Raised in a member's thread at its next step when the others are stopping (Ctrl-C, or
    another member failed). A BaseException, like KeyboardInterrupt: nothing may swallow it."""


class MemberError(RuntimeError):
    """An ensemble member failed, and not for a reason the user can fix (a bug)."""


class MemberOutOfMemoryError(VidposeError):
    """The members training at once do not fit in the GPU's memory."""


class SharedCUDAAccelerator(CUDAAccelerator):
    """Lightning's CUDA accelerator without emptying the CUDA caches at set-up and teardown:
    that frees cuBLAS's workspaces, which the captured graphs of the other members training
    in this process still use."""

    def setup(self, trainer: L.Trainer) -> None:
        self.set_nvidia_flags(trainer.local_rank)

    def teardown(self) -> None:
        """Nothing: the process empties the caches once every member has finished."""


_LOCAL = threading.local()


def in_member_thread() -> bool:
    """Whether this thread trains one of several members at once."""
    return getattr(_LOCAL, "member", None) is not None


def trainer_accelerator(accelerator: str) -> str | L.pytorch.accelerators.Accelerator:
    """What ``L.Trainer(accelerator=...)`` gets for a run on ``accelerator``: the name, except
    in a member trained with others on CUDA (:class:`SharedCUDAAccelerator`)."""
    if accelerator == "cuda" and in_member_thread():
        return SharedCUDAAccelerator()
    return accelerator


def members_at_once(
    concurrency: int | None, accelerator: str, *, devices: int, compile: bool, members: int
) -> int:
    """How many members train at once: ``training.ensemble_concurrency``, with null resolved
    (all of them on one CUDA device, without ``training.compile``; else one at a time), and at
    most ``members``. The config checks refuse more than 1 with several devices or compile."""
    if concurrency is None:
        on_gpu = accelerator == "cuda" and devices == 1 and not compile
        concurrency = members if on_gpu else 1
    return max(1, min(concurrency, members))


@dataclass
class Job:
    """One member to train: ``run(callbacks, log)`` trains it, with ``callbacks`` added to its
    Lightning callbacks and its notices sent to ``log``, and returns its result."""

    name: str
    run: Callable[[list[L.Callback], Log], Any]


@dataclass
class _Member:
    job: Job
    status: str = "waiting"  # waiting, preparing, training, finished, stopped, failed
    result: Any = None
    error: BaseException | None = None
    failed_at: float = 0.0
    started: float = 0.0

    @property
    def name(self) -> str:
        return self.job.name


@dataclass
class _Shared:
    """What the members' threads and the main thread share."""

    members: list[_Member]
    at_once: int
    cuda: bool
    log: Log
    display: _Display | None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_index: int = 0

    def take(self) -> _Member | None:
        """The next member to train, or None (all taken, or stopping)."""
        with self.lock:
            if self.stop.is_set() or self.next_index >= len(self.members):
                return None
            member = self.members[self.next_index]
            self.next_index += 1
            return member


class _MemberCallback(L.Callback):
    """In a member's run: pauses while another member captures a graph, stops the run when
    asked (at the next training or validation batch) and reports progress."""

    def __init__(self, member: _Member, shared: _Shared) -> None:
        self.member = member
        self.shared = shared
        self._holding = False

    def _pause(self) -> None:
        CAPTURE_GATE.pause_point()
        if self.shared.stop.is_set():
            raise MemberStopped(self.member.name)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Between here and the first step Lightning saves the global RNGs' states and puts them
        # back (``isolate_rng`` around its sanity check, even with none): putting them back
        # while another member draws its initial weights would change those weights. Held
        # until on_train_start, never across a pause point (a capture waiting for this member
        # to pause would wait for ever on a member waiting for the lock).
        SEEDED_BUILD.acquire()
        self._holding = True

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            SEEDED_BUILD.release()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._release()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._release()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._release()
        self.member.status = "training"
        if self.shared.display is not None:
            self.shared.display.begin(self.member, trainer.global_step, trainer.max_steps)
        self._pause()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._pause()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._pause()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.shared.display is not None:
            latest = getattr(getattr(pl_module, "metric_log", None), "latest", {})
            self.shared.display.advance(self.member, trainer.global_step, latest)


class _Display:
    """One rich progress display: a row per member with its steps, newest losses and state."""

    def __init__(self, names: Sequence[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        width = max(len(n) for n in names)
        self.tasks = {
            n: self.p.add_task(n.ljust(width), total=None, start=False, state="waiting")
            for n in names
        }
        self.metrics = {n: "" for n in names}  # the newest losses, kept when the state changes
        self.p.start()

    def set_state(self, member: _Member, state: str) -> None:
        shown = "  ".join(x for x in (self.metrics[member.name], state) if x)
        self.p.update(self.tasks[member.name], state=shown)

    def begin(self, member: _Member, step: int, total: int) -> None:
        task = self.tasks[member.name]
        self.p.start_task(task)
        self.p.update(task, total=total, completed=step, state="training")

    def advance(self, member: _Member, step: int, latest: dict[str, float]) -> None:
        parts = []
        if "train/supervised" in latest:
            parts.append(f"loss {latest['train/supervised']:.4g}")
        if "val/pixel_error" in latest:
            parts.append(f"val {latest['val/pixel_error']:.2f} px")
        self.metrics[member.name] = "  ".join(parts)
        self.p.update(self.tasks[member.name], completed=step, state=self.metrics[member.name])

    def stop(self) -> None:
        self.p.stop()


def _train_one(member: _Member, shared: _Shared) -> None:
    """Train ``member`` in this thread (its own CUDA stream); record how it ended."""
    name = member.name
    member.status, member.started = "preparing", time.perf_counter()
    if shared.display is not None:
        shared.display.set_state(member, "preparing")
    else:
        shared.log(f"{name}: training")

    def member_log(message: str) -> None:
        shared.log(f"{name}: {message}")

    _LOCAL.member = member
    try:
        on_stream = (
            torch.cuda.stream(torch.cuda.Stream()) if shared.cuda else contextlib.nullcontext()
        )
        with CAPTURE_GATE.running(), on_stream:
            try:
                member.result = member.job.run([_MemberCallback(member, shared)], member_log)
            finally:
                # The run's trainer and module refer to each other: free their GPU memory now,
                # for the members still training, not at some later collection.
                gc.collect()
        member.status = "finished"
    except MemberStopped:
        member.status = "stopped"
    except BaseException as exc:  # recorded and raised by the main thread
        member.status, member.error, member.failed_at = "failed", exc, time.time()
        shared.stop.set()  # the others stop at their next step
    finally:
        _LOCAL.member = None
    seconds = time.perf_counter() - member.started
    if shared.display is not None:
        shared.display.set_state(member, f"{member.status} ({seconds:.0f} s)")
    else:
        shared.log(f"{name}: {member.status} after {seconds:.1f} s")


@dataclass
class _Worker:
    thread: threading.Thread
    done: threading.Event

    @property
    def ended(self) -> bool:
        """Ended, or never started (Ctrl-C came first)."""
        return self.thread.ident is None or self.done.is_set()


def _work(shared: _Shared, done: threading.Event) -> None:
    try:
        while (member := shared.take()) is not None:
            _train_one(member, shared)
    finally:
        done.set()


def _wait(workers: Sequence[_Worker]) -> None:
    """Until every worker has ended. Not ``Thread.join``: a join that Ctrl-C interrupts marks
    the thread ended while it still runs (Python 3.11); waits with a timeout, so that Ctrl-C
    is seen at once."""
    for w in workers:
        while not w.ended:
            w.done.wait(0.1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler ending the job) stops the members as Ctrl-C does; Lightning would
    have handled it in one run, but installs no handler outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_concurrently(
    jobs: Sequence[Job],
    at_once: int,
    *,
    cuda: bool,
    progress: bool,
    log: Log,
    again: str,
) -> list[Any]:
    """Train ``jobs`` in ``at_once`` threads (a member each, the next taken when one ends);
    their results in ``jobs``' order.

    Args:
        jobs: the members to train.
        at_once: members training at the same time (>= 1).
        cuda: the members train on the GPU: each thread gets its own CUDA stream.
        progress: show one display with a row per member.
        log: receives one-line notices (the members' prefixed with their names).
        again: what the user does to continue after a stop (ends the messages).

    Raises:
        KeyboardInterrupt: after Ctrl-C (or SIGTERM), once every member has stopped (a second
            Ctrl-C leaves at once).
        The first failure of a member, naming it: a VidposeError as its own class,
        :class:`MemberOutOfMemoryError` for CUDA out of memory, else :class:`MemberError`;
        the member's exception is its cause (its traceback shown with ``VIDPOSE_DEBUG=1``).
    """
    members = [_Member(job) for job in jobs]
    display = _Display([m.name for m in members]) if progress else None
    shared = _Shared(members, at_once, cuda, log, display)
    workers = []
    for i in range(min(at_once, len(members))):
        done = threading.Event()
        thread = threading.Thread(
            target=_work, args=(shared, done), name=f"vidpose-member-{i}", daemon=True
        )
        workers.append(_Worker(thread, done))
    try:
        with _sigterm_as_interrupt():
            try:
                for w in workers:
                    w.thread.start()
                _wait(workers)
            except KeyboardInterrupt:
                shared.stop.set()
                log(
                    "stopping: every member stops at its next step, keeping its last "
                    "checkpoint (Ctrl-C again to leave at once)"
                )
                with contextlib.suppress(KeyboardInterrupt):
                    _wait(workers)
                busy = [m.name for m in members if m.status in ("preparing", "training")]
                left = f"left {', '.join(busy)} without waiting; " if busy else ""
                log(f"stopped; {left}{again}")
                raise
    finally:
        if display is not None:
            display.stop()
        if cuda and all(w.ended for w in workers):
            torch.cuda.empty_cache()  # what each member's accelerator left to the end
    failed = [m for m in members if m.status == "failed"]
    if failed:
        first = min(failed, key=lambda m: m.failed_at)
        assert first.error is not None
        raise _member_failure(first, members, at_once, again) from first.error
    return [m.result for m in members]


def _member_failure(
    member: _Member, members: Sequence[_Member], at_once: int, again: str
) -> BaseException:
    """The one error to raise for a member's failure."""
    exc = member.error
    assert exc is not None
    stopped = [m.name for m in members if m is not member and m.status in ("failed", "stopped")]
    waiting = [m.name for m in members if m.status == "waiting"]
    parts = []
    if stopped:
        parts.append(f"{', '.join(stopped)} stopped with it, keeping their last checkpoints")
    if waiting:
        parts.append(f"{', '.join(waiting)} did not start")
    after = f" ({'; '.join(parts)}; once fixed, {again})" if parts else ""
    who = f"ensemble member {member.name}"
    if isinstance(exc, VidposeError):
        return _same_class(exc, f"{who}: {exc}{after}")
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        fewer = max(1, at_once // 2)
        return MemberOutOfMemoryError(
            f"{who} ran out of GPU memory with {at_once} members training at once ({first}); "
            f"train fewer at once, e.g. training.ensemble_concurrency={fewer}{after}"
        )
    return MemberError(f"{who} failed: {type(exc).__name__}: {exc}{after}")


def _same_class(exc: VidposeError, message: str) -> VidposeError:
    """``exc``'s class with ``message`` (VidposeError when that class cannot be made so)."""
    try:
        return type(exc)(message)
    except Exception:
        return VidposeError(message)
