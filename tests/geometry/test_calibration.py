"""Calibrated cameras: Anipose calibration.toml round trip and errors, Rodrigues rotations,
projection with lens distortion and its inverse (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.geometry import (
    Calibration,
    CameraModel,
    calibration_toml,
    read_calibration,
    ring_calibration,
    rotation_matrix,
    rotation_vector,
    write_calibration,
)
from vidpose.geometry import differentiable as dg

# What aniposelib writes (the `toml` package: spaces in brackets, trailing commas), with a
# 4-coefficient lens on the second camera.
ANIPOSE_TEXT = """\
[cam_0]
name = "A"
size = [ 1280, 1024,]
matrix = [ [ 1500.5, 0.0, 640.0,], [ 0.0, 1499.5, 512.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ -0.12, 0.03, 0.001, -0.002, 0.0,]
rotation = [ 0.1, -0.2, 0.3,]
translation = [ 10.0, -20.0, 500.0,]

[cam_1]
name = "B"
size = [ 1280, 1024,]
matrix = [ [ 1400.0, 0.0, 630.0,], [ 0.0, 1400.0, 500.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ -0.1, 0.02, 0.0, 0.0,]
rotation = [ 0.0, 1.5, 0.0,]
translation = [ -400.0, 0.0, 300.0,]

[metadata]
adjusted = false
error = 0.6123
"""


@pytest.fixture
def anipose_file(tmp_path):
    path = tmp_path / "calibration.toml"
    path.write_text(ANIPOSE_TEXT)
    return path


def _assert_same(a: Calibration, b: Calibration) -> None:
    assert a.names == b.names
    for ca, cb in zip(a.cameras, b.cameras):
        assert ca.size == cb.size
        for key in ("matrix", "distortion", "rotation", "translation"):
            np.testing.assert_array_equal(getattr(ca, key), getattr(cb, key), err_msg=key)
    assert a.metadata == b.metadata


def test_reads_an_anipose_file(anipose_file):
    cal = read_calibration(anipose_file)
    assert cal.names == ["A", "B"]
    assert cal["A"].size == (1280, 1024)
    np.testing.assert_array_equal(cal[0].matrix[0], [1500.5, 0.0, 640.0])
    np.testing.assert_array_equal(cal["B"].distortion, [-0.1, 0.02, 0.0, 0.0, 0.0])  # padded
    np.testing.assert_array_equal(cal[1].translation, [-400.0, 0.0, 300.0])
    assert cal.metadata == {"adjusted": False, "error": 0.6123}
    assert cal.source == anipose_file


def test_round_trip_keeps_every_value(tmp_path, anipose_file):
    rig = ring_calibration(4, [1.0, 2.0, 3.0], 77.7, seed=3)  # irrational-looking floats
    rig = Calibration(
        rig.cameras,
        {"adjusted": True, "error": 1e-5, "note": 'a "quoted"\ttab', "nested": {"k": [1, 2]}},
    )
    for cal in (rig, read_calibration(anipose_file)):
        path = tmp_path / "out" / "calibration.toml"
        write_calibration(path, cal)
        back = read_calibration(path)
        _assert_same(cal, back)
        assert calibration_toml(back) == path.read_text()  # stable: writing again is identical


def test_select_orders_cameras_and_names_unknown_ones(anipose_file):
    cal = read_calibration(anipose_file)
    assert cal.select(["B", "A"]).names == ["B", "A"]
    with pytest.raises(ConfigError) as err:
        cal.select(["A", "side"])
    msg = str(err.value)
    assert str(anipose_file) in msg and "'side'" in msg and "['A', 'B']" in msg


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


BAD_FILES = {
    "matrix_shape": (
        lambda t: _replace(t, "[ 0.0, 1400.0, 500.0,], [", "[ 0.0, 1400.0,], ["),
        ["[cam_1] matrix[1]", "3 x 3"],
    ),
    "matrix_last_row": (
        lambda t: _replace(
            t,
            "[ 0.0, 0.0, 1.0,],]\ndistortions = [ -0.1, 0.02",
            "[ 0.0, 1.0, 1.0,],]\ndistortions = [ -0.1, 0.02",
        ),
        ["[cam_1] matrix", "last row"],
    ),
    "non_finite": (
        lambda t: _replace(t, "[ 10.0, -20.0, 500.0,]", "[ 10.0, nan, 500.0,]"),
        ["[cam_0] translation[1]", "finite"],
    ),
    "not_a_number": (
        lambda t: _replace(t, "rotation = [ 0.1,", 'rotation = [ "0.1",'),
        ["[cam_0] rotation[0]", "number"],
    ),
    "missing_key": (
        lambda t: _replace(t, "rotation = [ 0.0, 1.5, 0.0,]\n", ""),
        ["[cam_1]", "missing", "rotation"],
    ),
    "unknown_key": (
        lambda t: _replace(t, 'name = "B"', 'name = "B"\nzoom = 2'),
        ["[cam_1]", "unknown", "zoom"],
    ),
    "size": (lambda t: _replace(t, "[ 1280, 1024,]", "[ 1280, -4,]"), ["[cam_0] size", "width"]),
    "distortions_length": (
        lambda t: _replace(t, "[ -0.1, 0.02, 0.0, 0.0,]", "[ -0.1, 0.02, 0.0,]"),
        ["[cam_1] distortions", "5 numbers"],
    ),
    "fisheye": (lambda t: _replace(t, 'name = "B"', 'name = "B"\nfisheye = true'), ["fisheye"]),
    "duplicate_name": (
        lambda t: _replace(t, 'name = "B"', 'name = "A"'),
        ["[cam_1] name", "[cam_0]"],
    ),
    "loose_key": (lambda t: "version = 2\n" + t, ["version", "outside any section"]),
    "not_toml": (lambda t: t + "\n[cam_2\n", ["not a valid TOML"]),
    "no_cameras": (lambda t: "[metadata]\nerror = 1.0\n", ["no camera sections"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_name_the_file_section_and_key(tmp_path, case):
    edit, expected = BAD_FILES[case]
    path = tmp_path / "calibration.toml"
    path.write_text(edit(ANIPOSE_TEXT))
    with pytest.raises(ConfigError) as err:
        read_calibration(path)
    msg = str(err.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such calibration file"):
        read_calibration(tmp_path / "calibration.toml")


def test_rodrigues_known_rotation_and_round_trip():
    quarter_z = rotation_matrix(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quarter_z, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([[1e-9, 1e-4, np.pi - 1e-7, np.pi - 1e-3], rng.uniform(0, np.pi, 36)])
    for axis, angle in zip(axes, angles):
        rot = rotation_matrix(axis * angle)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        np.testing.assert_allclose(rotation_matrix(rotation_vector(rot)), rot, atol=1e-9)
    rvecs = torch.tensor(axes[:10] * angles[:10, None])
    np.testing.assert_allclose(
        dg.rodrigues(rvecs).numpy(), [rotation_matrix(r) for r in rvecs.numpy()], atol=1e-12
    )
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    dg.rodrigues(zero)[0, 1].backward()
    assert torch.isfinite(zero.grad).all() and zero.grad[2] == pytest.approx(-1.0)  # d R01 / d rz


def test_projection_matches_the_pinhole_formula_without_distortion():
    rot_vec = np.array([0.2, -0.1, 0.05])
    cam = CameraModel(
        "c",
        (640, 480),
        [[800, 0.5, 320], [0, 790, 240], [0, 0, 1]],
        np.zeros(5),
        rot_vec,
        [5.0, -3.0, 400.0],
    )
    pts = np.random.default_rng(1).uniform(-50, 50, (20, 3))
    cam_xyz = pts @ rotation_matrix(rot_vec).T + cam.translation
    u = 800 * cam_xyz[:, 0] / cam_xyz[:, 2] + 0.5 * cam_xyz[:, 1] / cam_xyz[:, 2] + 320
    v = 790 * cam_xyz[:, 1] / cam_xyz[:, 2] + 240
    np.testing.assert_allclose(cam.project(pts), np.stack([u, v], 1), rtol=0, atol=1e-9)
    assert np.isnan(cam.project(np.array([0.0, 0.0, -500.0]))).all()  # behind the camera


def test_projection_with_distortion_matches_a_hand_computed_point():
    # x = 0.3, y = -0.2, r2 = 0.13; radial = 1 + 0.1 r2 + 0.01 r2^2 + 0.0005 r2^3 = 1.0131700985
    # x_d = 0.3 radial + 2 (0.001)(-0.06) + 0.002 (0.13 + 0.18) = 0.30445102955
    # y_d = -0.2 radial + 0.001 (0.13 + 0.08) + 2 (0.002)(-0.06) = -0.2026640197
    cam = CameraModel(
        "c",
        (100, 80),
        [[100, 0, 50], [0, 200, 40], [0, 0, 1]],
        [0.1, 0.01, 0.001, 0.002, 0.0005],
        np.zeros(3),
        np.zeros(3),
    )
    np.testing.assert_allclose(
        cam.project(np.array([0.6, -0.4, 2.0])), [80.445102955, -0.53280394], rtol=0, atol=1e-8
    )


def test_undistort_inverts_distort_below_a_micro_pixel():
    cal = ring_calibration(4, [0.0, 0.0, 0.0], 100.0, seed=2, distortion=1.5)
    w, h = cal[0].size
    grid = np.stack(np.meshgrid(np.linspace(-0.5, w - 0.5, 41), np.linspace(-0.5, h - 0.5, 31)), -1)
    cams = dg.CameraTensors.from_calibration(cal, dtype=torch.float64)
    normalized_t = dg.normalize(torch.tensor(np.stack([grid] * len(cal))), cams).numpy()
    for i, cam in enumerate(cal.cameras):
        k = cam.matrix
        normalized = cam.normalized_from_pixels(grid)
        # the lens matters: undistorted points lie pixels away from K^-1 of the distorted ones
        plain = (grid - k[:2, 2]) @ np.linalg.inv(k[:2, :2]).T
        assert np.abs(normalized - plain).max() * k[0, 0] > 1.0
        assert np.abs(cam.pixels_from_normalized(normalized) - grid).max() < 1e-6
        assert np.abs(cam.pixels_from_normalized(normalized_t[i]) - grid).max() < 1e-6  # torch
        # the other way round: normalized -> pixels -> normalized, measured in pixels
        xy = np.random.default_rng(i).uniform(-0.5, 0.5, (500, 2))
        back = cam.normalized_from_pixels(cam.pixels_from_normalized(xy))
        assert np.abs(back - xy).max() * k[0, 0] < 1e-6


def test_torch_projection_matches_numpy_and_is_differentiable_in_the_camera():
    cal = ring_calibration(3, [0.0, 0.0, 0.0], 50.0, seed=4)
    pts = np.random.default_rng(2).uniform(-40, 40, (5, 2, 3))
    cams = dg.CameraTensors.from_calibration(cal, dtype=torch.float64)
    expected = np.stack([c.project(pts) for c in cal.cameras])
    np.testing.assert_allclose(dg.project(torch.tensor(pts), cams).numpy(), expected, atol=1e-9)

    rvec = torch.tensor(np.stack([c.rotation for c in cal.cameras]), requires_grad=True)
    dist = cams.distortion.clone().requires_grad_()
    x = torch.tensor(pts[:2, 0], requires_grad=True)

    def f(x, rvec, dist):
        return dg.project(
            x, dg.CameraTensors.from_params(cams.matrix, dist, rvec, cams.translation)
        )

    assert torch.autograd.gradcheck(f, (x, rvec, dist))
