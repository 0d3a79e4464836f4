"""Synthetic multi-camera rigs with exact 2D ground truth (for ``vidpose synthesize --cameras``).

:func:`ring_calibration` places N cameras on a ring around a volume, each looking at its centre,
with realistic intrinsics (square-ish pixels, principal point near the image centre) and mild
lens distortion, all drawn from one seed; :func:`project_to_views` projects 3D keypoint
trajectories into every view.

World axes: ``z`` is up (cameras stand above the floor plane ``z = 0`` and their image ``y``
points down the world's ``z``); any right-handed frame works. The synthetic animal's frame
(:mod:`vidpose.synthetic.body`: top-view pixels, ``y`` down the top image, ``z`` up) is the mirror
image of a right-handed one as the top view shows it; projected through these (proper) cameras
its left and right sides swap in the images, consistently for keypoints and drawing alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidpose.geometry import camera as cm
from vidpose.geometry.calibration import Calibration, CameraModel


@dataclass(frozen=True)
class ViewProjections:
    """3D points seen by V cameras; ``S`` is the points' leading shape (e.g. frames, keypoints).

    Attributes:
        coords_px: (V, *S, 2) float64 pixels; NaN behind a camera.
        in_image: (V, *S) bool, in front of the camera and inside its image (pixel centres at
            integer coordinates, so the image spans [-0.5, size - 0.5]).
    """

    coords_px: np.ndarray
    in_image: np.ndarray


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) world -> camera rotation of a camera at ``position`` looking at ``target``, its
    image ``y`` pointing down the world's ``z`` (no roll)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross([0.0, 0.0, -1.0], forward)
    norm = np.linalg.norm(right)
    if norm < 1e-9:
        raise ValueError("a camera looking straight up or down has no defined roll")
    right /= norm
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def ring_calibration(
    n_cameras: int,
    center: Sequence[float],
    radius: float,
    *,
    image_size: tuple[int, int] = (640, 480),
    elevation_deg: float = 30.0,
    fov_deg: float = 60.0,
    fill: float = 0.8,
    distortion: float = 1.0,
    jitter: float = 1.0,
    seed: int = 0,
    names: Sequence[str] | None = None,
) -> Calibration:
    """N cameras evenly around a volume, looking at its centre.

    Args:
        n_cameras: number of cameras (>= 2).
        center: (3,) the volume's centre, world units.
        radius: radius of a ball around ``center`` that fills ``fill`` of each image's shorter
            side (sets the cameras' distance), world units.
        image_size: (width, height) px.
        elevation_deg: angle of the cameras above the horizontal plane through ``center``.
        fov_deg: horizontal field of view.
        fill: see ``radius``; in (0, 1].
        distortion: scale of the random lens distortion (1: mild, |k1| <= 0.15; 0: none).
        jitter: scale of the random departures from a perfect ring (azimuth, elevation,
            distance, aim, focal length, principal point); 0 for an exact ring.
        seed: seed of every random draw.
        names: camera names; ``cam0``, ``cam1``... by default.
    """
    if n_cameras < 2:
        raise ValueError(f"a rig needs at least 2 cameras, got {n_cameras}")
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    names = list(names) if names is not None else [f"cam{i}" for i in range(n_cameras)]
    if len(names) != n_cameras:
        raise ValueError(f"{n_cameras} cameras but {len(names)} names")
    rng = np.random.default_rng(seed)
    width, height = image_size
    centre = np.asarray(center, dtype=np.float64)
    focal = (width / 2) / np.tan(np.deg2rad(fov_deg) / 2)
    half_angle = np.arctan(fill * min(width, height) / 2 / focal)
    distance = radius / np.sin(half_angle)

    cameras = []
    for i, name in enumerate(names):
        j = jitter * rng.uniform(-1.0, 1.0, size=9)
        azimuth = 2 * np.pi * (i + 0.1 * j[0]) / n_cameras
        elevation = np.deg2rad(elevation_deg + 3.0 * j[1])
        dist = distance * (1 + 0.05 * j[2])
        direction = np.array(
            [
                np.cos(elevation) * np.cos(azimuth),
                np.cos(elevation) * np.sin(azimuth),
                np.sin(elevation),
            ]
        )
        position = centre + dist * direction
        rot = look_at(position, centre + 0.05 * radius * j[3:6])
        f = focal * (1 + 0.03 * j[6])
        matrix = np.array(
            [
                [f, 0.0, (width - 1) / 2 + 0.01 * width * j[7]],
                [0.0, f * (1 + 0.002 * j[8]), (height - 1) / 2 + 0.01 * height * j[8]],
                [0.0, 0.0, 1.0],
            ]
        )
        lens = distortion * np.array(
            [
                rng.uniform(-0.15, 0.05),
                rng.uniform(-0.05, 0.05),
                rng.uniform(-1e-3, 1e-3),
                rng.uniform(-1e-3, 1e-3),
                0.0,
            ]
        )
        cameras.append(
            CameraModel(
                name=name,
                size=(width, height),
                matrix=matrix,
                distortion=lens,
                rotation=cm.rotation_vector(rot),
                translation=-rot @ position,
            )
        )
    return Calibration(tuple(cameras), {"synthetic": True, "seed": seed})


def project_to_views(calibration: Calibration, points: np.ndarray) -> ViewProjections:
    """Project (*S, 3) world points (e.g. keypoint trajectories (T, K, 3)) into every camera."""
    coords = np.stack([cam.project(points) for cam in calibration.cameras])
    size = np.array([cam.size for cam in calibration.cameras], dtype=np.float64)
    size = size.reshape(len(calibration), *([1] * (coords.ndim - 2)), 2)
    with np.errstate(invalid="ignore"):
        inside = ((coords >= -0.5) & (coords <= size - 0.5)).all(-1)
    return ViewProjections(coords_px=coords, in_image=inside)
