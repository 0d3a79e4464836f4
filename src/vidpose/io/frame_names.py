"""Image names of video frames in a project: ``labeled-data/<video stem>/img<frame>.png``.

Frame ``f`` of a video of ``n`` frames is ``img<f>.png`` with as many digits as the video's last
frame number needs (994 frames -> ``img042.png``): the naming of DeepLabCut and sleap-io, which
``vidpose extract-frames`` writes and the SLEAP import uses.
"""

from __future__ import annotations

import re

LABELED_DATA = "labeled-data"

_TRAILING_NUMBER = re.compile(r"(\d+)\.[A-Za-z0-9]+$")


def frame_digits(n_frames: int) -> int:
    """Digits of the last frame number of a video of ``n_frames`` frames (at least 1)."""
    return len(str(max(int(n_frames) - 1, 0)))


def frame_image_name(frame: int, digits: int) -> str:
    """``img<frame>.png``, the number zero-padded to ``digits``."""
    return f"img{int(frame):0{digits}d}.png"


def frame_image_path(video_stem: str, frame: int, digits: int) -> str:
    """``labeled-data/<video_stem>/img<frame>.png``, relative to the project."""
    return f"{LABELED_DATA}/{video_stem}/{frame_image_name(frame, digits)}"


def frame_of_image(name: str) -> int | None:
    """The frame number at the end of an image name (``img0042.png`` -> 42); None without."""
    m = _TRAILING_NUMBER.search(name.replace("\\", "/").rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None
