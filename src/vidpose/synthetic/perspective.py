"""Rendering the synthetic animal through calibrated pinhole cameras with lens distortion.

The orthographic views of :mod:`vidpose.synthetic.render` project each ellipsoid to an ellipse.
Through a real lens that is no longer exact, so here every pixel casts its own ray: the pixel
centre is undistorted once per camera (:meth:`~vidpose.geometry.CameraModel.normalized_from_pixels`)
into a ray ``s (x, y, 1)`` in camera coordinates, and each ellipsoid is intersected with the rays
of a crop around its projection. The ray's closest approach to the ellipsoid's centre (in the
ellipsoid's own units, where it is the unit ball) plays the part of the orthographic renderer's
ellipse distance, so outlines, anti-aliasing, shading and the depth and id buffers are shared
with it (:func:`~vidpose.synthetic.render._composite`); depth is ``-z`` of the nearest
intersection in camera coordinates, larger is nearer, as there.

Images are grey float32 in [0, 1] while rendering; pixel ``(row i, column j)`` has its centre at
``(x=j, y=i)``. World units are whatever the camera's translation uses (mm for the synthetic
multi-camera projects).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidpose.geometry import CameraModel
from vidpose.synthetic.body import Body
from vidpose.synthetic.render import _composite, _crop_grid

# Directions on the unit sphere whose images bound an ellipsoid's outline; the outline's true
# extreme lies between samples, within a few percent of its radius, hence BOUND_PAD.
_N_BOUND_SAMPLES = 64
BOUND_PAD = 0.12
_FAR = 1e6  # a ray direction for pixels the lens model cannot invert: it meets nothing


@functools.cache
def _sphere_samples(n: int) -> np.ndarray:
    """(n, 3) near-uniform unit vectors (a Fibonacci spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def pixel_rays(camera: CameraModel) -> np.ndarray:
    """(H, W, 2) float32 undistorted normalized ``(x, y)`` of each pixel centre: the pixel sees
    the camera-frame ray ``s (x, y, 1)``, s > 0."""
    width, height = camera.size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    xy = camera.normalized_from_pixels(np.stack([xx, yy], axis=-1), tol_px=1e-6)
    return np.nan_to_num(xy, nan=_FAR).astype(np.float32)


def camera_depth(camera: CameraModel, points: np.ndarray) -> np.ndarray:
    """(...,) depth of world points (..., 3) in the renderer's convention: ``-z`` in camera
    coordinates (larger is nearer)."""
    return -(points @ camera.rotation_matrix[2] + camera.translation[2])


@dataclass(frozen=True)
class CameraPart:
    """An ellipsoid as one calibrated camera sees it over T frames.

    Attributes:
        part_id: id written to the id buffer (1-based; 0 is the background).
        inv_axes: (T, 3, 3) inverse of the semi-axis matrix in camera coordinates: it maps a
            camera-frame offset from the centre to the ellipsoid's unit-ball coordinates.
        centre_unit: (T, 3) ``inv_axes @ centre``, the camera centre's offset in those units
            (negated).
        box_centre: (T, 2) centre of a pixel box holding the part's image, px.
        box_half: (T, 2) its half width and half height, px.
        shade: grey level at the part's most camera-facing point.
    """

    part_id: int
    inv_axes: np.ndarray
    centre_unit: np.ndarray
    box_centre: np.ndarray
    box_half: np.ndarray
    shade: float


def camera_parts(body: Body, camera: CameraModel) -> list[CameraPart]:
    """Each body part as ``camera`` sees it; part ids follow ``body.parts`` order from 1.

    ``body`` is in the camera's world units. Parts must lie in front of the camera.
    """
    rot, shift = camera.rotation_matrix, camera.translation
    sphere = _sphere_samples(_N_BOUND_SAMPLES)
    out = []
    for i, part in enumerate(body.parts, start=1):
        centre = part.center @ rot.T + shift  # (T, 3)
        axes = rot @ part.axes  # (T, 3, 3): columns are the semi-axes
        inv_axes = np.linalg.inv(axes)
        surface = part.center[:, None, :] + np.einsum("tjk,nk->tnj", part.axes, sphere)
        px = camera.project(surface)  # (T, n, 2)
        lo, hi = np.nanmin(px, axis=1), np.nanmax(px, axis=1)
        half = (hi - lo) / 2
        out.append(
            CameraPart(
                part_id=i,
                inv_axes=inv_axes,
                centre_unit=np.einsum("tij,tj->ti", inv_axes, centre),
                box_centre=(lo + hi) / 2,
                box_half=half * (1 + BOUND_PAD) + 1.0,
                shade=part.shade,
            )
        )
    return out


def draw_camera_parts(
    canvas: np.ndarray,
    zbuf: np.ndarray,
    ids: np.ndarray,
    parts: Sequence[CameraPart],
    rays: np.ndarray,
    t0: int,
) -> None:
    """Ray-cast every part into buffers (Tc, H, W) holding frames ``t0 .. t0 + Tc - 1``.

    ``rays`` (H, W, 2) from :func:`pixel_rays` of the same camera. With ``a = inv_axes @ d``
    for the pixel's ray ``d`` and ``b = centre_unit``, the ray in unit-ball coordinates is
    ``s a - b``: its closest approach to the centre is ``q = |b|^2 - (a.b)^2 / |a|^2`` (inside
    when ``q <= 1``) and it enters the ball at ``s = (a.b - |a| sqrt(1 - q)) / |a|^2``.
    """
    n, height, width = canvas.shape
    frames = np.arange(n)
    sl = slice(t0, t0 + n)
    for part in parts:
        rows, cols = _crop_grid(part.box_centre[sl], part.box_half[sl], height, width)
        d = rays[rows, cols]  # (T, h, w, 2)
        x, y = d[..., 0], d[..., 1]
        m = part.inv_axes[sl].astype(np.float32)
        b = part.centre_unit[sl].astype(np.float32)
        aa = np.zeros(x.shape, dtype=np.float32)
        ab = np.zeros(x.shape, dtype=np.float32)
        for i in range(3):
            a_i = m[:, i, 0, None, None] * x + m[:, i, 1, None, None] * y
            a_i += m[:, i, 2, None, None]
            aa += a_i * a_i
            ab += a_i * b[:, i, None, None]
        bb = (b * b).sum(-1)[:, None, None]
        q = np.maximum(bb - ab * ab / aa, 0.0)
        r = np.sqrt(q)
        # Distance to the outline in px, to first order: (r - 1) / |grad r|.
        gy, gx = np.gradient(r, axis=(1, 2))
        dist = (r - 1.0) / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-6)
        alpha = np.where(r < 0.5, 1.0, np.clip(0.5 - dist, 0.0, 1.0))
        bulge = np.sqrt(np.clip(1.0 - q, 0.0, 1.0))
        depth = -(ab - np.sqrt(aa) * bulge) / aa
        colour = part.shade * (0.62 + 0.38 * bulge)
        _composite(canvas, zbuf, ids, frames, rows, cols, alpha, depth, colour, part.part_id)


