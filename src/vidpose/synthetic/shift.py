"""Domain shifts of synthetic sessions: another arena, lamp, animal, contrast, lens and camera.

A shifted session is the same rig recorded on another day: the animal, its motion statistics,
the occluders, noise and compression are those of the project's ``difficulty``, but some of
what the camera sees has changed. One magnitude ``m`` scales every factor (``"mild"`` = 0.5,
``"strong"`` = 1, at most 2; 0 changes nothing); each factor's direction (darker or
brighter, smaller or larger, which way the camera moved, ...) is drawn per session from the
project's seed. The values at ``m`` (views of ``S`` = min(height, width) px):

==========  =============================================================  ==================
factor      what changes                                                   value at m
==========  =============================================================  ==================
background  the arena floor is blended with a floor of another kind         mix min(1, m)
            (tiles with grout lines under fine bedding, same mean grey)    (strong: all new)
lighting    lamp level; a linear lamp gradient across the view at a        gain 1 ± 0.4 m;
            random angle; the lamp's colour (R, G, B gains of mean 1;      gradient ± 0.4 m;
            the only factor that makes the video colour)                   tint ± 0.12 m
size        the animal's scale (body length 0.27 S times it)               exp(± 0.3 m)
contrast    the animal's grey levels' distance from the floor's            1 ± 0.45 m
            (FLOOR_GREY) is multiplied by it
blur        a Gaussian lens blur after the difficulty's own blur           sigma 2 m S/256 px
camera      the image moves: zoom and rotation about the view centre,      zoom exp(± 0.12 m),
            then a translation; the arena edge may come into view and      rotation ± 8 m deg,
            the animal leave it                                            shift 0.08 m S px
==========  =============================================================  ==================

(strong = 1: gain 0.6 or 1.4, size 0.74 or 1.35, contrast 0.55 or 1.45, blur 2 px at 256,
camera 8 deg, zoom 0.89 or 1.13, 20 px at 256; mild halves every change.) With two views side
by side each view gets the same change. Ground truth follows exactly: keypoints are projected
through the moved camera and drawn at the changed size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from vidpose.errors import ConfigError, ProjectError

SHIFT_KINDS: tuple[str, ...] = ("background", "lighting", "size", "contrast", "blur", "camera")
"""The factors a shifted session can change, in the order they are listed."""

SHIFT_PRESETS: dict[str, float] = {"mild": 0.5, "strong": 1.0}
"""Named magnitudes."""

MAX_MAGNITUDE = 2.0

SESSIONS_FILE = "ground_truth/sessions.json"
"""Where a project with shifted sessions records each session's kind and shift."""

SESSION_KINDS = ("labeled", "unlabeled", "shifted")

# Salt of the seed streams of shifted sessions: shifted session j draws from
# SeedSequence(seed, spawn_key=(SHIFT_STREAM, j)), which no unshifted session uses, so adding
# shifted sessions leaves every other file of a project as it was, and shifted session j is the
# same whatever n_videos or n_labeled are.
SHIFT_STREAM = 0x53484946


