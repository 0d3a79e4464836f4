"""Synthetic multi-camera projects: the animal moving in 3D, filmed by N calibrated cameras.

The scene. World units are millimetres; ``z`` is up and the floor is ``z = 0``. The animal of
:mod:`vidpose.synthetic.body` (nose to tail base about :data:`BODY_MM`) walks the square arena
``|x|, |y| <= ARENA_MM / 2`` (a textured floor, a darker bench around it, a bright rim between
them). N cameras stand on a ring around the arena, :data:`ELEVATION_DEG` above it, looking at
its centre (:func:`~vidpose.geometry.ring_calibration`: jittered placement and intrinsics, mild
lens distortion). Each camera renders the same 3D body through its own projection, lens
included (:mod:`vidpose.synthetic.perspective`), with occlusion by depth; then its own lamp,
blur, sensor noise and passing occluders (objects close in front of that camera only) as in
the single-camera projects (``difficulty``), and H.264 compression.

What a labeller would label. In each view, a keypoint is labeled when its pixel shows its own
body part (or the floor) and lies inside the image; one hidden behind the body or an occluder,
or outside the image, is left empty, as in the single-camera projects.

Layout written (``<session>`` = ``session00``, ``session01``, ...; ``<view>`` = ``cam0``,
``cam1``, ...), Lightning Pose's multiview layout::

    videos/<session>_<view>.mp4                  one synchronized video per camera
    labeled-data/<session>_<view>/img<t:05d>.png the labeled frames and CONTEXT_FRAMES neighbours
                                                 on each side (decoded video frames)
    CollectedData_<view>.csv                     one label table per view: the same frames, rows
                                                 in the same order, in every view
    calibration.toml                             the cameras (Anipose format)
    vidpose.yaml                                 views, calibration, skeleton, flip pairs, PCA
    ground_truth/<session>_3d.csv                every frame: ``frame``, then ``<kp>_x, <kp>_y,
                                                 <kp>_z`` per keypoint, mm
                                                 (:func:`vidpose.io.read_points_3d`)
    ground_truth/<session>_<view>.csv            every frame, every keypoint's true pixel (x, y)
                                                 (hidden ones too); likelihood 1 where a labeller
                                                 would see it, 0 where not; keypoint columns
                                                 ``occluded`` (hidden inside the image) and
                                                 ``outside`` (outside it); predictions layout

Labeled frames are spread evenly over the sessions. The project is built in a folder beside
``out_dir`` and moved into place when complete.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpose._atomic import atomic_write_text, install_entries
from vidpose.errors import ConfigError
from vidpose.geometry import CALIBRATION_FILE, Calibration, ring_calibration, write_calibration
from vidpose.io import Points3D, Poses, write_points_3d, write_poses
from vidpose.io.ops import concat_poses
from vidpose.project.load import LABELED_DATA_DIR, LABELS_STEM
from vidpose.project.settings import SETTINGS_FILE, ProjectSettings, dump_settings
from vidpose.synthetic.body import (
    FLIP_PAIRS,
    KEYPOINTS,
    NON_PCA_KEYPOINTS,
    SKELETON,
    Body,
    Ellipsoid,
    pose_body,
    simulate_path,
)
from vidpose.synthetic.perspective import (
    Floor,
    camera_depth,
    camera_parts,
    draw_camera_parts,
    floor_image,
    pixel_rays,
)
from vidpose.synthetic.project import (
    _CHUNK,
    CONTEXT_FRAMES,
    DIFFICULTIES,
    SCORER,
    _decoded_frames,
    _labeled_frame_indices,
    _make_occluders,
    _save_png,
    _validate,
    _write_video,
    check_out_dir,
    select_keypoints,
)
from vidpose.synthetic.render import (
    BEYOND_GREY,
    draw_occluders,
    expose,
    keypoint_visibility,
    make_background,
    make_exposure,
    make_illumination,
    owner_table,
    smooth_noise,
)

UNITS = "mm"
"""The world units, recorded in the calibration's metadata and the 3D tables."""
ARENA_MM = 300.0
"""Side of the square arena, mm."""
BODY_MM = 100.0
"""The animal's body length (the ``body_px`` of :func:`~vidpose.synthetic.body.pose_body`), mm."""
ELEVATION_DEG = 35.0
"""The cameras' angle above the horizontal."""
MAX_CAMERAS = 16
SKY_GREY = 0.2
"""What a camera sees above the horizon (the room's far wall)."""
# The floor texture: the arena's texels over a square three arenas wide.
_ARENA_TEXELS = 192
_FLOOR_EXTENT_MM = 3 * ARENA_MM


