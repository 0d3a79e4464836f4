"""Lightning Pose / DeepLabCut CSV tables of labels and predictions.

Layout (as pandas writes a DataFrame with (scorer, bodyparts, coords) columns)::

    scorer,rick,rick,rick,rick,...
    bodyparts,nose,nose,paw,paw,...
    coords,x,y,x,y,...
    labeled-data/img01.png,77.25,36.25,,,...

- Labels have ``x, y`` per keypoint; predictions ``x, y, likelihood``. An empty cell (or
  ``nan``) is a missing value; a keypoint must have both x and y or neither.
- The first column is the frame id: an image path relative to the project (labels) or a frame
  index (predictions). Ids that are all canonical integers ("0", "17") are read as int64.
  DeepLabCut's variant that splits the path over three columns (``labeled-data``, ``<video>``,
  ``img.png``, with empty header cells) is joined into one path with "/".
- ``Poses.keypoint_columns`` are extra coords entries after x, y[, likelihood], e.g.
  ``nose,ens_var_x``; ``Poses.frame_columns`` are trailing columns whose header cells are
  ``(scorer, name, "")``. A frame column's type is inferred on reading: int64 when every cell is
  a canonical integer, bool for True/False, float64 when every cell is what vidpose writes for a
  float (empty = NaN), else str.
- Floats are written in shortest round-trip form, so read -> write -> read is bit-exact.
- A header with no data rows gives a Poses with 0 frames (an empty *project* is the project
  checker's concern); an empty file, or a header without keypoints, is a LabelsError.
- Multi-animal DeepLabCut files (an ``individuals`` header row) are refused with a clear error.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from vidpose.errors import LabelsError
from vidpose.io._columns import (
    ColumnLayout,
    check_paired,
    header_of,
    join_index_parts,
    parse_header,
    poses_from_values,
)
from vidpose.io.poses import Poses
from vidpose.io.registry import register_format

HEADER_ROWS = ("scorer", "bodyparts", "coords")
_CHUNK_ROWS = 4096  # rows converted per numpy call: bounds memory on hour-long predictions
_MAX_SHOWN = 60
# pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs asking.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


# ---------------------------------------------------------------------------------------------
# reading


def _read_text(path: Path, where: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LabelsError(f"{where}: cannot read ({e.strerror or e})") from None
    if not data.strip():
        raise LabelsError(
            f"{where} is empty: expected 3 header rows (scorer / bodyparts / coords) and then "
            f"one row per frame"
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise LabelsError(f"{where} is UTF-16 text; save it as a UTF-8 CSV file")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise LabelsError(
            f"{where} is not a text CSV file: byte {nul} (line {line}) is a NUL byte; is it an "
            f"HDF5 or spreadsheet file with the wrong extension?"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise LabelsError(
            f"{where} is not UTF-8 text: byte {e.start} (line {line}) is "
            f"0x{data[e.start]:02x}; save the file as a UTF-8 CSV"
        ) from None


def _rows(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, cells) per non-blank CSV row."""
    reader = csv.reader(io.StringIO(text, newline=None))
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            yield reader.line_num, cells
    except csv.Error as e:
        raise LabelsError(f"{where} row {reader.line_num}: not valid CSV ({e})") from None


def _read_header(
    rows: Iterator[tuple[int, list[str]]], where: str
) -> tuple[list[list[str]], list[int]]:
    header: list[list[str]] = []
    lines: list[int] = []
    for i, expected in enumerate(HEADER_ROWS):
        item = next(rows, None)
        if item is None:
            raise LabelsError(
                f"{where} has only {i} header row(s): expected 3 header rows starting with "
                f"'scorer', 'bodyparts', 'coords'"
            )
        line, cells = item
        first = cells[0].strip()
        if expected == "bodyparts" and first == "individuals":
            raise LabelsError(
                f"{where} row {line} starts with 'individuals': multi-animal DeepLabCut tables "
                f"are not supported yet; split it into one single-animal table per individual"
            )
        if first != expected:
            raise LabelsError(
                f"{where} row {line} should start with {expected!r}, found {_shown(first)}: the "
                f"file needs 3 header rows (scorer / bodyparts / coords) before the data rows"
            )
        if header and len(cells) != len(header[0]):
            raise LabelsError(
                f"{where} row {line} ({expected}) has {len(cells)} cells but row {lines[0]} "
                f"(scorer) has {len(header[0])}; the 3 header rows must be equally wide"
            )
        header.append([c if c.strip() else "" for c in cells])
        lines.append(line)
    return header, lines


