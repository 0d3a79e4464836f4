"""Vectorised rendering for the synthetic projects: cameras, ellipsoid rasteriser, occluders,
backgrounds and the camera's photometric chain (lighting drift, blur, sensor noise).

Images are grey, float32 in [0, 1] while rendering. Pixel ``(row i, column j)`` has its centre
at image coordinates ``(x=j, y=i)``, so a keypoint at ``(x, y)`` lies in pixel
``(round(y), round(x))``.

Parts are drawn with a depth buffer and an id buffer: each part is evaluated only over a
bounding-box crop, for a whole chunk of frames at once (one gather and one scatter per part and
chunk, no per-pixel or per-frame Python loops). Edges are anti-aliased from an approximate
signed distance, so sub-pixel motion is visible in the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vidpose.synthetic.body import Body

BACKGROUND_ID = 0
_OCCLUDER_DEPTH = 1e9
FLOOR_GREY = 0.3
"""Mean grey level of an arena floor (before the lamp); the animal is lighter."""
BEYOND_GREY = 0.12
"""What a moved camera sees beyond the arena's edge (the dark rim of the rig)."""


@dataclass(frozen=True)
class Camera:
    """An orthographic camera.

    Attributes:
        name: view name (``"top"`` or ``"side"``).
        proj: (2, 3) world px -> image px (x, y), before ``offset``.
        offset: (2,) image px added after projection.
        toward: (3,) unit vector from the scene towards the camera; depth = world . toward.
    """

    name: str
    proj: np.ndarray
    offset: np.ndarray
    toward: np.ndarray

    def project(self, world: np.ndarray) -> np.ndarray:
        """(..., 2) image px of world points (..., 3)."""
        return world @ self.proj.T + self.offset

    def depth(self, world: np.ndarray) -> np.ndarray:
        """(...,) distance towards the camera of world points (..., 3); larger is nearer."""
        return world @ self.toward


def top_camera() -> Camera:
    """Looks straight down: image (x, y) = world (x, y)."""
    return Camera(
        "top",
        np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        np.zeros(2),
        np.array([0.0, 0.0, 1.0]),
    )


def side_camera(height: int, body_px: float, elevation_deg: float = 35.0) -> Camera:
    """Looks at the arena from its bottom edge (large y), tilted down by ``elevation_deg``.

    The arena's depth (world y) is foreshortened into the lower part of the image and height
    (world z) points up the image, so the animal is seen from the side and a little above.
    """
    e = np.deg2rad(elevation_deg)
    sin_e, cos_e = np.sin(e), np.cos(e)
    top = (height - height * sin_e) / 2 + 0.1 * body_px
    return Camera(
        "side",
        np.array([[1.0, 0.0, 0.0], [0.0, sin_e, -cos_e]]),
        np.array([0.0, top]),
        np.array([0.0, cos_e, sin_e]),
    )


@dataclass(frozen=True)
class ProjectedPart:
    """An ellipsoid as one camera sees it over T frames.

    Attributes:
        part_id: id written to the id buffer (1-based; 0 is the background).
        centre: (T, 2) image px.
        inv_shape: (T, 2, 2) inverse of the projected ellipse's shape matrix: a pixel offset
            ``d`` is inside when ``d^T inv_shape d <= 1``.
        half_extent: (T, 2) half width and half height of the ellipse's bounding box, px.
        depth: (T,) depth of the ellipsoid's centre.
        thickness: (T,) half extent of the ellipsoid along the viewing direction, px.
        shade: grey level at the part's most camera-facing point.
    """

    part_id: int
    centre: np.ndarray
    inv_shape: np.ndarray
    half_extent: np.ndarray
    depth: np.ndarray
    thickness: np.ndarray
    shade: float