@dataclass(frozen=True)
class Rig:
    """The cameras and what each sees of the empty arena; shared by a project's sessions.

    Attributes:
        calibration: the N cameras, named ``cam0`` ... in ring order.
        rays: per camera, (H, W, 2) float32 undistorted normalized ray of each pixel.
        backgrounds: per camera, (H, W) float32 the empty arena through that camera.
        illumination: per camera, (H, W) float32 its lamp's fall-off.
    """

    calibration: Calibration
    rays: list[np.ndarray]
    backgrounds: list[np.ndarray]
    illumination: list[np.ndarray]


def make_floor(rng: np.random.Generator) -> Floor:
    """The arena floor (the single-camera projects' texture) inside a darker bench."""
    n = round(_ARENA_TEXELS * _FLOOR_EXTENT_MM / ARENA_MM)
    texture = BEYOND_GREY + 0.04 * smooth_noise(rng, n, n, (6, 24))
    a = (n - _ARENA_TEXELS) // 2
    arena = slice(a, a + _ARENA_TEXELS)
    texture[arena, arena] = make_background(rng, _ARENA_TEXELS, _ARENA_TEXELS)
    rim = slice(a - 2, a + _ARENA_TEXELS + 2)
    edge = np.zeros((n, n), dtype=bool)
    edge[rim, rim] = True
    edge[arena, arena] = False
    texture[edge] = 0.45
    return Floor(np.clip(texture, 0.0, 1.0).astype(np.float32), _FLOOR_EXTENT_MM, SKY_GREY)


def make_rig(n_cameras: int, size: tuple[int, int], seed: int | np.random.SeedSequence = 0) -> Rig:
    """N cameras around the arena with images of ``size`` (height, width) px, and their views
    of the empty arena; every draw from ``seed``."""
    height, width = size
    streams = np.random.SeedSequence(seed) if isinstance(seed, int) else seed
    camera_seq, floor_seq, lamp_seq = streams.spawn(3)
    calibration = ring_calibration(
        n_cameras,
        (0.0, 0.0, 0.1 * BODY_MM),
        0.5 * ARENA_MM,
        image_size=(width, height),
        elevation_deg=ELEVATION_DEG,
        seed=int(camera_seq.generate_state(1)[0]),
        names=[f"cam{i}" for i in range(n_cameras)],
    )
    calibration = Calibration(calibration.cameras, {**calibration.metadata, "units": UNITS})
    floor = make_floor(np.random.default_rng(floor_seq))
    lamp_rng = np.random.default_rng(lamp_seq)
    rays = [pixel_rays(cam) for cam in calibration]
    return Rig(
        calibration=calibration,
        rays=rays,
        backgrounds=[floor_image(cam, r, floor) for cam, r in zip(calibration, rays)],
        illumination=[make_illumination(lamp_rng, height, width) for _ in calibration],
    )


def _to_world(body: Body) -> Body:
    """``body`` posed in the top-view frame (x right, y down the image, z up; a mirror frame)
    moved to the right-handed world: y flipped, the arena centred on the origin."""
    flip = np.array([1.0, -1.0, 1.0])
    offset = np.array([-ARENA_MM / 2, ARENA_MM / 2, 0.0])
    parts = [
        Ellipsoid(p.name, p.center * flip + offset, p.axes * flip[:, None], p.shade)
        for p in body.parts
    ]
    return Body(parts, body.keypoints * flip + offset, body.owners)


def pose_animal(rng: np.random.Generator, n_frames: int, fps: float) -> Body:
    """The animal walking the arena for ``n_frames`` frames, in world mm."""
    path = simulate_path(rng, n_frames, ARENA_MM, ARENA_MM, BODY_MM, fps)
    return _to_world(pose_body(path, rng, BODY_MM, fps))


