"""The CPU cores this process may use, and how worker processes share them."""

from __future__ import annotations

import contextlib
import os


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity where the OS has one (a batch job's
    allocation, a worker's share), else every core of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def node_gpus() -> int:
    """NVIDIA GPUs in this machine, whatever ``CUDA_VISIBLE_DEVICES`` shows this process (a
    Ray actor sees only its own): the driver's list of them, 0 without one."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def cpu_shares(count: int) -> list[frozenset[int]] | None:
    """This process's cores split into ``count`` disjoint, contiguous shares (the first ones
    one core larger when they do not divide evenly), or None where the OS cannot pin processes
    or there are fewer cores than shares."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if count < 2 or len(cores) < count:
        return None
    size, extra = divmod(len(cores), count)
    shares, at = [], 0
    for i in range(count):
        n = size + (1 if i < extra else 0)
        shares.append(frozenset(cores[at : at + n]))
        at += n
    return shares


def pin_to(cores: frozenset[int] | None) -> None:
    """Run this process (and the processes and threads it starts) on ``cores`` only; nothing
    where the OS cannot."""
    if not cores:
        return
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cores)
