"""vidpose: video-centric, semi-supervised animal pose estimation.

The public API, importable from the top level::

    read_poses, write_poses, Poses          tables of keypoints (vidpose.io)
    output_format                           the table format an output path would get
    load_project, check_project, run_check  project folders (vidpose.project)
    import_sleap                            a project from SLEAP labels (.slp, .pkg.slp)
    synthesize_project                      synthetic projects with ground truth
    config_help                             every config key, its type and default
    train, train_ensemble                   project -> model (or ensemble) directory
    train_folds                             K-fold cross-validation -> CV directory (CVResult)
    run_sweep, write_sweep_report           one model per combination of values -> summary
    load_model                              model directory -> PoseModel (predict_video, ...)
    predict_videos                          model + videos -> prediction tables (PredictResult)
    predict_batch                           resumable batches, local GPUs or Ray (BatchReport)
    run_smooth                              ensemble predictions -> Kalman-smoothed table
    triangulate_tables, smooth_points_3d    per-view predictions -> 3D table (Points3D)
    read_points_3d, write_points_3d         3D tables (triangulations, 3D ground truth)
    evaluate                                report.html, outliers.csv and figures of a model
    extract_frames, read_outliers           video frames -> PNGs to label
    label_video, load_skeleton              predictions drawn on a video
    probe_video                             what a video file holds
    get_registry                            backbones, heads, losses, readers, formats
    run_demo                                the end-to-end demo
    export_model                            model directory -> ONNX file, checked against PyTorch

Heavy modules (torch, lightning) are imported on first use, so that ``import vidpose`` and
commands such as ``vidpose check`` stay quick.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Poses": "vidpose.io.poses",
    "read_poses": "vidpose.io",
    "write_poses": "vidpose.io",
    "output_format": "vidpose.io",
    "load_project": "vidpose.project",
    "check_project": "vidpose.project",
    "run_check": "vidpose.project",
    "import_sleap": "vidpose.project.sleap_import",
    "synthesize_project": "vidpose.synthetic",
    "config_help": "vidpose.config",
    "train": "vidpose.training",
    "train_ensemble": "vidpose.training.ensemble",
    "default_model_dir": "vidpose.training.run",
    "train_folds": "vidpose.training.cv",
    "CVResult": "vidpose.training.cv",
    "run_sweep": "vidpose.training.sweep",
    "SweepResult": "vidpose.training.sweep",
    "write_sweep_report": "vidpose.viz.sweep",
    "load_model": "vidpose.predict",
    "PoseModel": "vidpose.predict",
    "predict_videos": "vidpose.predict.run",
    "PredictResult": "vidpose.predict.run",
    "predict_batch": "vidpose.predict.batch",
    "BatchReport": "vidpose.predict.batch",
    "run_smooth": "vidpose.smooth",
    "triangulate_tables": "vidpose.geometry.tables",
    "smooth_points_3d": "vidpose.smooth.points3d",
    "Points3D": "vidpose.io.points3d",
    "read_points_3d": "vidpose.io.points3d",
    "write_points_3d": "vidpose.io.points3d",
    "evaluate": "vidpose.viz.evaluate",
    "extract_frames": "vidpose.viz.extract",
    "read_outliers": "vidpose.viz.outliers",
    "label_video": "vidpose.viz.labeled_video",
    "load_skeleton": "vidpose.viz.labeled_video",
    "find_settings_file": "vidpose.viz.labeled_video",
    "probe_video": "vidpose.video",
    "get_registry": "vidpose.registry",
    "run_demo": "vidpose.demo",
    "export_model": "vidpose.export",
    "ExportResult": "vidpose.export",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidpose' has no attribute {name!r}")
