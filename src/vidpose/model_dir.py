"""The model directory: its layout, its ``model.json`` record, ensembles, and who may write it.

Every command that reads or writes a model directory goes through :class:`ModelDir`; no other
module spells out a file name inside one::

    MODEL_DIR/
      config.yaml               the resolved config: everything needed to rebuild the network
      model.json                ModelRecord: keypoints, image sizes, splits, project, version,
                                the views (cameras) of a multi-camera model
      calibration.toml          a multi-camera model's copy of the project's calibration
      checkpoints/best.ckpt     weights with the lowest validation pixel error
      checkpoints/last.ckpt     full training state, for --resume
      metrics.json              pixel error per split; written last: the model is complete
      predictions_labeled.csv   every labeled frame predicted, with its split (LP's set column)
      unsupervised.json         what the unsupervised losses fitted (pose subspaces)
      videos/<name>.csv         video predictions (and per-frame metric tables)
      videos/<session>_3d.csv   a multi-camera model's sessions triangulated (vidpose predict)
      report.html, outliers.csv, evaluation/   `vidpose evaluate`
      logs/                     TensorBoard and CSV training curves
      .lock                     held by the process training into the directory

An ensemble directory holds ``ensemble.json`` (member names and seeds) and one complete model
directory per member.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidpose._atomic import atomic_write_text, exclusive_file
from vidpose.errors import VidposeError

if TYPE_CHECKING:
    from vidpose.geometry import Calibration

RECORD_VERSION = 2
"""model.json layout version (1: wave-1 files without a version key)."""


LP_SET_NAMES = {"train": "train", "val": "validation", "test": "test"}
"""vidpose's split names -> the values of Lightning Pose's ``set`` column, which
``predictions_labeled.csv`` carries."""


class ModelDirError(VidposeError):
    """A model directory is missing, incomplete, in use or damaged."""


@dataclass
class ModelRecord:
    """What ``model.json`` says about a trained model (everything but weights and config).

    Attributes:
        keypoints: keypoint names, in the order of the network's outputs.
        project: absolute path of the project it was trained on.
        input_hw: (height, width) of the network input.
        image_hw: (height, width) of the labeled images.
        flip_pairs: keypoint pairs swapped by horizontal flips (vidpose.yaml).
        skeleton: edges drawn on labeled videos (vidpose.yaml).
        split: "train" / "val" / "test" -> the labeled image paths in that split.
        vidpose_version: the version that trained it.
        version: the layout version of this record (:data:`RECORD_VERSION`).
        views: the cameras of a multi-camera model, in the project's order (each video is one
            view, named ``<session>_<view>``); empty for a single-camera model.
        calibration: the file name, inside the model directory, of the model's copy of the
            project's calibration (``calibration.toml``); None without one.
    """

    keypoints: list[str]
    project: str
    input_hw: list[int]
    image_hw: list[int]
    flip_pairs: list[list[str]] = field(default_factory=list)
    skeleton: list[list[str]] = field(default_factory=list)
    split: dict[str, list[str]] = field(default_factory=dict)
    vidpose_version: str = ""
    version: int = RECORD_VERSION
    views: list[str] = field(default_factory=list)
    calibration: str | None = None

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> ModelRecord:
        if not isinstance(data, dict):
            raise ModelDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
        missing = [k for k in ("keypoints", "input_hw", "image_hw") if k not in data]
        if missing:
            raise ModelDirError(f"{path}: missing key(s) {missing}; the file is damaged")
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data.setdefault("project", "")
        data.setdefault("version", 1)
        views = data.get("views") or []
        if not (isinstance(views, list) and all(isinstance(v, str) and v for v in views)):
            raise ModelDirError(f"{path}: 'views' must be a list of camera names, got {views!r}")
        data["views"] = list(views)
        calibration = data.get("calibration")
        if calibration is not None and not (
            isinstance(calibration, str) and calibration and Path(calibration).name == calibration
        ):
            raise ModelDirError(
                f"{path}: 'calibration' must be a file name inside the model directory "
                f"(e.g. calibration.toml), got {calibration!r}"
            )
        return cls(**data)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, atomically (numpy values and paths allowed)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    """The JSON at ``path``; ModelDirError naming the file when it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: cannot be read ({exc}); the file is damaged") from exc


