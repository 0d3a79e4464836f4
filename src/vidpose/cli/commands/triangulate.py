"""``vidpose triangulate``: per-view 2D predictions of one session -> a 3D table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vidpose.cli._common import (
    UsageError,
    add_3d_options,
    need_file,
    say,
    smoothing_type,
    working,
    writable_file,
)

_EPILOG = """\
examples:
  vidpose triangulate calibration.toml top=preds/s0_top.csv side=preds/s0_side.csv \\
      front=preds/s0_front.csv --out s0_3d.csv
  vidpose triangulate my-rig preds/session01_cam0.csv preds/session01_cam1.csv \\
      preds/session01_cam2.csv --out session01_3d.csv --smooth

The 3D table (CSV): a metadata line '# vidpose points3d {"units": ..., "views": [...]}', then
frame and, per keypoint, <kp>_x, <kp>_y, <kp>_z (world units of the calibration),
<kp>_error_px (mean reprojection error over the views used), <kp>_n_views and <kp>_views (the
views used, joined by '+'). Read it with vidpose.read_points_3d, or pandas.read_csv(path,
comment="#"). A view is left out of a point when it has no 2D point there, its likelihood is
below --min-confidence, or it reprojects further than --outlier-px while more than 2 views
remain.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "triangulate",
        help="triangulate per-view 2D predictions of one session into 3D",
        description="Read one session's predictions from each camera (any table format vidpose\n"
        "reads), check that they have the same keypoints and frames, triangulate every keypoint\n"
        "in every frame (lens distortion undone, views weighted by likelihood, outlier views\n"
        "dropped), write the 3D table and print how well the views agree.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        type=Path,
        metavar="PROJECT_OR_CALIBRATION",
        help="the cameras: an Anipose calibration.toml, or a multi-camera project folder whose "
        "vidpose.yaml names it, e.g. my-rig/calibration.toml or my-rig",
    )
    p.add_argument(
        "tables",
        nargs="+",
        metavar="VIEW=TABLE",
        help="each view's predictions of the session, e.g. top=preds/s0_top.csv; VIEW= may be "
        "left out when the file name names the camera as a _-separated token "
        "(preds/session01_cam0.csv is view cam0); at least 2 views",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="OUT.csv",
        help="the 3D table to write (CSV, replaced atomically), e.g. --out s0_3d.csv",
    )
    add_3d_options(p)
    p.add_argument(
        "--smooth",
        action="store_true",
        help="Kalman-smooth the 3D trajectories, trusting frames by their reprojection error "
        "and number of views (gaps are not filled), e.g. --smooth",
    )
    p.add_argument(
        "--smoothing",
        type=smoothing_type,
        default="auto",
        metavar="auto|Q",
        help="with --smooth: auto (per keypoint, max. marginal likelihood; the default) or a "
        "process variance in world units^2 per frame, e.g. --smoothing 0.5",
    )
    p.add_argument(
        "--units",
        default=None,
        help="world units recorded in the table (default: the calibration's metadata 'units', "
        "e.g. mm for synthetic projects), e.g. --units mm",
    )
    p.add_argument(
        "--figure",
        type=Path,
        default=None,
        metavar="OUT.png",
        help="also draw the trajectories: a few evenly spaced 3D poses (with the skeleton of "
        "the project's vidpose.yaml when PROJECT_OR_CALIBRATION is a project) and each "
        "keypoint's x, y, z over time, e.g. --figure s0_3d.png",
    )
    p.set_defaults(handle=handle)
    return p


def read_cameras(source: Path, what: str = "PROJECT_OR_CALIBRATION"):
    """The cameras of a calibration file, or of a project folder's vidpose.yaml (``what``:
    the argument, for messages)."""
    from vidpose.errors import ConfigError
    from vidpose.geometry import read_calibration
    from vidpose.project.settings import SETTINGS_FILE, load_calibration, load_settings

    if source.is_dir():
        calibration = load_calibration(source, load_settings(source))
        if calibration is None:
            raise UsageError(
                f"{what} {source}: its {SETTINGS_FILE} names no calibration; "
                "add 'calibration: calibration.toml' or pass the calibration file itself"
            )
        return calibration
    need_file(source, what)
    try:
        return read_calibration(source)
    except ConfigError as exc:
        raise UsageError(f"{what} {exc}") from None


def parse_tables(tokens: list[str], cameras: list[str]) -> dict[str, Path]:
    """``VIEW=TABLE`` (or ``TABLE`` whose name names a camera) -> {view: path}; UsageError for
    an unknown or repeated view, or a file that is missing."""
    from vidpose.project.multicamera import split_view

    out: dict[str, Path] = {}
    for token in tokens:
        view, sep, rest = token.partition("=")
        if sep and view in cameras:
            path = Path(rest)
        elif sep and not Path(token).exists():
            raise UsageError(
                f"VIEW=TABLE {token}: {view!r} is not a camera of the calibration "
                f"(cameras: {', '.join(cameras)})"
            )
        else:
            path = Path(token)
            found = split_view(path.stem, cameras)
            if found is None:
                raise UsageError(
                    f"TABLE {token}: its name names no camera ({', '.join(cameras)}); write "
                    f"VIEW=TABLE, e.g. {cameras[0]}={token}"
                )
            view = found[1]
        if view in out:
            raise UsageError(f"VIEW=TABLE {token}: view {view} is given twice ({out[view]})")
        out[view] = need_file(path, f"TABLE of view {view}")
    if len(out) < 2:
        raise UsageError(f"VIEW=TABLE: at least 2 views are needed, got {len(out)}")
    return out


def handle(args: argparse.Namespace) -> int:
    import vidpose
    from vidpose.smooth import smooth_points_3d

    if args.out.suffix.lower() != ".csv":
        raise UsageError(f"--out {args.out}: the 3D table is a CSV file; name it e.g. s0_3d.csv")
    writable_file(args.out, "--out")
    if args.figure is not None:
        if args.figure.suffix.lower() != ".png":
            raise UsageError(f"--figure {args.figure}: the figure is a PNG; name it e.g. s0_3d.png")
        writable_file(args.figure, "--figure")
    calibration = read_cameras(args.source)
    tables = parse_tables(args.tables, calibration.names)
    clobbered = [str(p) for p in tables.values() if p.resolve() == args.out.resolve()]
    if clobbered:
        raise UsageError(f"--out {args.out}: is one of the input tables; choose a new name")
    if args.smoothing != "auto" and not args.smooth:
        raise UsageError("--smoothing sets up 3D smoothing; add --smooth")

    def smoother(points):
        return smooth_points_3d(points, smoothing=args.smoothing)

    t0 = time.perf_counter()
    with working("triangulating"):
        result = vidpose.triangulate_tables(
            calibration,
            tables,
            args.out,
            outlier_px=args.outlier_px,
            min_confidence=args.min_confidence,
            units=args.units,
            smoother=smoother if args.smooth else None,
        )
    points = result.points
    smoothed = ", smoothed in 3D" if args.smooth else ""
    say(
        f"{args.out}  ({points.n_frames} frames x {len(points.keypoints)} keypoints from "
        f"{len(points.views)} views: {', '.join(points.views)}{smoothed}; "
        f"{time.perf_counter() - t0:.1f} s)",
        "wrote",
    )
    for line in result.summary.lines():
        say(line)
    if args.figure is not None:
        from vidpose.viz.plots3d import write_points_3d_figure

        skeleton = vidpose.load_skeleton(args.source) if args.source.is_dir() else None
        write_points_3d_figure(points, args.figure, skeleton=skeleton)
        say(str(args.figure), "wrote")
    return 0
