"""Calibrated cameras and Anipose's ``calibration.toml``.

The file (written by Anipose / aniposelib, read by Lightning Pose's multiview tools) has one
section per camera and an optional ``[metadata]`` section::

    [cam_0]
    name = "top"
    size = [1280, 1024]                      # width, height (px)
    matrix = [[1500.0, 0.0, 639.5], [0.0, 1500.0, 511.5], [0.0, 0.0, 1.0]]
    distortions = [-0.1, 0.02, 0.0, 0.0, 0.0]  # k1, k2, p1, p2, k3 (OpenCV's order)
    rotation = [0.1, -0.2, 0.05]             # Rodrigues vector, world -> camera
    translation = [10.0, 5.0, 400.0]         # world -> camera, world units

    [metadata]
    adjusted = false
    error = 0.42

Cameras keep the file's section order. Every bad value is a :class:`~vidpose.errors.ConfigError`
naming the file, the section and the key. Camera conventions: :mod:`vidpose.geometry.camera`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidpose._atomic import atomic_write_text
from vidpose.errors import ConfigError
from vidpose.geometry import camera as cm

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CALIBRATION_FILE = "calibration.toml"
METADATA = "metadata"
_KEYS = ("name", "size", "matrix", "distortions", "rotation", "translation")
_OPTIONAL_KEYS = ("fisheye",)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """One calibrated pinhole camera with OpenCV's 5-coefficient lens model.

    Attributes:
        name: the view's name (a project's ``views`` entry).
        size: (width, height) of its images, px.
        matrix: (3, 3) float64 intrinsics ``K``; last row ``(0, 0, 1)``.
        distortion: (5,) float64 ``(k1, k2, p1, p2, k3)``; 4 given values are padded with 0.
        rotation: (3,) float64 Rodrigues vector of the world -> camera rotation.
        translation: (3,) float64 world -> camera translation, world units.
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    distortion: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        dist = np.asarray(self.distortion, dtype=np.float64).reshape(-1)
        if len(dist) not in (4, 5):
            raise ValueError(f"camera {self.name!r}: 4 or 5 distortion coefficients, got {dist}")
        fields = {
            "size": (int(self.size[0]), int(self.size[1])),
            "matrix": np.asarray(self.matrix, dtype=np.float64).reshape(3, 3).copy(),
            "distortion": np.pad(dist, (0, cm.N_DISTORTION - len(dist))),
            "rotation": np.asarray(self.rotation, dtype=np.float64).reshape(3).copy(),
            "translation": np.asarray(self.translation, dtype=np.float64).reshape(3).copy(),
        }
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    @property
    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) world -> camera rotation."""
        return cm.rotation_matrix(self.rotation)

    @property
    def extrinsics(self) -> np.ndarray:
        """(3, 4) ``[R | t]``: world -> camera coordinates."""
        return np.concatenate([self.rotation_matrix, self.translation[:, None]], axis=1)

    @property
    def position(self) -> np.ndarray:
        """(3,) the camera's centre in world coordinates."""
        return -self.rotation_matrix.T @ self.translation

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixels; NaN behind the camera."""
        return cm.project_camera(
            points, self.matrix, self.distortion, self.rotation_matrix, self.translation
        )

    def normalized_from_pixels(self, points_px: np.ndarray, tol_px: float = 1e-9) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) undistorted normalized coordinates."""
        return cm.normalized_from_pixels(points_px, self.matrix, self.distortion, tol_px)

    def pixels_from_normalized(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) undistorted normalized coordinates -> (..., 2) pixels."""
        return cm.pixels_from_normalized(
            np.asarray(xy, dtype=np.float64), self.matrix, self.distortion
        )


@dataclass(frozen=True, eq=False)
class Calibration:
    """An ordered set of calibrated cameras sharing one world frame.

    Attributes:
        cameras: the cameras, in the file's (or the caller's) order; names unique.
        metadata: the file's ``[metadata]`` table, written back unchanged.
        source: the file it was read from, for messages; None when built in code.
    """

    cameras: tuple[CameraModel, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not self.cameras:
            raise ValueError("a calibration needs at least one camera")
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[CameraModel]:
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> CameraModel:
        return self.cameras[self.index(key) if isinstance(key, str) else key]

    def index(self, name: str) -> int:
        """Position of the camera called ``name``.

        Raises:
            ConfigError: no such camera (names the file and the known cameras).
        """
        names = self.names
        if name not in names:
            where = self.source if self.source is not None else "calibration"
            raise ConfigError(f"{where}: no camera named {name!r}; cameras: {names}")
        return names.index(name)

    def select(self, names: Sequence[str]) -> Calibration:
        """The cameras called ``names``, in that order (e.g. a project's ``views``)."""
        return Calibration(
            tuple(self.cameras[self.index(n)] for n in names), dict(self.metadata), self.source
        )


# --- reading ----------------------------------------------------------------------------------


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"a list of {shape[0]} numbers"
    return f"a {' x '.join(map(str, shape))} array of numbers ({shape[0]} rows of {shape[1]})"


def _numbers(value: Any, shape: tuple[int, ...], where: str, full: str = "", at: str = "") -> Any:
    """Nested lists of finite numbers of ``shape``, as floats; ConfigError naming ``where``."""
    full = full or _shape_text(shape)
    if not shape:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}{at}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}{at}: expected a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, list) or len(value) != shape[0]:
        raise ConfigError(f"{where}{at}: expected {full}, got {value!r}")
    return [_numbers(v, shape[1:], where, full, f"{at}[{i}]") for i, v in enumerate(value)]


