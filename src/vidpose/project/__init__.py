"""Project folders: ``CollectedData.csv`` + ``labeled-data/`` + ``videos/`` + ``vidpose.yaml``.

:func:`load_project` reads and validates one into a :class:`Project` (raising
:class:`~vidpose.errors.ProjectError` when it is unusable); :func:`check_project` reports every
problem at once; :func:`run_check` prints that report for ``vidpose check``.

Names are imported on first use, so that ``vidpose.project.settings`` (what a trained model's
network needs) loads without the label readers and pandas (a second of ``vidpose predict``'s
start-up).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CameraLayout": "vidpose.project.load",
    "CheckReport": "vidpose.project.check",
    "check_project": "vidpose.project.check",
    "run_check": "vidpose.project.check",
    "Problem": "vidpose.project.load",
    "Project": "vidpose.project.load",
    "find_label_files": "vidpose.project.load",
    "find_videos": "vidpose.project.load",
    "ImportResult": "vidpose.project.sleap_import",
    "import_sleap": "vidpose.project.sleap_import",
    "load_project": "vidpose.project.load",
    "SETTINGS_FILE": "vidpose.project.settings",
    "ProjectSettings": "vidpose.project.settings",
    "dump_settings": "vidpose.project.settings",
    "load_settings": "vidpose.project.settings",
    "parse_settings": "vidpose.project.settings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidpose.project' has no attribute {name!r}")
