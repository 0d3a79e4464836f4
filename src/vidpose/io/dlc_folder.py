"""DeepLabCut's multi-folder labels layout: ``labeled-data/<video>/CollectedData_<scorer>.csv``.

Each video folder holds its own labels file (the .csv, or the .h5 when there is no .csv);
:func:`read_labels_folder` stacks them into one :class:`Poses` whose frame ids are image paths
relative to the project folder, e.g. ``labeled-data/mouse1/img001.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidpose.errors import LabelsError, ProjectError
from vidpose.io.ops import concat_poses, reorder_keypoints
from vidpose.io.poses import Poses
from vidpose.io.registry import read_poses


def _labels_file(folder: Path) -> Path | None:
    found = sorted(folder.glob("CollectedData*.csv")) or sorted(folder.glob("CollectedData*.h5"))
    if len(found) > 1:
        raise LabelsError(
            f"{folder}: {len(found)} label files ({', '.join(p.name for p in found)}); keep "
            f"one CollectedData_<scorer> file per video folder"
        )
    return found[0] if found else None


def _project_relative(poses: Poses, folder_rel: str, source: Path) -> np.ndarray:
    """Frame ids as project-relative "/" paths; bare image names get the folder prefix."""
    if poses.frames.dtype.kind in "iu":
        raise LabelsError(
            f"{source}: the first column holds frame numbers; a labels file's first column "
            f"should be image paths such as {folder_rel}/img001.png"
        )
    fixed = []
    for frame in poses.frames.tolist():
        frame = frame.replace("\\", "/")  # older DeepLabCut on Windows wrote backslashes
        fixed.append(frame if "/" in frame else f"{folder_rel}/{frame}")
    return np.array(fixed, dtype=object)


def read_labels_folder(project_dir: str | os.PathLike) -> Poses:
    """All labels of a DeepLabCut-layout project as one table.

    Video folders without a ``CollectedData*`` file (frames not labelled yet, or DeepLabCut's
    ``*_labeled`` check folders) are skipped. The first folder's keypoint order and scorer win;
    other folders' keypoints are reordered to match.

    Raises:
        ProjectError: there is no ``labeled-data`` folder, or no video folder has labels.
        LabelsError: a labels file is malformed, a folder has two of them, or a folder's
            keypoints differ from the first folder's (the message names both files).
    """
    root = Path(project_dir)
    labeled = root / "labeled-data"
    if not labeled.is_dir():
        raise ProjectError(
            f"{root}: no labeled-data folder; expected DeepLabCut's layout "
            f"labeled-data/<video>/CollectedData_<scorer>.csv"
        )
    parts: list[Poses] = []
    first_source: Path | None = None
    for folder in sorted(p for p in labeled.iterdir() if p.is_dir()):
        source = _labels_file(folder)
        if source is None:
            continue
        poses = read_poses(source)
        folder_rel = folder.relative_to(root).as_posix()
        if parts:
            ref = parts[0]
            if set(poses.keypoints) != set(ref.keypoints):
                missing = [k for k in ref.keypoints if k not in poses.keypoints]
                extra = [k for k in poses.keypoints if k not in ref.keypoints]
                raise LabelsError(
                    f"{source}: keypoints differ from {first_source} (missing {missing}, "
                    f"extra {extra}); every video folder must label the same keypoints"
                )
            if (
                poses.is_labels != ref.is_labels
                or list(poses.keypoint_columns) != list(ref.keypoint_columns)
                or list(poses.frame_columns) != list(ref.frame_columns)
            ):
                raise LabelsError(
                    f"{source}: its columns (likelihood / extra columns) differ from "
                    f"{first_source}'s"
                )
            poses = reorder_keypoints(poses, ref.keypoints)
        else:
            first_source = source
        poses.frames = _project_relative(poses, folder_rel, source)
        parts.append(poses)
    if not parts:
        raise ProjectError(
            f"{labeled}: no video folder holds a CollectedData_<scorer>.csv or .h5 labels file"
        )
    return concat_poses(parts)
