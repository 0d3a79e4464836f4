"""``Poses`` <-> a movement poses dataset (xarray), the layout of the movement package.

movement (https://movement.neuroinformatics.dev) holds poses as an ``xarray.Dataset`` with
``position`` (time, space, keypoints, individuals) and ``confidence`` (time, keypoints,
individuals), and attributes ``ds_type="poses"``, ``source_software``, ``fps`` and
``time_unit`` ("seconds" when fps is known, else "frames"). vidpose is single-animal: one
individual. xarray is imported on first use (``uv pip install xarray``, or the ``movement``
extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidpose.errors import LabelsError
from vidpose.io.poses import Poses

INDIVIDUAL = "individual_0"


def _xarray():
    try:
        import xarray
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            "converting to and from movement datasets needs xarray: uv pip install xarray"
        ) from exc
    return xarray


def to_movement(poses: Poses, fps: float | None = None, source: str = "vidpose") -> Any:
    """A movement poses dataset of a predictions (or labels) table of one video.

    Args:
        poses: frames must be frame numbers (a video's predictions) unless ``fps`` is None.
        fps: frames per second; the time axis is then in seconds, else in frames.
        source: ``source_software`` attribute.
    """
    xr = _xarray()
    if fps is not None and poses.frames.dtype.kind not in "iu":
        raise LabelsError(
            "to_movement with fps needs a video's predictions (frame numbers), not image paths"
        )
    frames = (
        poses.frames.astype(float)
        if poses.frames.dtype.kind in "iuf"
        else np.arange(poses.n_frames)
    )
    time = frames / fps if fps else frames
    position = poses.coords.transpose(0, 2, 1)[..., None]  # (time, space, keypoints, 1)
    confidence = (
        np.full((poses.n_frames, poses.n_keypoints), np.nan)
        if poses.likelihood is None
        else poses.likelihood
    )[..., None]
    return xr.Dataset(
        {
            "position": (("time", "space", "keypoints", "individuals"), position),
            "confidence": (("time", "keypoints", "individuals"), confidence),
        },
        coords={
            "time": time,
            "space": ["x", "y"],
            "keypoints": list(poses.keypoints),
            "individuals": [INDIVIDUAL],
        },
        attrs={
            "source_software": source,
            "ds_type": "poses",
            "fps": None if fps is None else float(fps),
            "time_unit": "seconds" if fps else "frames",
        },
    )


def from_movement(ds: Any, individual: str | None = None, scorer: str = "movement") -> Poses:
    """The predictions of one individual of a movement poses dataset, frame numbers rebuilt
    from the time axis (``time * fps`` when the time unit is seconds).

    Raises:
        LabelsError: more than one individual and none chosen, or not a poses dataset.
    """
    if "position" not in ds:
        raise LabelsError("not a movement poses dataset: it has no 'position' variable")
    names = [str(i) for i in ds.coords["individuals"].values]
    if individual is None:
        if len(names) > 1:
            raise LabelsError(
                f"the dataset holds {len(names)} individuals ({names}); vidpose is single-animal "
                "today: pick one with individual="
            )
        individual = names[0]
    one = ds.sel(individuals=individual)
    position = np.asarray(one["position"].transpose("time", "keypoints", "space").values, float)
    conf = np.asarray(one["confidence"].transpose("time", "keypoints").values, float)
    time = np.asarray(ds.coords["time"].values, dtype=float)
    fps = ds.attrs.get("fps")
    if ds.attrs.get("time_unit") == "seconds" and fps:
        time = time * float(fps)
    return Poses(
        coords=position,
        keypoints=[str(k) for k in ds.coords["keypoints"].values],
        frames=np.rint(time).astype(np.int64),
        likelihood=conf,
        scorer=scorer,
    )
