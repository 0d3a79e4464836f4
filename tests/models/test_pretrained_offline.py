"""model.pretrained=true without the weights cached and without internet: a fast, clear
ConfigError before anything is written."""

from __future__ import annotations

import socket
import time

import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.training import train


def test_unreachable_weights_server_fails_fast_and_writes_nothing(
    tiny_project, tmp_path, monkeypatch
):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # empty cache
    calls = []

    def dropped(address, timeout=None, *args, **kwargs):  # a firewall that drops packets
        calls.append((address, timeout))
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", dropped)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"model\.pretrained=false") as err:
        train(
            tiny_project,
            ["model.backbone=resnet18", "model.pretrained=true", "training.max_steps=1"],
            model_dir=tmp_path / "m",
            progress=False,
        )
    assert time.perf_counter() - t0 < 60
    assert calls and calls[0][0] == ("download.pytorch.org", 443) and calls[0][1] <= 10
    assert "resnet18" in str(err.value) and str(tmp_path / "hub") in str(err.value)
    assert not (tmp_path / "m").exists()
