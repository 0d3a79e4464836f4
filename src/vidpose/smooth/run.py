"""File-level entry point for the CLI: read ensemble members, smooth, write one table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from vidpose.errors import ConfigError
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses
from vidpose.smooth.ensemble import align_members
from vidpose.smooth.multiview import smooth_multiview
from vidpose.smooth.singleview import smooth_poses


def parse_smoothing(value: str | float) -> Literal["auto"] | float:
    """``"auto"`` or a positive float (px^2 per frame), from a CLI string or a number."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        q = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--smoothing: expected 'auto' or a positive number (px^2/frame), got {value!r}"
        ) from None
    if not q > 0:
        raise ConfigError(f"--smoothing: expected a positive number (px^2/frame), got {value!r}")
    return q


def run_smooth(
    paths: Sequence[Path],
    out: Path,
    smoothing: str | float = "auto",
    mode: Literal["singleview", "multiview"] = "singleview",
    center: Literal["median", "mean"] = "median",
    view_matches: Sequence[Sequence[str]] | None = None,
    labels: Path | Poses | None = None,
) -> Poses:
    """Smooth the predictions tables ``paths`` (one per ensemble member) into ``out``, with
    the ensemble statistics (``x/y_ens_median`` or ``_mean``, ``x/y_ens_var``,
    ``x/y_posterior_var`` per keypoint) in :func:`ensemble_table_path` beside it.

    Args:
        paths: predictions tables of the same video (any readable format: CSV, DLC .h5).
        out: output table; its format comes from the extension; written atomically.
        smoothing: "auto" or a process noise variance, px^2 per frame.
        mode: "singleview", or "multiview" (matched keypoints share a 3-D latent; needs
            ``view_matches``).
        center: ensemble centre, "median" or "mean".
        view_matches: rows of keypoint names, one per view (vidpose.yaml ``view_matches``).
        labels: labelled frames (a table or its path, e.g. CollectedData.csv) to fit the
            multiview subspaces; None fits them to the ensemble centre.

    Returns:
        The smoothed Poses that were written.

    Raises:
        LabelsError: a table is unreadable, or the tables disagree on frames / keypoints.
        ConfigError: bad ``smoothing`` or ``mode``.
    """
    if mode not in ("singleview", "multiview"):
        raise ConfigError(f"--mode: expected 'singleview' or 'multiview', got {mode!r}")
    if mode == "multiview" and not view_matches:
        raise ConfigError(
            "--mode multiview needs view_matches (rows of one keypoint name per view, as in "
            "vidpose.yaml); none were given"
        )
    q = parse_smoothing(smoothing)
    paths = [Path(p) for p in paths]
    tables = [read_poses(p) for p in paths]
    lab = labels
    if mode == "multiview" and isinstance(labels, (str, Path)):
        lab = read_poses(Path(labels))
    written = smooth_members(
        tables, q, mode, center, view_matches, lab, names=[str(p) for p in paths]
    )
    out = Path(out)
    # The table itself holds x, y, likelihood only (what movement and every pose reader load);
    # the ensemble statistics go beside it, in a table laid out as Lightning Pose's and the
    # ensemble-kalman-smoother's outputs are.
    write_poses(without_keypoint_columns(written), out)
    write_poses(written, ensemble_table_path(out))
    return written


def smooth_members(
    members: Sequence[Poses],
    smoothing: Literal["auto"] | float,
    mode: Literal["singleview", "multiview"] = "singleview",
    center: Literal["median", "mean"] = "median",
    view_matches: Sequence[Sequence[str]] | None = None,
    labels: Poses | None = None,
    names: Sequence[str] | None = None,
) -> Poses:
    """:func:`run_smooth` on tables in memory (``smoothing`` as :func:`parse_smoothing`
    gives it; ``names`` for error messages): the smoothed poses with the ensemble statistics
    as keypoint columns, rounded as predictions are (1e-4 px: the full floats made these
    tables twice as large).

    Raises:
        LabelsError: the members disagree on frames or keypoints."""
    aligned = align_members(list(members), names=names)
    if mode == "multiview":
        smoothed = smooth_multiview(
            aligned, view_matches, labels=labels, smoothing=smoothing, center=center
        ).poses
    else:
        smoothed = smooth_poses(aligned, smoothing=smoothing, center=center)
    return smoothed.rounded()


def ensemble_table_path(out: str | Path) -> Path:
    """Where the ensemble statistics of the smoothed table ``out`` are written:
    ``<stem>_ensemble<suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}_ensemble{out.suffix}")


def without_keypoint_columns(poses: Poses) -> Poses:
    return Poses(
        coords=poses.coords,
        keypoints=list(poses.keypoints),
        frames=poses.frames,
        likelihood=poses.likelihood,
        scorer=poses.scorer,
        is_labels=poses.is_labels,
        frame_columns=dict(poses.frame_columns),
        fps=poses.fps,
        video=poses.video,
        skeleton=poses.skeleton,
    )
