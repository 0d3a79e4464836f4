"""vidpose's ResNets are torchvision's, parameter for parameter, draw for draw."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vidpose.models.resnet import ResNet


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_parameters_initialisation_and_outputs_as_torchvision(name):
    import torchvision

    torch.manual_seed(3)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    torch.manual_seed(3)
    ours = ResNet(name).eval()
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # names and order: torchvision checkpoints load as they are
    for key in a:
        assert torch.equal(a[key], b[key]), key  # the same seed draws the same weights
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    # training mode, one backward: the same gradients to the bit (same order of operations)
    theirs.train(), ours.train()
    for net in (theirs, ours):
        net.zero_grad()
        net(x).square().mean().backward()
    for (key, p), q in zip(theirs.named_parameters(), ours.parameters()):
        assert torch.equal(p.grad, q.grad), key


def test_building_a_resnet_backbone_does_not_import_torchvision():
    code = (
        "import sys; from vidpose.models.backbones import build_backbone; "
        "build_backbone('resnet18', pretrained=False); "
        "print([m for m in ('torchvision', 'torch._dynamo') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pretrained_weights_are_torchvisions(monkeypatch):
    """With model.pretrained=true the ImageNet weights torchvision fetches end up in ours."""
    import torchvision

    from vidpose.models import backbones

    torch.manual_seed(5)
    fetched = torchvision.models.resnet18(weights=None)
    monkeypatch.setattr(backbones, "_torchvision_model", lambda *a: fetched)
    state = torch.random.get_rng_state()
    backbone = backbones.build_backbone("resnet18", pretrained=True)
    assert torch.equal(torch.random.get_rng_state(), state)  # building ours drew nothing
    stem = backbone.stages[0]
    assert torch.equal(stem[0].weight, fetched.conv1.weight)
    assert torch.equal(backbone.stages[3][1].conv2.weight, fetched.layer4[1].conv2.weight)
