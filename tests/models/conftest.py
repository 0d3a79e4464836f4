"""Fixtures for tests/models: backbones are built once per session (ResNet-101 and ConvNeXt
take ~1 s each to initialise on a 2-core CPU)."""

from __future__ import annotations

from collections.abc import Callable

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