def _index_width(header: list[list[str]]) -> int:
    """Columns holding the frame id: the first, plus DeepLabCut's empty-header path parts."""
    width = 1
    while width < len(header[0]) and all(row[width] == "" for row in header):
        width += 1
    return width


def _frame_ids(frames: list[str], is_labels: bool) -> np.ndarray:
    """int64 when every id is a canonical integer ("7", not "007"), else str."""
    if not frames:
        return np.array([], dtype=object) if is_labels else np.zeros(0, dtype=np.int64)
    text = np.array(frames, dtype=str)
    try:
        ints = text.astype(np.int64)
    except (ValueError, OverflowError):
        return np.array(frames, dtype=object)
    if np.array_equal(ints.astype(str), text):
        return ints
    return np.array(frames, dtype=object)


def _float_cells(values: np.ndarray) -> np.ndarray:
    """Shortest round-trip text of each float; NaN as the empty string."""
    text = values.astype(str)
    text[np.isnan(values)] = ""
    return text


def _typed_frame_column(cells: list[str]) -> np.ndarray:
    text = np.array(cells, dtype=str)
    if text.size and np.all(text != ""):
        try:
            ints = text.astype(np.int64)
            if np.array_equal(ints.astype(str), text):
                return ints
        except (ValueError, OverflowError):
            pass
        if np.all((text == "True") | (text == "False")):
            return text == "True"
    try:
        floats = np.where(text == "", "nan", text).astype(np.float64)
        if np.array_equal(_float_cells(floats), text):
            return floats
    except ValueError:
        pass
    return np.array(cells, dtype=object)


