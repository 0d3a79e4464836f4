"""vidpose: video-centric, semi-supervised animal pose estimation.

The public API, importable from the top level::

    read_poses, write_poses, Poses          tables of keypoints (vidpose.io)
    load_project, check_project             project folders (vidpose.project)
    synthesize_project                      synthetic projects with ground truth
    train                                   project -> model directory
    load_model                              model directory -> PoseModel (predict_video, ...)

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
    "load_project": "vidpose.project",
    "check_project": "vidpose.project",
    "synthesize_project": "vidpose.synthetic",
    "train": "vidpose.train",
    "load_model": "vidpose.predict",
    "PoseModel": "vidpose.predict",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidpose' has no attribute {name!r}")
