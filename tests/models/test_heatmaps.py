"""Heatmap targets, coordinate conversions, windowed soft-argmax and confidence.

Synthetic maps only: Gaussians drawn at known sub-pixel points, flat maps, and two-peak maps.
"""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.models import (
    DEFAULT_SIGMA,
    decode_heatmaps,
    gaussian_targets,
    gaussian_targets_px,
    heatmap_confidence,
    heatmap_to_input,
    input_to_heatmap,
    soft_argmax,
    spatial_softmax,
)

# Input-pixel points, integer and not, >= 3 sigma (stride 4, sigma 2) from a 128 x 96 image's edge.
POINTS_PX = torch.tensor(
    [[[30.3, 40.77], [63.5, 48.0], [97.0, 31.25], [37.125, 65.9]]], dtype=torch.float32
)
IMAGE_W, IMAGE_H = 128, 96


def test_pixel_centre_conversions():
    # Stride 4: input pixels 0..3 form cell 0, whose centre is input x = 1.5.
    assert input_to_heatmap(torch.tensor([1.5, 5.5]), 4).tolist() == [0.0, 1.0]
    assert heatmap_to_input(torch.tensor([0.0, -0.5]), 4).tolist() == [1.5, -0.5]
    # The image's left edge (-0.5 px) is the left edge of cell 0 (-0.5 cells) at any stride.
    for stride in (1, 2, 4, 8):
        assert input_to_heatmap(torch.tensor(-0.5), stride).item() == -0.5
    x = torch.tensor([[[3.7, -2.0], [float("nan"), 1.0]]])
    back = heatmap_to_input(input_to_heatmap(x, 2), 2)
    assert torch.allclose(back, x, equal_nan=True)


def test_gaussian_targets_peak_value_and_missing_keypoints():
    coords = torch.tensor([[[3.0, 5.0], [float("nan"), float("nan")], [2.5, 1.0]]])
    maps = gaussian_targets(coords, height=8, width=6, sigma=1.0)
    assert maps.shape == (1, 3, 8, 6) and maps.dtype == torch.float32
    assert maps[0, 0, 5, 3] == 1.0 and maps[0, 0].argmax() == 5 * 6 + 3
    assert torch.allclose(maps[0, 0, 5, 4], torch.tensor(math.exp(-0.5)))
    assert torch.equal(maps[0, 1], torch.zeros(8, 6))
    # Half-way between cells 2 and 3: both get the same value.
    assert torch.allclose(maps[0, 2, 1, 2], maps[0, 2, 1, 3])


@pytest.mark.parametrize("stride", [2, 4])
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_targets_then_soft_argmax_recover_sub_pixel_points(stride, sigma):
    """Round trip through the pixel-centre conventions to < 0.1 input px."""
    h, w = IMAGE_H // stride, IMAGE_W // stride
    maps = gaussian_targets_px(POINTS_PX, h, w, stride, sigma)
    radius = math.ceil(2.5 * sigma)
    found = heatmap_to_input(soft_argmax(maps, radius=radius), stride)
    assert (found - POINTS_PX).norm(dim=-1).max() < 0.1


@pytest.mark.parametrize("stride", [2, 4])
def test_points_near_the_edge_are_not_pulled_inwards(stride):
    """The box shrinks at the map's edge; without that, 10 px from the edge at stride 4 the
    estimate moves ~0.45 px inwards. Convergence there is slower: 0.1 cell tolerance."""
    near = torch.tensor([[[10.3, 20.77], [120.0, 85.5], [64.0, 8.0]]])
    h, w = IMAGE_H // stride, IMAGE_W // stride
    maps = gaussian_targets_px(near, h, w, stride, sigma=1.5)
    found = heatmap_to_input(soft_argmax(maps, radius=4), stride)
    assert (found - near).norm(dim=-1).max() < 0.1 * stride


