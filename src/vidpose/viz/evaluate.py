"""``vidpose evaluate``: figures, outliers and one HTML report beside a model (or ensemble).

Writes into ``MODEL_DIR``::

    report.html                  everything below, self-contained (open it in any browser)
    outliers.csv                 frames worth labeling next, with the reason (vidpose.viz.outliers)
    evaluation/*.png             each figure of the report as a file

Labeled frames (from ``predictions_labeled.csv`` and the project's labels; for an ensemble, the
members' median): per-keypoint error, error vs confidence, the worst held-out frames.
Videos: every ``MODEL_DIR/videos/<stem>.csv`` (or the ``videos`` given, predicted first when
their predictions are missing): traces with flagged frames, confidence histogram, metrics.
A multi-camera model (views and a calibration) adds the labeled frames in 3D and, per session
of its views' videos, the session in 3D (:mod:`vidpose.viz.evaluate3d`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vidpose._atomic import atomic_path
from vidpose.errors import VidposeError
from vidpose.io import read_poses
from vidpose.io.poses import Poses
from vidpose.model_dir import LP_SET_NAMES, ModelDir, model_members
from vidpose.predict.batch import REPORT_CSV
from vidpose.predict.metrics import video_metrics
from vidpose.predict.sessions import ModelCameras, model_cameras
from vidpose.viz import plots
from vidpose.viz.evaluate3d import is_points3d_table, labeled_3d_section, session_sections
from vidpose.viz.outliers import (
    CRITERIA_TEXT,
    FrameScores,
    frame_scores,
    select_outliers,
    write_outliers,
)
from vidpose.viz.report import Figure, Section, write_report

# Files in MODEL/videos that are metric tables (or an ensemble's statistics), not predictions.
METRIC_SUFFIXES = ("_temporal_norm", "_pca_singleview_error", "_pca_multiview_error", "_ensemble")
WORST_FRAMES = 8


@dataclass
class EvaluateResult:
    """Paths written by :func:`evaluate`."""

    report: Path
    outliers: Path
    figures: list[Path] = field(default_factory=list)
    n_outliers: int = 0


def prediction_tables(videos_dir: Path) -> list[Path]:
    """Prediction CSVs in ``videos_dir`` (not the per-video metric tables, the report of
    `vidpose predict`, nor a multi-camera session's 3D table)."""
    if not videos_dir.is_dir():
        return []
    return sorted(
        p
        for p in videos_dir.glob("*.csv")
        if not p.stem.endswith(METRIC_SUFFIXES)
        and p.name != REPORT_CSV
        and not is_points3d_table(p)
    )


def _fmt(v: float | None, unit: str = " px") -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.2f}{unit}"


class _Collector:
    """Saves each figure as a PNG and keeps it for the report."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: list[Path] = []

    def add(self, fig, name: str, caption: str) -> Figure:
        png = plots.figure_png(fig)
        path = self.folder / f"{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        self.paths.append(path)
        return Figure(png, caption, alt=name)


def labeled_split(pred: Poses) -> np.ndarray:
    """Each labeled prediction's split as train / val / test: from the Lightning Pose ``set``
    column vidpose writes (train / validation / test), or the ``split`` column of older model
    directories; "all" when there is neither."""
    cols = pred.frame_columns
    if "set" in cols:
        ours = {lp: mine for mine, lp in LP_SET_NAMES.items()}
        return np.asarray([ours.get(str(v), str(v)) for v in cols["set"]], dtype=object)
    if "split" in cols:
        return np.asarray(cols["split"], dtype=object)
    return np.full(len(pred.frames), "all", dtype=object)


def _labeled_predictions(members: list[ModelDir]) -> tuple[Poses, str] | None:
    """predictions_labeled.csv of one model, or the members' median for an ensemble."""
    tables = [m.labeled_predictions for m in members]
    tables = [t for t in tables if t.exists()]
    if not tables:
        return None
    members = [read_poses(t) for t in tables]
    first = members[0]
    if len(members) == 1:
        return first, "the model"
    coords = np.stack([m.coords for m in members])
    lk = np.stack([m.likelihood for m in members])
    pred = Poses(
        coords=np.nanmedian(coords, axis=0),
        likelihood=np.nanmean(lk, axis=0),
        keypoints=first.keypoints,
        frames=first.frames,
        scorer=first.scorer,
        is_labels=False,
        frame_columns=first.frame_columns,
    )
    return pred, f"the median of {len(tables)} ensemble members"


