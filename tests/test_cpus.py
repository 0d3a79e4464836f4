"""CPU shares of local worker processes (vidpose._cpus)."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from vidpose._cpus import cpu_shares, pin_to, usable_cpus

linux_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS"
)


@linux_affinity
def test_shares_split_the_cores_disjointly_and_cover_them() -> None:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("needs 2 cores")
    shares = cpu_shares(2)
    assert shares is not None and len(shares) == 2
    assert not shares[0] & shares[1]
    assert sorted(shares[0] | shares[1]) == cores
    assert abs(len(shares[0]) - len(shares[1])) <= 1
    assert cpu_shares(1) is None
    assert cpu_shares(len(cores) + 1) is None


def _report(cores, out) -> None:
    pin_to(cores)
    out.put((sorted(os.sched_getaffinity(0)), usable_cpus()))


@linux_affinity
def test_a_pinned_process_sees_only_its_share() -> None:
    one = frozenset(sorted(os.sched_getaffinity(0))[:1])
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_report, args=(one, out))
    p.start()
    got, n = out.get(timeout=60)
    p.join(timeout=30)
    assert got == sorted(one) and n == 1
    assert usable_cpus() == len(os.sched_getaffinity(0))  # this process untouched