def project_parts(body: Body, camera: Camera) -> list[ProjectedPart]:
    """Each body part's projected ellipse; part ids follow ``body.parts`` order from 1."""
    out = []
    for i, part in enumerate(body.parts, start=1):
        pa = np.einsum("ij,tjk->tik", camera.proj, part.axes)  # (T, 2, 3)
        shape = pa @ pa.transpose(0, 2, 1)
        # A tiny floor keeps parts seen end-on invertible.
        shape = shape + np.eye(2) * 1e-3
        out.append(
            ProjectedPart(
                part_id=i,
                centre=camera.project(part.center),
                inv_shape=np.linalg.inv(shape),
                half_extent=np.sqrt(np.stack([shape[:, 0, 0], shape[:, 1, 1]], -1)),
                depth=camera.depth(part.center),
                thickness=np.linalg.norm(np.einsum("j,tjk->tk", camera.toward, part.axes), axis=-1),
                shade=part.shade,
            )
        )
    return out


def owner_table(body: Body, keypoints: Sequence[int]) -> np.ndarray:
    """(K, n_parts + 2) bool: may keypoint k be covered by the buffer id without being hidden.

    Column 0 is the background, 1..n_parts the parts, the last column the occluders.
    """
    index = {p.name: i for i, p in enumerate(body.parts, start=1)}
    table = np.zeros((len(keypoints), len(body.parts) + 2), dtype=bool)
    table[:, BACKGROUND_ID] = True
    for row, k in enumerate(keypoints):
        for name in body.owners[k]:
            table[row, index[name]] = True
    return table


@dataclass(frozen=True)
class Occluder:
    """An opaque flat shape in front of the camera, moving in a straight line.

    Present for frames ``t_start <= t < t_stop``. Its outline is a superellipse
    ``|u/a|^p + |v/b|^p = 1`` in its own rotating frame: ``p = 2`` an ellipse, larger ``p`` a
    rounded rectangle.

    Attributes:
        centre0: (2,) image px at frame ``t_start``.
        velocity: (2,) px per frame.
        radii: (a, b) px.
        angle0, spin: orientation (rad) at ``t_start`` and its change per frame.
        power: superellipse exponent p >= 2.
        shade: grey level; a gentle gradient across the shape makes it look like an object.
    """

    t_start: int
    t_stop: int
    centre0: np.ndarray
    velocity: np.ndarray
    radii: tuple[float, float]
    angle0: float
    spin: float
    power: float
    shade: float