def labeled_section(
    members: list[ModelDir],
    figs: _Collector,
    log: Callable,
    more: list[Section] | None = None,
    cameras: ModelCameras | None = None,
) -> Section:
    """Section on the labeled frames: error per keypoint, vs confidence, worst frames. For a
    multi-camera project, the labeled frames in 3D go to ``more``
    (:func:`vidpose.viz.evaluate3d.labeled_3d_section`; ``cameras``: the model's)."""
    from vidpose.data.labeled import read_image_rgb
    from vidpose.project import load_project

    sec = Section("Labeled frames", "labeled")
    got = _labeled_predictions(members)
    record = members[0].read_record()
    if got is None:
        sec.notes.append("No predictions_labeled.csv in the model directory: nothing to show.")
        return sec
    pred, who = got
    try:
        project = load_project(record.project)
    except (VidposeError, OSError) as exc:
        sec.notes.append(f"The project {record.project} cannot be read ({exc}); no labels.")
        return sec
    labels = project.labels
    row_of = {str(f): i for i, f in enumerate(labels.frames)}
    rows = [row_of.get(str(f)) for f in pred.frames]
    keep = [i for i, r in enumerate(rows) if r is not None]
    if not keep:
        sec.notes.append("The labeled predictions do not match the project's label rows.")
        return sec
    lab = labels.coords[[rows[i] for i in keep]]
    pc = pred.coords[keep]
    lk = pred.likelihood[keep]
    split = labeled_split(pred)[keep]
    err = np.linalg.norm(pc - lab, axis=2)
    kp = pred.keypoints
    for name in ("train", "val", "test"):
        e = err[split == name]
        if e.size:
            sec.kpis.append((_fmt(float(np.nanmean(e))), f"{name} mean error ({len(e)} frames)"))
    sec.notes.append(
        f"Predictions are {who}'s, on every labeled frame; errors are in pixels of the original "
        f"images. Held-out frames (test, else validation) are what says how the model will do "
        f"on new data; the training frames were seen during training."
    )
    sec.items.append(
        figs.add(
            plots.plot_keypoint_errors(err, split, kp),
            "labeled_keypoint_errors",
            "Pixel error per keypoint on held-out frames (boxes: quartiles; whiskers: 1.5 IQR; "
            "dots: single frames), red diamond: training-set median. A keypoint whose box sits "
            "far above its training median generalises poorly: label more frames showing it.",
        )
    )
    sec.items.append(
        figs.add(
            plots.plot_error_vs_confidence(err, lk, split, kp),
            "labeled_error_vs_confidence",
            "Each dot is one keypoint on one held-out frame. Confidence is useful when the "
            "black median line falls from left to right: large errors should come with low "
            "confidence.",
        )
    )
    held = np.flatnonzero(split == "test")
    if held.size == 0:
        held = np.flatnonzero(split == "val")
    if held.size:
        with np.errstate(all="ignore"):
            frame_err = np.nanmean(err[held], axis=1)
        order = held[np.argsort(-np.nan_to_num(frame_err, nan=-1))][:WORST_FRAMES]
        images, titles = [], []
        for i in order:
            path = project.image_paths[rows[keep[i]]]
            images.append(read_image_rgb(path))
            titles.append(
                f"{Path(path).parent.name}/{Path(path).name} ({split[i]})\n"
                f"mean error {np.nanmean(err[i]):.1f} px, worst "
                f"{kp[int(np.nanargmax(err[i]))]} {np.nanmax(err[i]):.1f} px"
            )
        sec.items.append(
            figs.add(
                plots.plot_worst_frames(images, lab[order], pc[order], titles, kp),
                "labeled_worst_frames",
                "The held-out frames with the largest mean error. + is the label, o the "
                "prediction, joined by a line in the keypoint's colour. Look for swapped "
                "left/right keypoints, occlusions and labeling mistakes.",
            )
        )
    table = pd.DataFrame(
        {
            "keypoint": kp,
            **{
                f"{name} median px": np.nanmedian(err[split == name], axis=0)
                for name in ("train", "val", "test")
                if (split == name).any()
            },
            "held-out p95 px": np.nanpercentile(err[held], 95, axis=0) if held.size else np.nan,
        }
    )
    sec.items += ["Error per keypoint", table]
    log(f"labeled frames: {len(keep)} rows")
    if more is not None:
        sec3d = labeled_3d_section(
            project,
            pc,
            lk,
            [rows[i] for i in keep],
            split,
            cameras or ModelCameras(),
            [tuple(e) for e in record.skeleton] or None,
            figs.add,
            who,
        )
        if sec3d is not None:
            more.append(sec3d)
            log("labeled frames in 3D")
    return sec


