"""Helpers of the folding and fusion tests: a network's forward as (coords, confidence), and
normalisations that look trained."""

from __future__ import annotations

import torch
from torch import nn


def forward(net, x):
    out = net.forward_images(x)
    return out.coords, out.confidence


def trained_like(net: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from their initial values (a freshly built
    network's norms are identities, which any wrong folding would survive)."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.2)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    return net.eval()