def _crop_grid(centre: np.ndarray, half: np.ndarray, height: int, width: int):
    """Per-frame crops covering ``centre ± half`` (T, 2) px: row/col index grids, same size."""
    h = min(int(np.ceil(2 * half[:, 1].max())) + 3, height)
    w = min(int(np.ceil(2 * half[:, 0].max())) + 3, width)
    oy = np.clip(np.round(centre[:, 1]).astype(np.int64) - h // 2, 0, height - h)
    ox = np.clip(np.round(centre[:, 0]).astype(np.int64) - w // 2, 0, width - w)
    rows = oy[:, None, None] + np.arange(h)[None, :, None]  # (T, h, 1)
    cols = ox[:, None, None] + np.arange(w)[None, None, :]  # (T, 1, w)
    return rows, cols


def _composite(
    canvas: np.ndarray,
    zbuf: np.ndarray,
    ids: np.ndarray,
    frames: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    alpha: np.ndarray,
    depth: np.ndarray,
    colour: np.ndarray,
    part_id: int,
) -> None:
    """Blend a part into the buffers where it is in front; all local arrays are (T, h, w)."""
    tt = frames[:, None, None]
    z_old = zbuf[tt, rows, cols]
    front = depth > z_old
    a = np.where(front, alpha, 0.0).astype(np.float32)
    old = canvas[tt, rows, cols]
    canvas[tt, rows, cols] = old + a * (colour - old)
    solid = front & (alpha >= 0.5)
    zbuf[tt, rows, cols] = np.where(solid, depth, z_old)
    ids[tt, rows, cols] = np.where(solid, part_id, ids[tt, rows, cols])


def draw_parts(
    canvas: np.ndarray,
    zbuf: np.ndarray,
    ids: np.ndarray,
    parts: Sequence[ProjectedPart],
    t0: int,
) -> None:
    """Rasterise every part into buffers (Tc, H, W) that hold frames ``t0 .. t0 + Tc - 1``."""
    n, height, width = canvas.shape
    frames = np.arange(n)
    for part in parts:
        sl = slice(t0, t0 + n)
        centre = part.centre[sl]
        rows, cols = _crop_grid(centre, part.half_extent[sl], height, width)
        dx = (cols - centre[:, 0, None, None]).astype(np.float32)
        dy = (rows - centre[:, 1, None, None]).astype(np.float32)
        q_inv = part.inv_shape[sl].astype(np.float32)
        a_, b_, c_ = (
            q_inv[:, 0, 0, None, None],
            q_inv[:, 0, 1, None, None],
            q_inv[:, 1, 1, None, None],
        )
        gx = a_ * dx + b_ * dy
        gy = b_ * dx + c_ * dy
        q = dx * gx + dy * gy
        r = np.sqrt(q)
        # Signed distance to the outline, to first order: (r - 1) / |grad r|.
        dist = (r - 1.0) * r / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-6)
        alpha = np.where(r < 0.5, 1.0, np.clip(0.5 - dist, 0.0, 1.0))
        bulge = np.sqrt(np.clip(1.0 - q, 0.0, 1.0))
        depth = part.depth[sl, None, None] + part.thickness[sl, None, None] * bulge
        colour = part.shade * (0.62 + 0.38 * bulge)
        _composite(canvas, zbuf, ids, frames, rows, cols, alpha, depth, colour, part.part_id)


def draw_occluders(
    canvas: np.ndarray,
    zbuf: np.ndarray,
    ids: np.ndarray,
    occluders: Sequence[Occluder],
    t0: int,
    occluder_id: int,
) -> None:
    """Draw the occluders present in frames ``t0 .. t0 + Tc - 1`` on top of everything."""
    n, height, width = canvas.shape
    for k, occ in enumerate(occluders):
        lo, hi = max(t0, occ.t_start), min(t0 + n, occ.t_stop)
        if lo >= hi:
            continue
        steps = np.arange(lo, hi) - occ.t_start
        centre = occ.centre0 + steps[:, None] * occ.velocity
        angle = occ.angle0 + steps * occ.spin
        reach = np.hypot(*occ.radii)
        rows, cols = _crop_grid(centre, np.full((len(steps), 2), reach), height, width)
        dx = (cols - centre[:, 0, None, None]).astype(np.float32)
        dy = (rows - centre[:, 1, None, None]).astype(np.float32)
        ca = np.cos(angle)[:, None, None].astype(np.float32)
        sa = np.sin(angle)[:, None, None].astype(np.float32)
        u = (ca * dx + sa * dy) / occ.radii[0]
        v = (-sa * dx + ca * dy) / occ.radii[1]
        r = (np.abs(u) ** occ.power + np.abs(v) ** occ.power) ** (1.0 / occ.power)
        alpha = np.clip(0.5 - (r - 1.0) * min(occ.radii), 0.0, 1.0)
        colour = occ.shade * (0.85 + 0.15 * np.clip(u, -1.0, 1.0))
        depth = np.full(alpha.shape, _OCCLUDER_DEPTH + k, dtype=np.float32)
        _composite(
            canvas, zbuf, ids, np.arange(lo, hi) - t0, rows, cols, alpha, depth, colour, occluder_id
        )


def keypoint_visibility(
    ids: np.ndarray,
    zbuf: np.ndarray,
    keypoints_px: np.ndarray,
    keypoint_depth: np.ndarray,
    owners: np.ndarray,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Which keypoints a labeller would see.

    Args:
        ids, zbuf: (Tc, H, W) buffers after drawing.
        keypoints_px: (Tc, K, 2) image px.
        keypoint_depth: (Tc, K) depth of each keypoint.
        owners: (K, n_ids) from :func:`owner_table`.
        tolerance: depth slack in px, so that a part barely grazing a keypoint does not hide it.

    Returns:
        inside (Tc, K) bool: the keypoint's pixel is in the frame; visible (Tc, K) bool: inside
        and not covered by anything but its own parts.
    """
    n, height, width = ids.shape
    col = np.round(keypoints_px[..., 0]).astype(np.int64)
    row = np.round(keypoints_px[..., 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    tt = np.arange(n)[:, None]
    rc, cc = np.clip(row, 0, height - 1), np.clip(col, 0, width - 1)
    top_id = ids[tt, rc, cc]
    own = owners[np.arange(owners.shape[0])[None, :], top_id]
    uncovered = zbuf[tt, rc, cc] <= keypoint_depth + tolerance
    return inside, inside & (own | uncovered)


def smooth_noise(rng: np.random.Generator, height: int, width: int, octaves: Sequence[int]):
    """(H, W) float32 zero-mean texture: random grids of the given cell sizes, upsampled."""
    out = np.zeros((height, width), dtype=np.float32)
    for cell in octaves:
        gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        up = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
        out += np.asarray(up, dtype=np.float32) * (cell / max(octaves)) ** 0.5
    return out / max(float(out.std()), 1e-6)


def _soft_segment(yy, xx, a, b, half_width):
    """Coverage (H, W) of a line segment from a to b (x, y) px with ``half_width``."""
    d = np.asarray(b, float) - np.asarray(a, float)
    t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    dist = np.hypot(xx - (a[0] + t * d[0]), yy - (a[1] + t * d[1]))
    return np.clip(half_width + 0.5 - dist, 0.0, 1.0)


def _wall(
    rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray, horizon: float
) -> np.ndarray:
    """A striped wall above the ``horizon`` row of a side view, and a bright floor edge."""
    wall = yy < horizon
    img = np.where(wall, img * 0.6 + 0.04 * np.sin(xx * rng.uniform(0.3, 0.8)), img)
    return img + 0.15 * np.clip(1.5 - np.abs(yy - horizon), 0.0, 1.0)


def make_background(
    rng: np.random.Generator, height: int, width: int, horizon: float | None = None
) -> np.ndarray:
    """(H, W) float32 grey arena: smooth texture, a few soft blobs and lines, darkish overall.

    With a ``horizon`` (image row of the floor's far edge, for side views) the part above it
    is a striped wall, and the edge is a bright line.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = min(height, width)
    img = FLOOR_GREY + 0.05 * smooth_noise(rng, height, width, (4, 16, 48))
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.03, 0.12, 2) * scale
        blob = np.exp(-0.5 * (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2))
        img += rng.uniform(-0.12, 0.12) * blob
    for _ in range(int(rng.integers(2, 5))):
        a = rng.uniform(0, 1, 2) * (width, height)
        b = rng.uniform(0, 1, 2) * (width, height)
        img += rng.uniform(-0.1, 0.1) * _soft_segment(yy, xx, a, b, rng.uniform(0.5, 2.0))
    if horizon is not None:
        img = _wall(rng, img, yy, xx, horizon)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def make_tiled_background(
    rng: np.random.Generator, height: int, width: int, horizon: float | None = None
) -> np.ndarray:
    """(H, W) float32 another kind of floor at the same mean grey as :func:`make_background`:
    square tiles of uneven shade (a fifth to an eighth of the view wide, at a random angle)
    with dark grout lines, under fine-grained bedding. ``horizon`` as in
    :func:`make_background`.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = min(height, width)
    period = rng.uniform(0.125, 0.2) * scale
    angle = rng.uniform(0.0, np.pi / 2)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / period + rng.uniform(0, 1)
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period + rng.uniform(0, 1)
    n_tiles = int(np.ceil(np.hypot(height, width) / period)) + 4
    shades = rng.uniform(-0.07, 0.07, (2 * n_tiles, 2 * n_tiles)).astype(np.float32)
    tile = shades[np.floor(u).astype(np.int64) + n_tiles, np.floor(v).astype(np.int64) + n_tiles]
    to_line = period * np.minimum(np.abs(u - np.round(u)), np.abs(v - np.round(v)))
    grout = np.clip(rng.uniform(0.6, 1.2) + 0.5 - to_line, 0.0, 1.0)
    grain = smooth_noise(rng, height, width, (2, 3))
    img = tile + 0.045 * grain - 0.13 * grout
    img += FLOOR_GREY - img.mean()
    if horizon is not None:
        img = _wall(rng, img, yy, xx, horizon)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def make_illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) float32 lamp fall-off towards the corners, centred at a random spot."""
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - cx) / width) ** 2 + ((yy - cy) / height) ** 2
    return (1.0 - 0.5 * r2).astype(np.float32)