@dataclass(frozen=True)
class Floor:
    """A textured floor plane ``z = 0`` in world units.

    Attributes:
        texture: (n, n) float32 grey levels over the square ``|x|, |y| <= extent / 2``;
            texel ``(row i, column j)`` has its centre at ``x = (j + 0.5) e - extent / 2``,
            ``y = extent / 2 - (i + 0.5) e`` with ``e = extent / n``.
        extent: side of that square, world units.
        beyond: grey level of whatever a ray meets off the square or above the horizon.
    """

    texture: np.ndarray
    extent: float
    beyond: float


def floor_image(camera: CameraModel, rays: np.ndarray, floor: Floor) -> np.ndarray:
    """(H, W) float32 the floor as ``camera`` sees it (bilinear texture lookup per pixel ray)."""
    rot = camera.rotation_matrix
    d = np.concatenate([rays.astype(np.float64), np.ones((*rays.shape[:2], 1))], axis=-1)
    world_dir = d @ rot  # R^T d per pixel
    origin = camera.position
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(world_dir[..., 2] < 0, -origin[2] / world_dir[..., 2], np.inf)
        hit = origin[:2] + s[..., None] * world_dir[..., :2]
    n = floor.texture.shape[0]
    texel = floor.extent / n
    u = (hit[..., 0] + floor.extent / 2) / texel - 0.5
    v = (floor.extent / 2 - hit[..., 1]) / texel - 0.5
    seen = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (u <= n - 1) & (v >= 0) & (v <= n - 1)
    out = bilinear(floor.texture, np.where(seen, u, 0.0), np.where(seen, v, 0.0))
    return np.where(seen, out, floor.beyond).astype(np.float32)


def bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``image`` (H, W) at column ``u``, row ``v`` (same shape, inside the image), bilinearly."""
    height, width = image.shape
    u0 = np.clip(np.floor(u).astype(np.int64), 0, max(width - 2, 0))
    v0 = np.clip(np.floor(v).astype(np.int64), 0, max(height - 2, 0))
    u1, v1 = np.minimum(u0 + 1, width - 1), np.minimum(v0 + 1, height - 1)
    fu, fv = u - u0, v - v0
    top = image[v0, u0] * (1 - fu) + image[v0, u1] * fu
    bottom = image[v1, u0] * (1 - fu) + image[v1, u1] * fu
    return top * (1 - fv) + bottom * fv