def video_section(
    stem: str,
    poses: Poses,
    scores: FrameScores,
    figs: _Collector,
    z_threshold: float,
    min_likelihood: float,
    outliers: pd.DataFrame,
    shown_as: str | None = None,
) -> Section:
    """Section on one video's predictions."""
    sec = Section(f"Video {stem}", f"video-{stem}")
    n = poses.n_frames
    lk = poses.likelihood
    sec.kpis.append((f"{n:,}", "frames"))
    if lk is not None:
        sec.kpis.append((f"{float(np.nanmedian(lk)):.2f}", "median confidence"))
        low = float(np.mean(~(lk >= min_likelihood)))
        sec.kpis.append((f"{100 * low:.1f}%", f"keypoint-frames below {min_likelihood:g}"))
    for c in scores.z:
        flagged = int(scores.flagged(c, z_threshold).sum())
        sec.kpis.append((f"{flagged}", f"frames flagged: {CRITERIA_TEXT[c]}"))
    sec.notes.append(
        "A frame is flagged for a criterion when its worst keypoint is more than "
        f"{z_threshold:g} robust standard deviations (median absolute deviation, floored at "
        "2 px) above the video's median: temporal jump = moved away and back between "
        "neighbouring frames (or, at half weight, far in one frame); off the pose subspace = "
        "the pose is unlike any labeled pose; ensemble disagrees = the members' spread; low "
        "confidence = 1 - likelihood."
    )
    sec.items.append(
        figs.add(
            plots.plot_traces(poses, scores, z_threshold, stem),
            f"video_{stem}_traces",
            "Top rows: the temporal norm (how far the fastest keypoint moved since the "
            "previous frame) and each other criterion's worst keypoint per frame, with the "
            "frames each criterion flags shaded (a temporal jump counts fully only when a "
            "keypoint moves away and back, so a fast real movement is rarely flagged). Then "
            "one row per keypoint: x (solid) and y (dashed) relative to their median, the "
            "confidence as a grey line on the right axis, and red bands where any criterion "
            "(low confidence included) flags the frame. Smooth traces with high confidence are "
            "what a good model gives.",
        )
    )
    sec.items.append(
        figs.add(
            plots.plot_confidence(poses, min_likelihood),
            f"video_{stem}_confidence",
            "Left: every keypoint's confidence on every frame (log counts). Right: per keypoint, "
            "the share of frames below the threshold: keypoints that are often occluded or "
            "hard to see stand out.",
        )
    )
    mine = outliers[outliers["video"].astype(str) == (shown_as or stem)]
    if len(mine):
        sec.items += [f"Frames to label next ({len(mine)})", mine.drop(columns=["video"])]
    return sec


def _resolve_predictions(
    model_dir: Path, videos: Sequence[Path] | None, predict_missing: bool, device: str, log
) -> dict[str, tuple[Path, Path | None]]:
    """name -> (predictions table, video path if known); the name is the video's stem, or
    the output name `vidpose predict` gives videos whose stems collide."""
    out: dict[str, tuple[Path, Path | None]] = {}
    videos_dir = ModelDir(model_dir).videos
    if not videos:
        for table in prediction_tables(videos_dir):
            out[table.stem] = (table, None)
        return out
    from vidpose.predict.run import normalized_path, output_stems, predict_videos, read_sources

    names = output_stems(videos)
    # Outputs named in an earlier call (`vidpose predict` records which video each came from).
    earlier = {video: stem for stem, video in read_sources(videos_dir).items()}
    names.update(
        {
            Path(v): earlier[normalized_path(Path(v))]
            for v in videos
            if normalized_path(Path(v)) in earlier
        }
    )
    missing = []
    for v in videos:
        v = Path(v)
        table = videos_dir / f"{names[v]}.csv"
        if table.exists():
            out[names[v]] = (table, v)
        elif v.suffix.lower() == ".csv" and v.exists():
            out[names[v]] = (v, None)
        elif not v.exists():
            raise VidposeError(f"video {v} does not exist")
        else:
            missing.append(v)
    if missing:
        if not predict_missing:
            raise VidposeError(
                f"no predictions for {', '.join(map(str, missing))} in {videos_dir}; run "
                f"`vidpose predict {model_dir} VIDEO` first"
            )
        done = predict_videos(
            model_dir, missing, device=device, log=log, names={v: names[v] for v in missing}
        )
        done.raise_failures()
        for v in missing:
            out[names[v]] = (done.outputs[v], v)
    return out


