"""DeepLabCut .h5 tables: labels (``CollectedData_<scorer>.h5``) and predictions.

DeepLabCut stores a pandas DataFrame with (scorer, bodyparts, coords) MultiIndex columns under
the key ``"df_with_missing"``. Reading accepts PyTables "fixed" and "table" storage, any single
key when ``df_with_missing`` is absent, and a labels index that is either a path string (older
DeepLabCut) or a MultiIndex of path parts (newer; joined with "/"). Integer indices are frame
numbers (predictions).

Writing uses PyTables ``format="fixed"`` with a plain string or integer index, so that read ->
write -> read is exact. DeepLabCut reads both storages; "fixed" is the one that pandas 2 (which
DeepLabCut 3 pins) reads when pandas 3 wrote it: a pandas-3 "table" file fails there
(``bench/h5_pandas_compat.py`` checks both directions). Extra per-keypoint
quantities and per-frame columns use the same column names as the CSV format (see
:mod:`vidpose.io._columns`); per-frame columns keep their dtype here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from vidpose.errors import LabelsError
from vidpose.io._columns import (
    check_paired,
    header_of,
    join_index_parts,
    parse_header,
    poses_from_values,
)
from vidpose.io.poses import Poses
from vidpose.io.registry import register_format

H5_KEY = "df_with_missing"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _read_frame(path: Path, where: str) -> pd.DataFrame:
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            if "/" + H5_KEY in keys:
                key = H5_KEY
            elif len(keys) == 1:
                key = keys[0]
            else:
                found = ", ".join(keys) if keys else "none"
                raise LabelsError(
                    f"{where}: expected one pandas table stored under the key {H5_KEY!r} "
                    f"(as DeepLabCut writes it); tables found: {found}"
                )
            obj = store[key]
    except LabelsError:
        raise
    except Exception as e:  # PyTables / pandas raise many types for damaged or foreign files
        raise LabelsError(
            f"{where}: cannot read it as a pandas HDF5 table ({type(e).__name__}: {e}); is it a "
            f"DeepLabCut .h5 file?"
        ) from None
    if not isinstance(obj, pd.DataFrame):
        raise LabelsError(f"{where}: key {key!r} holds a {type(obj).__name__}, not a DataFrame")
    return obj


def _frame_ids(index: pd.Index) -> np.ndarray:
    if isinstance(index, pd.MultiIndex):
        return np.array([join_index_parts(parts) for parts in index], dtype=object)
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64)
    return np.array([str(v) for v in index], dtype=object)


def _column_values(df: pd.DataFrame, pos: int) -> np.ndarray:
    series = df.iloc[:, pos]
    if pd.api.types.is_extension_array_dtype(series.dtype) or series.dtype == object:
        return series.to_numpy(dtype=object)
    return series.to_numpy()


def load_dlc_h5(path: str | Path) -> Poses:
    """Read a DeepLabCut .h5 labels or predictions table.

    Raises:
        LabelsError: naming the file, the data row (1-based) and what was expected.
    """
    path = Path(path)
    return poses_from_dataframe(_read_frame(path, str(path)), str(path))


def poses_from_dataframe(df: pd.DataFrame, where: str = "DataFrame") -> Poses:
    """A :class:`Poses` from a DeepLabCut-layout DataFrame (3 column levels: scorer, bodyparts,
    coords; index of frame numbers or image paths). ``where`` names the source in errors.

    Raises:
        LabelsError: naming ``where``, the data row (1-based) and what was expected.
    """
    cols = df.columns
    if not isinstance(cols, pd.MultiIndex) or cols.nlevels != 3:
        levels = cols.nlevels if isinstance(cols, pd.MultiIndex) else 1
        names = [n for n in cols.names if n]
        if "individuals" in names or levels == 4:
            raise LabelsError(
                f"{where}: multi-animal DeepLabCut tables (column levels {names}) are not "
                f"supported yet; split it into one single-animal table per individual"
            )
        raise LabelsError(
            f"{where}: expected 3 column levels (scorer, bodyparts, coords), found {levels}"
        )
    columns = [tuple("" if v is None else str(v) for v in c) for c in cols]
    layout = parse_header(columns, where, lambda i: f"column {columns[i]}")
    if not layout.keypoints:
        raise LabelsError(f"{where}: the table has no keypoint (x, y) columns")
    frames = _frame_ids(df.index)

    values = np.full((len(df), len(columns)), np.nan)
    for pos in layout.numeric_columns:
        series = df.iloc[:, pos]
        try:
            values[:, pos] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            bad = pd.to_numeric(series, errors="coerce").isna() & series.notna()
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise LabelsError(
                f"{where} data row {r + 1} ({frames[r]}), column {columns[pos]}: "
                f"{series.iloc[r]!r} is not a number; expected a number, or NaN for a missing "
                f"value"
            ) from None
    frame_columns = {name: _column_values(df, pos) for name, pos in layout.frame_columns.items()}
    poses = poses_from_values(layout, values, frames, frame_columns)
    check_paired(poses.coords, layout, lambda r: f"data row {r + 1} ({frames[r]})", where)
    return poses


def poses_to_dataframe(poses: Poses) -> pd.DataFrame:
    """``poses`` as a DeepLabCut-layout DataFrame: columns (scorer, bodyparts, coords), then
    the per-frame columns as ``(name, "", "")``; index of frame numbers or image paths."""
    names, matrix = header_of(poses)
    if poses.frames.dtype.kind in "iu":
        index = pd.Index(poses.frames, dtype=np.int64)
    else:
        index = pd.Index([str(f) for f in poses.frames], dtype=object)
    n_kp_cols = matrix.shape[1]
    columns = pd.MultiIndex.from_tuples(names, names=["scorer", "bodyparts", "coords"])
    data = {names[j]: matrix[:, j] for j in range(n_kp_cols)}
    for j, values in enumerate(poses.frame_columns.values()):
        data[names[n_kp_cols + j]] = values
    df = pd.DataFrame(data, index=index)
    df.columns = columns
    return df


def save_dlc_h5(poses: Poses, path: str | Path) -> None:
    """Write ``poses`` as a DeepLabCut .h5 (not atomic: use ``vidpose.io.write_poses``)."""
    df = poses_to_dataframe(poses)
    with warnings.catch_warnings():
        # "fixed" storage pickles object columns (per-frame text) and says so.
        warnings.simplefilter("ignore", category=pd.errors.PerformanceWarning)
        df.to_hdf(path, key=H5_KEY, mode="w", format="fixed")


def _sniff(head: bytes) -> bool:
    return head.startswith(_HDF5_MAGIC)


@register_format
class DlcH5Format:
    """Registry entry for :func:`load_dlc_h5` / :func:`save_dlc_h5`."""

    name = "dlc_h5"
    extensions = (".h5", ".hdf5")
    description = "DeepLabCut HDF5 (pandas table under key 'df_with_missing')"
    sniff = staticmethod(_sniff)
    load = staticmethod(load_dlc_h5)
    save = staticmethod(save_dlc_h5)
