"""Predict videos with a model directory or an ensemble directory, writing the standard files.

For a model ``M`` and video ``v.mp4`` (``OUT`` defaults to ``M/videos``)::

    OUT/v.csv                        predictions (DeepLabCut / Lightning Pose layout)
    OUT/v_temporal_norm.csv, ...     per-frame metrics (see vidpose.predict.metrics)

For an ensemble directory each member writes into ``OUT/<member>/`` and ``OUT/v.csv`` is the
Kalman-smoothed ensemble (with ensemble median / variance and posterior variance columns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vidpose.io import write_poses
from vidpose.model_dir import model_members
from vidpose.predict.metrics import write_video_metrics
from vidpose.predict.predictor import PredictStats, load_model
from vidpose.smooth import run_smooth


def predict_videos(
    model_dir: str | Path,
    videos: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    reader: str | None = None,
    compile: bool | None = None,
    progress: bool = False,
    log: Callable[[str], object] = lambda _msg: None,
) -> dict[str, Path]:
    """Predict every video; returns video stem -> the final predictions table (smoothed for an
    ensemble). Options left None take the model's ``predict.*`` config."""
    model_dir = Path(model_dir)
    members, ensemble = model_members(model_dir)
    out_dir = Path(out_dir or (model_dir / "videos"))
    outputs: dict[str, list[Path]] = {}
    for member in members:
        model = load_model(member.path, device=device, precision=precision)
        if model.cfg.predict.compile if compile is None else compile:
            model.compile()
        member_out = out_dir / member.name if ensemble else out_dir
        for video in videos:
            stats: list[PredictStats] = []
            poses = model.predict_video(
                video, batch_size=batch_size, reader=reader, progress=progress, stats=stats
            )
            out = member_out / f"{Path(video).stem}.csv"
            write_poses(poses, out)
            write_video_metrics(poses, member.path, member_out, Path(video).stem)
            outputs.setdefault(Path(video).stem, []).append(out)
            st = stats[0]
            log(f"[green]wrote[/] {out}  ({st.frames} frames, {st.fps:,.0f} frames/s)")
    if not ensemble:
        return {stem: paths[0] for stem, paths in outputs.items()}
    final = {}
    for stem, paths in outputs.items():
        final[stem] = out_dir / f"{stem}.csv"
        run_smooth(paths, final[stem], smoothing="auto")
        log(f"[green]wrote[/] {final[stem]}  (ensemble of {len(paths)}, Kalman-smoothed)")
    return final
