"""Multi-camera geometry: calibrated cameras, Anipose ``calibration.toml``, projection with lens
distortion, robust weighted triangulation, synthetic camera rigs, and per-view pose tables
triangulated into a 3D table (:mod:`vidpose.geometry.tables`).

numpy only; the torch versions (differentiable projection and triangulation, the
reprojection-consistency loss) are in :mod:`vidpose.geometry.differentiable`, imported on its own
so that numpy users do not load torch.
"""

from vidpose.geometry.calibration import (
    CALIBRATION_FILE,
    Calibration,
    CameraModel,
    calibration_toml,
    read_calibration,
    write_calibration,
)
from vidpose.geometry.camera import rotation_matrix, rotation_vector
from vidpose.geometry.synthetic import ViewProjections, project_to_views, ring_calibration
from vidpose.geometry.tables import TableTriangulation, TriangulationSummary, triangulate_tables
from vidpose.geometry.triangulate import Triangulation, triangulate

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "CameraModel",
    "TableTriangulation",
    "Triangulation",
    "TriangulationSummary",
    "ViewProjections",
    "calibration_toml",
    "project_to_views",
    "read_calibration",
    "ring_calibration",
    "rotation_matrix",
    "rotation_vector",
    "triangulate",
    "triangulate_tables",
    "write_calibration",
]
