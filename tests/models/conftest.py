"""Fixtures for tests/models: backbones are built once per session (ResNet-101 and ConvNeXt
take ~1 s each to initialise on a 2-core CPU), and torch runs single-threaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from vidpose.models import Backbone, build_backbone


@pytest.fixture(scope="session")
def get_backbone() -> Callable[[str], Backbone]:
    """``get_backbone(name)``: a randomly initialised backbone (pretrained=False), cached."""
    cache: dict[str, Backbone] = {}

    def get(name: str) -> Backbone:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = build_backbone(name, pretrained=False)
        return cache[name]

    return get


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """One intra-op thread. These tests are small, and on a shared 2-core machine torch's
    default of one thread per core made a training step ~30x slower (2.8 s instead of 0.09 s)
    whenever another process was busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