@dataclass(frozen=True)
class SessionShift:
    """One session's changes; the defaults change nothing (see the module docstring).

    Attributes:
        background_mix: weight of the other floor (0 = the project's arena, 1 = only the other).
        texture_seed: randomness of the other floor.
        lamp_gain: lamp level factor.
        lamp_gradient: the lamp gradient's strength (brightness 1 ± this at the corners).
        lamp_gradient_deg: direction in which the lamp gets brighter (0 = +x, 90 = +y).
        lamp_tint: (R, G, B) gains of the lamp's colour, mean 1.
        body_scale: animal size factor.
        contrast: factor on the animal's grey levels' distance from the floor's.
        blur_sigma_px: Gaussian lens blur, px.
        camera_zoom: image zoom about the view centre.
        camera_rotation_deg: image rotation about the view centre, degrees (x towards y).
        camera_shift_px: (x, y) image translation after zoom and rotation, px.
    """

    background_mix: float = 0.0
    texture_seed: int = 0
    lamp_gain: float = 1.0
    lamp_gradient: float = 0.0
    lamp_gradient_deg: float = 0.0
    lamp_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    body_scale: float = 1.0
    contrast: float = 1.0
    blur_sigma_px: float = 0.0
    camera_zoom: float = 1.0
    camera_rotation_deg: float = 0.0
    camera_shift_px: tuple[float, float] = (0.0, 0.0)

    @property
    def changes_background(self) -> bool:
        return self.background_mix > 0

    @property
    def changes_lamp(self) -> bool:
        return self.lamp_gain != 1.0 or self.lamp_gradient != 0.0

    @property
    def tinted(self) -> bool:
        return tuple(self.lamp_tint) != (1.0, 1.0, 1.0)

    @property
    def moves_camera(self) -> bool:
        return (
            self.camera_zoom != 1.0
            or self.camera_rotation_deg != 0.0
            or tuple(self.camera_shift_px) != (0.0, 0.0)
        )

    @property
    def is_neutral(self) -> bool:
        """True when the session looks like the labeled one (the texture seed aside)."""
        return replace(self, texture_seed=0) == SessionShift()

    def factors(self) -> dict[str, dict[str, float | int | list[float]]]:
        """The values grouped by factor, as ``sessions.json`` records them."""
        return {
            "background": {"mix": self.background_mix, "texture_seed": self.texture_seed},
            "lighting": {
                "gain": self.lamp_gain,
                "gradient": self.lamp_gradient,
                "gradient_deg": self.lamp_gradient_deg,
                "tint_rgb": list(self.lamp_tint),
            },
            "size": {"scale": self.body_scale},
            "contrast": {"factor": self.contrast},
            "blur": {"sigma_px": self.blur_sigma_px},
            "camera": {
                "zoom": self.camera_zoom,
                "rotation_deg": self.camera_rotation_deg,
                "shift_px": list(self.camera_shift_px),
            },
        }

    @classmethod
    def from_factors(cls, factors: dict) -> SessionShift:
        """The inverse of :meth:`factors`."""
        bg, light, cam = factors["background"], factors["lighting"], factors["camera"]
        return cls(
            background_mix=float(bg["mix"]),
            texture_seed=int(bg["texture_seed"]),
            lamp_gain=float(light["gain"]),
            lamp_gradient=float(light["gradient"]),
            lamp_gradient_deg=float(light["gradient_deg"]),
            lamp_tint=tuple(float(v) for v in light["tint_rgb"]),  # type: ignore[arg-type]
            body_scale=float(factors["size"]["scale"]),
            contrast=float(factors["contrast"]["factor"]),
            blur_sigma_px=float(factors["blur"]["sigma_px"]),
            camera_zoom=float(cam["zoom"]),
            camera_rotation_deg=float(cam["rotation_deg"]),
            camera_shift_px=tuple(float(v) for v in cam["shift_px"]),  # type: ignore[arg-type]
        )


def shift_magnitude(shift: str | float) -> float:
    """``"mild"``, ``"strong"`` or a number from 0 to :data:`MAX_MAGNITUDE`, as a number."""
    if isinstance(shift, str):
        key = shift.strip().lower()
        if key in SHIFT_PRESETS:
            return SHIFT_PRESETS[key]
        try:
            value = float(key)
        except ValueError:
            raise ConfigError(
                f"shift must be mild, strong or a number from 0 to {MAX_MAGNITUDE:g}, got {shift!r}"
            ) from None
    else:
        value = float(shift)
    if not 0.0 <= value <= MAX_MAGNITUDE:
        raise ConfigError(
            f"shift must be mild, strong or a number from 0 to {MAX_MAGNITUDE:g}, got {shift!r}"
        )
    return value


def check_shift_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    """Factor names (a sequence or comma-separated text; None = all) checked, in
    :data:`SHIFT_KINDS` order."""
    if kinds is None:
        return SHIFT_KINDS
    names = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    names = [k for k in names if k]
    unknown = [k for k in names if k not in SHIFT_KINDS]
    if unknown:
        raise ConfigError(
            f"shift kinds {', '.join(map(repr, unknown))} unknown; choose from "
            f"{', '.join(SHIFT_KINDS)}"
        )
    return tuple(k for k in SHIFT_KINDS if k in names)


