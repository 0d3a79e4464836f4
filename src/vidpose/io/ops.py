"""Small pure operations on :class:`~vidpose.io.poses.Poses` tables used by the readers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidpose.io.poses import Poses


def duplicate_frames(poses: Poses) -> list[tuple[int, str | int]]:
    """Rows whose frame id already appeared in an earlier row.

    Readers keep duplicates (the project checker reports them); this finds them.

    Returns:
        (row, frame id) per repeat, row being the 0-based index into ``poses`` (for a CSV
        written by vidpose, the text-editor line is ``row + 4``).
    """
    seen: set[str | int] = set()
    repeats: list[tuple[int, str | int]] = []
    for row, frame in enumerate(poses.frames.tolist()):
        if frame in seen:
            repeats.append((row, frame))
        else:
            seen.add(frame)
    return repeats


def reorder_keypoints(poses: Poses, keypoints: Sequence[str]) -> Poses:
    """The same table with its keypoints (and per-keypoint columns) in the order given."""
    idx = poses.keypoint_index(list(keypoints))
    return Poses(
        coords=poses.coords[:, idx],
        keypoints=list(keypoints),
        frames=poses.frames,
        likelihood=poses.likelihood[:, idx],
        scorer=poses.scorer,
        is_labels=poses.is_labels,
        keypoint_columns={k: v[:, idx] for k, v in poses.keypoint_columns.items()},
        frame_columns=dict(poses.frame_columns),
    )


def concat_poses(parts: Sequence[Poses]) -> Poses:
    """Stack tables row-wise; the first one's scorer is kept.

    Raises:
        ValueError: the tables differ in keypoints (names or order), kind (labels vs
            predictions), extra column names, or frame id type.
    """
    if not parts:
        raise ValueError("concat_poses needs at least one table")
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        if p.keypoints != first.keypoints:
            raise ValueError(f"table {i} has keypoints {p.keypoints}, table 0 {first.keypoints}")
        if p.is_labels != first.is_labels:
            raise ValueError(f"table {i} and table 0 differ in kind (labels vs predictions)")
        if list(p.keypoint_columns) != list(first.keypoint_columns) or list(
            p.frame_columns
        ) != list(first.frame_columns):
            raise ValueError(f"table {i} and table 0 have different extra columns")
        if (p.frames.dtype.kind in "iu") != (first.frames.dtype.kind in "iu"):
            raise ValueError(f"table {i} and table 0 differ in frame id type (index vs path)")
    return Poses(
        coords=np.concatenate([p.coords for p in parts]),
        keypoints=list(first.keypoints),
        frames=np.concatenate([p.frames for p in parts]),
        likelihood=np.concatenate([p.likelihood for p in parts]),
        scorer=first.scorer,
        is_labels=first.is_labels,
        keypoint_columns={
            k: np.concatenate([p.keypoint_columns[k] for p in parts])
            for k in first.keypoint_columns
        },
        frame_columns={
            k: np.concatenate([p.frame_columns[k] for p in parts]) for k in first.frame_columns
        },
    )