def similarity(
    zoom: float, rotation_deg: float, shift_px: tuple[float, float], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(A (2, 2), b (2,)) mapping image px ``p`` to ``A p + b``: a zoom and a rotation about
    the view's centre pixel, then a translation by ``shift_px`` (x, y)."""
    r = np.deg2rad(rotation_deg)
    a = zoom * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return a, centre + np.asarray(shift_px, dtype=np.float64) - a @ centre


def move_camera(camera: Camera, a: np.ndarray, b: np.ndarray) -> Camera:
    """``camera`` whose image is moved by the similarity ``p -> a p + b`` (see
    :func:`similarity`); depth is unchanged."""
    return Camera(camera.name, a @ camera.proj, a @ camera.offset + b, camera.toward)


def warp_image(image: np.ndarray, a: np.ndarray, b: np.ndarray, fill: float) -> np.ndarray:
    """(H, W) float32 ``image`` seen through the similarity ``p -> a p + b``: each output pixel
    ``p`` shows ``image`` at ``a^-1 (p - b)`` (bilinear), ``fill`` where that is outside it."""
    height, width = image.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    inv = np.linalg.inv(a)
    dx, dy = xx - b[0], yy - b[1]
    sx = inv[0, 0] * dx + inv[0, 1] * dy
    sy = inv[1, 0] * dx + inv[1, 1] * dy
    outside = (sx < -0.5) | (sx > width - 0.5) | (sy < -0.5) | (sy > height - 0.5)
    sx, sy = np.clip(sx, 0, width - 1), np.clip(sy, 0, height - 1)
    x0 = np.minimum(np.floor(sx).astype(np.int64), width - 2) if width > 1 else sx.astype(int)
    y0 = np.minimum(np.floor(sy).astype(np.int64), height - 2) if height > 1 else sy.astype(int)
    fx, fy = sx - x0, sy - y0
    img = image.astype(np.float64)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    out = top * (1 - fy) + bottom * fy
    return np.where(outside, fill, out).astype(np.float32)


def lamp_gradient(height: int, width: int, strength: float, angle_deg: float) -> np.ndarray:
    """(H, W) float32 ``1 + strength * ramp``: a linear ramp from -1 to 1 (at the view's
    corners) rising in the direction ``angle_deg`` (0 = towards +x, 90 = towards +y)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = np.deg2rad(angle_deg)
    along = (xx - (width - 1) / 2) * np.cos(r) + (yy - (height - 1) / 2) * np.sin(r)
    reach = 0.5 * np.hypot(width - 1, height - 1)
    return (1.0 + strength * along / max(reach, 1e-9)).astype(np.float32)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur float images (T, H, W) with a Gaussian of ``sigma`` px (separable, edges clamped)."""
    if sigma <= 0:
        return images
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    x = images
    for axis in (1, 2):
        n = x.shape[axis]
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="edge")
        y = np.zeros_like(x)
        for j, w in enumerate(taps):
            y += w * np.take(padded, np.arange(j, j + n), axis=axis)
        x = y
    return x


