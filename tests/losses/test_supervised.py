"""Supervised losses: heatmap MSE / KL, coordinate regression, pixel error, and the registry.

Synthetic data: Gaussian targets at known cells, logits equal to their log (a perfect
prediction), flat logits (an untrained one) and garbage logits for missing keypoints.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.losses import (
    SUPERVISED_LOSSES,
    SupervisedInputs,
    check_supervised_loss,
    heatmap_loss,
    pixel_error,
    regression_loss,
)
from vidpose.models import gaussian_targets

NAN = float("nan")


def _targets(coords_hm: list[list[list[float]]], size: int = 16, sigma: float = 1.5):
    return gaussian_targets(torch.tensor(coords_hm), size, size, sigma)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_perfect_prediction_scores_zero_and_flat_scores_more(kind):
    target = _targets([[[5.2, 7.0], [10.0, 3.5]]])
    visible = torch.ones(1, 2, dtype=torch.bool)
    perfect = heatmap_loss(torch.log(target + 1e-12), target, visible, kind)
    flat = heatmap_loss(torch.zeros_like(target), target, visible, kind)
    shifted = heatmap_loss(torch.log(target.roll(3, dims=-1) + 1e-12), target, visible, kind)
    assert perfect.item() == pytest.approx(0.0, abs=1e-4)
    assert flat > 0.5 and shifted > 0.5
    if kind == "kl":
        # KL(T || uniform) = log(h w) - H(T): entropy of a sampled 2D Gaussian ~ log(2 pi e s^2).
        expected = math.log(256) - math.log(2 * math.pi * math.e * 1.5**2)
        assert flat.item() == pytest.approx(expected, abs=0.05)
    else:
        # sum (1/hw - T)^2 / sum T^2 = 1 - 1 / (hw sum T^2): ~1 for maps much larger than sigma.
        t = target / target.sum(dim=(-2, -1), keepdim=True)
        energy = t.square().sum(dim=(-2, -1))
        assert flat.item() == pytest.approx((1 - 1 / (256 * energy)).mean().item(), rel=1e-4)
        assert flat.item() > 0.85


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_missing_keypoints_contribute_nothing(kind):
    target = _targets([[[5.0, 7.0], [NAN, NAN]], [[3.0, 3.0], [12.0, 12.0]]])
    visible = torch.tensor([[True, False], [True, False]])  # (1, 1) has a target but is hidden
    logits = torch.randn(2, 2, 16, 16)
    garbage = logits.clone()
    garbage[:, 1] = 1e4 * torch.randn(2, 16, 16)
    a = heatmap_loss(logits, target, visible, kind)
    b = heatmap_loss(garbage, target, visible, kind)
    only_visible = heatmap_loss(logits[:, :1], target[:, :1], visible[:, :1], kind)
    assert torch.allclose(a, b) and torch.allclose(a, only_visible)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_no_visible_keypoint_gives_zero_with_grad_not_nan(kind):
    target = _targets([[[NAN, NAN], [NAN, NAN]]])
    logits = torch.randn(1, 2, 16, 16, requires_grad=True)
    loss = heatmap_loss(logits, target, torch.zeros(1, 2, dtype=torch.bool), kind)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_visible_keypoint_with_empty_target_is_ignored():
    """A keypoint labeled far outside the crop has an all-zero target: no 0/0, no NaN."""
    target = _targets([[[200.0, 200.0], [4.0, 4.0]]])
    logits = torch.randn(1, 2, 16, 16, requires_grad=True)
    visible = torch.ones(1, 2, dtype=torch.bool)
    loss = heatmap_loss(logits, target, visible, "kl")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert torch.allclose(loss, heatmap_loss(logits[:, 1:], target[:, 1:], visible[:, 1:], "kl"))


def test_heatmap_loss_is_float32_under_bf16_and_checks_shapes():
    target = _targets([[[5.0, 7.0]]])
    loss = heatmap_loss(torch.zeros(1, 1, 16, 16, dtype=torch.bfloat16), target, torch.ones(1, 1))
    assert loss.dtype == torch.float32
    with pytest.raises(ValueError, match="target"):
        heatmap_loss(torch.zeros(1, 1, 8, 8), target, torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ConfigError, match="'l2'"):
        heatmap_loss(torch.zeros(1, 1, 16, 16), target, torch.ones(1, 1), kind="l2")


def test_regression_loss_values_and_missing_targets():
    pred = torch.tensor([[[1.0, 2.0], [5.0, 5.0], [0.0, 0.0]]], requires_grad=True)
    target = torch.tensor([[[4.0, 6.0], [NAN, NAN], [1.0, -1.0]]])
    visible = torch.tensor([[True, True, False]])
    l1 = regression_loss(pred, target, visible, "l1")
    assert l1.item() == pytest.approx(3 + 4)  # only keypoint 0 counts
    l1.backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.equal(pred.grad[0, 1:], torch.zeros(2, 2))
    assert regression_loss(pred, target, None, "l2").item() == pytest.approx((9 + 16 + 1 + 1) / 2)
    none = regression_loss(pred, torch.full_like(target, NAN))
    assert none.item() == 0.0 and none.requires_grad


def test_pixel_error_torch_and_numpy():
    pred = np.array([[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [10.0, 0.0]]])
    target = np.array([[[3.0, 4.0], [NAN, NAN]], [[2.0, 2.0], [10.0, 0.5]]])
    expected = np.array([[5.0, NAN], [0.0, 0.5]])
    np.testing.assert_allclose(pixel_error(pred, target), expected)
    err = pixel_error(torch.tensor(pred), torch.tensor(target))
    assert isinstance(err, torch.Tensor) and err.shape == (2, 2)
    np.testing.assert_allclose(err.numpy(), expected, rtol=1e-6)


def test_registry_names_and_compatibility_checks():
    assert {"heatmap_mse", "heatmap_kl", "regression_l1"} <= set(SUPERVISED_LOSSES.names())
    with pytest.raises(ConfigError, match=r"model.supervised_loss.*'heatmap_l2'.*heatmap_kl"):
        SUPERVISED_LOSSES.get("heatmap_l2")
    with pytest.raises(ConfigError, match="regression_l1"):
        check_supervised_loss("heatmap_mse", head_produces_heatmaps=False)
    assert check_supervised_loss("regression_l1", head_produces_heatmaps=False).name == (
        "regression_l1"
    )
    assert SUPERVISED_LOSSES.get("heatmap_kl").needs_heatmaps
    assert not SUPERVISED_LOSSES.get("regression_l1").needs_heatmaps


def test_registered_losses_equal_the_functions():
    target = _targets([[[5.0, 7.0], [9.0, 2.0]]])
    logits = torch.randn(1, 2, 16, 16)
    coords = torch.tensor([[[20.0, 30.0], [40.0, 8.0]]])
    target_px = torch.tensor([[[22.0, 29.0], [NAN, NAN]]])
    visible = torch.tensor([[True, False]])
    inputs = SupervisedInputs(coords, target_px, visible, logits, target)
    for kind in ("mse", "kl"):
        got = SUPERVISED_LOSSES.get(f"heatmap_{kind}")(inputs)
        assert torch.equal(got, heatmap_loss(logits, target, visible, kind))
    assert SUPERVISED_LOSSES.get("regression_l1")(inputs).item() == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="needs predicted and target heatmaps"):
        SUPERVISED_LOSSES.get("heatmap_mse")(SupervisedInputs(coords, target_px, visible))
