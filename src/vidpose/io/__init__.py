"""Labels and predictions tables: one :class:`Poses` record, many file formats.

Public API::

    read_poses(path, format=None) -> Poses        # format from content, then extension
    write_poses(poses, path, format=None) -> None # atomic; format from extension
    read_labels_folder(project_dir) -> Poses      # DeepLabCut labeled-data/<video>/ layout
    duplicate_frames(poses) -> list[(row, frame)]
    FORMATS                                       # the format registry
    read_points_3d(path) -> Points3D              # 3D tables: triangulations, 3D truth
    write_points_3d(points, path) -> None         # (vidpose.io.points3d; atomic)

Formats live one per module (``csv_format``, ``dlc_h5``) and are registered in
:mod:`vidpose.io.registry`, whose docstring says how to add one.
"""

from vidpose.errors import LabelsError
from vidpose.io.dlc_folder import read_labels_folder
from vidpose.io.ops import concat_poses, duplicate_frames
from vidpose.io.points3d import Points3D, read_points_3d, write_points_3d
from vidpose.io.poses import Poses
from vidpose.io.registry import (
    FORMATS,
    PoseFormat,
    detect_format,
    output_format,
    read_poses,
    register_format,
    write_poses,
)

__all__ = [
    "FORMATS",
    "LabelsError",
    "Points3D",
    "PoseFormat",
    "Poses",
    "concat_poses",
    "detect_format",
    "duplicate_frames",
    "output_format",
    "read_labels_folder",
    "read_points_3d",
    "read_poses",
    "register_format",
    "write_points_3d",
    "write_poses",
]