def draw_shift(
    rng: np.random.Generator,
    magnitude: float,
    kinds: Sequence[str],
    size: tuple[int, int],
) -> SessionShift:
    """A random :class:`SessionShift` of ``magnitude`` in the factors ``kinds``.

    Every random draw is made whatever ``kinds`` are, so a session's directions do not depend
    on which factors are on; values are rounded to 6 decimals (what is recorded is what is
    rendered). ``size`` is a view's (height, width).
    """
    m = float(magnitude)
    s = min(size)

    def sign() -> float:
        return 1.0 if rng.uniform() < 0.5 else -1.0

    texture_seed = int(rng.integers(0, 2**31))
    gain_sign, gradient_deg, tint_phase = sign(), rng.uniform(0.0, 360.0), rng.uniform(0, 2 * np.pi)
    size_sign, contrast_sign = sign(), sign()
    zoom_sign, rotation_sign, shift_deg = sign(), sign(), rng.uniform(0.0, 360.0)
    if m == 0:
        return SessionShift(texture_seed=texture_seed)

    def r(x: float) -> float:
        return round(float(x), 6)

    on = set(kinds)
    out: dict = {"texture_seed": texture_seed}
    if "background" in on:
        out["background_mix"] = r(min(1.0, m))
    if "lighting" in on:
        out["lamp_gain"] = r(1.0 + gain_sign * 0.4 * m)
        out["lamp_gradient"] = r(0.4 * m)
        out["lamp_gradient_deg"] = r(gradient_deg)
        phases = tint_phase + np.array([0.0, -2 * np.pi / 3, 2 * np.pi / 3])
        out["lamp_tint"] = tuple(r(1.0 + 0.12 * m * np.cos(p)) for p in phases)
    if "size" in on:
        out["body_scale"] = r(np.exp(size_sign * 0.3 * m))
    if "contrast" in on:
        out["contrast"] = r(1.0 + contrast_sign * 0.45 * m)
    if "blur" in on:
        out["blur_sigma_px"] = r(2.0 * m * s / 256.0)
    if "camera" in on:
        out["camera_zoom"] = r(np.exp(zoom_sign * 0.12 * m))
        out["camera_rotation_deg"] = r(rotation_sign * 8.0 * m)
        t = np.deg2rad(shift_deg)
        out["camera_shift_px"] = (r(0.08 * m * s * np.cos(t)), r(0.08 * m * s * np.sin(t)))
    return SessionShift(**out)


@dataclass(frozen=True)
class Session:
    """One session (video) of a synthetic project, as ``ground_truth/sessions.json`` lists it.

    Attributes:
        stem: ``session00`` ... (the project's rig) or ``shift00`` ... (shifted).
        kind: ``"labeled"`` (its frames are in ``CollectedData.csv``), ``"unlabeled"`` (same
            look, no labels) or ``"shifted"`` (a domain shift, no labels).
        video: ``videos/<stem>.mp4``.
        ground_truth: ``ground_truth/<stem>.csv``.
        ground_truth_full: ``ground_truth/<stem>_full.csv``.
        shift: what changed (all defaults for unshifted sessions).
        labeled_frames: the labeled frame indices (labeled sessions only).
    """

    stem: str
    kind: str
    video: Path
    ground_truth: Path
    ground_truth_full: Path
    shift: SessionShift = field(default_factory=SessionShift)
    labeled_frames: list[int] = field(default_factory=list)


def sessions_json(
    project_dir: Path,
    sessions: Sequence[Session],
    seed: int,
    magnitude: float,
    kinds: Sequence[str],
) -> str:
    """The text of ``ground_truth/sessions.json``: paths relative to the project."""

    def rel(p: Path) -> str:
        return p.relative_to(project_dir).as_posix()

    record = {
        "seed": seed,
        "shift_magnitude": magnitude,
        "shift_kinds": list(kinds),
        "sessions": {
            s.stem: {
                "kind": s.kind,
                "video": rel(s.video),
                "ground_truth": rel(s.ground_truth),
                "ground_truth_full": rel(s.ground_truth_full),
                "labeled_frames": list(s.labeled_frames),
                "factors": s.shift.factors(),
            }
            for s in sessions
        },
    }
    return json.dumps(record, indent=1) + "\n"


def read_sessions(project_dir: str | Path) -> list[Session]:
    """The sessions of a project written with shifted sessions, in video order.

    Raises:
        ProjectError: the project has no ``ground_truth/sessions.json`` or it is damaged.
    """
    root = Path(project_dir)
    path = root / SESSIONS_FILE
    if not path.is_file():
        raise ProjectError(
            f"{path}: not found; it is written by `vidpose synthesize --shifted N` "
            "(synthesize_project(..., shifted_sessions=N)) with N >= 1"
        )
    try:
        record = json.loads(path.read_text())
        kinds = {stem: entry["kind"] for stem, entry in record["sessions"].items()}
        odd = {stem: kind for stem, kind in kinds.items() if kind not in SESSION_KINDS}
        if odd:
            raise ValueError(f"session kinds {odd} are not among {', '.join(SESSION_KINDS)}")
        return [
            Session(
                stem=stem,
                kind=entry["kind"],
                video=root / entry["video"],
                ground_truth=root / entry["ground_truth"],
                ground_truth_full=root / entry["ground_truth_full"],
                shift=SessionShift.from_factors(entry["factors"]),
                labeled_frames=[int(t) for t in entry["labeled_frames"]],
            )
            for stem, entry in record["sessions"].items()
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProjectError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