@dataclass(frozen=True)
class CameraVideos:
    """One session seen by every camera of a rig.

    Attributes:
        frames: (V, T, H, W) uint8 grey images, cameras in the calibration's order.
        points_3d: (T, K, 3) float64 true world position of every keypoint, mm.
        keypoints_px: (V, T, K, 2) float64 their true image (x, y) in each view, px (lens
            included).
        visible: (V, T, K) bool, what a labeller would mark: inside the image and not hidden.
        inside: (V, T, K) bool, the keypoint's pixel is inside the image.
        names: the K keypoint names (:data:`~vidpose.synthetic.body.KEYPOINTS`).
    """

    frames: np.ndarray
    points_3d: np.ndarray
    keypoints_px: np.ndarray
    visible: np.ndarray
    inside: np.ndarray
    names: list[str]


def render_cameras(
    seed: int | np.random.SeedSequence,
    n_frames: int,
    rig: Rig,
    difficulty: str = "medium",
    fps: float = 30.0,
    clean: bool = False,
) -> CameraVideos:
    """Render one session of the animal through every camera of ``rig``.

    Args:
        seed: randomness of the motion, the occluders, lighting drift and noise.
        n_frames: frames T.
        rig: the cameras and the arena (:func:`make_rig`).
        difficulty: a key of :data:`~vidpose.synthetic.project.DIFFICULTIES`.
        fps: frame rate; motion is simulated in seconds.
        clean: no occluders, lighting drift, blur or noise (the geometry alone).
    """
    diff = DIFFICULTIES[difficulty]
    streams = np.random.SeedSequence(seed) if isinstance(seed, int) else seed
    motion_seq, occ_seq, light_seq = streams.spawn(3)
    body = pose_animal(np.random.default_rng(motion_seq), n_frames, fps)
    owners = owner_table(body, range(len(KEYPOINTS)))
    occluder_id = len(body.parts) + 1
    spine = KEYPOINTS.index("spine_mid")
    occ_rng = np.random.default_rng(occ_seq)
    light_rng = np.random.default_rng(light_seq)

    n_views, k = len(rig.calibration), len(KEYPOINTS)
    height, width = rig.backgrounds[0].shape
    frames = np.empty((n_views, n_frames, height, width), dtype=np.uint8)
    keypoints_px = np.empty((n_views, n_frames, k, 2))
    visible = np.zeros((n_views, n_frames, k), dtype=bool)
    inside = np.zeros((n_views, n_frames, k), dtype=bool)
    for v, cam in enumerate(rig.calibration):
        parts = camera_parts(body, cam)
        px = cam.project(body.keypoints)
        depth = camera_depth(cam, body.keypoints)
        keypoints_px[v] = px
        occluders = []
        if not clean:
            # the animal's length in px at the arena's centre sets the occluders' sizes
            body_px = BODY_MM * cam.matrix[0, 0] / float(np.linalg.norm(cam.position))
            occluders = _make_occluders(
                occ_rng, diff, n_frames, height, width, body_px, px[:, spine]
            )
        exposure = make_exposure(
            light_rng,
            rig.illumination[v],
            n_frames,
            fps,
            diff.gain_drift,
            diff.offset_drift,
            diff.blur,
            diff.noise_std,
        )
        for t0 in range(0, n_frames, _CHUNK):
            t1 = min(n_frames, t0 + _CHUNK)
            canvas = np.repeat(rig.backgrounds[v][None], t1 - t0, axis=0)
            zbuf = np.full(canvas.shape, -np.inf, dtype=np.float32)
            ids = np.zeros(canvas.shape, dtype=np.int16)
            draw_camera_parts(canvas, zbuf, ids, parts, rig.rays[v], t0)
            draw_occluders(canvas, zbuf, ids, occluders, t0, occluder_id)
            ins, vis = keypoint_visibility(
                ids, zbuf, px[t0:t1], depth[t0:t1], owners, 0.05 * BODY_MM
            )
            inside[v, t0:t1], visible[v, t0:t1] = ins, vis
            frames[v, t0:t1] = expose(canvas, t0, exposure, clean)
    return CameraVideos(frames, body.keypoints, keypoints_px, visible, inside, list(KEYPOINTS))