def evaluate(
    model_dir: str | Path,
    videos: Sequence[str | Path] | None = None,
    *,
    n_outliers: int = 20,
    z_threshold: float = 5.0,
    min_likelihood: float = 0.9,
    predict_missing: bool = True,
    device: str = "auto",
    log: Callable[[str], object] = lambda _msg: None,
) -> EvaluateResult:
    """Write report.html, outliers.csv and evaluation/*.png into ``model_dir``.

    Args:
        model_dir: a model directory, or an ensemble directory (``vidpose train --seeds``).
        videos: videos (or prediction tables) to include; default: every prediction table in
            ``model_dir/videos``. Videos without predictions are predicted first.
        n_outliers: rows of outliers.csv.
        z_threshold: robust z-score above which a frame is flagged (see vidpose.viz.outliers).
        min_likelihood: confidence threshold used in the confidence figures.
    """
    model_dir = Path(model_dir)
    members, _ = model_members(model_dir)
    cameras = model_cameras(model_dir)  # a multi-camera model's views and calibration
    target = ModelDir(model_dir)
    figs = _Collector(target.evaluation)
    labeled_3d: list[Section] = []
    sections = [labeled_section(members, figs, log, labeled_3d, cameras), *labeled_3d]

    tables = _resolve_predictions(
        model_dir, [Path(v) for v in videos] if videos else None, predict_missing, device, log
    )
    per_video: dict[str, FrameScores] = {}
    loaded: dict[str, Poses] = {}
    names: dict[str, str] = {}
    for stem, (table, video) in tables.items():
        from vidpose.smooth.run import ensemble_table_path

        stats_table = ensemble_table_path(table)  # an ensemble's table with its statistics
        poses = read_poses(stats_table if stats_table.exists() else table)
        if poses.is_labels:
            raise VidposeError(f"{table}: is a labels table (no likelihood), not predictions")
        loaded[stem] = poses
        per_video[stem] = frame_scores(poses, video_metrics(poses, members[0].path))
        names[stem] = str(video) if video is not None else stem
    outliers = select_outliers(
        {names[s]: sc for s, sc in per_video.items()}, n_outliers, z_threshold=z_threshold
    )
    outliers_path = write_outliers(outliers, target.outliers)
    for stem, poses in loaded.items():
        sections.append(
            video_section(
                stem,
                poses,
                per_video[stem],
                figs,
                z_threshold,
                min_likelihood,
                outliers,
                shown_as=names[stem],
            )
        )
        log(f"video {stem}: {poses.n_frames} frames")
    skeleton = [tuple(e) for e in members[0].read_record().skeleton] or None
    sections += session_sections(
        {stem: (poses, tables[stem][0]) for stem, poses in loaded.items()},
        cameras,
        skeleton,
        figs.add,
        log,
    )
    if not loaded:
        sections.append(
            Section(
                "Videos",
                "videos",
                notes=[
                    f"No video predictions in {target.videos}: run `vidpose predict "
                    f"{model_dir} VIDEO` or `vidpose evaluate {model_dir} --video VIDEO`."
                ],
            )
        )
    sections.append(_model_section(model_dir, members, figs))
    record = members[0].read_record()
    subtitle = [
        f"model: {model_dir.resolve()}"
        + (f" (ensemble of {len(members)})" if len(members) > 1 else ""),
        f"project: {record.project or '?'}",
        f"keypoints: {len(record.keypoints)}; outliers: {len(outliers)} frames in "
        f"{outliers_path.name}",
    ]
    report = write_report(target.report, f"vidpose report — {model_dir.name}", subtitle, sections)
    return EvaluateResult(report, outliers_path, figs.paths, len(outliers))


def _model_section(model_dir: Path, members: list[ModelDir], figs: _Collector) -> Section:
    """Metrics of each member, the unsupervised losses' activity, and the configuration."""
    sec = Section("Model and configuration", "model")
    rows = []
    activity: list[dict[str, object]] = []
    for m in members:
        if not m.metrics_path.exists():
            continue
        metrics = m.read_metrics()
        for name, a in metrics.get("unsupervised", {}).items():
            activity.append(
                {
                    "model": m.name,
                    "loss": name,
                    "active terms %": 100 * float(a["active_fraction"]),
                    "counted terms %": 100 * float(a["counted_fraction"]),
                    "weighted / supervised": float(a["relative_size"]),
                }
            )
        sec.notes += list(metrics.get("warnings", []))
        row: dict[str, object] = {"model": m.name}
        for split in ("train", "val", "test"):
            s = metrics.get(split, {})
            for k in ("mean", "median", "p95"):
                if f"pixel_error_{k}" in s:
                    row[f"{split} {k} px"] = float(s[f"pixel_error_{k}"])
        for k in ("train_seconds", "steps"):
            if k in metrics:
                row[k] = float(metrics[k])
        rows.append(row)
    if rows:
        sec.items += ["Pixel error by split", pd.DataFrame(rows)]
    if activity:
        sec.items += ["Unsupervised losses: how much they acted", pd.DataFrame(activity)]
        summary = members[0].read_metrics().get("unsupervised", {})
        if summary:
            sec.items.append(
                figs.add(
                    plots.plot_loss_activity(summary),
                    "unsupervised_activity",
                    "Each unsupervised loss per epoch: the share of its terms whose hinge was "
                    "active (a loss below the dotted 1% line barely trains the model) and its "
                    f"weighted size relative to the supervised loss ({members[0].name}).",
                )
            )
    cfg = members[0].config
    if cfg.exists():
        sec.items.append("Configuration (config.yaml)")
        sec.preformatted = cfg.read_text()
    return sec