def blur3(images: np.ndarray, amount: float) -> np.ndarray:
    """Blur images (T, H, W) with the separable kernel [a/4, 1 - a/2, a/4] per axis, a = amount.

    ``amount`` 1 is the binomial [1, 2, 1] / 4 blur, 0 none; edges are clamped.
    """
    if amount <= 0:
        return images
    side, centre = np.float32(amount / 4), np.float32(1 - amount / 2)
    x = images
    for axis in (1, 2):
        lead = (slice(None),) * axis
        y = x * centre
        y[(*lead, slice(1, None))] += side * x[(*lead, slice(None, -1))]
        y[(*lead, slice(0, 1))] += side * x[(*lead, slice(0, 1))]
        y[(*lead, slice(None, -1))] += side * x[(*lead, slice(1, None))]
        y[(*lead, slice(-1, None))] += side * x[(*lead, slice(-1, None))]
        x = y
    return x


@dataclass(frozen=True)
class Exposure:
    """The camera's photometric chain over T frames of size (H, W).

    Attributes:
        illumination: (H, W) float32 lamp pattern multiplying the scene.
        gain: (T,) float32 lamp brightness per frame (around 1).
        offset: (T,) float32 black level per frame (around 0).
        blur: optical blur amount, see :func:`blur3`.
        noise_std: sensor noise standard deviation, grey levels in [0, 1].
        noise_bank: (B, H + P, W + P) float32 unit Gaussian noise; each frame adds a random
            (H, W) window of a random bank image, much cheaper than fresh noise per frame and,
            at a fresh offset each frame, as good for a model.
        noise_pick: (T, 3) int64 bank index, row offset, column offset per frame.
        blur_sigma: further Gaussian blur, px (a shifted session's lens), after ``blur``.
    """

    illumination: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    blur: float
    noise_std: float
    noise_bank: np.ndarray
    noise_pick: np.ndarray
    blur_sigma: float = 0.0


