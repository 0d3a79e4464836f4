"""Synthetic example projects with ground truth for every frame (the embedded demo data set).

:func:`synthesize_project` writes a project folder in the layout ``vidpose train`` reads, plus
the true keypoints of every video frame; see :mod:`vidpose.synthetic.project`. The animal's
body model is :mod:`vidpose.synthetic.body`, its drawing :mod:`vidpose.synthetic.render`, the
domain shifts of shifted sessions :mod:`vidpose.synthetic.shift`.

:func:`synthesize_multicamera_project` writes a multi-camera project (N calibrated cameras, 3D
ground truth); see :mod:`vidpose.synthetic.multicamera`, its lens-true rendering
:mod:`vidpose.synthetic.perspective`. Its 3D tables are :mod:`vidpose.io.points3d`'s
(``read_points_3d`` and ``write_points_3d`` are re-exported here).
"""

from vidpose.io.points3d import Points3D, read_points_3d, write_points_3d
from vidpose.synthetic.multicamera import MultiCameraProject, synthesize_multicamera_project
from vidpose.synthetic.project import (
    CONTEXT_FRAMES,
    Difficulty,
    RenderedVideo,
    SyntheticProject,
    render_video,
    select_keypoints,
    synthesize_project,
)
from vidpose.synthetic.shift import SHIFT_KINDS, Session, SessionShift, read_sessions

__all__ = [
    "CONTEXT_FRAMES",
    "SHIFT_KINDS",
    "Difficulty",
    "MultiCameraProject",
    "Points3D",
    "RenderedVideo",
    "Session",
    "SessionShift",
    "SyntheticProject",
    "read_points_3d",
    "read_sessions",
    "render_video",
    "select_keypoints",
    "synthesize_multicamera_project",
    "synthesize_project",
    "write_points_3d",
]
