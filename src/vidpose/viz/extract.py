"""``vidpose extract-frames``: save chosen video frames as PNGs into a project, for labeling.

Frame ``f`` of ``videos/<stem>.mp4`` becomes ``labeled-data/<stem>/img<f>.png`` with as many
digits as the video's last frame needs (or as the folder's PNGs already use): the DeepLabCut
and sleap-io naming, which vidpose (and DeepLabCut, Lightning Pose) read back. The number is the
video frame, so a context model later finds the ``--context`` neighbours saved beside it, and
the labels can be traced to their video. Existing PNGs are never overwritten (a labeled image
keeps its pixels); every PNG is written atomically. A ``frames_to_label.csv`` in each folder
lists the new frames and why they were chosen, for the labeling tool or the labeler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vidpose._atomic import atomic_path
from vidpose.errors import VideoError, VidposeError
from vidpose.io.frame_names import frame_digits, frame_image_name
from vidpose.project.load import LABELED_DATA_DIR, find_videos
from vidpose.video import probe_video, read_frames


@dataclass
class ExtractResult:
    """What extract_frames wrote: the centre frames, the neighbours, and what it skipped."""

    written: list[Path] = field(default_factory=list)
    neighbours: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    lists: list[Path] = field(default_factory=list)


def resolve_video(project_dir: Path, video: str) -> Path:
    """A video named in an outliers table: a path, or a stem of one of ``videos/*``."""
    p = Path(video)
    if p.is_file():
        return p
    if not p.is_absolute() and (project_dir / p).is_file():
        return project_dir / p
    for cand in find_videos(project_dir):
        if cand.stem == p.stem:
            return cand
    raise VidposeError(
        f"video {video!r} not found: neither a file nor one of {project_dir / 'videos'}/*"
    )


def _digit_width(folder: Path, n_frames: int) -> int:
    """Digits in the frame number: as the folder's PNGs already use, else as many as the
    video's last frame needs (DeepLabCut's and sleap-io's naming: 994 frames -> img042.png)."""
    from vidpose.data.labeled import frame_number

    widths = [w[2] for p in folder.glob("*.png") if (w := frame_number(p)) is not None]
    if widths:
        return max(set(widths), key=widths.count)
    return frame_digits(n_frames)


def _save_png(frame: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(frame).save(tmp, format="PNG")


def extract_frames(
    project_dir: str | Path,
    frames: pd.DataFrame,
    *,
    context: int = 0,
) -> ExtractResult:
    """Save the listed frames (and ``context`` neighbours each side) as PNGs in the project.

    Args:
        project_dir: the project folder (``labeled-data/`` is created inside it).
        frames: a table with ``video`` (path or stem) and ``frame`` columns, e.g. an
            ``outliers.csv``; other columns (``reason``...) are copied to ``frames_to_label.csv``.
        context: neighbours to save on each side of every frame (2 for a 5-frame context model).
    """
    project_dir = Path(project_dir)
    if not project_dir.is_dir():
        raise VidposeError(f"project folder {project_dir} does not exist")
    result = ExtractResult()
    for video_name, group in frames.groupby("video", sort=True):
        video = resolve_video(project_dir, str(video_name))
        folder = project_dir / LABELED_DATA_DIR / video.stem
        n = probe_video(video).n_frames
        wanted = sorted({int(f) for f in group["frame"]})
        beyond = [f for f in wanted if f >= n]
        if beyond:
            raise VideoError(
                f"{video}: has {n} frames (0..{n - 1}) but frame {beyond[0]} was asked for"
            )
        width = _digit_width(folder, n)
        targets: dict[int, bool] = {}  # frame -> is a centre frame
        for f in wanted:
            targets[f] = True
            for d in range(1, context + 1):
                for j in (f - d, f + d):
                    if 0 <= j < n:
                        targets.setdefault(j, False)
        paths = {f: folder / frame_image_name(f, width) for f in sorted(targets)}
        todo = [f for f, path in paths.items() if not path.exists()]
        result.existing += [paths[f] for f in paths if f not in todo]
        decoded = read_frames(video, todo)
        for f in todo:
            if f not in decoded:
                raise VideoError(f"{video}: frame {f} cannot be decoded")
            folder.mkdir(parents=True, exist_ok=True)
            _save_png(decoded[f], paths[f])
            (result.written if targets[f] else result.neighbours).append(paths[f])
        listing = group.copy()
        listing.insert(0, "image", [frame_image_name(f, width) for f in listing["frame"]])
        list_path = folder / "frames_to_label.csv"
        if list_path.exists():
            old = pd.read_csv(list_path)
            listing = pd.concat([old, listing]).drop_duplicates("image", keep="first")
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(list_path) as tmp:
            listing.to_csv(tmp, index=False)
        result.lists.append(list_path)
    return result