def make_exposure(
    rng: np.random.Generator,
    illumination: np.ndarray,
    n_frames: int,
    fps: float,
    gain_drift: float,
    offset_drift: float,
    blur: float,
    noise_std: float,
    bank_size: int = 16,
    bank_pad: int = 32,
) -> Exposure:
    """A random :class:`Exposure`: slow lamp drift, fixed blur and noise level."""
    height, width = illumination.shape
    gain = (1.0 + smooth_drift(rng, n_frames, fps, gain_drift)).astype(np.float32)
    offset = smooth_drift(rng, n_frames, fps, offset_drift).astype(np.float32)
    bank = rng.standard_normal((bank_size, height + bank_pad, width + bank_pad), dtype=np.float32)
    pick = np.stack(
        [
            rng.integers(0, bank_size, n_frames),
            rng.integers(0, bank_pad + 1, n_frames),
            rng.integers(0, bank_pad + 1, n_frames),
        ],
        axis=1,
    )
    return Exposure(illumination, gain, offset, blur, noise_std, bank, pick)


def expose(scene: np.ndarray, t0: int, exposure: Exposure, clean: bool = False) -> np.ndarray:
    """Images (Tc, H, W) uint8 of scene radiance (Tc, H, W) float32 for frames from ``t0``.

    ``clean`` applies only the fixed illumination (no drift, blur or noise). ``scene`` is
    overwritten.
    """
    n, height, width = scene.shape
    out = np.empty(scene.shape, dtype=np.uint8)
    step = 8  # a few frames at a time keep the temporaries in cache
    for a in range(0, n, step):
        x = scene[a : a + step]
        x *= exposure.illumination
        if not clean:
            t = slice(t0 + a, t0 + a + len(x))
            x *= exposure.gain[t, None, None]
            x += exposure.offset[t, None, None]
            x = blur3(x, exposure.blur)
            if exposure.blur_sigma > 0:
                x = gaussian_blur(x, exposure.blur_sigma)
            for i, (b, r, c) in enumerate(exposure.noise_pick[t].tolist()):
                x[i] += (
                    np.float32(exposure.noise_std)
                    * exposure.noise_bank[b, r : r + height, c : c + width]
                )
        out[a : a + step] = to_uint8(x)
    return out


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Grey levels in [0, 1] (float) as uint8, rounded and clipped."""
    x = images * np.float32(255.0)
    x += np.float32(0.5)
    np.clip(x, 0.0, 255.0, out=x)
    return x.astype(np.uint8)


def smooth_drift(rng: np.random.Generator, n: int, fps: float, amplitude: float) -> np.ndarray:
    """(n,) slow zero-mean drift of peak size about ``amplitude``: three random sinusoids."""
    t = np.arange(n) / fps
    periods = rng.uniform(2.0, 20.0, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    weights = rng.uniform(0.5, 1.0, 3)
    wave = (
        weights[:, None] * np.sin(2 * np.pi * t[None] / periods[:, None] + phases[:, None])
    ).sum(0)
    return amplitude * wave / weights.sum()