class _DataReader:
    """Accumulates data rows chunk by chunk into float values, frame ids and frame columns."""

    def __init__(
        self,
        where: str,
        header: list[list[str]],
        n_index: int,
        layout: ColumnLayout,
        row_errors: list[str] | None = None,
    ) -> None:
        self.where = where
        self.row_errors = row_errors
        self.header = header
        self.n_index = n_index
        self.layout = layout
        self.width = len(header[0])
        self.numeric = layout.numeric_columns
        self.frames: list[str] = []
        self.lines: list[int] = []
        self.blocks: list[np.ndarray] = []
        self.frame_cells: dict[str, list[str]] = {name: [] for name in layout.frame_columns}
        self._chunk: list[list[str]] = []
        self._chunk_lines: list[int] = []

    def frame_of(self, cells: list[str]) -> str:
        if self.n_index == 1:
            return cells[0]
        return join_index_parts(cells[: self.n_index])

    def add(self, line: int, cells: list[str]) -> None:
        if len(cells) != self.width:
            message = self._width_error(line, cells)
            if self.row_errors is None:
                raise LabelsError(message)
            self.row_errors.append(message)
            return
        self._chunk.append(cells)
        self._chunk_lines.append(line)
        if len(self._chunk) >= _CHUNK_ROWS:
            self.flush()

    def _width_error(self, line: int, cells: list[str]) -> str:
        layout = self.layout
        got = len(cells) - self.n_index
        per = layout.values_per_keypoint
        k = len(layout.keypoints)
        if not layout.frame_columns and not layout.keypoint_columns and got >= 0:
            kind = (
                "coordinate pairs (x, y)" if per == 2 else "coordinate triples (x, y, likelihood)"
            )
            if got % per == 0:
                what = f"{k} keypoints in the header but {got // per} {kind}"
            else:
                what = (
                    f"{k} keypoints in the header ({k * per} values after the frame id) but "
                    f"{got} values"
                )
        else:
            what = f"the header has {self.width} columns but this row has {len(cells)}"
        return (
            f"{self.where} row {line} ({self.frame_of(cells)}): {what}; a missing value is an "
            f"empty cell between two commas, not a missing comma"
        )

    def flush(self) -> None:
        if not self._chunk:
            return
        chunk, lines = self._chunk, self._chunk_lines
        self._chunk, self._chunk_lines = [], []
        self.frames.extend(self.frame_of(c) for c in chunk)
        self.lines.extend(lines)
        text = np.array([c[self.n_index :] for c in chunk], dtype=str)
        numeric = text[:, self.numeric]
        block = np.full(text.shape, np.nan)
        try:
            block[:, self.numeric] = np.where(numeric == "", "nan", numeric).astype(np.float64)
        except ValueError:
            block[:, self.numeric] = self._parse_slowly(chunk, lines)
        self.blocks.append(block)
        for name, pos in self.layout.frame_columns.items():
            self.frame_cells[name].extend(text[:, pos].tolist())

    def _parse_slowly(self, chunk: list[list[str]], lines: list[int]) -> np.ndarray:
        """Cell by cell, to name each cell that is not a number.

        When collecting ``row_errors``, a keypoint with a bad cell is read as missing in that
        row (x, y and the rest), so the cell is reported once, as what it is, and not again as
        "has y but no x" by :func:`check_paired`.
        """
        out = np.full((len(chunk), len(self.numeric)), np.nan)
        parts = [self.header[1][self.n_index + pos] for pos in self.numeric]
        for r, cells in enumerate(chunk):
            bad_parts: set[str] = set()
            for j, pos in enumerate(self.numeric):
                cell = cells[self.n_index + pos].strip()
                if cell == "":
                    continue
                try:
                    out[r, j] = float(cell)
                except ValueError:
                    col = self.n_index + pos
                    message = (
                        f"{self.where} row {lines[r]} ({self.frame_of(cells)}), column {col + 1} "
                        f"(keypoint {parts[j]!r}, {self.header[2][col]}): "
                        f"{_shown(cells[col])} is not a number; expected a number or an empty "
                        f"cell"
                    )
                    if self.row_errors is None:
                        raise LabelsError(message) from None
                    self.row_errors.append(message)
                    bad_parts.add(parts[j])
            for j, part in enumerate(parts):
                if part in bad_parts:
                    out[r, j] = np.nan
        return out

    def read_fast(self, text: str, last_header_line: int) -> bool:
        """Parse every data row with pandas' C parser; False (state untouched) if unsure.

        Only plain files qualify: one frame-id column, no quotes, no ``\\r``, no blank or
        ragged lines. Anything else, including every malformed file, goes through
        :meth:`add` row by row, which is authoritative and names the offending cell.
        """
        if self.n_index != 1 or self.frames or self._chunk or '"' in text or "\r" in text:
            return False
        start = 0
        for _ in range(last_header_line):
            start = text.find("\n", start) + 1
            if start == 0:
                return True  # the header is the whole file: no data rows
        body = text[start:].rstrip("\n")
        if not body:
            return True
        raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
        line_ends = np.append(np.flatnonzero(raw == ord("\n")), raw.size)
        commas_before = np.searchsorted(np.flatnonzero(raw == ord(",")), line_ends)
        if np.any(np.diff(commas_before, prepend=0) != self.width - 1):
            return False
        numeric = [int(p) + 1 for p in self.numeric]
        text_columns = [0, *(p + 1 for p in self.layout.frame_columns.values())]
        try:
            df = pd.read_csv(
                io.StringIO(body),
                header=None,
                names=list(range(self.width)),
                dtype={**{c: np.float64 for c in numeric}, **{c: str for c in text_columns}},
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in numeric},
                engine="c",
                **_EXACT_FLOATS,
            )
        except Exception:  # any doubt: the row-by-row reader decides and explains
            return False
        frames = df[0].tolist()
        if len(frames) != line_ends.size or any(not f.strip() for f in frames):
            return False
        block = np.full((len(frames), self.width - 1), np.nan)
        block[:, self.numeric] = df[numeric].to_numpy(dtype=np.float64)
        self.frames = frames
        self.lines = list(range(last_header_line + 1, last_header_line + 1 + len(frames)))
        self.blocks = [block]
        for name, pos in self.layout.frame_columns.items():
            self.frame_cells[name] = df[pos + 1].tolist()
        return True

    def poses(self) -> Poses:
        self.flush()
        layout = self.layout
        n_values = self.width - self.n_index
        values = np.concatenate(self.blocks) if self.blocks else np.zeros((0, n_values))
        frames = _frame_ids(self.frames, is_labels=layout.likelihood is None)
        frame_columns = {k: _typed_frame_column(v) for k, v in self.frame_cells.items()}
        poses = poses_from_values(layout, values, frames, frame_columns)

        def describe(r: int) -> str:
            return f"row {self.lines[r]} ({self.frames[r]})"

        check_paired(poses.coords, layout, describe, self.where)
        return poses


