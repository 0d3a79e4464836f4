"""Triangulation (numpy, robust and confidence-weighted) and the torch reprojection-consistency
loss, on exact projections of known 3D points through distorted synthetic cameras."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from vidpose.geometry import differentiable as dg
from vidpose.geometry import project_to_views, ring_calibration, triangulate

RADIUS = 100.0  # world units


@pytest.fixture(scope="module")
def rig():
    """3 cameras on a jittered ring around a ball of radius 100 at the origin, with lenses of
    1.5x the default mild distortion, and 20 frames x 6 keypoints uniformly inside the ball's
    cube, projected exactly into every view (all inside the images)."""
    cal = ring_calibration(3, [0.0, 0.0, 0.0], RADIUS, seed=7, distortion=1.5)
    assert all(np.abs(c.distortion[:2]).max() > 0.01 for c in cal)
    points = np.random.default_rng(0).uniform(-0.6 * RADIUS, 0.6 * RADIUS, (20, 6, 3))
    views = project_to_views(cal, points)
    assert views.in_image.all()
    return cal, points, views.coords_px


def test_exact_projections_triangulate_exactly(rig):
    cal, points, px = rig
    tri = triangulate(cal, px)
    assert tri.points.shape == (20, 6, 3) and tri.used.shape == (3, 20, 6)
    assert tri.used.all()
    assert np.abs(tri.points - points).max() < 1e-6 * RADIUS
    assert tri.error_px.max() < 1e-3
    assert np.nanmax(tri.view_error_px) < 1e-3


def test_an_outlier_view_is_dropped_and_flagged(rig):
    cal, points, px = rig
    px = px.copy()
    px[1, 4, 2] += [30.0, 40.0]  # 50 px off in camera 1, frame 4, keypoint 2
    tri = triangulate(cal, px, outlier_px=20.0)
    expected = np.ones_like(tri.used)
    expected[1, 4, 2] = False
    np.testing.assert_array_equal(tri.used, expected)
    assert np.abs(tri.points[4, 2] - points[4, 2]).max() < 1e-6 * RADIUS  # two exact views left
    assert tri.error_px[4, 2] < 1e-3
    assert tri.view_error_px[1, 4, 2] == pytest.approx(50.0, abs=0.5)  # reported, not used
    # without the robust step the outlier pulls the point away
    plain = triangulate(cal, px, outlier_px=None)
    assert plain.used.all()
    assert np.linalg.norm(plain.points[4, 2] - points[4, 2]) > 0.1
    assert plain.error_px[4, 2] > 5.0


def test_two_views_are_never_reduced_and_one_is_not_enough(rig):
    cal, points, px = rig
    px = px.copy()
    px[0, 0, 0] = np.nan  # frame 0, kp 0: two views left, one of them 50 px off
    px[1, 0, 0] += [0.0, 50.0]
    px[:2, 0, 1] = np.nan  # frame 0, kp 1: only camera 2
    tri = triangulate(cal, px)
    np.testing.assert_array_equal(tri.used[:, 0, 0], [False, True, True])
    assert tri.error_px[0, 0] > 5.0
    assert np.isnan(tri.points[0, 1]).all() and np.isnan(tri.error_px[0, 1])
    assert not tri.used[:, 0, 1].any()
    assert np.abs(tri.points[1:] - points[1:]).max() < 1e-6 * RADIUS  # the rest untouched


def test_a_low_confidence_wrong_view_moves_the_point_less(rig):
    cal, points, px = rig
    px = px.copy()
    px[2, :, :] += [8.0, -6.0]  # camera 2 is 10 px off everywhere
    conf = np.ones(px.shape[:-1])

    def error_3d(c2: float) -> float:
        conf[2] = c2
        tri = triangulate(cal, px, conf, outlier_px=None)
        assert tri.used.all()
        return float(np.linalg.norm(tri.points - points, axis=-1).mean())

    trusted, doubted, barely = error_3d(1.0), error_3d(0.1), error_3d(0.01)
    assert barely < doubted < 0.5 * trusted
    # below min_confidence the view is not used at all: exact again
    conf[2] = 0.05
    tri = triangulate(cal, px, conf, outlier_px=None, min_confidence=0.1)
    assert not tri.used[2].any()
    assert np.abs(tri.points - points).max() < 1e-6 * RADIUS


def test_triangulates_100k_points_quickly():
    cal = ring_calibration(3, [0.0, 0.0, 0.0], RADIUS, seed=1)
    points = np.random.default_rng(1).uniform(-0.6 * RADIUS, 0.6 * RADIUS, (1000, 100, 3))
    px = project_to_views(cal, points).coords_px
    px += np.random.default_rng(2).normal(0, 0.5, px.shape)  # noise: every point solved in full
    start = time.perf_counter()
    tri = triangulate(cal, px)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{elapsed:.2f} s for 100k points"  # ~0.1-0.2 s on 2 CPU cores
    assert np.isfinite(tri.points).all()
    assert np.median(tri.error_px) < 1.0


# --- the torch loss ---------------------------------------------------------------------------


def _batch(rig, dtype=torch.float64):
    """The rig's first 2 frames as a training batch (B=2, V=3, K=6, 2) and its cameras."""
    cal, points, px = rig
    coords = torch.tensor(px[:, :2]).transpose(0, 1).to(dtype)
    return coords, dg.CameraTensors.from_calibration(cal, dtype=dtype), points[:2]


