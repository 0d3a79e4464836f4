"""Decode many videos in worker processes, into shared memory the predicting process reads.

Why processes: PyAV decodes in C, but each frame also costs Python work (demuxing, the colour
conversion call, copying into the batch) under the GIL, so decoder *threads* in one process top
out at about 4,400 frames/s of a 406x396 H.264 video on a 16-core H100 host, whatever their
number (8 threads: 4,424; 16: 4,185; ``bench/predict_ceilings.py``), below what the network
takes. Separate processes have a GIL each.

GPU decoders (NVDEC) too: PyNvVideoCodec needs the GIL around every call and for each frame's
DLPack hand-over, so NVDEC decoder *threads* in the predicting process stall, and are stalled
by, the thread that runs the network. In processes each has its own GIL and CUDA context and
decodes into CUDA buffers the parent maps through CUDA IPC: no frame leaves the GPU.

How: ``jobs`` worker processes (forked from a fork server, or spawned: the parent may already
hold a CUDA context, :func:`worker_context`) take
videos, or frame ranges of them, from a task queue. For each task a worker makes ``slots``
batch buffers, shared once per task: in shared host memory (I420 planes when ``planar`` and
the video allows, RGB otherwise) for a CPU reader, in CUDA memory (RGB) for a GPU reader on a
CUDA ``device``. It decodes ``batch_size`` frames at a time into a free buffer (waiting for the
GPU's copies to finish) and sends only its number, the frame indices and validity. The parent
copies or consumes the buffer and hands it back (:meth:`ProcessDecoders.release`), so at most
``slots`` batches per worker are in memory and the workers never overwrite what the parent
still reads.

Messages from :meth:`ProcessDecoders.get`, for the task submitted as ``i``:

- ``(i, "open", info)``: the video's :class:`~vidpose.video.base.VideoInfo`;
- ``(i, FrameBatch, ticket)``: a batch whose ``frames`` is a uint8 tensor view of a shared
  buffer; pass ``ticket`` to :meth:`release` once its frames are copied;
- ``(i, END, None)``: all of the video's frames were sent;
- ``(i, exc, None)``: decoding failed (an exception instance; the video's other messages end).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue as queue_mod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpose._atomic import pid_alive
from vidpose.predict.processes import main_hidden, worker_context
from vidpose.video.base import FrameBatch

END = "end"
_STOP = None
_RETURN_TIMEOUT = 600.0
"""Seconds a worker waits for the parent to hand back a buffer before it gives up."""


class DecoderError(RuntimeError):
    """A worker's decoding failure, re-raised in the parent with the worker's message."""


def _worker(
    wid: int,
    tasks: Any,
    results: Any,
    free: Any,
    batch_size: int,
    reader: str,
    slots: int,
    planar: bool,
    parent: int,
    device: str | None = None,
) -> None:
    """One decoder process: videos (or parts) from ``tasks`` until the stop marker, or until
    the ``parent`` process is gone."""
    torch.set_num_threads(1)
    from vidpose.video import open_video

    if device is not None and device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    from vidpose.video.base import i420_shape

    while True:
        try:
            task = tasks.get(timeout=2.0)
        except queue_mod.Empty:
            if pid_alive(parent) is False:  # the parent is gone: nothing reads
                return
            continue
        if task is _STOP:
            return
        i, path, start, stop, threads = task
        own: _Slots | None = None  # this task's buffers, once made
        try:
            with open_video(
                path, reader=reader, device=device, planar=planar, threads=threads
            ) as vr:
                info = vr.info
                pixels = getattr(vr, "pixels", "rgb")
                frame = i420_shape(info.height, info.width) if pixels == "i420" else None
                shape = (batch_size, *(frame or (info.height, info.width, 3)))
                on_gpu = getattr(getattr(vr, "device", None), "type", None) == "cuda"
                if on_gpu:  # mapped by the parent through CUDA IPC
                    buffers = [
                        torch.empty(shape, dtype=torch.uint8, device=vr.device)
                        for _ in range(slots)
                    ]
                else:
                    buffers = [
                        torch.empty(shape, dtype=torch.uint8).share_memory_() for _ in range(slots)
                    ]
                own = _Slots(buffers, free)
                # a reader that can decodes straight into the shared buffer: no copy
                direct = not on_gpu and getattr(vr, "decodes_into", False)
                options = {"into": own.into} if direct else {}
                results.put((i, "open", (info, wid, buffers, pixels)))
                for batch in vr.iter_batches(batch_size, start, stop, **options):
                    slot = own.decoded_into if direct else own.take()
                    n = int(batch.frames.shape[0])
                    if on_gpu:
                        buffers[slot][:n].copy_(batch.frames)
                        torch.cuda.current_stream(vr.device).synchronize()
                    elif not direct:
                        buffers[slot][:n].numpy()[...] = np.asarray(batch.frames)
                    results.put((i, "batch", (wid, slot, batch.start, n, batch.valid)))
                    own.outstanding += 1
            results.put((i, END, None))
        except BaseException as exc:  # reported for this video; the worker goes on
            try:
                pickled: bytes | None = pickle.dumps(exc)
            except Exception:  # an exception that cannot travel: its text does
                pickled = None
            results.put((i, "error", (f"{type(exc).__name__}: {exc}", pickled)))
        # The parent hands back every slot it was sent (it copies or skips each batch) before
        # this video's buffers may be reused or freed.
        for _ in range(0 if own is None else own.outstanding):
            try:
                free.get(timeout=_RETURN_TIMEOUT)
            except queue_mod.Empty:  # the parent stopped reading: nothing left to protect
                return


class _Slots:
    """One task's shared buffers: those free to decode into, and how many batches the parent
    still reads (sent, not handed back)."""

    def __init__(self, buffers: list[torch.Tensor], free: Any) -> None:
        self.buffers = buffers
        self.available = list(range(len(buffers)))
        self.free = free
        self.outstanding = 0
        self.decoded_into = -1  # the slot last taken

    def take(self) -> int:
        """A free slot, waiting for the parent to hand one back when none is."""
        if not self.available:
            self.available.append(self.free.get())
            self.outstanding -= 1
        self.decoded_into = self.available.pop()
        return self.decoded_into

    def into(self, n: int) -> np.ndarray:
        """The first ``n`` frames of a free host buffer, for a reader to decode into."""
        return self.buffers[self.take()][:n].numpy()


class ProcessDecoders:
    """``jobs`` decoder processes fed by :meth:`submit`; results from :meth:`get`.

    Use as a context manager (the processes are stopped on exit, killed if they hang).

    Args:
        jobs: worker processes (each decodes one video at a time).
        batch_size: frames per batch (the last batch of a video may be shorter).
        reader: a reader name: a CPU reader (``pyav``), or a GPU reader (``nvdec``) with a CUDA
            ``device``; "auto" picks as :func:`~vidpose.video.open_video` does for ``device``.
        slots: shared batch buffers per worker.
        device: where a GPU reader decodes ("cuda:N"); None for a CPU reader.
        context: the multiprocessing context that starts them (default
            :func:`~vidpose.predict.processes.worker_context`; :func:`prestart` forks).
    """

    def __init__(
        self,
        jobs: int,
        batch_size: int,
        reader: str = "pyav",
        slots: int = 3,
        *,
        planar: bool = False,
        device: str | None = None,
        context: Any = None,
    ) -> None:
        if jobs < 1 or batch_size < 1 or slots < 1:
            raise ValueError("jobs, batch_size and slots must be at least 1")
        ctx = context or worker_context()
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        self._free = [ctx.Queue() for _ in range(jobs)]
        self._buffers: dict[Any, tuple[int, list[torch.Tensor], str]] = {}
        self._procs = [
            ctx.Process(
                target=_worker,
                args=(
                    w,
                    self._tasks,
                    self._results,
                    self._free[w],
                    batch_size,
                    reader,
                    slots,
                    planar,
                    os.getpid(),
                    device,
                ),
                daemon=True,
                name=f"vidpose-decoder-{w}",
            )
            for w in range(jobs)
        ]
        with main_hidden():
            for p in self._procs:
                p.start()
        self._closed = False

    def submit(
        self, i: int, path: str | Path, start: int = 0, stop: int | None = None, threads: int = 0
    ) -> None:
        """Queue frames ``[start, stop)`` of a video (all of it by default) as ``i`` (any
        hashable key the caller uses for this piece of work), decoded with ``threads``
        threads (0: FFmpeg's choice)."""
        self._tasks.put((i, str(path), start, stop, threads))

    def get(self, timeout: float | None = None) -> tuple[Any, Any, Any]:
        """The next message (see the module docstring); raises ``queue.Empty`` on timeout and
        :class:`DecoderError` if every worker died."""
        while True:
            try:
                i, kind, payload = self._results.get(timeout=1.0 if timeout is None else timeout)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in self._procs):
                    raise DecoderError("every video decoder process has stopped") from None
                if timeout is not None:
                    raise
                continue
            if kind == "open":
                info, wid, buffers, pixels = payload
                self._buffers[i] = (wid, buffers, pixels)
                return i, "open", info
            if kind == "batch":
                wid, slot, start, n, valid = payload
                _, buffers, pixels = self._buffers[i]
                frames = buffers[slot][:n]
                return i, FrameBatch(start, frames, valid, pixels), (wid, slot)
            if kind == END:
                self._buffers.pop(i, None)
                return i, END, None
            message, pickled = payload
            self._buffers.pop(i, None)
            exc = None
            if pickled is not None:
                with contextlib.suppress(Exception):
                    exc = pickle.loads(pickled)
            return i, exc if isinstance(exc, BaseException) else DecoderError(message), None

    def release(self, ticket: tuple[int, int]) -> None:
        """Hand a batch's buffer back to its worker (its frames were copied)."""
        wid, slot = ticket
        self._free[wid].put(slot)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffers.clear()  # CUDA buffers: unmapped before their owners exit
        for _ in self._procs:
            self._tasks.put(_STOP)
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self._buffers.clear()

    def alive(self) -> bool:
        """Whether every worker process is running."""
        return not self._closed and all(p.is_alive() for p in self._procs)

    def __enter__(self) -> ProcessDecoders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SPARE: list[tuple[tuple, ProcessDecoders]] = []
