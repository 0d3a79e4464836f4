"""``vidpose.yaml``: what a project's labels alone cannot say.

Example::

    skeleton:                  # edges drawn on labeled videos
      - [nose, ear_left]
      - [nose, ear_right]
    flip_pairs:                # left/right names swapped by horizontal-flip augmentation
      - [ear_left, ear_right]
    pca_keypoints: [nose, ear_left, ear_right, tail_base]   # pose-PCA keypoints (default: all)
    views: [top, bottom]       # multiview / mirrored: one name per view
    view_matches:              # each row names the same body part once per view, in views order
      - [paw1_top, paw1_bottom]
    calibration: calibration.toml   # multi-camera: Anipose cameras named as the views
    config:                    # overrides of the packaged training defaults (see vidpose.config)
      training: {max_epochs: 100}

Every key is optional. Unknown top-level keys are errors naming the key.

Views are parts of one frame (a mirrored rig, ``view_matches`` pairing their keypoints) when
the labels are one ``CollectedData.csv``; they are separate cameras when the project has one
table ``CollectedData_<view>.csv`` per view (see :mod:`vidpose.project.multicamera`). The
cameras' calibration (``calibration:``, a path relative to the project) is read by
:func:`load_calibration`: an Anipose ``calibration.toml`` whose camera names are the views.

A DeepLabCut project's ``config.yaml`` beside the labels is honoured too (:func:`load_dlc_config`):
its ``bodyparts`` order the keypoints, its ``skeleton`` is drawn when ``vidpose.yaml`` has none,
its ``pcutoff`` is label-video's default ``--min-likelihood``, and its ``TrainingFraction``
becomes the split (``data.test_fraction = 1 - TrainingFraction``, no validation frames, as
DeepLabCut trains) unless ``vidpose.yaml``'s ``config:`` sets the fractions itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidpose.errors import ConfigError, ProjectError
from vidpose.geometry import Calibration, read_calibration

SETTINGS_FILE = "vidpose.yaml"
DLC_CONFIG_FILE = "config.yaml"


@dataclass
class ProjectSettings:
    """Parsed ``vidpose.yaml``.

    Attributes:
        skeleton: pairs of keypoint names joined by an edge when drawing.
        flip_pairs: pairs of keypoint names that swap under a horizontal flip.
        pca_keypoints: keypoints that enter single-view pose PCA; None means all.
        views: view names for multiview / mirrored projects; empty for single-view.
        view_matches: rows of keypoint names, one per view (len(row) == len(views)).
        calibration: the cameras' ``calibration.toml``, as written (relative to the project
            unless absolute); None when not given.
        config: overrides of the training config, merged by vidpose.config.
    """

    skeleton: list[tuple[str, str]] = field(default_factory=list)
    flip_pairs: list[tuple[str, str]] = field(default_factory=list)
    pca_keypoints: list[str] | None = None
    views: list[str] = field(default_factory=list)
    view_matches: list[list[str]] = field(default_factory=list)
    calibration: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    keypoint_order: list[str] | None = None  # from a DeepLabCut config.yaml's bodyparts
    pcutoff: float | None = None  # from a DeepLabCut config.yaml
    sources: list[str] = field(default_factory=list)  # files the settings came from

    def referenced_keypoints(self) -> list[tuple[str, str]]:
        """(where, name) for every keypoint name the settings mention, for validation."""
        out: list[tuple[str, str]] = []
        for i, (a, b) in enumerate(self.skeleton):
            out += [(f"skeleton[{i}]", a), (f"skeleton[{i}]", b)]
        for i, (a, b) in enumerate(self.flip_pairs):
            out += [(f"flip_pairs[{i}]", a), (f"flip_pairs[{i}]", b)]
        for name in self.pca_keypoints or []:
            out.append(("pca_keypoints", name))
        for i, row in enumerate(self.view_matches):
            out += [(f"view_matches[{i}]", name) for name in row]
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.skeleton:
            out["skeleton"] = [list(p) for p in self.skeleton]
        if self.flip_pairs:
            out["flip_pairs"] = [list(p) for p in self.flip_pairs]
        if self.pca_keypoints is not None:
            out["pca_keypoints"] = list(self.pca_keypoints)
        if self.views:
            out["views"] = list(self.views)
        if self.view_matches:
            out["view_matches"] = [list(r) for r in self.view_matches]
        if self.calibration is not None:
            out["calibration"] = self.calibration
        if self.config:
            out["config"] = self.config
        return out


_KNOWN = {
    "skeleton",
    "flip_pairs",
    "pca_keypoints",
    "views",
    "view_matches",
    "calibration",
    "config",
}


def _pairs(value: Any, key: str, path: Path) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProjectError(f"{path}: '{key}' must be a list of [name, name] pairs")
    out = []
    for i, pair in enumerate(value):
        if not (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(x, str) for x in pair)
        ):
            raise ProjectError(f"{path}: {key}[{i}] must be a pair of keypoint names, got {pair!r}")
        out.append((pair[0], pair[1]))
    return out


def parse_settings(data: Any, path: Path) -> ProjectSettings:
    """Validate a loaded YAML mapping into ProjectSettings; errors name the file and key."""
    if data is None:
        return ProjectSettings()
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ProjectError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_KNOWN)}")
    pca = data.get("pca_keypoints")
    if pca is not None and not (isinstance(pca, list) and all(isinstance(x, str) for x in pca)):
        raise ProjectError(f"{path}: 'pca_keypoints' must be a list of keypoint names")
    views = data.get("views") or []
    if not (isinstance(views, list) and all(isinstance(x, str) for x in views)):
        raise ProjectError(f"{path}: 'views' must be a list of view names")
    matches = data.get("view_matches") or []
    if not isinstance(matches, list):
        raise ProjectError(f"{path}: 'view_matches' must be a list of rows of keypoint names")
    if matches and len(views) < 2:
        raise ProjectError(f"{path}: 'view_matches' given but 'views' names fewer than 2 views")
    for i, row in enumerate(matches):
        if not (
            isinstance(row, list)
            and len(row) == len(views)
            and all(isinstance(x, str) for x in row)
        ):
            raise ProjectError(
                f"{path}: view_matches[{i}] must name {len(views)} keypoints (one per view "
                f"{views}), got {row!r}"
            )
    calibration = data.get("calibration")
    if calibration is not None and not (isinstance(calibration, str) and calibration.strip()):
        raise ProjectError(
            f"{path}: 'calibration' must be the path of a calibration.toml (relative to the "
            f"project), got {calibration!r}"
        )
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ProjectError(f"{path}: 'config' must be a mapping of config overrides")
    return ProjectSettings(
        skeleton=_pairs(data.get("skeleton"), "skeleton", path),
        flip_pairs=_pairs(data.get("flip_pairs"), "flip_pairs", path),
        pca_keypoints=list(pca) if pca is not None else None,
        views=list(views),
        view_matches=[list(r) for r in matches],
        calibration=calibration,
        config=dict(config),
    )


def load_settings(project_dir: str | Path) -> ProjectSettings:
    """Read ``PROJECT/vidpose.yaml`` (defaults when absent), completed by a DeepLabCut
    ``PROJECT/config.yaml`` when there is one (see the module docstring)."""
    path = Path(project_dir) / SETTINGS_FILE
    settings = ProjectSettings()
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{path}: not valid UTF-8 YAML: {exc}") from exc
        settings = parse_settings(data, path)
        settings.sources.append(str(path))
    dlc = load_dlc_config(project_dir)
    if dlc is not None:
        _merge_dlc(settings, dlc)
    return settings


def calibration_path(project_dir: str | Path, settings: ProjectSettings) -> Path | None:
    """Where ``settings.calibration`` points (relative to the project); None when not given."""
    if settings.calibration is None:
        return None
    return Path(project_dir) / settings.calibration


def camera_name_mismatch(calibration: Calibration, views: list[str]) -> str | None:
    """Why the calibration's camera names are not ``views`` (both named); None when they are."""
    names = calibration.names
    if sorted(names) == sorted(views):
        return None
    listed = f"views {views}" if views else f"no views (add 'views: {names}')"
    return (
        f"camera names {names} must be the views of {SETTINGS_FILE}, which has {listed}; "
        f"views without a camera {[v for v in views if v not in names]}, cameras that are not "
        f"views {[n for n in names if n not in views]}"
    )


