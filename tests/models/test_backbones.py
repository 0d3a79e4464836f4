"""Backbone registry: every registered backbone honours its declared stride and channels, and
pretrained-weight failures (no internet) become an actionable ConfigError."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from vidpose.errors import ConfigError
from vidpose.models import (
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    backbones,
    build_backbone,
    normalize_imagenet,
)


def test_required_backbones_are_registered():
    required = {"resnet18", "resnet34", "resnet50", "resnet101"}
    required |= {"efficientnet_b0", "efficientnet_b1", "efficientnet_b2"}
    assert required <= set(BACKBONES.names())


@pytest.mark.parametrize("name", BACKBONES.names())
def test_backbone_matches_its_registration(name, get_backbone):
    """Declared stride/channels equal the real output; intermediates have their strides."""
    spec = BACKBONES.get(name)
    bb = get_backbone(name)
    assert (bb.stride, bb.channels) == (spec.stride, spec.channels) == (32, spec.channels)
    assert bb.name == name
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        feats = bb.forward_intermediates(normalize_imagenet(x))
    assert list(feats) == list(bb.feature_info)
    for stride, f in feats.items():
        assert f.shape == (1, bb.feature_info[stride], 64 // stride, 96 // stride)
    assert feats[bb.stride].shape == (1, spec.channels, 2, 3)


def test_unknown_backbone_lists_the_allowed_names():
    with pytest.raises(ConfigError, match=r"resnet5.*resnet18"):
        build_backbone("resnet5")


def test_backbone_listing_has_one_row_per_backbone_with_metadata():
    rows = BACKBONES.rows()
    assert [r[0] for r in rows] == BACKBONES.names()
    _, details, help_ = next(r for r in rows if r[0] == "resnet50")
    assert "2048" in details and "stride 32" in details and "resnet" in details
    assert "ResNet-50" in help_


def test_normalize_imagenet_values_and_memory_format():
    x = torch.zeros(2, 3, 4, 5)
    x[:, 0] = IMAGENET_MEAN[0]
    x[:, 1] = IMAGENET_MEAN[1] + IMAGENET_STD[1]
    x[:, 2] = 1.0
    y = normalize_imagenet(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y[:, 0], torch.zeros(2, 4, 5), atol=1e-6)
    assert torch.allclose(y[:, 1], torch.ones(2, 4, 5), atol=1e-6)
    assert torch.allclose(y[:, 2], torch.full((2, 4, 5), (1 - 0.406) / 0.225), atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        RuntimeError("invalid hash value (expected 'f37072fd')"),
        OSError("No space left on device"),
    ],
)
def test_pretrained_download_failure_says_what_to_do(monkeypatch, tmp_path, error):
    """The torchvision loader is patched to fail: no network is touched."""

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fail)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(backbones, "_reachable", lambda url: None)  # the server answers
    with pytest.raises(ConfigError) as info:
        build_backbone("resnet18", pretrained=True)
    msg = str(info.value)
    weights = torchvision.models.get_model_weights("resnet18").DEFAULT
    filename = Path(weights.url).name
    assert "model.pretrained=false" in msg
    assert str(tmp_path / "hub" / "checkpoints" / filename) in msg
    assert weights.url in msg
    assert type(error).__name__ in msg
    assert isinstance(info.value.__cause__, type(error))


def test_pretrained_failure_of_efficientnet_names_its_file(monkeypatch):
    def fail(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fail)
    monkeypatch.setattr(backbones, "_reachable", lambda url: None)
    with pytest.raises(
        ConfigError, match=r"model.backbone=efficientnet_b0.*efficientnet_b0_rwightman"
    ):
        build_backbone("efficientnet_b0", pretrained=True)
