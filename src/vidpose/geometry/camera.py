"""Pinhole camera math in numpy: Rodrigues rotations, OpenCV's radial-tangential distortion,
projection and its inverse.

Conventions (OpenCV's): a world point ``X`` is ``R X + t`` in camera coordinates (x right, y
down, z forward); its normalized image point is ``(x, y) = (X_c / Z_c, Y_c / Z_c)``; the lens
moves it to ``(x_d, y_d)``; pixels are ``K @ (x_d, y_d, 1)``, with pixel centres at integer
coordinates (as everywhere in vidpose). The five distortion coefficients ``(k1, k2, p1, p2,
k3)``::

    r2 = x^2 + y^2,   radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

:func:`distort_xy`, :func:`distortion_jacobian` and :func:`newton_step` use plain arithmetic
only, so numpy arrays and torch tensors share them (:mod:`vidpose.geometry.differentiable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_DISTORTION = 5
UNDISTORT_MAX_ITER = 50


def distort_xy(x: Any, y: Any, coeffs: Sequence[Any]) -> tuple[Any, Any]:
    """Distorted normalized coordinates of undistorted ``(x, y)``.

    Args:
        x, y: arrays or tensors of one shape.
        coeffs: ``(k1, k2, p1, p2, k3)``, each a scalar or broadcastable against ``x``.
    """
    k1, k2, p1, p2, k3 = coeffs
    x2, y2, xy = x * x, y * y, x * y
    r2 = x2 + y2
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x2)
    yd = y * radial + p1 * (r2 + 2 * y2) + 2 * p2 * xy
    return xd, yd


def distortion_jacobian(x: Any, y: Any, coeffs: Sequence[Any]) -> tuple[Any, Any, Any]:
    """``(d x_d / dx, d x_d / dy, d y_d / dy)`` at ``(x, y)``; ``d y_d / dx = d x_d / dy``."""
    k1, k2, p1, p2, k3 = coeffs
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    j_xx = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
    j_xy = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
    j_yy = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
    return j_xx, j_xy, j_yy


def newton_step(
    x: Any, y: Any, xd: Any, yd: Any, coeffs: Sequence[Any]
) -> tuple[Any, Any, Any, Any]:
    """One Newton step of ``distort_xy(x, y) = (xd, yd)``: new ``(x, y)`` and the residual
    ``distort_xy(x, y) - (xd, yd)`` at the old point."""
    fx, fy = distort_xy(x, y, coeffs)
    rx, ry = fx - xd, fy - yd
    a, b, d = distortion_jacobian(x, y, coeffs)
    det = a * d - b * b
    return x - (d * rx - b * ry) / det, y - (a * ry - b * rx) / det, rx, ry


def undistort_normalized(
    xy_d: np.ndarray, distortion: np.ndarray, tol: float = 1e-12
) -> np.ndarray:
    """Invert the lens distortion by Newton's method.

    Args:
        xy_d: (..., 2) distorted normalized coordinates.
        distortion: (5,) ``(k1, k2, p1, p2, k3)``.
        tol: stop once every residual is below this (normalized units; ``tol * f`` px).

    Returns:
        (..., 2) undistorted normalized coordinates; NaN where the input is NaN or Newton
        did not bring the residual below ``max(tol, 1e-9)`` (far outside the lens' range).
    """
    coeffs = tuple(float(c) for c in distortion)
    xd, yd = xy_d[..., 0], xy_d[..., 1]
    if not any(coeffs):
        return np.array(xy_d, dtype=np.float64)
    x, y = xd.astype(np.float64), yd.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for _ in range(UNDISTORT_MAX_ITER):
            x_new, y_new, rx, ry = newton_step(x, y, xd, yd, coeffs)
            worst = np.nanmax(np.maximum(np.abs(rx), np.abs(ry)), initial=0.0)
            if worst < tol:
                break
            x, y = x_new, y_new
        fx, fy = distort_xy(x, y, coeffs)
        bad = ~(np.maximum(np.abs(fx - xd), np.abs(fy - yd)) <= max(tol, 1e-9))
    out = np.stack([x, y], axis=-1)
    out[bad] = np.nan
    return out


def skew(v: np.ndarray) -> np.ndarray:
    """(3, 3) cross-product matrix ``[v]_x`` of a (3,) vector."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def rotation_matrix(rvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of a Rodrigues vector (axis times angle in radians)."""
    r = np.asarray(rvec, dtype=np.float64)
    t2 = float(r @ r)
    if t2 < 1e-12:  # Taylor series: sin(t)/t and (1 - cos t)/t^2
        a, b = 1.0 - t2 / 6.0, 0.5 - t2 / 24.0
    else:
        t = np.sqrt(t2)
        a, b = np.sin(t) / t, 0.5 * (np.sin(t / 2) / (t / 2)) ** 2
    k = skew(r)
    return np.eye(3) + a * k + b * (k @ k)


def rotation_vector(rot: np.ndarray) -> np.ndarray:
    """(3,) Rodrigues vector of a (3, 3) rotation, angle in [0, pi]."""
    rot = np.asarray(rot, dtype=np.float64)
    cos_t = float(np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0))
    theta = float(np.arccos(cos_t))
    vee = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    if theta < 1e-6:
        return vee / 2.0  # R ~ I + [r]_x
    if theta < np.pi / 2:
        return vee * (theta / (2.0 * np.sin(theta)))
    # Near pi, sin(theta) is small: read the axis off (R + R^T)/2 - cos I = (1 - cos) k k^T.
    kk = (rot + rot.T) / 2.0 - cos_t * np.eye(3)
    col = kk[:, int(np.argmax(np.diag(kk)))]
    axis = col / np.linalg.norm(col)
    if axis @ vee < 0:  # vee = 2 sin(theta) k
        axis = -axis
    return axis * theta