# --- the project ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiCameraProject:
    """What :func:`synthesize_multicamera_project` wrote.

    Attributes:
        project_dir: the project folder.
        views: camera names, in the calibration's order.
        sessions: session names, in order.
        keypoints: keypoint names (the same in every view).
        labels: per view, its ``CollectedData_<view>.csv``.
        calibration: ``calibration.toml``.
        settings: ``vidpose.yaml``.
        labeled_frames: per session, the labeled frame indices (the same in every view).
    """

    project_dir: Path
    views: list[str]
    sessions: list[str]
    keypoints: list[str]
    labels: dict[str, Path]
    calibration: Path
    settings: Path
    labeled_frames: dict[str, list[int]]

    def video(self, session: str, view: str) -> Path:
        return self.project_dir / "videos" / f"{session}_{view}.mp4"

    def ground_truth(self, session: str, view: str) -> Path:
        """Every frame's true pixels in ``view`` (hidden keypoints included, flagged)."""
        return self.project_dir / "ground_truth" / f"{session}_{view}.csv"

    def ground_truth_3d(self, session: str) -> Path:
        """Every frame's true 3D keypoints, mm (:func:`vidpose.io.read_points_3d`)."""
        return self.project_dir / "ground_truth" / f"{session}_3d.csv"


def _settings(keypoints: list[str], views: list[str]) -> ProjectSettings:
    present = set(keypoints)
    pca = [k for k in keypoints if k not in NON_PCA_KEYPOINTS]
    return ProjectSettings(
        skeleton=[(a, b) for a, b in SKELETON if {a, b} <= present],
        flip_pairs=[(a, b) for a, b in FLIP_PAIRS if {a, b} <= present],
        pca_keypoints=pca if len(pca) >= 3 else None,
        views=list(views),
        calibration=CALIBRATION_FILE,
    )


def _truth_2d(videos: CameraVideos, v: int, columns: list[int], names: list[str]) -> Poses:
    px = videos.keypoints_px[v][:, columns]
    vis, ins = videos.visible[v][:, columns], videos.inside[v][:, columns]
    return Poses(
        coords=px,
        keypoints=names,
        frames=np.arange(len(px)),
        likelihood=vis.astype(np.float64),
        scorer=SCORER,
        is_labels=False,
        keypoint_columns={
            "occluded": (ins & ~vis).astype(np.float64),
            "outside": (~ins).astype(np.float64),
        },
    )


def _write_session(
    tmp: Path,
    session: str,
    videos: CameraVideos,
    labeled: list[int],
    views: list[str],
    columns: list[int],
    fps: float,
    crf: int,
) -> tuple[list[str], dict[str, Poses]]:
    """Write one session's videos, ground truth and labeled frames (PNGs decoded from the
    videos) into ``tmp``; return the entries written and each view's label rows."""
    names = [videos.names[c] for c in columns]
    truth_3d = f"ground_truth/{session}_3d.csv"
    points = Points3D(
        videos.points_3d[:, columns], names, np.arange(len(videos.points_3d)), units=UNITS
    )
    write_points_3d(points, tmp / truth_3d)
    entries = [truth_3d]
    labels: dict[str, Poses] = {}
    wanted = {t + d for t in labeled for d in range(-CONTEXT_FRAMES, CONTEXT_FRAMES + 1)}
    for v, view in enumerate(views):
        video = f"videos/{session}_{view}.mp4"
        _write_video(tmp / video, videos.frames[v], fps, crf)
        truth = f"ground_truth/{session}_{view}.csv"
        gt = _truth_2d(videos, v, columns, names)
        write_poses(gt, tmp / truth)
        entries += [video, truth]
        if not labeled:
            continue
        folder = f"{LABELED_DATA_DIR}/{session}_{view}"
        decoded = _decoded_frames(tmp / video, wanted)
        for t in sorted(wanted):
            _save_png(tmp / folder / f"img{t:05d}.png", decoded[t])
        entries.append(folder)
        seen = gt.likelihood[labeled, :, None] == 1
        labels[view] = Poses(
            coords=np.where(seen, gt.coords[labeled], np.nan),
            keypoints=names,
            frames=np.array([f"{folder}/img{t:05d}.png" for t in labeled], dtype=object),
            scorer=SCORER,
            is_labels=True,
        )
    return entries, labels