def test_loss_is_zero_with_zero_gradients_when_views_agree(rig):
    coords, cams, points = _batch(rig)
    coords.requires_grad_()
    terms = dg.reprojection_consistency_loss(coords, cams, margin_px=1.0)
    terms.loss.backward()
    assert terms.loss.item() == 0.0
    assert int(terms.count) == 2 * 3 * 6
    assert torch.isfinite(coords.grad).all() and (coords.grad == 0).all()
    assert np.abs(terms.points.detach().numpy() - points).max() < 1e-6 * RADIUS
    assert terms.error_px.max() < 1e-6


def test_loss_penalises_an_inconsistent_view_and_matches_numpy_triangulation(rig):
    cal = rig[0]
    coords, cams, _ = _batch(rig)
    coords[0, 1, 3] += torch.tensor([12.0, -9.0], dtype=coords.dtype)
    conf = torch.rand(coords.shape[:-1], generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    coords.requires_grad_()
    terms = dg.reprojection_consistency_loss(coords, cams, conf.double(), margin_px=1.0)
    assert terms.loss.item() > 0
    # the moved view and at least one other: the triangulated point lies between them
    assert terms.per_element[0, 1, 3] > 5.0 and (terms.per_element[0, :, 3] > 0).sum() >= 2
    assert (terms.per_element[1] == 0).all() and (terms.per_element[0, :, :3] == 0).all()
    terms.loss.backward()
    assert coords.grad[0, :, 3].abs().sum() > 0 and (coords.grad[1] == 0).all()
    # the same weighted DLT as the numpy triangulation
    moved = coords.detach().transpose(0, 1).numpy()
    ref = triangulate(cal, moved, conf.transpose(0, 1).numpy(), outlier_px=None)
    np.testing.assert_allclose(terms.points.detach().numpy(), ref.points, atol=1e-8)


def test_loss_masks_points_with_fewer_than_two_confident_views(rig):
    coords, cams, _ = _batch(rig, torch.float32)
    coords[0, 0, 5] = float("nan")  # a missing prediction, in an unconfident view
    coords[0, 1, 5] += 40.0
    conf = torch.ones(coords.shape[:-1])
    conf[0, :2, 5] = 0.2  # frame 0, keypoint 5: only camera 2 is confident
    coords.requires_grad_()
    terms = dg.reprojection_consistency_loss(coords, cams, conf, min_confidence=0.5)
    assert not terms.mask[0, :, 5].any() and terms.mask.sum() == 2 * 3 * 6 - 3
    assert int(terms.count) == int(terms.mask.sum())
    terms.loss.backward()
    assert torch.isfinite(coords.grad).all() and (coords.grad[0, :, 5] == 0).all()
    assert terms.loss.item() < 1e-2  # float32, everything else consistent


def test_loss_gradcheck():
    cal = ring_calibration(3, [0.0, 0.0, 0.0], RADIUS, seed=5, distortion=1.5)
    cams = dg.CameraTensors.from_calibration(cal, dtype=torch.float64)
    points = np.random.default_rng(3).uniform(-50, 50, (1, 2, 3))
    px = project_to_views(cal, points).coords_px  # (V=3, B=1, K=2, 2)
    noise = np.random.default_rng(4).uniform(2.0, 6.0, px.shape) * np.sign(
        np.random.default_rng(5).normal(size=px.shape)
    )
    coords = torch.tensor(px + noise).transpose(0, 1).contiguous().requires_grad_()
    conf = torch.tensor([[[0.9, 0.7], [0.6, 1.0], [0.8, 0.95]]], dtype=torch.float64)

    def loss(c):
        terms = dg.reprojection_consistency_loss(c, cams, conf, margin_px=0.5)
        assert (terms.per_element > 0).all()  # every hinge active: away from its kink
        return terms.loss

    assert torch.autograd.gradcheck(loss, (coords,))
