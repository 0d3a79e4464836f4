"""Labels and predictions tables: one :class:`Poses` record, many file formats.

Public API::

    read_poses(path, format=None) -> Poses        # format from content, then extension
    write_poses(poses, path, format=None) -> None # atomic; format from extension
    read_labels_folder(project_dir) -> Poses      # DeepLabCut labeled-data/<video>/ layout
    duplicate_frames(poses) -> list[(row, frame)]
    available_formats() -> {name: PoseFormat}

Formats live one per module (``csv_format``, ``dlc_h5``) and are registered in
:mod:`vidpose.io.registry`, whose docstring says how to add one.
"""

from vidpose.errors import LabelsError
from vidpose.io.dlc_folder import read_labels_folder
from vidpose.io.ops import concat_poses, duplicate_frames
from vidpose.io.poses import Poses
from vidpose.io.registry import (
    PoseFormat,
    available_formats,
    detect_format,
    read_poses,
    register_format,
    write_poses,
)

__all__ = [
    "LabelsError",
    "PoseFormat",
    "Poses",
    "available_formats",
    "concat_poses",
    "detect_format",
    "duplicate_frames",
    "read_labels_folder",
    "read_poses",
    "register_format",
    "write_poses",
]
