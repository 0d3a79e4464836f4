"""The (scorer, bodyparts, coords) column layout shared by the CSV and DeepLabCut .h5 formats.

A table's value columns (everything after the frame id) are named by three header entries.
Per keypoint: ``x``, ``y``, optionally ``likelihood`` (predictions), then any extra per-keypoint
quantity (``ens_var_x`` ...), which becomes ``Poses.keypoint_columns``. A column whose coords
entry is empty is a per-frame column (``Poses.frame_columns``), named by its bodyparts entry
(or its scorer entry when that is empty too, as some tools write ``("set", "", "")``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vidpose.errors import LabelsError
from vidpose.io.poses import Poses

RESERVED_COORDS = ("x", "y", "likelihood")


@dataclass(frozen=True)
class ColumnLayout:
    """Positions of each quantity among a table's value columns (0-based, frame id excluded).

    Attributes:
        scorer: the scorer of the first keypoint column.
        keypoints: K keypoint names in order of first appearance.
        x, y: (K,) int column positions.
        likelihood: (K,) int column positions, or None for labels.
        keypoint_columns: extra quantity name -> (K,) int column positions.
        frame_columns: per-frame column name -> column position.
    """

    scorer: str
    keypoints: list[str]
    x: np.ndarray
    y: np.ndarray
    likelihood: np.ndarray | None
    keypoint_columns: dict[str, np.ndarray]
    frame_columns: dict[str, int]

    @property
    def numeric_columns(self) -> np.ndarray:
        """Sorted positions of every keypoint-related (numeric) column."""
        parts = [self.x, self.y, *self.keypoint_columns.values()]
        if self.likelihood is not None:
            parts.append(self.likelihood)
        return np.sort(np.concatenate(parts)) if self.keypoints else np.zeros(0, dtype=np.int64)

    @property
    def values_per_keypoint(self) -> int:
        return 2 + (self.likelihood is not None) + len(self.keypoint_columns)


def parse_header(
    columns: Sequence[tuple[str, str, str]], where: str, column_name: Callable[[int], str]
) -> ColumnLayout:
    """Interpret value-column names; LabelsError naming ``where`` and the column otherwise.

    Args:
        columns: (scorer, bodypart, coord) per value column.
        where: the file, as it should appear in messages.
        column_name: how to name value column ``i`` to the user (e.g. "column 5").
    """
    scorer: str | None = None
    coords_of: dict[str, dict[str, int]] = {}
    frame_columns: dict[str, int] = {}
    for i, (sc, part, coord) in enumerate(columns):
        if coord == "":
            name = part if part != "" else sc
            if name == "":
                raise LabelsError(
                    f"{where} {column_name(i)}: all three header cells are empty; every column "
                    f"after the frame id needs a bodypart and a coordinate name"
                )
            if name in frame_columns:
                raise LabelsError(f"{where} {column_name(i)}: per-frame column {name!r} repeated")
            frame_columns[name] = i
            continue
        if part == "":
            raise LabelsError(
                f"{where} {column_name(i)}: coordinate {coord!r} has no bodypart name"
            )
        if scorer is None:
            scorer = sc
        entry = coords_of.setdefault(part, {})
        if coord in entry:
            raise LabelsError(
                f"{where} {column_name(i)}: keypoint {part!r} has two {coord!r} columns"
            )
        entry[coord] = i

    keypoints = list(coords_of)
    for part, entry in coords_of.items():
        missing = [c for c in ("x", "y") if c not in entry]
        if missing:
            raise LabelsError(
                f"{where}: keypoint {part!r} has no {' or '.join(map(repr, missing))} column "
                f"(its coords header entries are {list(entry)}); every keypoint needs x and y"
            )
    has_lik = ["likelihood" in e for e in coords_of.values()]
    if any(has_lik) and not all(has_lik):
        without = [p for p, h in zip(keypoints, has_lik) if not h]
        raise LabelsError(
            f"{where}: some keypoints have a likelihood column and some do not "
            f"(without: {without}); a table is either labels (x, y) or predictions "
            f"(x, y, likelihood)"
        )
    extras: list[str] = []
    if keypoints:
        extras = [c for c in coords_of[keypoints[0]] if c not in RESERVED_COORDS]
    for part, entry in coords_of.items():
        own = [c for c in entry if c not in RESERVED_COORDS]
        if set(own) != set(extras):
            raise LabelsError(
                f"{where}: keypoint {part!r} has extra columns {own} but keypoint "
                f"{keypoints[0]!r} has {extras}; every keypoint must have the same ones"
            )

    def pos(coord: str) -> np.ndarray:
        return np.array([coords_of[p][coord] for p in keypoints], dtype=np.int64)

    return ColumnLayout(
        scorer=scorer if scorer is not None else (columns[0][0] if columns else ""),
        keypoints=keypoints,
        x=pos("x"),
        y=pos("y"),
        likelihood=pos("likelihood") if all(has_lik) and keypoints else None,
        keypoint_columns={c: pos(c) for c in extras},
        frame_columns=frame_columns,
    )


def check_paired(
    coords: np.ndarray, layout: ColumnLayout, describe_row: Callable[[int], str], where: str
) -> None:
    """LabelsError at the first keypoint with x but not y (or y but not x).

    Args:
        coords: (N, K, 2) float64 with NaN where missing.
        describe_row: row index -> e.g. "row 14 (labeled-data/img13.png)".
    """
    half = np.isnan(coords[..., 0]) != np.isnan(coords[..., 1])
    if not half.any():
        return
    r, k = (int(v) for v in np.argwhere(half)[0])
    has, lacks = ("x", "y") if np.isnan(coords[r, k, 1]) else ("y", "x")
    raise LabelsError(
        f"{where} {describe_row(r)}: keypoint {layout.keypoints[k]!r} has {has} "
        f"({float(coords[r, k, 0 if has == 'x' else 1])!r}) but no {lacks}; give both or leave "
        f"both empty"
    )


def poses_from_values(
    layout: ColumnLayout,
    values: np.ndarray,
    frames: np.ndarray,
    frame_columns: dict[str, np.ndarray],
) -> Poses:
    """Assemble a Poses from a float matrix of value columns.

    Args:
        values: (N, C) float64 indexed by value-column position (non-numeric positions unused).
        frames: (N,) frame ids.
        frame_columns: name -> (N,) array, already typed.
    """
    coords = np.stack([values[:, layout.x], values[:, layout.y]], axis=2)
    return Poses(
        coords=coords,
        keypoints=list(layout.keypoints),
        frames=frames,
        likelihood=values[:, layout.likelihood] if layout.likelihood is not None else None,
        scorer=layout.scorer,
        is_labels=layout.likelihood is None,
        keypoint_columns={name: values[:, p] for name, p in layout.keypoint_columns.items()},
        frame_columns=frame_columns,
    )


def header_of(poses: Poses) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """Value-column names and the (N, K * per-keypoint) float64 matrix of keypoint values.

    Per keypoint: x, y, likelihood (predictions only), then ``keypoint_columns`` in dict order;
    the per-frame columns follow, named ``(name, "", "")`` as Lightning Pose names its ``set``
    column (older vidpose wrote ``(scorer, name, "")``; both read back), and are not in the
    matrix.
    """
    if poses.n_keypoints == 0:
        raise ValueError("cannot write a pose table with no keypoints")
    for name in poses.keypoint_columns:
        if name in RESERVED_COORDS or name == "":
            raise ValueError(
                f"keypoint column name {name!r} is reserved; use another name than "
                f"{list(RESERVED_COORDS)} or ''"
            )
    for name in poses.frame_columns:
        if name == "":
            raise ValueError("frame column names must not be empty")
    per_kp: list[tuple[str, np.ndarray]] = [
        ("x", poses.coords[..., 0]),
        ("y", poses.coords[..., 1]),
    ]
    if not poses.is_labels:
        per_kp.append(("likelihood", poses.likelihood))
    per_kp += list(poses.keypoint_columns.items())
    n, k = poses.n_frames, poses.n_keypoints
    matrix = np.stack([arr for _, arr in per_kp], axis=2).reshape(n, k * len(per_kp))
    names = [(poses.scorer, kp, c) for kp in poses.keypoints for c, _ in per_kp]
    names += [(name, "", "") for name in poses.frame_columns]
    return names, matrix


def join_index_parts(parts: Sequence[object]) -> str:
    """One relative path from DeepLabCut's split index ("labeled-data", video, image)."""
    return "/".join(str(p) for p in parts if p is not None and str(p) != "")
