"""``vidpose synthesize``: write a synthetic example project with ground truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import vidpose
from vidpose.cli._common import UsageError, int_type, say, working, writable_dir


def _even_size(text: str) -> int:
    value = int_type(32, 4096)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(
            f"expected an even number of pixels from 32 to 4096, got {text!r}"
        )
    return value


_even_size.__name__ = "an even size in pixels"

# Kept in step with vidpose.synthetic.shift (a test checks), so that --help loads no numpy.
SHIFT_KINDS = ("background", "lighting", "size", "contrast", "blur", "camera")
MAX_SHIFT = 2.0


def _shift(text: str) -> float:
    key = text.strip().lower()
    named = {"mild": 0.5, "strong": 1.0}
    if key in named:
        return named[key]
    try:
        value = float(key)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_SHIFT:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"expected mild, strong or a number from 0 to {MAX_SHIFT:g}, got {text!r}"
        )
    return value


_shift.__name__ = "a shift magnitude"


def _kinds(text: str) -> list[str]:
    names = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in names if k not in SHIFT_KINDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated factors from {','.join(SHIFT_KINDS)}, got {text!r}"
        )
    return names


_kinds.__name__ = "shift factors"

_EPILOG = """\
shifted sessions (--shifted N): unlabeled videos shift00.mp4, shift01.mp4, ... beside
session00.mp4 (labeled), session01.mp4, ...; the same rig on another day, with ground truth
for every frame (ground_truth/shiftNN.csv, shiftNN_full.csv) and each session's kind and
factor values in ground_truth/sessions.json. No labels come from them; semi-supervised
training uses them as unlabeled video (they are in videos/). Each factor's direction is
drawn per session from --seed; at magnitude m (mild 0.5, strong 1, S = the smaller side):
  background  floor blended with another kind of floor (tiles, bedding): mix min(1, m)
  lighting    lamp level 1 +- 0.4m, lamp gradient +-0.4m across the view, colour +-0.12m
  size        animal scale exp(+-0.3m)
  contrast    animal-floor grey difference times 1 +- 0.45m
  blur        Gaussian lens blur, sigma 2m S/256 px
  camera      zoom exp(+-0.12m), rotation +-8m deg, translation 0.08m S px
--shifted 0 (the default) writes the same project, byte for byte, as without these options.

