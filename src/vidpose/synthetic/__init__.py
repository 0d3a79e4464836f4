"""Synthetic example projects with ground truth for every frame (the embedded demo data set).

:func:`synthesize_project` writes a project folder in the layout ``vidpose train`` reads, plus
the true keypoints of every video frame; see :mod:`vidpose.synthetic.project`. The animal's
body model is :mod:`vidpose.synthetic.body`, its drawing :mod:`vidpose.synthetic.render`, the
domain shifts of shifted sessions :mod:`vidpose.synthetic.shift`.
"""

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
    "RenderedVideo",
    "Session",
    "SessionShift",
    "SyntheticProject",
    "read_sessions",
    "render_video",
    "select_keypoints",
    "synthesize_project",
]