class ModelDir:
    """One model directory (see the module docstring for its layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # -- layout -------------------------------------------------------------------------------

    config = property(lambda self: self.path / "config.yaml")
    record_path = property(lambda self: self.path / "model.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_ckpt = property(lambda self: self.checkpoints / "best.ckpt")
    last_ckpt = property(lambda self: self.checkpoints / "last.ckpt")
    metrics_path = property(lambda self: self.path / "metrics.json")
    labeled_predictions = property(lambda self: self.path / "predictions_labeled.csv")
    unsupervised = property(lambda self: self.path / "unsupervised.json")
    videos = property(lambda self: self.path / "videos")
    logs = property(lambda self: self.path / "logs")
    report = property(lambda self: self.path / "report.html")
    outliers = property(lambda self: self.path / "outliers.csv")
    evaluation = property(lambda self: self.path / "evaluation")
    lock_path = property(lambda self: self.path / ".lock")
    calibration = property(lambda self: self.path / "calibration.toml")

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>.ckpt`` (``best`` or ``last``)."""
        return self.checkpoints / f"{name}.ckpt"

    # -- state --------------------------------------------------------------------------------

    def has_model(self) -> bool:
        """Whether a training run has started here (its config or record exists)."""
        return self.config.exists() or self.record_path.exists()

    def is_complete(self) -> bool:
        """Whether training finished: config, record, best weights and metrics all exist."""
        return all(
            p.exists() for p in (self.config, self.record_path, self.best_ckpt, self.metrics_path)
        )

    def require_complete(self) -> None:
        """ModelDirError saying what is missing and what to do, unless :meth:`is_complete`."""
        if not self.path.is_dir():
            what = "is a file, not" if self.path.exists() else "does not exist; expected"
            raise ModelDirError(
                f"{self.path} {what} a model directory (train one with `vidpose train`)"
            )
        if self.is_complete():
            return
        if self.has_model():
            raise ModelDirError(
                f"{self.path}: training has not finished here (no "
                f"{'metrics.json' if self.best_ckpt.exists() else 'checkpoints/best.ckpt'}); "
                f"continue it with `vidpose train PROJECT --model-dir {self.path} --resume`"
            )
        raise ModelDirError(
            f"{self.path} is not a vidpose model directory (no config.yaml / model.json; "
            "train one with `vidpose train`, or give an ensemble directory)"
        )

    def read_record(self) -> ModelRecord:
        return ModelRecord.from_dict(read_json(self.record_path), self.record_path)

    def write_record(self, record: ModelRecord) -> None:
        write_json(self.record_path, asdict(record))

    def calibration_file(self, record: ModelRecord | None = None) -> Path | None:
        """The model's calibration file as its record names it (normally
        :attr:`calibration`); None for a model without one."""
        record = record or self.read_record()
        return None if record.calibration is None else self.path / record.calibration

    def read_calibration(self, record: ModelRecord | None = None) -> Calibration | None:
        """The model's cameras in the order of its ``views``; None for a model without a
        calibration.

        Raises:
            ModelDirError: the record names a calibration that is missing, unreadable, or
                whose camera names are not the model's views.
        """
        from vidpose.errors import ConfigError
        from vidpose.geometry import read_calibration

        record = record or self.read_record()
        path = self.calibration_file(record)
        if path is None:
            return None
        if not path.is_file():
            raise ModelDirError(
                f"{path} not found ({self.record_path.name} names it as the model's "
                "calibration); copy the project's calibration.toml there"
            )
        try:
            calibration = read_calibration(path)
        except (ConfigError, OSError) as exc:
            raise ModelDirError(f"{path}: cannot be read ({exc})") from exc
        if not record.views:
            raise ModelDirError(
                f"{self.record_path}: names a calibration ({path.name}) but no 'views'; a "
                "multi-camera model lists its cameras"
            )
        missing = [v for v in record.views if v not in calibration.names]
        if missing:
            raise ModelDirError(
                f"{path}: no camera for view(s) {missing} of {self.record_path.name} (views "
                f"{record.views}; cameras {calibration.names})"
            )
        return calibration.select(record.views)

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics_path)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_path, metrics)

    def read_unsupervised(self) -> dict[str, Any]:
        """What the unsupervised losses fitted; {} for a model trained without them."""
        return read_json(self.unsupervised) if self.unsupervised.exists() else {}

    # -- exclusive use ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for this process; ModelDirError if another process holds it.

        The lock is an advisory ``flock`` on ``.lock`` (released by the OS when the process
        dies, so a killed run never leaves the directory locked); the file records the PID.
        """
        self.path.mkdir(parents=True, exist_ok=True)

        def busy(holder: str) -> ModelDirError:
            return ModelDirError(
                f"{self.path} is in use by another vidpose process (pid {holder}); wait "
                "for it to finish or choose another --model-dir"
            )

        with exclusive_file(self.lock_path, str(os.getpid()), busy):
            yield


# -- ensembles ---------------------------------------------------------------------------------

ENSEMBLE_FILE = "ensemble.json"


def is_ensemble(path: str | os.PathLike) -> bool:
    return (Path(path) / ENSEMBLE_FILE).exists()


def write_ensemble(path: str | os.PathLike, members: list[str], seeds: list[int]) -> None:
    write_json(Path(path) / ENSEMBLE_FILE, {"members": members, "seeds": list(seeds)})


def ensemble_members(path: str | os.PathLike) -> list[ModelDir]:
    """The member model directories of an ensemble, in order; every one must be complete."""
    path = Path(path)
    info = read_json(path / ENSEMBLE_FILE)
    if not isinstance(info, dict) or not isinstance(info.get("members"), list):
        raise ModelDirError(f"{path / ENSEMBLE_FILE}: expected {{'members': [...]}}; damaged")
    members = [ModelDir(path / m) for m in info["members"]]
    missing = [m.name for m in members if not m.is_complete()]
    if missing:
        raise ModelDirError(
            f"{path}: members not trained yet: {missing} (run `vidpose train PROJECT --seeds ... "
            f"--model-dir {path}` again)"
        )
    return members


def model_members(path: str | os.PathLike) -> tuple[list[ModelDir], bool]:
    """(member model directories, whether ``path`` is an ensemble) of a model or ensemble
    directory, each checked to be complete."""
    if is_ensemble(path):
        return ensemble_members(path), True
    md = ModelDir(path)
    md.require_complete()
    return [md], False