def test_points_beyond_the_outer_cell_centres_decode_onto_them():
    pts = torch.tensor([[[0.0, 50.0], [127.0, 95.0]]])
    maps = gaussian_targets_px(pts, 24, 32, 4, sigma=1.5)
    found = heatmap_to_input(soft_argmax(maps, radius=4), 4)
    assert torch.allclose(found, torch.tensor([[[1.5, 50.0], [125.5, 93.5]]]), atol=0.05)


@pytest.mark.parametrize("sigma", [1.5, DEFAULT_SIGMA])
@pytest.mark.parametrize("stride", [2, 4])
def test_decode_of_ideal_logits_recovers_points(stride, sigma):
    """Logits = log of the target (what the losses train towards) decode to the points, with
    the default radius, and confidently."""
    h, w = IMAGE_H // stride, IMAGE_W // stride
    logits = torch.log(gaussian_targets_px(POINTS_PX, h, w, stride, sigma) + 1e-30)
    coords, confidence = decode_heatmaps(logits.to(torch.bfloat16), stride)
    assert coords.dtype == torch.float32
    assert (coords - POINTS_PX).norm(dim=-1).max() < 0.1
    assert (confidence > 0.98).all()


def test_recentring_removes_the_bias_of_a_box_fixed_on_the_argmax_cell():
    coords = torch.tensor([[[10.5, 10.4]]])  # between cells: the worst case
    maps = gaussian_targets(coords, 24, 24, sigma=2.0)
    fixed = soft_argmax(maps, radius=3, iterations=0)
    recentred = soft_argmax(maps, radius=3, iterations=2)
    assert (fixed - coords).abs().max() > 0.1
    assert (recentred - coords).abs().max() < 0.03


def test_local_soft_argmax_ignores_a_weaker_second_mode():
    coords = torch.tensor([[[8.3, 10.0], [24.0, 22.0]]])
    g = gaussian_targets(coords, 32, 32, sigma=1.5)
    two_peaks = (g[:, :1] + 0.6 * g[:, 1:]) / 1.6
    local = soft_argmax(two_peaks, radius=4)
    global_ = soft_argmax(two_peaks, radius=None)
    assert (local[0, 0] - coords[0, 0]).norm() < 0.05
    assert (global_[0, 0] - coords[0, 0]).norm() > 4  # pulled towards the second peak


def _probs_of(maps: torch.Tensor) -> torch.Tensor:
    return maps / maps.sum(dim=(-2, -1), keepdim=True)


def test_confidence_high_for_a_peak_low_for_flat_and_two_peak_maps():
    size, radius = 48, 4
    peak_at = torch.tensor([[[20.2, 30.7]]])
    peaked = _probs_of(gaussian_targets(peak_at, size, size, sigma=1.5))
    flat = torch.full((1, 1, size, size), 1.0 / size**2)
    g = gaussian_targets(torch.tensor([[[10.0, 10.0], [36.0, 30.0]]]), size, size, sigma=1.5)
    two = _probs_of(g.sum(dim=1, keepdim=True))
    confs = []
    for probs in (peaked, flat, two):
        c = heatmap_confidence(probs, soft_argmax(probs, radius), radius)
        assert c.shape == (1, 1) and 0 <= c.item() <= 1
        confs.append(c.item())
    assert confs[0] > 0.95
    assert confs[1] < 0.05
    assert 0.4 < confs[2] < 0.6


def test_spatial_softmax_sums_to_one_in_float32():
    probs = spatial_softmax(torch.randn(2, 3, 5, 7, dtype=torch.bfloat16), beta=2.0)
    assert probs.dtype == torch.float32
    assert torch.allclose(probs.sum(dim=(-2, -1)), torch.ones(2, 3))


def test_decoding_is_differentiable_wrt_logits():
    logits = torch.log(gaussian_targets(torch.tensor([[[6.3, 7.6]]]), 16, 16, 1.5) + 1e-6)
    logits.requires_grad_(True)
    coords, confidence = decode_heatmaps(logits, 4)
    (coords.sum() + confidence.sum()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
