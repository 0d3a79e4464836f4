"""Per-video quality metrics written beside the predictions: where a model is implausible.

For ``videos/<stem>.csv`` these are written as tables with one row per frame and one column
per keypoint (px):

* ``<stem>_temporal_norm.csv``: how far each keypoint moved since the previous frame;
* ``<stem>_pca_singleview_error.csv``: distance of each keypoint from the pose subspace fitted
  to the training labels (models trained with ``pca_singleview``);
* ``<stem>_pca_multiview_error.csv``: the same for the multiview subspace, one column per
  (body part, view) keypoint (models trained with ``pca_multiview``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidpose._atomic import atomic_path
from vidpose.io.csv_format import number_rows, quote_cell
from vidpose.io.poses import COORD_DECIMALS, Poses
from vidpose.losses.pca import (
    MultiviewPCA,
    PosePCA,
    multiview_reconstruction_error,
    pca_reconstruction_error,
)
from vidpose.losses.unsupervised import temporal_norm
from vidpose.model_dir import ModelDir


def video_metrics(poses: Poses, model_dir: Path | None) -> dict[str, pd.DataFrame]:
    """Metric name -> (frames x keypoints) table for one video's predictions."""
    frames = pd.Index(poses.frames, name="frame")
    out = {
        "temporal_norm": pd.DataFrame(
            temporal_norm(poses.coords), index=frames, columns=poses.keypoints
        )
    }
    info = ModelDir(model_dir).read_unsupervised() if model_dir is not None else {}
    if info.get("pose_pca"):
        pca = PosePCA.from_dict(info["pose_pca"])
        err = pca_reconstruction_error(poses.coords, pca)
        names = [poses.keypoints[i] for i in pca.keypoint_idx]
        out["pca_singleview_error"] = pd.DataFrame(err, index=frames, columns=names)
    if info.get("multiview_pca"):
        mv = MultiviewPCA.from_dict(info["multiview_pca"])
        err = multiview_reconstruction_error(poses.coords, mv)  # (N, M, V)
        names = [poses.keypoints[i] for i in mv.view_matches.reshape(-1)]
        out["pca_multiview_error"] = pd.DataFrame(
            err.reshape(len(err), -1), index=frames, columns=names
        )
    return out


def write_video_metrics(
    poses: Poses, model_dir: Path | None, out_dir: Path, stem: str
) -> list[Path]:
    """Write every metric table as ``out_dir/<stem>_<metric>.csv``; returns the paths."""
    paths = []
    for name, table in video_metrics(poses, model_dir).items():
        path = Path(out_dir) / f"{stem}_{name}.csv"
        with atomic_path(path) as tmp:
            _write_table(table, tmp)
        paths.append(path)
    return paths


def _write_table(table: pd.DataFrame, path: Path) -> None:
    """``table.to_csv(path, float_format="%.4f")`` in the same layout (the index's name, then
    the columns; NaN as an empty cell), without trailing zeros, in less than half the time
    (a 9,940 x 17 table: 0.08 s against pandas' 0.18 s on a 2-core CPU)."""
    values = np.round(table.to_numpy(dtype=np.float64), COORD_DECIMALS)
    header = ",".join(quote_cell(str(c)) for c in [table.index.name or "", *table.columns])
    index = [str(i) for i in table.index.tolist()]
    rows = number_rows(values)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\n")
        fh.write("".join(f"{i},{r}\n" for i, r in zip(index, rows)))


def summarize(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Median and 99th percentile of each metric over all frames and keypoints."""
    out = {}
    for name, t in tables.items():
        v = t.to_numpy().ravel()
        v = v[np.isfinite(v)]
        if v.size:
            out[f"{name}_median"] = float(np.median(v))
            out[f"{name}_p99"] = float(np.percentile(v, 99))
    return out
