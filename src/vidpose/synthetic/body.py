"""The procedural animal of the synthetic projects: a 3D articulated body on a smooth path.

World coordinates are pixels of the top view: ``x`` to the right, ``y`` down the image rows,
``z`` the height above the floor (towards the top camera). Every length below is given in units
of the body length ``body_px`` (neck to tail base is about 0.75 of it).

The body is a set of ellipsoids (head, nose, ears, three trunk segments, a flank spot, a tail
chain, four legs and paws) posed frame by frame; the keypoints are 3D points computed from the
same geometry, so they follow what is drawn exactly. The trunk and tail follow the neck's past
path (a snake-like chain parametrised by arc length), the head turns and pitches on the neck,
the tail waves, and the paws step in a trot: diagonal pairs swing together, and a paw in stance
stays put on the floor while the body passes over it.

Left and right are told apart the way a labeller tells them apart, by context and markings: the
left ear is darker and the right one brighter than the head, left paws are bright and right paws
dim, and a dark spot sits on the left flank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYPOINTS: tuple[str, ...] = (
    "nose",
    "ear_left",
    "ear_right",
    "neck",
    "spine_mid",
    "tail_base",
    "tail_mid",
    "tail_tip",
    "paw_front_left",
    "paw_front_right",
    "paw_back_left",
    "paw_back_right",
)
"""Every keypoint the animal has, in the order tables list them."""

# Which keypoints a project with fewer keypoints keeps, most useful first; left/right partners
# are adjacent so that small subsets still have flip pairs.
SUBSET_PRIORITY: tuple[str, ...] = (
    "nose",
    "tail_base",
    "ear_left",
    "ear_right",
    "paw_front_left",
    "paw_front_right",
    "paw_back_left",
    "paw_back_right",
    "spine_mid",
    "neck",
    "tail_mid",
    "tail_tip",
)

SKELETON: tuple[tuple[str, str], ...] = (
    ("nose", "ear_left"),
    ("nose", "ear_right"),
    ("ear_left", "neck"),
    ("ear_right", "neck"),
    ("neck", "spine_mid"),
    ("spine_mid", "tail_base"),
    ("tail_base", "tail_mid"),
    ("tail_mid", "tail_tip"),
    ("neck", "paw_front_left"),
    ("neck", "paw_front_right"),
    ("tail_base", "paw_back_left"),
    ("tail_base", "paw_back_right"),
)

FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("ear_left", "ear_right"),
    ("paw_front_left", "paw_front_right"),
    ("paw_back_left", "paw_back_right"),
)

# The tail whips about and does not live in a low-dimensional pose subspace.
NON_PCA_KEYPOINTS: frozenset[str] = frozenset({"tail_mid", "tail_tip"})


@dataclass(frozen=True)
class MotionPath:
    """The neck's trajectory on the floor.

    Attributes:
        xy: (M, 2) float64 polyline of neck positions in px: a straight run-up before the first
            frame (so the trunk and tail have a past path to lie on), then one point per frame.
        arc: (M,) float64 cumulative arc length of ``xy`` in px, strictly increasing.
        frame_arc: (T,) float64 arc length of the neck at each frame.
        speed: (T,) float64 neck speed in px per frame.
    """

    xy: np.ndarray
    arc: np.ndarray
    frame_arc: np.ndarray
    speed: np.ndarray

    def point(self, s: np.ndarray) -> np.ndarray:
        """(..., 2) neck-path positions at arc lengths ``s`` (...) px."""
        return np.stack(
            [np.interp(s, self.arc, self.xy[:, 0]), np.interp(s, self.arc, self.xy[:, 1])], -1
        )

    def tangent(self, s: np.ndarray, s_max: np.ndarray, delta: float) -> np.ndarray:
        """(..., 2) unit tangents at arc lengths ``s``, looking no further ahead than ``s_max``."""
        ahead = self.point(np.minimum(s + delta, s_max))
        behind = self.point(s - delta)
        d = ahead - behind
        return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class Ellipsoid:
    """One body part over T frames.

    Attributes:
        name: part name, unique within a body.
        center: (T, 3) float64 world position in px.
        axes: (T, 3, 3) float64; column j is the j-th semi-axis vector in px.
        shade: grey level in [0, 1] at the part's most camera-facing point.
    """

    name: str
    center: np.ndarray
    axes: np.ndarray
    shade: float


@dataclass(frozen=True)
class Body:
    """The posed animal.

    Attributes:
        parts: ellipsoids in a back-to-front drawing order for the top view (a depth buffer
            sorts out the rest).
        keypoints: (T, K, 3) float64 world positions of :data:`KEYPOINTS` in px.
        owners: per keypoint, the part names it lies on; a keypoint is hidden only by parts
            that are not its owners.
    """

    parts: list[Ellipsoid]
    keypoints: np.ndarray
    owners: list[tuple[str, ...]]


def _ou(rng: np.random.Generator, n: int, tau: float, sigma: float, x0: float = 0.0) -> np.ndarray:
    """(n,) Ornstein-Uhlenbeck samples with time constant ``tau`` frames and stationary std."""
    a = np.exp(-1.0 / tau)
    b = sigma * np.sqrt(1.0 - a * a)
    noise = rng.standard_normal(n) * b
    out = np.empty(n)
    x = x0
    for i in range(n):
        x = a * x + noise[i]
        out[i] = x
    return out


def _wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def simulate_path(
    rng: np.random.Generator,
    n_frames: int,
    width: float,
    height: float,
    body_px: float,
    fps: float,
) -> MotionPath:
    """A smooth random walk of the neck that stays inside the ``width`` x ``height`` arena.

    Speed is a log-normal Ornstein-Uhlenbeck process (pauses and runs, mean about one body
    length per second); the heading turns with a random wander plus a steering term that
    looks ahead and turns towards the arena centre near walls. Turning is limited to a minimum
    radius of half a body length so that the trunk, which follows the path, bends plausibly.
    """
    per_frame = 1.0 / fps
    log_speed = np.log(0.9) + _ou(rng, n_frames, tau=1.5 * fps, sigma=0.7)
    wander = _ou(rng, n_frames, tau=0.8 * fps, sigma=1.6)  # rad/s
    margin = 0.55 * body_px
    lo = np.array([margin, margin])
    hi = np.array([width - margin, height - margin])
    centre = np.array([width / 2.0, height / 2.0])
    p = centre + (rng.uniform(-0.25, 0.25, 2) * np.array([width, height]))
    theta = rng.uniform(-np.pi, np.pi)
    kappa_max = 1.0 / (0.5 * body_px)
    v_min = 0.02

    xy = np.empty((n_frames, 2))
    speed = np.empty(n_frames)
    for t in range(n_frames):
        v = float(np.clip(np.exp(log_speed[t]), 0.05, 2.8)) * body_px * per_frame
        heading = np.array([np.cos(theta), np.sin(theta)])
        ahead = p + heading * 1.2 * body_px
        excess = np.maximum(lo - ahead, 0) + np.maximum(ahead - hi, 0)
        omega = wander[t] * per_frame
        if excess.any():
            to_centre = centre - p
            want = _wrap(np.arctan2(to_centre[1], to_centre[0]) - theta)
            push = min(1.0, float(np.linalg.norm(excess)) / (0.5 * body_px))
            omega = (1 - push) * omega + push * 0.25 * want
            if np.cos(want) < 0.5:
                # Heading into a wall: slow down so that the turning circle fits.
                v *= 1.0 - 0.6 * push
        v = max(v, v_min)
        omega = float(np.clip(omega, -kappa_max * v, kappa_max * v))
        theta = theta + omega
        p = p + v * np.array([np.cos(theta), np.sin(theta)])
        p = np.clip(p, 0.3 * margin, [width - 0.3 * margin, height - 0.3 * margin])
        xy[t] = p
        speed[t] = v

    # Straight run-up behind the first position, long enough for trunk and tail.
    first_dir = xy[1] - xy[0] if n_frames > 1 else np.array([1.0, 0.0])
    first_dir = first_dir / max(np.linalg.norm(first_dir), 1e-9)
    back = np.arange(np.ceil(3.0 * body_px), 0, -1.0)
    run_up = xy[0] - back[:, None] * first_dir
    full = np.concatenate([run_up, xy])
    seg = np.linalg.norm(np.diff(full, axis=0), axis=1)
    seg = np.maximum(seg, 1e-6)  # clipping at the arena edge can stall a step
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    return MotionPath(xy=full, arc=arc, frame_arc=arc[len(run_up) :], speed=speed)


def _frame(f: np.ndarray, left: np.ndarray, up: np.ndarray, radii: tuple[float, float, float]):
    """(T, 3, 3) semi-axis matrix from unit directions (T, 3) and radii in px."""
    return np.stack([f * radii[0], left * radii[1], up * radii[2]], axis=-1)


def _lift(xy: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), xy.shape[:-1])
    return np.concatenate([xy, z[..., None]], axis=-1)


def _left_of(tangent: np.ndarray) -> np.ndarray:
    """Animal's left of a floor direction, as a top camera sees it (y down the image)."""
    return np.stack([tangent[..., 1], -tangent[..., 0]], axis=-1)