def synthesize_multicamera_project(
    out_dir: str | Path,
    *,
    cameras: int = 3,
    seed: int = 0,
    n_labeled: int = 60,
    n_videos: int = 2,
    n_frames: int = 600,
    size: tuple[int, int] = (256, 256),
    n_keypoints: int | None = None,
    difficulty: str = "medium",
    fps: float = 30.0,
    overwrite: bool = False,
) -> MultiCameraProject:
    """Write a multi-camera project with 2D and 3D ground truth (see the module docstring).

    Args:
        out_dir: project folder; created if missing, must be empty unless ``overwrite``.
        cameras: number of cameras, 2 to :data:`MAX_CAMERAS`.
        seed: every byte written is a function of the arguments, this one included.
        n_labeled: labeled frames (each in every view), spread evenly over the sessions.
        n_videos: sessions; they share the rig and differ in motion, occluders and lighting.
        n_frames: frames per session.
        size: (height, width) of every camera's images, px; even, at least 32.
        n_keypoints: as for :func:`~vidpose.synthetic.synthesize_project`.
        difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
        fps: frame rate of the videos.
        overwrite: write into a non-empty ``out_dir``, replacing files of the same names.

    Raises:
        ConfigError: an argument is out of range.
        ProjectError: ``out_dir`` is a file, or is not empty and ``overwrite`` is False.
    """
    if isinstance(cameras, bool) or int(cameras) != cameras or not 2 <= cameras <= MAX_CAMERAS:
        raise ConfigError(f"cameras must be from 2 to {MAX_CAMERAS}, got {cameras!r}")
    _validate(1, n_videos, n_frames, size, "top", difficulty, 1, fps)
    most = n_videos * (n_frames - 2 * CONTEXT_FRAMES)
    if not 1 <= n_labeled <= most:
        raise ConfigError(
            f"n_labeled must be between 1 and n_videos x (n_frames - {2 * CONTEXT_FRAMES}) = "
            f"{most} (labeled frames need {CONTEXT_FRAMES} neighbours on each side), got "
            f"{n_labeled}"
        )
    names = select_keypoints(n_keypoints)
    columns = [KEYPOINTS.index(k) for k in names]
    project = Path(out_dir)
    check_out_dir(project, overwrite)

    root = np.random.SeedSequence(seed)
    rig_seq, labels_seq, *session_seqs = root.spawn(2 + n_videos)
    rig = make_rig(int(cameras), (int(size[0]), int(size[1])), rig_seq)
    views = rig.calibration.names
    sessions = [f"session{i:02d}" for i in range(n_videos)]
    per_session = [n_labeled // n_videos + (i < n_labeled % n_videos) for i in range(n_videos)]
    labels_rng = np.random.default_rng(labels_seq)
    crf = DIFFICULTIES[difficulty].crf

    project.parent.mkdir(parents=True, exist_ok=True)
    tmp = project.parent / f".{project.name}.synthesize-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        entries: list[str] = []
        rows: dict[str, list[Poses]] = {v: [] for v in views}
        labeled: dict[str, list[int]] = {}
        for session, seq, count in zip(sessions, session_seqs, per_session):
            videos = render_cameras(seq, n_frames, rig, difficulty, fps)
            labeled[session] = _labeled_frame_indices(labels_rng, n_frames, count) if count else []
            written, labels = _write_session(
                tmp, session, videos, labeled[session], views, columns, fps, crf
            )
            entries += written
            for view, table in labels.items():
                rows[view].append(table)
        for view in views:
            name = f"{LABELS_STEM}_{view}.csv"
            write_poses(concat_poses(rows[view]), tmp / name)
            entries.append(name)
        write_calibration(tmp / CALIBRATION_FILE, rig.calibration)
        atomic_write_text(tmp / SETTINGS_FILE, dump_settings(_settings(names, views)))
        entries += [CALIBRATION_FILE, SETTINGS_FILE]
        install_entries(tmp, project, entries)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MultiCameraProject(
        project_dir=project,
        views=views,
        sessions=sessions,
        keypoints=names,
        labels={v: project / f"{LABELS_STEM}_{v}.csv" for v in views},
        calibration=project / CALIBRATION_FILE,
        settings=project / SETTINGS_FILE,
        labeled_frames=labeled,
    )