multi-camera projects (--cameras N, N >= 2): the animal moves in 3D (world units mm, z up,
a 300 mm arena centred on the origin) and N calibrated cameras on a ring around it film it,
each with its own lens distortion. Written: videos/<session>_camI.mp4, labeled-data/
<session>_camI/, one CollectedData_camI.csv per camera (the same frames in every view; --labeled
frames spread over the sessions), calibration.toml (Anipose), vidpose.yaml (views,
calibration), ground_truth/<session>_3d.csv (every frame's 3D keypoints, mm) and
ground_truth/<session>_camI.csv (every frame's true pixels, hidden keypoints flagged).
`vidpose check` validates the layout; `vidpose train` trains one model over all cameras
(add model.losses=[pca_multiview,reprojection] for the cross-camera losses).
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "synthesize",
        help="write a synthetic example project with ground truth",
        description="Write a synthetic project (videos, labeled frames, CollectedData.csv,\n"
        "vidpose.yaml) with the true keypoints of every video frame in ground_truth/.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="project folder to create")
    p.add_argument(
        "--seed", type=int_type(0), default=0, help="random seed (same seed, same bytes)"
    )
    p.add_argument("--labeled", type=int_type(1), default=60, help="labeled frames (default 60)")
    p.add_argument("--videos", type=int_type(1), default=2, help="number of videos (default 2)")
    p.add_argument("--frames", type=int_type(1), default=600, help="frames per video (default 600)")
    p.add_argument(
        "--height", type=_even_size, default=256, help="frame height in pixels (even, 32-4096)"
    )
    p.add_argument(
        "--width", type=_even_size, default=256, help="frame width in pixels (even, 32-4096)"
    )
    p.add_argument(
        "--keypoints", type=int_type(1), default=None, help="number of keypoints (subset)"
    )
    p.add_argument(
        "--view", choices=["top", "side"], default=None, help="camera angle (default top)"
    )
    p.add_argument(
        "--difficulty",
        choices=["easy", "medium", "hard"],
        default="medium",
        help="how hard the synthetic animal is to track (occluders, clutter, motion), e.g. hard",
    )
    p.add_argument(
        "--views",
        type=int,
        choices=[1, 2],
        default=None,
        help="2: two synchronized views side by side (mirrored multiview)",
    )
    p.add_argument(
        "--cameras",
        type=int_type(2, 16),
        default=None,
        metavar="N",
        help="N separate calibrated cameras (2-16) with 3D ground truth (see below)",
    )
    p.add_argument(
        "--shifted",
        type=int_type(0),
        default=0,
        metavar="N",
        help="add N unlabeled sessions with a domain shift (shift00, ...; default 0)",
    )
    p.add_argument(
        "--shift",
        type=_shift,
        default=None,
        metavar="mild|strong|M",
        help=f"how strong the shift is: mild (0.5), strong (1, default) or 0-{MAX_SHIFT:g}",
    )
    p.add_argument(
        "--shift-kinds",
        type=_kinds,
        default=None,
        metavar="LIST",
        help=f"which factors shift (default all): {','.join(SHIFT_KINDS)}",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty OUT_DIR, replacing files of the same names",
    )
    p.set_defaults(handle=handle)
    return p


def handle(args: argparse.Namespace) -> int:
    from vidpose.synthetic import CONTEXT_FRAMES, select_keypoints

    writable_dir(args.out_dir, "OUT_DIR")
    if args.cameras is not None:
        given = [
            name
            for name, value in (("--view", args.view), ("--views", args.views))
            if value is not None
        ]
        given += ["--shifted"] if args.shifted else []
        if given:
            raise UsageError(f"{given[0]} is for single-camera projects; --cameras sets the views")
    most = args.frames - 2 * CONTEXT_FRAMES
    if args.cameras is not None and args.labeled > args.videos * most:
        raise UsageError(
            f"--labeled {args.labeled}: at most --videos x (--frames - {2 * CONTEXT_FRAMES}) = "
            f"{args.videos * most} (each labeled frame keeps {CONTEXT_FRAMES} neighbours on "
            "each side)"
        )
    if args.cameras is None and args.labeled > most:
        raise UsageError(
            f"--labeled {args.labeled}: at most --frames - {2 * CONTEXT_FRAMES} = {most} "
            f"(each labeled frame keeps {CONTEXT_FRAMES} neighbours on each side)"
        )
    n_keypoints = len(select_keypoints(None))
    if args.keypoints is not None and args.keypoints > n_keypoints:
        raise UsageError(
            f"--keypoints {args.keypoints}: the synthetic animal has {n_keypoints} keypoints"
        )
    if args.shifted == 0 and (args.shift is not None or args.shift_kinds is not None):
        given = "--shift" if args.shift is not None else "--shift-kinds"
        raise UsageError(f"{given} sets up shifted sessions; add them with --shifted N (N >= 1)")
    t0 = time.perf_counter()
    if args.cameras is not None:
        return _multicamera(args, t0)
    with working("synthesizing the project"):
        proj = vidpose.synthesize_project(
            args.out_dir,
            seed=args.seed,
            n_labeled=args.labeled,
            n_videos=args.videos,
            n_frames=args.frames,
            size=(args.height, args.width),
            n_keypoints=args.keypoints,
            view=args.view or "top",
            difficulty=args.difficulty,
            views=args.views or 1,
            shifted_sessions=args.shifted,
            shift=1.0 if args.shift is None else args.shift,
            shift_kinds=args.shift_kinds,
            overwrite=args.overwrite,
        )
    say(f"{proj.project_dir} in {time.perf_counter() - t0:.1f} s", "wrote synthetic project")
    if proj.sessions_file is not None:
        stems = ", ".join(s.stem for s in proj.shifted)
        say(f"{stems}; their shifts are in {proj.sessions_file}", "shifted sessions:")
    return 0


def _multicamera(args: argparse.Namespace, t0: float) -> int:
    from vidpose.synthetic import synthesize_multicamera_project

    with working(f"synthesizing a {args.cameras}-camera project"):
        proj = synthesize_multicamera_project(
            args.out_dir,
            cameras=args.cameras,
            seed=args.seed,
            n_labeled=args.labeled,
            n_videos=args.videos,
            n_frames=args.frames,
            size=(args.height, args.width),
            n_keypoints=args.keypoints,
            difficulty=args.difficulty,
            overwrite=args.overwrite,
        )
    say(f"{proj.project_dir} in {time.perf_counter() - t0:.1f} s", "wrote multi-camera project")
    say(f"{', '.join(proj.views)}; cameras in {proj.calibration.name}", "views:")
    return 0
