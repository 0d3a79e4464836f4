"""Synthetic example projects with ground truth for every frame: the embedded demo data set.

:func:`synthesize_project` writes a complete project folder (videos, labeled frames,
``CollectedData.csv``, ``vidpose.yaml``) in the layout ``vidpose train`` reads, plus
``ground_truth/`` tables with the true keypoints of every video frame.

What is in the videos. One procedurally rendered animal (see :mod:`vidpose.synthetic.body`:
head with nose and ears, a three-segment trunk, a waving tail, four paws stepping in a trot)
walks a smooth random path over a textured arena, seen from above (``view="top"``), from the
side and a little above (``view="side"``), or both side by side (``views=2``: the top view in
the left half, the side view in the right half of each frame). The images are grey (stored as
RGB with R = G = B, like the mirror-mouse example's grey frames): a light animal on a darker
floor, lit by a lamp whose brightness drifts, with optical blur, sensor noise, H.264
compression and opaque objects passing in front of the camera now and then. ``difficulty``
sets how often and how large those occluders are and how strong the noise and lighting drift
are; ``"hard"`` adds a fixed post that the animal walks behind.

What a labeller would label. A keypoint is labeled when its pixel shows the keypoint's own
body part (or nothing in front of it) and lies inside the frame; keypoints behind an occluder,
behind another body part (e.g. the far paws in the side view) or outside the frame are empty,
as a human would leave them. Labels and ground truth are the exact geometry used for drawing,
in pixel coordinates whose integer values are pixel centres.

Shifted sessions (``shifted_sessions=N``). Further unlabeled videos ``shift00``, ``shift01``,
... of the same animal in the same rig on "another day": another floor, lamp, animal size,
contrast, lens blur and camera placement (:mod:`vidpose.synthetic.shift` lists each factor and
its magnitude). They have ground truth like every session, no labeled frames, and
``ground_truth/sessions.json`` records each session's kind and shift. Without them nothing
else changes: the other files are the same bytes with or without shifted sessions.

Project layout written (``<stem>`` = ``session00``, ``session01``, ..., then ``shift00``,
``shift01``, ...)::

    videos/<stem>.mp4                          H.264, short GOP (colour only with a tinted lamp)
    labeled-data/<stem>/img<frame:05d>.png     labeled frames of the first video, and their two
                                               neighbours on each side (decoded video frames)
    CollectedData.csv                          labels of the centre frames only
    ground_truth/<stem>.csv                    every frame, likelihood 1 where visible, NaN
                                               coordinates and likelihood where not
    ground_truth/<stem>_full.csv               every frame, all true coordinates; likelihood 1/0
                                               for visible/not, keypoint columns ``occluded``
                                               (hidden inside the frame) and ``outside``
    ground_truth/sessions.json                 with shifted sessions only: per stem its kind
                                               (labeled, unlabeled, shifted), files, labeled
                                               frames and shift factors (read_sessions)
    vidpose.yaml                               skeleton, flip pairs, PCA keypoints, views
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from vidpose._atomic import atomic_path, atomic_write_text
from vidpose.errors import ConfigError, ProjectError
from vidpose.io import Poses, write_poses
from vidpose.project.settings import SETTINGS_FILE, ProjectSettings, dump_settings
from vidpose.synthetic.body import (
    FLIP_PAIRS,
    KEYPOINTS,
    NON_PCA_KEYPOINTS,
    SKELETON,
    SUBSET_PRIORITY,
    pose_body,
    simulate_path,
)
from vidpose.synthetic.render import (
    BEYOND_GREY,
    FLOOR_GREY,
    Camera,
    Occluder,
    ProjectedPart,
    draw_occluders,
    draw_parts,
    expose,
    keypoint_visibility,
    lamp_gradient,
    make_background,
    make_exposure,
    make_illumination,
    make_tiled_background,
    move_camera,
    owner_table,
    project_parts,
    side_camera,
    similarity,
    to_uint8,
    top_camera,
    warp_image,
)
from vidpose.synthetic.shift import (
    SESSIONS_FILE,
    SHIFT_STREAM,
    Session,
    SessionShift,
    check_shift_kinds,
    draw_shift,
    sessions_json,
    shift_magnitude,
)
from vidpose.video import VideoWriter
from vidpose.video.pyav_reader import PyAVReader

SCORER = "synthetic"
VIEWS = ("top", "side")
# Frames on each side of a labeled frame that are saved too, for temporal-context models.
CONTEXT_FRAMES = 2
# Body length (nose to tail base, about) as a fraction of the smaller side of a view.
BODY_FRACTION = 0.27
# Rendering works on this many frames at a time, to bound memory.
_CHUNK = 48


@dataclass(frozen=True)
class Difficulty:
    """How hard the images are.

    Attributes:
        occluders_per_100_frames: mean number of passing occluders per 100 frames and view.
        occluder_size: (min, max) semi-major axis of an occluder, in body lengths.
        aimed_fraction: share of occluders whose path crosses the animal.
        posts: fixed posts (thin vertical bars) standing in front of the arena.
        noise_std: sensor noise, grey levels in [0, 1].
        blur: optical blur strength in [0, 1] (see :func:`~.synth_render.blur3`).
        gain_drift: peak relative change of the lamp's brightness.
        offset_drift: peak additive change of the black level.
        crf: x264 constant rate factor of the videos.
    """

    occluders_per_100_frames: float
    occluder_size: tuple[float, float]
    aimed_fraction: float
    posts: int
    noise_std: float
    blur: float
    gain_drift: float
    offset_drift: float
    crf: int


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(0.3, (0.15, 0.3), 0.5, 0, 0.008, 0.3, 0.05, 0.02, 18),
    "medium": Difficulty(1.0, (0.25, 0.55), 0.7, 0, 0.018, 0.5, 0.15, 0.04, 21),
    "hard": Difficulty(2.0, (0.35, 0.8), 0.8, 1, 0.035, 0.8, 0.25, 0.07, 23),
}


@dataclass(frozen=True)
class SyntheticProject:
    """What :func:`synthesize_project` wrote.

    Attributes:
        project_dir: the project folder.
        videos: the videos, ``videos/<stem>.mp4``.
        labels: ``CollectedData.csv``.
        settings: ``vidpose.yaml``.
        ground_truth: per video, ``ground_truth/<stem>.csv`` (NaN where not visible).
        ground_truth_full: per video, ``ground_truth/<stem>_full.csv`` (all true positions).
        keypoints: keypoint names in table order.
        views: view names (empty for single-view projects).
        labeled_frames: frame indices of the first video that are labeled.
        sessions: every video's session (stem, kind, files, shift), in video order.
        sessions_file: ``ground_truth/sessions.json``, written when there are shifted sessions.
    """

    project_dir: Path
    videos: list[Path]
    labels: Path
    settings: Path
    ground_truth: list[Path]
    ground_truth_full: list[Path]
    keypoints: list[str]
    views: list[str]
    labeled_frames: list[int]
    sessions: list[Session] = field(default_factory=list)
    sessions_file: Path | None = None

    @property
    def shifted(self) -> list[Session]:
        """The shifted sessions, in order."""
        return [s for s in self.sessions if s.kind == "shifted"]


@dataclass(frozen=True)
class RenderedVideo:
    """One rendered video with its ground truth.

    Attributes:
        frames: (T, H, W) uint8 grey images (W is twice a view's width for two views).
        background: (H, W) uint8 the empty arena through the same camera, before drift and noise.
        keypoints_px: (T, K, 2) float64 true image (x, y) of every keypoint, px.
        visible: (T, K) bool, what a labeller would mark: inside the frame and not hidden.
        inside: (T, K) bool, the keypoint's pixel is inside the frame.
        names: K keypoint names (base names; view suffixes are added by the project writer).
        views: the views, left to right.
    """

    frames: np.ndarray
    background: np.ndarray
    keypoints_px: np.ndarray
    visible: np.ndarray
    inside: np.ndarray
    names: list[str]
    views: list[str]


def select_keypoints(n_keypoints: int | None) -> list[str]:
    """The first ``n_keypoints`` of the priority order, listed in :data:`KEYPOINTS` order."""
    if n_keypoints is None:
        return list(KEYPOINTS)
    if not 1 <= n_keypoints <= len(KEYPOINTS):
        raise ConfigError(f"n_keypoints must be between 1 and {len(KEYPOINTS)}, got {n_keypoints}")
    keep = set(SUBSET_PRIORITY[:n_keypoints])
    return [k for k in KEYPOINTS if k in keep]


def _make_occluders(
    rng: np.random.Generator,
    difficulty: Difficulty,
    n_frames: int,
    height: int,
    width: int,
    body_px: float,
    animal_px: np.ndarray,
) -> list[Occluder]:
    """Passing occluders (and posts) for one view; ``animal_px`` (T, 2) is where to aim."""
    occluders = []
    n = rng.poisson(difficulty.occluders_per_100_frames * n_frames / 100.0)
    diagonal = float(np.hypot(height, width))
    for _ in range(n):
        t_mid = int(rng.integers(0, n_frames))
        if rng.uniform() < difficulty.aimed_fraction:
            target = animal_px[t_mid] + rng.normal(0.0, 0.25 * body_px, 2)
        else:
            target = rng.uniform(0, 1, 2) * (width, height)
        a = rng.uniform(*difficulty.occluder_size) * body_px
        radii = (a, a * rng.uniform(0.3, 1.0))
        heading = rng.uniform(-np.pi, np.pi)
        speed = rng.uniform(0.006, 0.02) * diagonal  # crosses the frame in 1.7-6 s at 30 fps
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])
        half_life = int(np.ceil((diagonal / 2 + a) / speed))
        t_start = max(0, t_mid - half_life)
        occluders.append(
            Occluder(
                t_start=t_start,
                t_stop=min(n_frames, t_mid + half_life + 1),
                centre0=target + (t_start - t_mid) * velocity,
                velocity=velocity,
                radii=radii,
                angle0=rng.uniform(-np.pi, np.pi),
                spin=rng.uniform(-0.03, 0.03),
                power=float(rng.choice([2.0, 2.0, 4.0, 8.0])),
                shade=rng.uniform(0.05, 0.95),
            )
        )
    for _ in range(difficulty.posts):
        occluders.append(
            Occluder(
                t_start=0,
                t_stop=n_frames,
                centre0=np.array([rng.uniform(0.25, 0.75) * width, height / 2]),
                velocity=np.zeros(2),
                radii=(height, rng.uniform(0.03, 0.05) * body_px),
                angle0=np.pi / 2 + rng.uniform(-0.15, 0.15),
                spin=0.0,
                power=8.0,
                shade=rng.uniform(0.55, 0.8),
            )
        )
    return occluders


@dataclass(frozen=True)
class _View:
    """One camera's share of a video: what it sees of the body, and its arena."""

    parts: list[ProjectedPart]
    keypoints_px: np.ndarray  # (T, K, 2)
    keypoint_depth: np.ndarray  # (T, K)
    background: np.ndarray  # (H, W) float32
    illumination: np.ndarray  # (H, W) float32
    occluders: list[Occluder]


def _shift_view(
    shift: SessionShift,
    camera: Camera,
    background: np.ndarray,
    illumination: np.ndarray,
    horizon: float | None,
    texture_rng: np.random.Generator | None,
) -> tuple[Camera, np.ndarray, np.ndarray]:
    """One view's camera, arena and lamp after ``shift``'s background, lighting and camera."""
    height, width = background.shape
    if texture_rng is not None:
        other = make_tiled_background(texture_rng, height, width, horizon)
        mix = np.float32(shift.background_mix)
        background = ((1 - mix) * background + mix * other).astype(np.float32)
    if shift.changes_lamp:
        ramp = lamp_gradient(height, width, shift.lamp_gradient, shift.lamp_gradient_deg)
        illumination = illumination * ramp * np.float32(shift.lamp_gain)
    if shift.moves_camera:
        a, b = similarity(
            shift.camera_zoom, shift.camera_rotation_deg, shift.camera_shift_px, height, width
        )
        camera = move_camera(camera, a, b)
        background = warp_image(background, a, b, BEYOND_GREY)
    return camera, background, illumination


def _with_contrast(parts: list[ProjectedPart], contrast: float) -> list[ProjectedPart]:
    """Parts whose grey levels lie ``contrast`` times as far from the floor's (clipped)."""
    return [
        replace(p, shade=float(np.clip(FLOOR_GREY + contrast * (p.shade - FLOOR_GREY), 0, 1)))
        for p in parts
    ]


def render_video(
    seed: int | np.random.SeedSequence,
    n_frames: int,
    size: tuple[int, int] = (256, 256),
    views: tuple[str, ...] = ("top",),
    difficulty: str = "medium",
    fps: float = 30.0,
    clean: bool = False,
    arena_seed: int | np.random.SeedSequence | None = None,
    shift: SessionShift | None = None,
) -> RenderedVideo:
    """Render one video of the animal with its ground truth.

    Args:
        seed: randomness of the motion, occluders, lighting and noise.
        n_frames: number of frames T.
        size: (height, width) of one view, px.
        views: camera names from ``("top", "side")``, placed left to right.
        difficulty: a key of :data:`DIFFICULTIES`.
        fps: frame rate; motion is simulated in seconds.
        clean: skip lighting drift, blur and noise (occluders stay), e.g. to check the geometry.
        arena_seed: randomness of the arena (background and lamp); by default drawn from
            ``seed``. Videos of one project share it, as sessions recorded in one rig do.
        shift: a domain shift (see :mod:`vidpose.synthetic.shift`) of everything but the lamp's
            colour, which the video writer applies; None (or a neutral shift) renders exactly
            what it would without.
    """
    height, width = size
    diff = DIFFICULTIES[difficulty]
    streams = np.random.SeedSequence(seed) if isinstance(seed, int) else seed
    motion_seq, occ_seq, light_seq, own_arena_seq = streams.spawn(4)
    arena = own_arena_seq if arena_seed is None else arena_seed
    arena_rng = np.random.default_rng(arena)
    texture_rng = None
    if shift is not None and shift.changes_background:
        texture_rng = np.random.default_rng(shift.texture_seed)

    # The camera, the occluders and the side camera's placement keep the rig's body length;
    # the animal (its path's wall margin, its parts, its depth slack) has its own.
    body_px = BODY_FRACTION * min(height, width)
    animal_px = body_px
    if shift is not None and shift.body_scale != 1.0:
        animal_px = body_px * shift.body_scale
    motion_rng = np.random.default_rng(motion_seq)
    path = simulate_path(motion_rng, n_frames, width, height, animal_px, fps)
    body = pose_body(path, motion_rng, animal_px, fps)
    owners = owner_table(body, range(len(KEYPOINTS)))
    occluder_id = len(body.parts) + 1
    spine = KEYPOINTS.index("spine_mid")

    occ_rng = np.random.default_rng(occ_seq)
    cams = []
    for name in views:
        camera = top_camera() if name == "top" else side_camera(height, body_px)
        horizon = camera.offset[1] if name == "side" else None
        background = make_background(arena_rng, height, width, horizon)
        illumination = make_illumination(arena_rng, height, width)
        if shift is not None:
            camera, background, illumination = _shift_view(
                shift, camera, background, illumination, horizon, texture_rng
            )
        parts = project_parts(body, camera)
        if shift is not None and shift.contrast != 1.0:
            parts = _with_contrast(parts, shift.contrast)
        keypoints_px = camera.project(body.keypoints)
        cams.append(
            _View(
                parts=parts,
                keypoints_px=keypoints_px,
                keypoint_depth=camera.depth(body.keypoints),
                background=background,
                illumination=illumination,
                occluders=_make_occluders(
                    occ_rng, diff, n_frames, height, width, body_px, keypoints_px[:, spine]
                ),
            )
        )

    illumination = np.concatenate([c.illumination for c in cams], axis=1)
    exposure = make_exposure(
        np.random.default_rng(light_seq),
        illumination,
        n_frames,
        fps,
        diff.gain_drift,
        diff.offset_drift,
        diff.blur,
        diff.noise_std,
    )
    if shift is not None and shift.blur_sigma_px > 0:
        exposure = replace(exposure, blur_sigma=shift.blur_sigma_px)

    k = len(KEYPOINTS)
    frames = np.empty((n_frames, height, width * len(cams)), dtype=np.uint8)
    visible = np.zeros((n_frames, k * len(cams)), dtype=bool)
    inside = np.zeros((n_frames, k * len(cams)), dtype=bool)
    tolerance = 0.05 * animal_px
    for t0 in range(0, n_frames, _CHUNK):
        t1 = min(n_frames, t0 + _CHUNK)
        tc = t1 - t0
        scene = np.empty((tc, height, width * len(cams)), dtype=np.float32)
        for v, cam in enumerate(cams):
            canvas = scene[:, :, v * width : (v + 1) * width]
            canvas[:] = cam.background
            zbuf = np.full((tc, height, width), -np.inf, dtype=np.float32)
            ids = np.zeros((tc, height, width), dtype=np.int16)
            draw_parts(canvas, zbuf, ids, cam.parts, t0)
            draw_occluders(canvas, zbuf, ids, cam.occluders, t0, occluder_id)
            ins, vis = keypoint_visibility(
                ids,
                zbuf,
                cam.keypoints_px[t0:t1],
                cam.keypoint_depth[t0:t1],
                owners,
                tolerance,
            )
            inside[t0:t1, v * k : (v + 1) * k] = ins
            visible[t0:t1, v * k : (v + 1) * k] = vis
        frames[t0:t1] = expose(scene, t0, exposure, clean)

    offsets = [np.array([v * width, 0.0]) for v in range(len(cams))]
    background = np.concatenate([c.background for c in cams], axis=1) * illumination
    return RenderedVideo(
        frames=frames,
        background=to_uint8(background),
        keypoints_px=np.concatenate([c.keypoints_px + d for c, d in zip(cams, offsets)], axis=1),
        visible=visible,
        inside=inside,
        names=list(KEYPOINTS),
        views=list(views),
    )


def _labeled_frame_indices(rng: np.random.Generator, n_frames: int, n_labeled: int) -> list[int]:
    """One random frame in each of ``n_labeled`` equal bins, away from the video's ends."""
    lo, hi = CONTEXT_FRAMES, n_frames - CONTEXT_FRAMES  # [lo, hi) has full context
    edges = np.linspace(lo, hi, n_labeled + 1)
    starts = np.ceil(edges[:-1]).astype(np.int64)
    stops = np.maximum(np.ceil(edges[1:]).astype(np.int64), starts + 1)
    return [int(rng.integers(a, b)) for a, b in zip(starts, stops)]


def _validate(
    n_labeled: int,
    n_videos: int,
    n_frames: int,
    size: tuple[int, int],
    view: str,
    difficulty: str,
    views: int,
    fps: float,
) -> None:
    if view not in VIEWS:
        raise ConfigError(f"view must be one of {list(VIEWS)}, got {view!r}")
    if difficulty not in DIFFICULTIES:
        raise ConfigError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
    if views not in (1, 2):
        raise ConfigError(f"views must be 1 or 2, got {views!r}")
    if len(size) != 2 or any(int(s) != s or s < 32 or s % 2 for s in size):
        raise ConfigError(f"size must be (height, width), even and at least 32 px, got {size!r}")
    if n_videos < 1:
        raise ConfigError(f"n_videos must be at least 1, got {n_videos}")
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    max_labeled = n_frames - 2 * CONTEXT_FRAMES
    if n_labeled < 1 or n_labeled > max_labeled:
        raise ConfigError(
            f"n_labeled must be between 1 and n_frames - {2 * CONTEXT_FRAMES} = {max_labeled} "
            f"(labeled frames need {CONTEXT_FRAMES} neighbours on each side), got {n_labeled}"
        )


def _settings(keypoints: list[str], view_names: list[str]) -> ProjectSettings:
    """Skeleton, flip pairs and PCA keypoints among ``keypoints`` (base names), per view."""
    present = set(keypoints)

    def named(base: str, view: str | None) -> str:
        return f"{base}_{view}" if view else base

    suffixes: list[str | None] = list(view_names) if len(view_names) > 1 else [None]
    skeleton = [
        (named(a, v), named(b, v)) for v in suffixes for a, b in SKELETON if {a, b} <= present
    ]
    # Flipping a frame of two views side by side swaps the views themselves, which no pair of
    # names can express, so flip pairs are only given for single-view projects.
    flips = [(a, b) for a, b in FLIP_PAIRS if {a, b} <= present] if len(view_names) <= 1 else []
    pca_base = [k for k in keypoints if k not in NON_PCA_KEYPOINTS]
    pca = [named(k, v) for v in suffixes for k in pca_base] if len(pca_base) >= 3 else None
    matches = [[named(k, v) for v in view_names] for k in keypoints] if len(view_names) > 1 else []
    return ProjectSettings(
        skeleton=skeleton,
        flip_pairs=flips,
        pca_keypoints=pca,
        views=list(view_names) if len(view_names) > 1 else [],
        view_matches=matches,
    )


def _write_video(
    path: Path,
    frames_grey: np.ndarray,
    fps: float,
    crf: int,
    tint: tuple[float, float, float] | None = None,
) -> None:
    """Encode grey frames as RGB, each channel times the lamp colour ``tint`` when given."""
    n, height, width = frames_grey.shape
    lut = None
    if tint is not None:
        levels = np.arange(256, dtype=np.float64)[:, None] * np.asarray(tint, dtype=np.float64)
        lut = np.clip(np.round(levels), 0, 255).astype(np.uint8)  # (256, 3)
    # No B-frames and one encoder thread: with either, x264's output varied from run to run
    # (B-frames: seen with libx264 core 165; threads: once in CI on a loaded 2-core machine),
    # and the labeled PNGs, being decoded frames, would too.
    options = {"bf": "0", "threads": "1"}
    with VideoWriter(
        path, fps, width, height, crf=crf, gop=16, preset="veryfast", codec_options=options
    ) as writer:
        for t0 in range(0, n, _CHUNK):
            chunk = frames_grey[t0 : t0 + _CHUNK]
            writer.write(np.repeat(chunk[..., None], 3, axis=3) if lut is None else lut[chunk])


def _decoded_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames ``wanted`` of the video at ``path`` as the project's video reader decodes them."""
    out: dict[int, np.ndarray] = {}
    last = max(wanted)
    # PyAV's reader itself: looking a name up in READERS imports every backend (torch, seconds)
    with PyAVReader(path) as reader:
        for batch in reader.iter_batches(64, 0, last + 1):
            for i, frame in zip(batch.indices.tolist(), batch.frames):
                if i in wanted:
                    out[i] = np.asarray(frame)
    return out


def _save_png(path: Path, image: np.ndarray) -> None:
    """Save an RGB frame (H, W, 3) uint8; as a grey PNG when R = G = B (it reads back the same)."""
    grey = bool((image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all())
    picture = Image.fromarray(np.ascontiguousarray(image[..., 0]) if grey else image)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", compress_level=1)


def _write_truth(
    project: Path, stem: str, rendered: RenderedVideo, columns: list[int], names: list[str]
) -> tuple[Path, Path, Poses]:
    """``ground_truth/<stem>.csv`` and ``<stem>_full.csv``; returns their paths and the first."""
    px = rendered.keypoints_px[:, columns]
    vis = rendered.visible[:, columns]
    ins = rendered.inside[:, columns]
    frame_ids = np.arange(len(px))
    gt = Poses(
        coords=np.where(vis[..., None], px, np.nan),
        keypoints=names,
        frames=frame_ids,
        likelihood=np.where(vis, 1.0, np.nan),
        scorer=SCORER,
        is_labels=False,
    )
    full = Poses(
        coords=px,
        keypoints=names,
        frames=frame_ids,
        likelihood=vis.astype(np.float64),
        scorer=SCORER,
        is_labels=False,
        keypoint_columns={
            "occluded": (ins & ~vis).astype(np.float64),
            "outside": (~ins).astype(np.float64),
        },
    )
    truth = project / "ground_truth" / f"{stem}.csv"
    truth_full = project / "ground_truth" / f"{stem}_full.csv"
    write_poses(gt, truth)
    write_poses(full, truth_full)
    return truth, truth_full, gt


def check_out_dir(project: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``overwrite`` (ProjectError)."""
    if project.exists() and not project.is_dir():
        raise ProjectError(f"{project}: exists and is not a folder")
    if project.is_dir() and any(project.iterdir()) and not overwrite:
        raise ProjectError(
            f"{project}: folder is not empty; pick a new one, or replace the files vidpose "
            "writes there with `vidpose synthesize --overwrite` (overwrite=True)"
        )


def synthesize_project(
    out_dir: str | Path,
    *,
    seed: int = 0,
    n_labeled: int = 60,
    n_videos: int = 2,
    n_frames: int = 600,
    size: tuple[int, int] = (256, 256),
    n_keypoints: int | None = None,
    view: str = "top",
    difficulty: str = "medium",
    views: int = 1,
    fps: float = 30.0,
    shifted_sessions: int = 0,
    shift: str | float = "strong",
    shift_kinds: Sequence[str] | str | None = None,
    overwrite: bool = False,
) -> SyntheticProject:
    """Write a synthetic project with ground truth to ``out_dir`` (see the module docstring).

    Args:
        out_dir: project folder; created if missing, must be empty unless ``overwrite``.
        seed: everything is a deterministic function of the arguments, this one included.
        n_labeled: labeled frames, spread over the first video.
        n_videos: videos (sessions) in ``videos/``; they share the arena and differ in motion,
            occluders, lighting and noise.
        n_frames: frames per video.
        size: (height, width) of one view in px; even. With ``views=2`` frames are twice as wide.
        n_keypoints: how many keypoints to keep (1-12); None keeps all 12 of
            :data:`~vidpose.synthetic.body.KEYPOINTS`. Smaller sets keep the most useful
            ones (nose, tail base, ears, paws, ...); the animal drawn is the same.
        view: ``"top"`` or ``"side"`` camera, for single-view projects.
        difficulty: ``"easy"``, ``"medium"`` or ``"hard"`` (see :data:`DIFFICULTIES`).
        views: 1, or 2 for a top and a side view side by side in each frame; keypoint names
            then end in ``_top`` / ``_side`` and ``vidpose.yaml`` lists ``views`` and
            ``view_matches`` (``view`` is ignored).
        fps: frame rate of the videos.
        shifted_sessions: further unlabeled videos ``shift00``, ``shift01``, ... with a domain
            shift (see :mod:`vidpose.synthetic.shift`), in ``videos/`` with ground truth and a
            record of each session in ``ground_truth/sessions.json``. 0 writes exactly the
            project this function wrote before shifted sessions existed.
        shift: the shift's magnitude: ``"mild"`` (0.5), ``"strong"`` (1) or a number 0-2.
        shift_kinds: which factors shift (names or comma-separated text from
            :data:`~vidpose.synthetic.shift.SHIFT_KINDS`); None = all.
        overwrite: write into a non-empty ``out_dir``, replacing files of the same names
            (other files there are left alone).

    Raises:
        ConfigError: an argument is out of range.
        ProjectError: ``out_dir`` is a file, or is not empty and ``overwrite`` is False.
    """
    _validate(n_labeled, n_videos, n_frames, size, view, difficulty, views, fps)
    if int(shifted_sessions) != shifted_sessions or shifted_sessions < 0:
        raise ConfigError(f"shifted_sessions must be 0 or more, got {shifted_sessions!r}")
    magnitude = shift_magnitude(shift)
    kinds = check_shift_kinds(shift_kinds)
    base_names = select_keypoints(n_keypoints)
    project = Path(out_dir)
    check_out_dir(project, overwrite)
    project.mkdir(parents=True, exist_ok=True)

    view_names = list(VIEWS) if views == 2 else [view]
    columns = [v * len(KEYPOINTS) + KEYPOINTS.index(k) for v in range(views) for k in base_names]
    names = [f"{k}_{v}" for v in view_names for k in base_names] if views == 2 else list(base_names)
    root = np.random.SeedSequence(seed)
    arena_seq, labels_seq, *video_seqs = root.spawn(2 + n_videos)
    crf = DIFFICULTIES[difficulty].crf
    hw = (int(size[0]), int(size[1]))

    sessions: list[Session] = []
    first_truth: Poses | None = None
    for i, video_seq in enumerate(video_seqs):
        stem = f"session{i:02d}"
        rendered = render_video(
            video_seq, n_frames, hw, tuple(view_names), difficulty, fps, arena_seed=arena_seq
        )
        video_path = project / "videos" / f"{stem}.mp4"
        _write_video(video_path, rendered.frames, fps, crf)
        truth, truth_full, gt = _write_truth(project, stem, rendered, columns, names)
        kind = "labeled" if i == 0 else "unlabeled"
        sessions.append(Session(stem, kind, video_path, truth, truth_full))
        if i == 0:
            first_truth = gt

    for j in range(int(shifted_sessions)):
        stem = f"shift{j:02d}"
        shift_seq, video_seq = np.random.SeedSequence(seed, spawn_key=(SHIFT_STREAM, j)).spawn(2)
        change = draw_shift(np.random.default_rng(shift_seq), magnitude, kinds, hw)
        rendered = render_video(
            video_seq,
            n_frames,
            hw,
            tuple(view_names),
            difficulty,
            fps,
            arena_seed=arena_seq,
            shift=change,
        )
        video_path = project / "videos" / f"{stem}.mp4"
        _write_video(
            video_path, rendered.frames, fps, crf, change.lamp_tint if change.tinted else None
        )
        truth, truth_full, _ = _write_truth(project, stem, rendered, columns, names)
        sessions.append(Session(stem, "shifted", video_path, truth, truth_full, change))

    assert first_truth is not None
    videos = [s.video for s in sessions]
    stem = videos[0].stem
    labeled = _labeled_frame_indices(np.random.default_rng(labels_seq), n_frames, n_labeled)
    sessions[0] = replace(sessions[0], labeled_frames=labeled)
    wanted = {t + d for t in labeled for d in range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)}
    decoded = _decoded_frames(videos[0], wanted)
    folder = project / "labeled-data" / stem
    for t in sorted(wanted):
        _save_png(folder / f"img{t:05d}.png", decoded[t])

    rel = np.array([f"labeled-data/{stem}/img{t:05d}.png" for t in labeled], dtype=object)
    rows = first_truth.select_frames(np.array(labeled))
    labels = Poses(coords=rows.coords, keypoints=names, frames=rel, scorer=SCORER, is_labels=True)
    labels_path = project / "CollectedData.csv"
    write_poses(labels, labels_path)

    settings_path = project / SETTINGS_FILE
    atomic_write_text(settings_path, dump_settings(_settings(base_names, view_names)))
    sessions_path = None
    if shifted_sessions:
        sessions_path = project / SESSIONS_FILE
        atomic_write_text(sessions_path, sessions_json(project, sessions, seed, magnitude, kinds))
    return SyntheticProject(
        project_dir=project,
        videos=videos,
        labels=labels_path,
        settings=settings_path,
        ground_truth=[s.ground_truth for s in sessions],
        ground_truth_full=[s.ground_truth_full for s in sessions],
        keypoints=names,
        views=view_names if views == 2 else [],
        labeled_frames=labeled,
        sessions=sessions,
        sessions_file=sessions_path,
    )