"""Decoders started ahead by :func:`prestart`, with the arguments they were started for."""


def prestart(
    jobs: int, batch_size: int, reader: str = "pyav", slots: int = 3, *, planar: bool = False
) -> bool:
    """Fork ``jobs`` decoder processes from this process now, for :func:`started` to hand to
    the prediction that asks for the same ones; False (nothing started) where it is not safe.

    Why: a process that a fork server started (a GPU worker of the local batch engine) is not
    that server's client: its own worker processes would come from a second fork server, a
    fresh interpreter importing torch again before the first decoder starts (~5 s on the H200
    host, while the GPU waited). Forked here instead, they start at once and share this
    process's imports. Safe only before this process makes a CUDA context or starts a thread
    (a fork copies neither well), which is checked; CPU readers only (a GPU reader's workers
    make their own CUDA context).
    """
    from vidpose.predict.processes import fork_context

    ctx = fork_context()
    if ctx is None or reader != "pyav":
        return False
    try:
        pool = ProcessDecoders(jobs, batch_size, reader, slots, planar=planar, context=ctx)
    except Exception:  # only a head start: the prediction starts its own
        return False
    _SPARE.append(((jobs, batch_size, reader, slots, planar, None), pool))
    return True


def started(
    jobs: int,
    batch_size: int,
    reader: str = "pyav",
    slots: int = 3,
    *,
    planar: bool = False,
    device: str | None = None,
) -> ProcessDecoders:
    """Decoder processes for these arguments: those :func:`prestart` started, if they match
    and are all alive, else new ones (:class:`ProcessDecoders`)."""
    key = (jobs, batch_size, reader, slots, planar, device)
    for entry in list(_SPARE):
        if entry[0] == key:
            _SPARE.remove(entry)
            if entry[1].alive():
                return entry[1]
            entry[1].close()
    return ProcessDecoders(jobs, batch_size, reader, slots, planar=planar, device=device)
