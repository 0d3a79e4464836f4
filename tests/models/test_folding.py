"""Batch normalisation folded into convolutions (vidpose.models.folding)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from nets import forward as _forward
from nets import trained_like as _trained_like
from torch import nn

from vidpose.models import build_network
from vidpose.models.folding import find_pairs, fold_batchnorm, fold_state_dict


def _norms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize("head", ["heatmap", "heatmap_fpn"])
def test_every_norm_after_a_convolution_is_folded_and_the_function_is_kept(head):
    torch.manual_seed(0)
    net = _trained_like(build_network("resnet18", head, n_keypoints=3))
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        before = _forward(net, x)
    norms = _norms(net)
    pairs = fold_batchnorm(net, torch.rand(2, 3, 64, 64), _forward)
    # ResNet-18: 20 norms, each right after its convolution; the heads' too (the heatmap
    # head's after transposed convolutions)
    assert len(pairs) == norms and _norms(net) == 0
    assert any(p.transpose for p in pairs) == (head == "heatmap")
    with torch.no_grad():
        after = _forward(net, x)
    assert torch.allclose(before[0], after[0], atol=1e-3)
    assert torch.allclose(before[1], after[1], atol=1e-4)


class _Shared(nn.Module):
    """A convolution whose output feeds its norm *and* a residual: not foldable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward_images(self, x):
        y = self.conv(x)
        z = self.bn(y) + y
        coords = z.mean((2, 3)).reshape(-1, 3, 1).expand(-1, 3, 2)
        return SimpleNamespace(coords=coords, confidence=z.mean((1, 2, 3))[:, None])


def test_a_convolution_whose_output_is_also_used_elsewhere_is_left_alone():
    torch.manual_seed(0)
    net = _trained_like(_Shared())
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        before = _forward(net, x)
    # the hooks see the pair; the check on the probe sees the function change and undoes it
    assert len(find_pairs(net, lambda: _forward(net, x))) == 1
    assert fold_batchnorm(net, x, _forward) == []
    assert isinstance(net.bn, nn.BatchNorm2d) and net.conv.bias is not None
    with torch.no_grad():
        assert torch.equal(_forward(net, x)[0], before[0])


def test_a_norm_in_training_mode_is_refused():
    net = _trained_like(build_network("resnet18", "heatmap", n_keypoints=2)).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net, torch.rand(1, 3, 64, 64), _forward)


def test_a_checkpoint_folded_by_the_pairs_of_a_copy_gives_the_copy_its_function():
    torch.manual_seed(0)
    first = _trained_like(build_network("resnet18", "heatmap_fpn", n_keypoints=2), seed=1)
    other = _trained_like(copy.deepcopy(first), seed=2)  # another member's weights
    state = copy.deepcopy(other.state_dict())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = _forward(other, x)
    pairs = fold_batchnorm(first, x, _forward)
    member = copy.deepcopy(first)
    member.load_state_dict(fold_state_dict(state, pairs))  # strict: every key accounted for
    with torch.no_grad():
        got = _forward(member, x)
    assert torch.allclose(got[0], expected[0], atol=1e-3)
    assert torch.allclose(got[1], expected[1], atol=1e-4)


def test_a_network_the_probe_cannot_run_through_predicts_unfolded():
    """Folding is only a speed-up: a forward that fails (here on the folded network only)
    leaves the network as it was, and no error reaches the caller."""
    torch.manual_seed(0)
    net = _trained_like(build_network("resnet18", "heatmap", n_keypoints=2))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = _forward(net, x)
    norms = _norms(net)
    calls = []

    def fails_once_folded(n, inp):
        calls.append(1)
        if len(calls) == 3:  # the check after folding
            raise RuntimeError("no kernel for this")
        return _forward(n, inp)

    assert fold_batchnorm(net, x, fails_once_folded) == []
    assert _norms(net) == norms  # every norm back in place
    with torch.no_grad():
        assert torch.equal(_forward(net, x)[0], before[0])

    def always_fails(n, inp):
        raise RuntimeError("input too small")

    assert fold_batchnorm(net, x, always_fails) == []
    assert _norms(net) == norms