def _size(value: Any, where: str) -> tuple[int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(
            not isinstance(v, bool) and isinstance(v, int | float) and v == int(v) and v > 0
            for v in value
        )
    )
    if not ok:
        raise ConfigError(
            f"{where}: expected [width, height], two positive integers (px), got {value!r}"
        )
    return int(value[0]), int(value[1])


def _intrinsics(value: Any, where: str) -> np.ndarray:
    k = np.array(_numbers(value, (3, 3), where))
    if not np.allclose(k[2], [0.0, 0.0, 1.0], rtol=0, atol=1e-9):
        raise ConfigError(f"{where}: the last row must be [0, 0, 1], got {k[2].tolist()}")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ConfigError(
            f"{where}: focal lengths matrix[0][0] and matrix[1][1] must be positive, got "
            f"{k[0, 0]} and {k[1, 1]}"
        )
    if abs(np.linalg.det(k[:2, :2])) < 1e-9:
        raise ConfigError(f"{where}: the 2 x 2 block of focal lengths and skew is singular")
    return k


def _camera(table: Any, where: str) -> CameraModel:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of camera keys, got {table!r}")
    missing = [k for k in _KEYS if k not in table]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}; a camera needs {list(_KEYS)}")
    unknown = sorted(set(table) - set(_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; allowed: {list(_KEYS + _OPTIONAL_KEYS)}"
        )
    fisheye = table.get("fisheye", False)
    if fisheye is not False:
        raise ConfigError(
            f"{where} fisheye: only OpenCV's pinhole model (5 coefficients) is supported, "
            f"got fisheye = {fisheye!r}"
        )
    name = table["name"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} name: expected a non-empty string, got {name!r}")
    dist = table["distortions"]
    n_dist = len(dist) if isinstance(dist, list) and len(dist) in (4, 5) else 5
    return CameraModel(
        name=name,
        size=_size(table["size"], f"{where} size"),
        matrix=_intrinsics(table["matrix"], f"{where} matrix"),
        distortion=np.array(
            _numbers(
                dist,
                (n_dist,),
                f"{where} distortions",
                "a list of 5 numbers (k1, k2, p1, p2, k3) or 4 (k1, k2, p1, p2)",
            )
        ),
        rotation=np.array(
            _numbers(
                table["rotation"],
                (3,),
                f"{where} rotation",
                "a Rodrigues vector, a list of 3 numbers",
            )
        ),
        translation=np.array(_numbers(table["translation"], (3,), f"{where} translation")),
    )


def read_calibration(path: str | Path) -> Calibration:
    """Read an Anipose ``calibration.toml``.

    Raises:
        ConfigError: the file is missing, not TOML, or a camera section is missing a key or
            has a malformed value (the message names the file, ``[section]`` and key).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such calibration file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from exc
    loose = [k for k, v in data.items() if not isinstance(v, dict)]
    if loose:
        raise ConfigError(
            f"{path}: key(s) {loose} outside any section; expected only camera sections "
            f"([cam_0], [cam_1], ...) and [{METADATA}]"
        )
    cameras = [_camera(t, f"{path} [{s}]") for s, t in data.items() if s != METADATA]
    if not cameras:
        raise ConfigError(f"{path}: no camera sections ([cam_0], [cam_1], ...)")
    seen: dict[str, str] = {}
    for section, cam in zip((s for s in data if s != METADATA), cameras):
        if cam.name in seen:
            raise ConfigError(
                f"{path} [{section}] name: {cam.name!r} is already the name of [{seen[cam.name]}]"
            )
        seen[cam.name] = section
    return Calibration(tuple(cameras), dict(data.get(METADATA, {})), path)


# --- writing ----------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any, where: str) -> str:
    """One TOML value (inline tables for mappings); ValueError for types TOML cannot hold."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)  # shortest text that reads back to the same float
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v, where)}" for k, v in value.items()
        )
        return "{" + (f" {items} " if items else "") + "}"
    raise ValueError(f"{where}: {type(value).__name__} cannot be written to TOML ({value!r})")


def calibration_toml(calibration: Calibration) -> str:
    """The text of ``calibration.toml`` for ``calibration`` (sections ``cam_0``, ``cam_1``...)."""
    lines: list[str] = []
    for i, c in enumerate(calibration.cameras):
        lines += [
            f"[cam_{i}]",
            f"name = {_toml_string(c.name)}",
            f"size = {_toml_value(list(c.size), 'size')}",
            f"matrix = {_toml_value(c.matrix, 'matrix')}",
            f"distortions = {_toml_value(c.distortion, 'distortions')}",
            f"rotation = {_toml_value(c.rotation, 'rotation')}",
            f"translation = {_toml_value(c.translation, 'translation')}",
            "",
        ]
    lines.append(f"[{METADATA}]")
    for key, value in calibration.metadata.items():
        lines.append(f"{_toml_key(str(key))} = {_toml_value(value, f'metadata.{key}')}")
    return "\n".join(lines) + "\n"


def write_calibration(path: str | Path, calibration: Calibration) -> None:
    """Write ``calibration`` as an Anipose ``calibration.toml`` (atomically)."""
    atomic_write_text(path, calibration_toml(calibration))
