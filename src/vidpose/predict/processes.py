"""How vidpose starts its worker processes (decoders, one worker per GPU), without torch.

This module imports only the standard library, so that :func:`start_server` can start the fork
server before the calling process imports torch: the server's own imports then run beside the
caller's instead of after them.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import threading
from collections.abc import Iterator
from typing import Any

PRELOAD = ["vidpose.predict.batch", "vidpose.predict.decoders", "vidpose.predict.predictor"]
"""What the fork server imports once, so that each worker forked from it starts at once (the
predictor's modules, config and networks among them: 0.55 s of a GPU worker's model load on the
2-H200 host when each worker imported them, session 18)."""

_STARTING = threading.Lock()


@contextlib.contextmanager
def main_hidden() -> Iterator[None]:
    """Start vidpose's worker processes inside this: they do not run the parent's main script.

    A spawned or fork-server child imports the parent's ``__main__`` (its file, or its module
    name) before it runs its target, so each worker ran the importing part of the user's script
    again: twelve decoder workers of a script that imported Lightning spent ~16 s each on it on
    the H200 host, a third of a 54 s run. (The fork server's own preload of ``__main__`` never
    took effect: multiprocessing does not pass it the script's path.) vidpose's workers need
    nothing from ``__main__``, their targets and arguments being vidpose's, so its ``__file__``
    and ``__spec__``, from which multiprocessing learns what to import, are hidden while a
    process starts.
    """
    main = sys.modules.get("__main__")
    with _STARTING:
        saved = {
            k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__
        }
        try:
            for k in saved:
                if k == "__file__":
                    del main.__file__
                else:
                    main.__spec__ = None
            yield
        finally:
            for k, v in saved.items():
                setattr(main, k, v)


def worker_context() -> Any:
    """The multiprocessing context for vidpose's worker processes (decoders, one worker per
    GPU): a fork server where the platform has one, else spawn.

    Workers must not be forked from a process that may hold a CUDA context, so they were
    spawned, and each imported torch, vidpose and the parent's main script again: decoder
    processes took ~8 s to start on the H100 host (8 at once, 16 cores). A fork server is a
    clean process, started once, that imports these (:data:`PRELOAD`) and forks each worker:
    on this project's 2-core machine the first batch of 4 decoders came after 2.2-2.4 s
    instead of 3.9-4.2 s, and the whole test video after 3.3 s instead of 6.6 s.
    """
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # no effect once the server runs: same list
        return ctx
    return mp.get_context("spawn")


def fork_context() -> Any:
    """The ``fork`` multiprocessing context if forking this process is safe now, else None.

    Safe: the platform forks, this process runs no other thread, and it has no CUDA context
    (a fork copies neither well). What :func:`~vidpose.predict.decoders.prestart` and
    :func:`~vidpose.predict.run.prestart_writers` check before forking a GPU worker's
    processes ahead."""
    if "fork" not in mp.get_all_start_methods() or threading.active_count() > 1:
        return None
    torch = sys.modules.get("torch")  # not imported here: this module is standard-library only
    if torch is not None and torch.cuda.is_initialized():
        return None
    return mp.get_context("fork")


def start_server() -> bool:
    """Start the fork server now, if the platform has one and it is not running: it imports
    :data:`PRELOAD` (torch among them) in the background while the caller goes on (loading
    its models, say), and the first worker started later is forked at once instead of after
    those imports. Returns whether a fork server is running.

    Starting one takes a few milliseconds here (the server is a new process); its imports took
    ~2.8 s before the first decoder process could start on this project's 2-core machine.
    """
    ctx = worker_context()
    if ctx.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    try:
        with main_hidden():
            forkserver.ensure_running()
    except Exception:  # only a head start: the first worker's start reports what is wrong
        return False
    return True


def decode_in_processes(decoders: str, device: object, reader: str) -> bool:
    """``predict.decoders``: whether videos are decoded in worker processes. auto = processes
    when a CPU reader (PyAV; ``reader`` auto or pyav) feeds a CUDA ``device`` (a name or a
    ``torch.device``), else threads.

    Measured, 40 videos of 9,940 frames, PyAV, bf16, batch 64 (``bench/predict_gpus.py``;
    ``bench/results/issue16_h200x2/``): on a host of 2 H200s and 32 cores, 8 decoder processes
    per GPU gave 9,246 frames/s on both GPUs against 6,892 with 4 decoder threads each (commit
    a57994b). One GPU: 6,663 at ae6361a, whose decoder processes come with writer processes
    for the tables (5,200 at a57994b, tables written in threads; 4,509 with decoder threads on
    a 16-core H200 host at e4a07a5). Decoder threads share the predicting process's GIL, and
    each frame costs Python work under it. At commit ba74e0d threads were faster (16-core
    H200, 8 videos: 3,342 against 2,063-2,479 with processes), before the workers stopped
    importing the caller's script, decoded into the shared buffers directly and had their
    fork server started before torch.

    NVDEC (``reader=nvdec``) in processes decodes into CUDA buffers the predicting process
    maps (no host copy), but each worker has its own CUDA context, and the GPU time-slices
    contexts: 20 videos on one H200, 2,120-2,498 frames/s with 4-8 worker processes against
    3,263-3,501 with NVDEC threads (``bench/predict_modes.py``); auto keeps NVDEC in threads.
    On CPU the network, not decoding, is the limit: threads.
    """
    if decoders != "auto":
        return decoders == "processes"
    return str(device).startswith("cuda") and reader in ("auto", "pyav")
