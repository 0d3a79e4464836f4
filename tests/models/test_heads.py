"""Head registry: every backbone x head pair trains (forward + backward) and honours the
HeadOutput contract; head options are validated."""

from __future__ import annotations

import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.models import (
    BACKBONES,
    HEADS,
    HeadOutput,
    PoseNetwork,
    attach_head,
    build_head,
    decode_heatmaps,
)

K = 3


def _check_output(out: HeadOutput, head_name: str, batch: int, size: int) -> None:
    assert isinstance(out, HeadOutput)
    assert out.coords.shape == (batch, K, 2) and out.coords.dtype == torch.float32
    assert out.confidence.shape == (batch, K) and out.confidence.dtype == torch.float32
    assert ((out.confidence >= 0) & (out.confidence <= 1)).all()
    if HEADS.get(head_name).produces_heatmaps:
        hs = out.heatmap_stride
        assert out.heatmaps.shape == (batch, K, size // hs, size // hs)
    else:
        assert out.heatmaps is None and out.heatmap_stride is None


def _loss(out: HeadOutput) -> torch.Tensor:
    loss = out.coords.square().mean()
    if out.heatmaps is not None:
        loss = loss + out.heatmaps.float().square().mean()
    return loss


def _train_step(net: PoseNetwork, head_name: str) -> None:
    """Forward + backward at 64 x 64, batch 2; gradients must reach the backbone's first layer."""
    net.train().zero_grad(set_to_none=True)
    out = net(torch.rand(2, 3, 64, 64))
    _check_output(out, head_name, 2, 64)
    _loss(out).backward()
    first = next(p for p in net.backbone.parameters() if p.requires_grad)
    assert first.grad is not None and torch.isfinite(first.grad).all()
    assert first.grad.abs().sum() > 0
    net.zero_grad(set_to_none=True)


# The backbone dominates the cost, so the full backbone x head cross runs on features only;
# each backbone trains end to end with every heatmap head, each head with resnet18.
HEATMAP_HEADS = [h for h in HEADS.names() if HEADS.get(h).produces_heatmaps]


@pytest.mark.parametrize("head_name", HEATMAP_HEADS)
@pytest.mark.parametrize("backbone_name", BACKBONES.names())
def test_every_backbone_trains_with_every_heatmap_head(backbone_name, head_name, get_backbone):
    torch.manual_seed(0)
    _train_step(attach_head(get_backbone(backbone_name), head_name, K), head_name)


@pytest.mark.parametrize("head_name", HEADS.names())
def test_every_head_trains_with_resnet18(head_name, get_backbone):
    torch.manual_seed(0)
    _train_step(attach_head(get_backbone("resnet18"), head_name, K), head_name)


@pytest.mark.parametrize("head_name", HEADS.names())
@pytest.mark.parametrize("backbone_name", BACKBONES.names())
def test_every_head_fits_every_backbone(backbone_name, head_name, get_backbone):
    """Head on random features shaped like the backbone's for a 64 x 64 input (all stages for
    multiscale heads); gradients reach the features it uses."""
    torch.manual_seed(0)
    net = attach_head(get_backbone(backbone_name), head_name, K)
    info = net.backbone.feature_info
    feats = {s: torch.randn(2, c, 64 // s, 64 // s, requires_grad=True) for s, c in info.items()}
    last = feats[net.stride]
    out = net.forward_head(feats if net.head.multiscale else last)
    _check_output(out, head_name, 2, 64)
    _loss(out).backward()
    assert torch.isfinite(last.grad).all() and last.grad.abs().sum() > 0
    if net.head.multiscale:
        finer = [f for s, f in feats.items() if s < net.stride and f.grad is not None]
        assert finer and all(f.grad.abs().sum() > 0 for f in finer)


@pytest.mark.parametrize("heatmap_stride, size", [(2, 32), (4, 16), (8, 8), (32, 2)])
def test_heatmap_stride_sets_heatmap_size(heatmap_stride, size):
    head = build_head("heatmap", 16, 32, 2, heatmap_stride=heatmap_stride, width=16)
    out = head(torch.rand(1, 16, 2, 2))
    assert out.heatmaps.shape == (1, 2, size, size)
    assert out.heatmap_stride == heatmap_stride
    # Coordinates are in input pixels: a 64 x 64 image spans [-0.5, 63.5].
    assert ((out.coords >= -0.5) & (out.coords <= 63.5)).all()


@pytest.mark.parametrize("bad", [3, 6, 64, 0])
def test_invalid_heatmap_stride_is_a_config_error(bad):
    with pytest.raises(ConfigError, match=f"heatmap_stride={bad}"):
        build_head("heatmap", 16, 32, 2, heatmap_stride=bad)


def test_unknown_head_option_names_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"\['sigmaa'\].*decode_radius.*heatmap_stride"):
        build_head("heatmap", 16, 32, 2, sigmaa=2.0)


def test_unknown_head_lists_the_allowed_names():
    with pytest.raises(ConfigError, match=r"'heatmapp'.*heatmap.*regression"):
        build_head("heatmapp", 16, 32, 2)


def test_head_listing_shows_every_head_with_its_options():
    rows = {name: details for name, details, _ in HEADS.rows()}
    assert set(rows) == set(HEADS.names()) >= {"heatmap", "heatmap_fpn", "heatmap_context"}
    assert "hidden=256" in rows["regression"] and "context_frames=5" in rows["heatmap_context"]


def test_heatmap_head_coords_are_the_decoded_heatmaps():
    head = build_head("heatmap", 8, 32, 2, heatmap_stride=4, width=8, decode_radius=3).eval()
    with torch.no_grad():
        head.final.weight.normal_(std=1.0)  # make the maps peaky rather than flat
        out = head(torch.rand(2, 8, 2, 2))
    coords, confidence = decode_heatmaps(out.heatmaps, 4, radius=3)
    assert torch.equal(out.coords, coords) and torch.equal(out.confidence, confidence)


def test_regression_head_starts_at_the_image_centre_with_confidence_one():
    head = build_head("regression", 8, 32, 4)
    out = head(torch.rand(3, 8, 2, 4))  # input image 64 high, 128 wide
    centre = torch.tensor([(128 - 1) / 2, (64 - 1) / 2])
    assert torch.allclose(out.coords, centre.expand(3, 4, 2), atol=0.5)
    assert torch.equal(out.confidence, torch.ones(3, 4))
