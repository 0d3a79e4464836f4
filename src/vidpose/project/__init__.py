"""Project folders: ``CollectedData.csv`` + ``labeled-data/`` + ``videos/`` + ``vidpose.yaml``.

:func:`load_project` reads and validates one into a :class:`Project` (raising
:class:`~vidpose.errors.ProjectError` when it is unusable); :func:`check_project` reports every
problem at once; :func:`run_check` prints that report for ``vidpose check``.
"""

from vidpose.project.check import CheckReport, check_project, run_check
from vidpose.project.load import Problem, Project, find_label_files, find_videos, load_project
from vidpose.project.settings import (
    SETTINGS_FILE,
    ProjectSettings,
    dump_settings,
    load_settings,
    parse_settings,
)

__all__ = [
    "SETTINGS_FILE",
    "CheckReport",
    "Problem",
    "Project",
    "ProjectSettings",
    "check_project",
    "dump_settings",
    "find_label_files",
    "find_videos",
    "load_project",
    "load_settings",
    "parse_settings",
    "run_check",
]