def project_camera(
    points: np.ndarray,
    matrix: np.ndarray,
    distortion: np.ndarray,
    rot: np.ndarray,
    translation: np.ndarray,
) -> np.ndarray:
    """(..., 3) world points -> (..., 2) pixels; NaN behind the camera (depth <= 0)."""
    cam = np.asarray(points, dtype=np.float64) @ rot.T + translation
    z = cam[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_z = np.where(z > 0, 1.0 / z, np.nan)
    return pixels_from_normalized(
        np.stack([cam[..., 0] * inv_z, cam[..., 1] * inv_z], -1), matrix, distortion
    )


def pixels_from_normalized(xy: np.ndarray, matrix: np.ndarray, distortion: np.ndarray):
    """(..., 2) undistorted normalized coordinates -> (..., 2) pixels (lens applied)."""
    xd, yd = distort_xy(xy[..., 0], xy[..., 1], tuple(float(c) for c in distortion))
    u = matrix[0, 0] * xd + matrix[0, 1] * yd + matrix[0, 2]
    v = matrix[1, 0] * xd + matrix[1, 1] * yd + matrix[1, 2]
    return np.stack([u, v], axis=-1)


def normalized_from_pixels(
    points_px: np.ndarray, matrix: np.ndarray, distortion: np.ndarray, tol_px: float = 1e-9
) -> np.ndarray:
    """(..., 2) pixels -> (..., 2) undistorted normalized coordinates.

    The lens is inverted until re-distorting the result lands within ``tol_px`` of the input
    (NaN where it cannot, see :func:`undistort_normalized`).
    """
    a_inv = np.linalg.inv(matrix[:2, :2])
    xy_d = (np.asarray(points_px, dtype=np.float64) - matrix[:2, 2]) @ a_inv.T
    focal = max(abs(matrix[0, 0]), abs(matrix[1, 1]))
    return undistort_normalized(xy_d, distortion, tol=tol_px / focal)