def load_calibration(project_dir: str | Path, settings: ProjectSettings) -> Calibration | None:
    """The cameras of ``settings.calibration``, in ``views`` order; None when not given.

    Raises:
        ProjectError: the file is missing or malformed (the message names the file, section
            and key), or its camera names are not the views (both lists named).
    """
    path = calibration_path(project_dir, settings)
    if path is None:
        return None
    if not path.is_file():
        raise ProjectError(f"{path}: no such file (named by {SETTINGS_FILE} 'calibration')")
    try:
        calibration = read_calibration(path)
    except ConfigError as exc:
        raise ProjectError(str(exc)) from exc
    mismatch = camera_name_mismatch(calibration, settings.views)
    if mismatch:
        raise ProjectError(f"{path}: {mismatch}")
    return calibration.select(settings.views)


@dataclass
class DlcConfig:
    """What vidpose takes from a DeepLabCut project's ``config.yaml``."""

    path: Path
    bodyparts: list[str]
    skeleton: list[tuple[str, str]]
    pcutoff: float | None
    training_fraction: float | None


def load_dlc_config(project_dir: str | Path) -> DlcConfig | None:
    """``PROJECT/config.yaml`` if it is DeepLabCut's (a mapping with ``bodyparts``); None when
    there is none or it belongs to another tool.

    Raises:
        ProjectError: it is DeepLabCut's but a value vidpose uses is malformed (named).
    """
    path = Path(project_dir) / DLC_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None  # not ours to judge: another tool's file
    if not isinstance(data, dict) or "bodyparts" not in data:
        return None
    parts = data.get("bodyparts")
    if parts == "MULTI!" or ("multianimalproject" in data and data.get("multianimalproject")):
        raise ProjectError(
            f"{path}: a multi-animal DeepLabCut project; vidpose is single-animal today (one "
            "instance of each keypoint per frame)"
        )
    if not (isinstance(parts, list) and parts and all(isinstance(x, str) for x in parts)):
        raise ProjectError(f"{path}: 'bodyparts' must be a list of keypoint names, got {parts!r}")
    pcutoff = data.get("pcutoff")
    if pcutoff is not None and not (isinstance(pcutoff, (int, float)) and 0 <= pcutoff <= 1):
        raise ProjectError(f"{path}: 'pcutoff' must be a number in [0, 1], got {pcutoff!r}")
    tf = data.get("TrainingFraction")
    if isinstance(tf, list):
        tf = tf[0] if tf else None
    if tf is not None and not (isinstance(tf, (int, float)) and 0 < tf <= 1):
        raise ProjectError(f"{path}: 'TrainingFraction' must be in (0, 1], got {tf!r}")
    return DlcConfig(
        path=path,
        bodyparts=list(parts),
        skeleton=_pairs(data.get("skeleton") or None, "skeleton", path),
        pcutoff=None if pcutoff is None else float(pcutoff),
        training_fraction=None if tf is None else float(tf),
    )


def _merge_dlc(settings: ProjectSettings, dlc: DlcConfig) -> None:
    settings.sources.append(str(dlc.path))
    settings.keypoint_order = list(dlc.bodyparts)
    settings.pcutoff = dlc.pcutoff
    if not settings.skeleton:
        settings.skeleton = list(dlc.skeleton)
    data = settings.config.get("data") or {}
    if dlc.training_fraction is not None and not (
        {"val_fraction", "test_fraction", "split_file"} & set(data)
    ):
        settings.config = {
            **settings.config,
            "data": {
                **data,
                "test_fraction": round(1.0 - dlc.training_fraction, 6),
                "val_fraction": 0.0,
            },
        }


def dump_settings(settings: ProjectSettings) -> str:
    """YAML text for ``vidpose.yaml``."""
    return yaml.safe_dump(settings.to_dict(), sort_keys=False, default_flow_style=None)