def load_csv(path: str | Path, *, row_errors: list[str] | None = None) -> Poses:
    """Read a Lightning Pose / DeepLabCut CSV (see the module docstring for the layout).

    Args:
        path: the CSV file.
        row_errors: if given, problems confined to one data row (wrong width, a cell that is not
            a number) are appended here instead of raised; such a row is skipped (width) or its
            bad cell is missing (not a number), so that a checker can go on and report more.

    Raises:
        LabelsError: naming the file, the 1-based row (text-editor line) and what was expected.
    """
    path = Path(path)
    where = str(path)
    text = _read_text(path, where)
    rows = _rows(text, where)
    header, header_lines = _read_header(rows, where)
    n_index = _index_width(header)
    columns = [(header[0][j], header[1][j], header[2][j]) for j in range(n_index, len(header[0]))]
    layout = parse_header(columns, where, lambda i: f"column {n_index + i + 1}")
    if not layout.keypoints:
        raise LabelsError(
            f"{where}: the header names no keypoints; row 2 (bodyparts) should list each "
            f"keypoint once per coordinate (x, y[, likelihood])"
        )
    data = _DataReader(where, header, n_index, layout, row_errors)
    if not data.read_fast(text, header_lines[-1]):
        for line, cells in rows:
            data.add(line, cells)
    return data.poses()


# ---------------------------------------------------------------------------------------------
# writing


def quote_cell(cell: str) -> str:
    """A CSV cell, quoted when it holds a comma, quote or line break."""
    if any(c in cell for c in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _text_cells(values: np.ndarray) -> list[str]:
    """CSV cells of a frame id or frame column: floats in shortest round-trip form."""
    if values.dtype.kind == "f":
        return _float_cells(values).tolist()
    if values.dtype.kind in "iub":
        return values.astype(str).tolist()
    return [quote_cell("" if v is None else str(v)) for v in values.tolist()]


def number_rows(matrix: np.ndarray) -> list[str]:
    """Each row of a float matrix as CSV cells: the shortest round-trip text of each value,
    NaN as an empty cell."""
    # "%r" of a Python float is its shortest round-trip repr; a finite float's repr never
    # contains "nan", so deleting "nan" leaves missing values empty.
    row_format = ",".join(["%r"] * matrix.shape[1])
    return [(row_format % tuple(r)).replace("nan", "") for r in matrix.tolist()]


def save_csv(poses: Poses, path: str | Path) -> None:
    """Write ``poses`` as a CSV at ``path`` (not atomic: use ``vidpose.io.write_poses``)."""
    names, matrix = header_of(poses)
    frames = _text_cells(poses.frames)
    extra = [",".join(cells) for cells in zip(*map(_text_cells, poses.frame_columns.values()))]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for i, label in enumerate(HEADER_ROWS):
            writer.writerow([label, *(name[i] for name in names)])
        for start in range(0, poses.n_frames, _CHUNK_ROWS):
            stop = start + _CHUNK_ROWS
            numbers = number_rows(matrix[start:stop])
            if extra:
                lines = [
                    f"{f},{v},{e}\n"
                    for f, v, e in zip(frames[start:stop], numbers, extra[start:stop])
                ]
            else:
                lines = [f"{f},{v}\n" for f, v in zip(frames[start:stop], numbers)]
            fh.write("".join(lines))


def _sniff(head: bytes) -> bool:
    head = head.removeprefix(codecs.BOM_UTF8).lstrip()
    return head.startswith((b"scorer,", b'"scorer",'))


@register_format
class CsvFormat:
    """Registry entry for :func:`load_csv` / :func:`save_csv`."""

    name = "csv"
    extensions = (".csv",)
    description = "Lightning Pose / DeepLabCut CSV (header rows scorer / bodyparts / coords)"
    sniff = staticmethod(_sniff)
    load = staticmethod(load_csv)
    save = staticmethod(save_csv)