def _segment(name: str, a: np.ndarray, b: np.ndarray, radius: float, shade: float) -> Ellipsoid:
    """An ellipsoid spanning points ``a`` -> ``b`` (T, 3) with cross-section ``radius`` px."""
    d = b - a
    length = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    f = d / length
    ref = np.where(np.abs(f[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    side = np.cross(f, ref)
    side /= np.linalg.norm(side, axis=-1, keepdims=True)
    up = np.cross(side, f)
    axes = np.stack([f * (length / 2 + radius * 0.6), side * radius, up * radius], axis=-1)
    return Ellipsoid(name, (a + b) / 2, axes, shade)


def pose_body(path: MotionPath, rng: np.random.Generator, body_px: float, fps: float) -> Body:
    """Pose every part and keypoint of the animal at each frame of ``path``."""
    L = body_px
    n = len(path.frame_arc)
    s_now = path.frame_arc
    delta = 0.05 * L
    zhat = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (n, 3))

    def along(behind: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (T, 2), tangent (T, 3), left (T, 3) at ``behind`` body lengths back."""
        s = s_now - behind * L
        t2 = path.tangent(s, s_now, delta)
        return path.point(s), _lift(t2, 0.0), _lift(_left_of(t2), 0.0)

    neck_xy, neck_f, _ = along(0.0)
    t_sec = np.arange(n) / fps

    # Head: yaw (looking around, more when slow) and pitch (sniffing) on the neck.
    slow = np.clip(1.0 - path.speed / (0.6 * L / fps), 0.0, 1.0)
    yaw = _ou(rng, n, tau=0.5 * fps, sigma=0.25) * (0.5 + slow)
    pitch = -0.15 + _ou(rng, n, tau=0.3 * fps, sigma=0.12)
    c, s = np.cos(yaw), np.sin(yaw)
    fx = neck_f[:, 0] * c - neck_f[:, 1] * s
    fy = neck_f[:, 0] * s + neck_f[:, 1] * c
    cp, sp = np.cos(pitch), np.sin(pitch)
    head_f = np.stack([fx * cp, fy * cp, sp], -1)
    head_l = _lift(_left_of(np.stack([fx, fy], -1)), 0.0)
    head_u = np.cross(head_l, head_f)
    neck3 = _lift(neck_xy, 0.17 * L)

    def on_head(fwd: float, lat: float, up: float) -> np.ndarray:
        return neck3 + L * (fwd * head_f + lat * head_l + up * head_u)

    parts: list[Ellipsoid] = []
    body_shade = 0.8

    # Trunk: three segments along the past path.
    trunk = {}
    for name, behind, radii, z in (
        ("hip", 0.55, (0.21, 0.16, 0.11), 0.12),
        ("mid", 0.33, (0.18, 0.145, 0.11), 0.13),
        ("chest", 0.12, (0.17, 0.12, 0.10), 0.12),
    ):
        xy, f, left = along(behind)
        centre = _lift(xy, z * L)
        trunk[name] = (centre, f, left, radii)
        parts.append(
            Ellipsoid(name, centre, _frame(f, left, zhat, tuple(r * L for r in radii)), body_shade)
        )
    hip_c, hip_f, hip_l, _ = trunk["hip"]
    parts.append(
        Ellipsoid(
            "flank_spot",
            hip_c + L * (0.02 * hip_f + 0.1 * hip_l + 0.04 * zhat),
            _frame(hip_f, hip_l, zhat, (0.075 * L, 0.065 * L, 0.065 * L)),
            0.42,
        )
    )

    # Tail: a chain of nodes on the past path with a travelling lateral wave.
    n_nodes = 9
    tail_len = 0.85
    u = np.linspace(0.0, tail_len, n_nodes)
    wave_hz = rng.uniform(0.8, 1.6)
    wave_phase = rng.uniform(0, 2 * np.pi)
    nodes = []
    for j, uj in enumerate(u):
        xy, _, left = along(0.72 + uj)
        amp = 0.14 * L * (uj / tail_len)
        lateral = amp * np.sin(2 * np.pi * (uj / 0.6 - wave_hz * t_sec) + wave_phase)
        z = L * (0.07 - 0.06 * j / (n_nodes - 1))
        nodes.append(_lift(xy, z) + lateral[:, None] * left)
    for j in range(n_nodes - 1):
        radius = L * (0.04 - 0.022 * j / (n_nodes - 2))
        parts.insert(0, _segment(f"tail{j}", nodes[j], nodes[j + 1], radius, 0.72))

    # Legs and paws: trot gait (diagonal pairs in phase), stance paws fixed on the floor.
    stride = 0.42 * L
    duty = 0.6
    amp = duty * stride / 2
    gait_phase = path.frame_arc / stride + rng.uniform(0, 1)
    paws = {}
    for name, behind, lat, radii, offset, shade in (
        ("paw_front_left", 0.16, 0.15, (0.045, 0.035, 0.02), 0.0, 0.98),
        ("paw_front_right", 0.16, -0.15, (0.045, 0.035, 0.02), 0.5, 0.58),
        ("paw_back_left", 0.6, 0.175, (0.06, 0.04, 0.02), 0.5, 0.98),
        ("paw_back_right", 0.6, -0.175, (0.06, 0.04, 0.02), 0.0, 0.58),
    ):
        xy, f, left = along(behind)
        p = (gait_phase + offset) % 1.0
        swing = np.clip((p - duty) / (1 - duty), 0.0, 1.0)
        fore = np.where(
            p < duty, amp * (1 - 2 * p / duty), -amp + 2 * amp * 0.5 * (1 - np.cos(np.pi * swing))
        )
        lift = np.where(p < duty, 0.0, 0.05 * L * np.sin(np.pi * swing))
        base = _lift(xy, 0.0)
        paw = base + fore[:, None] * f + lat * L * left + (0.02 * L + lift)[:, None] * zhat
        hip_joint = base + 0.45 * lat * L * left + 0.09 * L * zhat
        leg = _segment(name.replace("paw", "leg"), hip_joint, paw, 0.028 * L, 0.7)
        parts.insert(0, leg)
        parts.append(
            Ellipsoid(name, paw, _frame(f, left, zhat, tuple(r * L for r in radii)), shade)
        )
        paws[name] = paw

    # Head last: it is usually the highest part.
    head_c = on_head(0.13, 0.0, 0.0)
    parts.append(
        Ellipsoid(
            "head",
            head_c,
            np.stack([head_f * 0.16 * L, head_l * 0.09 * L, head_u * 0.08 * L], -1),
            0.82,
        )
    )
    ears = {}
    for name, lat, shade in (("ear_left", 0.075, 0.45), ("ear_right", -0.075, 1.0)):
        centre = on_head(0.05, lat, 0.06)
        ears[name] = centre
        parts.append(
            Ellipsoid(
                name, centre, _frame(head_f, head_l, head_u, (0.035 * L, 0.06 * L, 0.06 * L)), shade
            )
        )
    nose = on_head(0.28, 0.0, 0.0)
    parts.append(Ellipsoid("nose", nose, _frame(head_f, head_l, head_u, (0.04 * L,) * 3), 0.45))

    mid_c = trunk["mid"][0]
    keypoints = {
        "nose": (nose, ("nose", "head")),
        "ear_left": (ears["ear_left"], ("ear_left",)),
        "ear_right": (ears["ear_right"], ("ear_right",)),
        "neck": (neck3 + 0.03 * L * zhat, ("head", "chest", "ear_left", "ear_right")),
        "spine_mid": (mid_c + 0.11 * L * zhat, ("mid", "flank_spot")),
        "tail_base": (nodes[0], ("hip", "tail0")),
        "tail_mid": (nodes[n_nodes // 2], (f"tail{n_nodes // 2 - 1}", f"tail{n_nodes // 2}")),
        "tail_tip": (nodes[-1], (f"tail{n_nodes - 2}",)),
    }
    for name, paw in paws.items():
        keypoints[name] = (paw, (name, name.replace("paw", "leg")))
    coords = np.stack([keypoints[k][0] for k in KEYPOINTS], axis=1)
    owners = [keypoints[k][1] for k in KEYPOINTS]
    return Body(parts=parts, keypoints=coords, owners=owners)
