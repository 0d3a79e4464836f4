"""Synthetic camera rigs: cameras on a ring looking at the volume, and 2D ground truth per view
of the synthetic animal's 3D keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.geometry import project_to_views, ring_calibration, triangulate
from vidpose.synthetic.body import KEYPOINTS, pose_body, simulate_path


def test_an_exact_ring_frames_the_volume():
    """No jitter, no lens: 5 cameras at 30 deg elevation, equally spaced, each looking at the
    centre, at the distance where the ball of radius 50 fills 80% of the image height."""
    centre = np.array([10.0, -20.0, 5.0])
    cal = ring_calibration(5, centre, 50.0, image_size=(800, 600), jitter=0.0, distortion=0.0)
    assert cal.names == [f"cam{i}" for i in range(5)]
    offsets = np.array([c.position for c in cal]) - centre
    azimuths = np.unwrap(np.arctan2(offsets[:, 1], offsets[:, 0]))
    np.testing.assert_allclose(np.diff(azimuths), 2 * np.pi / 5, atol=1e-9)
    np.testing.assert_allclose(
        np.degrees(np.arcsin(offsets[:, 2] / np.linalg.norm(offsets, axis=1))), 30.0, atol=1e-9
    )
    sphere = np.random.default_rng(0).normal(size=(20000, 3))
    sphere = centre + 50.0 * sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
    for cam in cal:
        assert np.linalg.det(cam.rotation_matrix) == pytest.approx(1.0)
        principal = cam.matrix[:2, 2]
        np.testing.assert_allclose(cam.project(centre), principal, atol=1e-9)
        radius_px = np.linalg.norm(cam.project(sphere) - principal, axis=1).max()
        assert radius_px == pytest.approx(0.8 * 600 / 2, rel=5e-3)
        above = cam.project(centre + np.array([0.0, 0.0, 10.0]))  # world z is up in every image
        assert above[1] < principal[1] and above[0] == pytest.approx(principal[0], abs=1e-6)


def test_rigs_are_jittered_distorted_and_reproducible():
    a = ring_calibration(4, [0.0, 0.0, 0.0], 1.0, seed=3)
    b = ring_calibration(4, [0.0, 0.0, 0.0], 1.0, seed=3)
    c = ring_calibration(4, [0.0, 0.0, 0.0], 1.0, seed=4)
    assert all(np.array_equal(x.matrix, y.matrix) for x, y in zip(a, b))
    assert not all(np.array_equal(x.matrix, y.matrix) for x, y in zip(a, c))
    focal = [cam.matrix[0, 0] for cam in a]
    assert len(set(focal)) == 4 and max(focal) / min(focal) < 1.07
    k1 = np.array([cam.distortion[0] for cam in a])
    assert (np.abs(k1) <= 0.15).all() and np.abs(k1).max() > 0.01
    with pytest.raises(ValueError, match="at least 2"):
        ring_calibration(1, [0.0, 0.0, 0.0], 1.0)


def test_project_to_views_flags_points_outside_an_image():
    cal = ring_calibration(3, [0.0, 0.0, 0.0], 10.0, seed=0)
    behind = 2.0 * cal[0].position  # camera 0 looks at the origin, away from this
    aside = 100.0 * cal[0].rotation_matrix[0]  # far along camera 0's image x
    views = project_to_views(cal, np.array([[0.0, 0.0, 0.0], behind, aside]))
    assert views.coords_px.shape == (3, 3, 2)
    assert views.in_image[:, 0].all()
    assert np.isnan(views.coords_px[0, 1]).all() and not views.in_image[0, 1]
    assert views.coords_px[0, 2, 0] > cal[0].size[0] and not views.in_image[0, 2]


def test_the_synthetic_animal_seen_by_a_ring_triangulates_back():
    """The synthetic animal (60 frames in a 320 x 240 px arena, body 80 px) seen by 4 cameras
    around the arena: 2D ground truth in every view, inside the images, and consistent 3D."""
    rng = np.random.default_rng(0)
    path = simulate_path(rng, 60, 320, 240, 80.0, 30.0)
    keypoints = pose_body(path, rng, 80.0, 30.0).keypoints  # (60, 12, 3), z up
    cal = ring_calibration(4, [160.0, 120.0, 10.0], 200.0, seed=1, names=list("ABCD"))
    views = project_to_views(cal, keypoints)
    assert views.coords_px.shape == (4, 60, len(KEYPOINTS), 2)
    assert views.in_image.all()
    tri = triangulate(cal, views.coords_px)
    assert np.abs(tri.points - keypoints).max() < 1e-6 and tri.error_px.max() < 1e-3
