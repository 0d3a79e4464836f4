"""Convolutions fused with the ReLU (and residual sum) after them (vidpose.models.fusion).

On CPU the fused calls compute the same thing op by op, so these tests check the rewrite: which
patterns fuse, that the function and the parameter names are kept, and that a failed check
undoes everything. The cuDNN kernels themselves are checked where a GPU is.
"""

from __future__ import annotations

import copy

import pytest
import torch
from nets import forward as _forward
from nets import trained_like as _trained_like
from torch import nn

from vidpose.models import build_network
from vidpose.models.folding import fold_batchnorm
from vidpose.models.fusion import conv_add_relu, conv_relu, fuse_conv_relu


def _folded(backbone: str, head: str) -> nn.Module:
    torch.manual_seed(0)
    net = _trained_like(build_network(backbone, head, n_keypoints=3))
    assert fold_batchnorm(net, torch.rand(2, 3, 64, 64), _forward)
    return net


def _calls(net: nn.Module) -> list:
    return [
        n.target
        for m in net.modules()
        if isinstance(m, torch.fx.GraphModule)
        for n in m.graph.nodes
        if n.op == "call_function" and n.target in (conv_relu, conv_add_relu)
    ]


@pytest.mark.parametrize(
    ("backbone", "head", "relu", "add_relu"),
    [
        # stem 1 + 8 blocks x (conv1 -> relu) ; 8 x (conv2 + identity -> relu); head 1 + 0
        ("resnet18", "heatmap", 1 + 8 + 1, 8),
        # stem 1 + 16 blocks x 2; 16 x (conv3 + identity -> relu); the FPN head's 3 + 3
        ("resnet50", "heatmap_fpn", 1 + 32 + 4, 16),
    ],
)
def test_each_relu_after_a_convolution_is_fused_and_the_function_kept(
    backbone, head, relu, add_relu
):
    net = _folded(backbone, head)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        before = _forward(net, x)
    names = list(net.state_dict())
    fused = fuse_conv_relu(net, torch.rand(2, 3, 64, 64), _forward)
    calls = _calls(net)
    assert (calls.count(conv_relu), calls.count(conv_add_relu)) == (relu, add_relu)
    assert len(fused) == relu + add_relu and "backbone.stages.0.0" in fused
    # no ReLU module is called any more in the backbone; the parameters keep their names, so a
    # checkpoint (an ensemble's next member) loads into the fused copy
    assert list(net.state_dict()) == names
    other = copy.deepcopy(net)
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        after = _forward(net, x)
    torch.testing.assert_close(after[0], before[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(after[1], before[1], atol=1e-5, rtol=0)


def test_unfolded_norms_or_shared_outputs_are_not_fused():
    """A ReLU after a normalisation (not folded) is left alone; so is a convolution whose
    output also feeds something else than the ReLU."""
    torch.manual_seed(0)
    net = _trained_like(build_network("resnet18", "heatmap", n_keypoints=3))
    assert fuse_conv_relu(net, torch.rand(2, 3, 64, 64), _forward) == []
    assert _calls(net) == []

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())

        def forward_images(self, x):
            return self.body(x)

    class Tap(nn.Module):  # the convolution's output is used twice
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + y

    shared = Shared().eval()
    shared.body = nn.Sequential(Tap())

    def fwd(n, x):
        y = n.forward_images(x)
        return y.flatten(1), y.mean((1, 2, 3))

    assert fuse_conv_relu(shared, torch.rand(1, 3, 8, 8), fwd) == []


def test_a_fusion_that_changes_the_outputs_is_undone():
    net = _folded("resnet18", "heatmap")
    containers = [m for m in net.modules() if type(m) is nn.Sequential]
    calls = {"n": 0}

    def drifts_once_fused(n, x):
        calls["n"] += 1
        coords, conf = _forward(n, x)
        return (coords + 1.0, conf) if calls["n"] > 1 else (coords, conf)

    assert fuse_conv_relu(net, torch.rand(2, 3, 64, 64), drifts_once_fused) == []
    assert _calls(net) == [] and [m for m in net.modules() if type(m) is nn.Sequential] == (
        containers
    )

    def fails_once_fused(n, x):
        if _calls(n):
            raise RuntimeError("no kernel")
        return _forward(n, x)

    assert fuse_conv_relu(net, torch.rand(2, 3, 64, 64), fails_once_fused) == []
    assert _calls(net) == []


def test_weights_cast_to_the_autocast_precision_give_the_same_outputs():
    """cast_weights stores the convolutions' weights in bf16 once: under autocast, the outputs
    are those of the float32 weights bit for bit (autocast cast them to the same values); the
    norms' and other parameters stay float32, and float32 prediction casts nothing."""
    from vidpose.predict.predictor import cast_weights

    net = _folded("resnet18", "heatmap_fpn")
    fuse_conv_relu(net, torch.rand(2, 3, 64, 64), _forward)
    cast = copy.deepcopy(net)
    assert cast_weights(cast, "32") == 0
    n = cast_weights(cast, "bf16")
    convs = [m for m in cast.modules() if isinstance(m, nn.Conv2d)]
    assert n == sum(1 for m in convs for _ in m.parameters(recurse=False))
    assert all(p.dtype == torch.bfloat16 for m in convs for p in m.parameters())
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = _forward(net, x), _forward(cast, x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert cast_weights(cast, "bf16") == 0  # nothing left to cast
