"""Labeled frames, decoded once and cached at the model's input size, with deterministic splits.

The cache is a uint8 tensor; the training loop moves it to the training device once and gathers
batches from it there, so a training step costs no host work beyond a tensor of indices.

For a temporal-context model (``context_frames`` W > 1) each labeled image also brings its
neighbours t-W//2..t+W//2, read from the PNGs beside it in DeepLabCut naming (``img0042.png``
has ``img0040.png``..``img0044.png``, same digit width); a missing neighbour, and every one
further out on that side, repeats the nearer frame (edge replication, as at a video's ends),
and one warning says how many labels lacked neighbours.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vidpose.data.geometry import orig_to_input
from vidpose.errors import ProjectError
from vidpose.io.poses import Poses

SPLITS = ("train", "val", "test")


@dataclass
class LabeledData:
    """Every labeled frame of a project at model input size.

    Attributes:
        windows: (N, W, 3, H, W_img) uint8 RGB at the model input size: each labeled frame
            with its W - 1 neighbours (the frame at ``W // 2``); W = 1 for single-frame models.
        keypoints: (N, K, 2) float32 input-pixel coordinates; 0 where missing.
        visible: (N, K) bool.
        orig_hw: (N, 2) int64 original (height, width) of each image.
        split: (N,) str, one of "train" | "val" | "test".
        labels: the labels table the rows come from.
    """

    windows: torch.Tensor
    keypoints: torch.Tensor
    visible: torch.Tensor
    orig_hw: torch.Tensor
    split: np.ndarray
    labels: Poses

    @property
    def images(self) -> torch.Tensor:
        """(N, 3, H, W) uint8: the labeled frames themselves (a view of ``windows``)."""
        return self.windows[:, self.context_frames // 2]

    @property
    def context_frames(self) -> int:
        """W, the frames per sample."""
        return int(self.windows.shape[1])

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def make_splits(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Deterministic train/val/test assignment of n rows: (n,) array of split names.

    Counts are rounded (n=90 with 0.1/0.1 gives 72/9/9); at least one training row is kept.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if n_val + n_test >= n:
        raise ProjectError(
            f"{n} labeled frames cannot be split with val_fraction={val_fraction} and "
            f"test_fraction={test_fraction}: no training frames would be left"
        )
    split = np.full(n, "train", dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val : n_val + n_test]] = "test"
    return split


SPLIT_FILE_COLUMNS = ("image", "split")


def read_split_file(path: Path, frames: Sequence[str]) -> np.ndarray:
    """The split a CSV file assigns to each labeled image: (N,) array of "train" | "val" |
    "test", in the order of ``frames``.

    The file has a header row ``image,split`` and one row per labeled image: its path as in
    the labels table (relative to the project, ``/`` separators) and its split. Every labeled
    image must be listed exactly once, and only labeled images.

    Raises:
        ProjectError: naming the file, the row and what was expected; every problem at once.
    """
    import csv

    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"data.split_file {path}: cannot be read ({exc})") from exc
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header[:2] != list(SPLIT_FILE_COLUMNS):
        raise ProjectError(
            f"data.split_file {path}: row 1 must be the header 'image,split', got "
            f"{','.join(rows[0]) if rows else 'an empty file'}"
        )
    wanted = {str(f).replace("\\", "/"): i for i, f in enumerate(frames)}
    split = np.full(len(frames), None, dtype=object)
    problems: list[str] = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        image = cells[0].strip().replace("\\", "/") if cells else ""
        name = cells[1].strip().lower() if len(cells) > 1 else ""
        if name not in SPLITS:
            problems.append(
                f"row {line} ({image}): split {name or '(empty)'!r} is not one of "
                f"{', '.join(SPLITS)}"
            )
            continue
        i = wanted.get(image)
        if i is None:
            problems.append(f"row {line}: {image!r} is not a labeled image of the project")
        elif split[i] is not None:
            problems.append(f"row {line}: {image!r} is listed twice")
        else:
            split[i] = name
    missing = [str(frames[i]) for i in np.flatnonzero(split == None)]  # noqa: E711
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        problems.append(f"{len(missing)} labeled image(s) are not listed: {shown}")
    if not problems and not (split == "train").any():
        problems.append("no image is in the train split")
    if problems:
        raise ProjectError(
            f"data.split_file {path}: "
            + ("\n  " if len(problems) > 1 else "")
            + "\n  ".join(problems)
        )
    return split


# Modes whose conversion to RGB is exact: 1-bit and 8-bit grey, palette and colour images;
# alpha is dropped, not composited, so a transparent pixel keeps the colour the camera saw.
RGB_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "YCbCr")
# 16-bit greyscale as scientific cameras write it (PNG opens as "I;16"; "I" is 32-bit signed
# and is accepted while its values fit 16 bits).
GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_REFUSED_WHY = {
    "F": "32-bit floating point",
    "I;16S": "signed 16-bit",
    "CMYK": "printing colours; Pillow would convert without the colour profile, so colours "
    "would not match the video frames",
    "LAB": "CIE L*a*b* colour",
    "HSV": "hue / saturation / value",
}


def read_image_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a labeled image, whatever mode a camera saved it in.

    1-bit, 8-bit grey, palette and colour images are converted (alpha dropped). 16-bit grey is
    scaled over the full 16-bit range, ``round(v * 255 / 65535)``, so the same scene saved in
    16 and in 8 bits reads within one level. Pillow opens 48-bit RGB PNGs as 8-bit RGB
    already (keeping each value's high byte, ``v >> 8``: within one level of that scaling).

    Raises:
        ProjectError: the mode has no faithful RGB reading (float, CMYK ...), or an "I" image
            holds values outside 0..65535; the message names the file and the mode.
    """
    with Image.open(path) as im:
        return image_to_rgb(im, path)


def image_to_rgb(im: Image.Image, name: str | Path) -> np.ndarray:
    """:func:`read_image_rgb` of an open image; ``name`` is the file named in errors."""
    mode = im.mode
    if mode in GREY16_MODES:
        grey = np.asarray(im).astype(np.int64)
        if mode == "I" and grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ProjectError(
                f"{name}: image mode 'I' (32-bit integer) holds values {grey.min()}.."
                f"{grey.max()}, outside the 16-bit range 0..65535 that can be scaled to 8 "
                f"bits; save it as a 16-bit or 8-bit greyscale PNG"
            )
        # round(v * 255 / 65535) in integers; v * 255 / 65535 = v / 257 is never a tie
        scaled = ((grey * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(scaled[..., None], 3, axis=2)
    if mode not in RGB_MODES:
        why = _REFUSED_WHY.get(mode)
        raise ProjectError(
            f"{name}: image mode {mode!r}{f' ({why})' if why else ''} is not supported; "
            f"supported: 1-bit and 8-bit grey (1, L, LA), palette (P, PA), colour "
            f"(RGB, RGBA, RGBX, YCbCr) and 16-bit grey (I;16, I;16B, or I holding 0..65535); "
            f"save it as an 8-bit RGB or an 8/16-bit greyscale PNG"
        )
    if mode in ("P", "PA"):
        # a palette may carry transparency; RGBA first, so it is dropped like any alpha
        # (straight to RGB, Pillow warns about palette transparency)
        im = im.convert("RGBA")
    return np.array(im.convert("RGB"))


def resize_uint8(images: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 3, H0, W0) uint8 -> (N, 3, H, W) uint8, bilinear with antialiasing."""
    if tuple(images.shape[2:]) == tuple(hw):
        return images
    out = torch.nn.functional.interpolate(
        images.float(), size=hw, mode="bilinear", align_corners=False, antialias=True
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


_FRAME_NAME = re.compile(r"^(?P<stem>.*?)(?P<digits>\d+)(?P<ext>\.png)$", re.IGNORECASE)

# A frame pulled from a video to stand in for a missing neighbour PNG: (video, frame index).
VideoFrame = tuple[Path, int]
Source = Path | VideoFrame


def frame_number(path: Path) -> tuple[str, int, int, str] | None:
    """(stem, index, digit width, ext) of ``img0042.png``-style names; None without a number."""
    m = _FRAME_NAME.match(path.name)
    if m is None:
        return None
    return m["stem"], int(m["digits"]), len(m["digits"]), m["ext"]


def neighbour_paths(
    path: Path, context_frames: int, video: tuple[Path, int] | None = None
) -> list[Source]:
    """The W = ``context_frames`` sources of ``path``'s window, ``path`` itself in the middle.

    Neighbour ``img<digits±k>.png`` (same digit width) is used when it exists; failing that,
    frame ``digits±k`` of ``video`` = (path, n_frames) when one is given and the index is inside
    it; otherwise that slot, and every one further out on the same side, repeats the nearer frame
    (the centre frame itself when the adjacent one is missing). A name without a trailing frame
    number gets the centre frame everywhere.
    """
    half = context_frames // 2
    parsed = frame_number(path)
    out: list[Source] = [path] * context_frames
    if parsed is None:
        return out
    stem, index, width, ext = parsed
    for sign in (-1, 1):
        prev: Source = path
        blocked = False
        for k in range(1, half + 1):
            j = index + sign * k
            cand = path.with_name(f"{stem}{j:0{width}d}{ext}") if j >= 0 else None
            if not blocked and cand is not None and cand.exists() and cand != path:
                prev = cand
            elif not blocked and video is not None and 0 <= j < video[1]:
                prev = (video[0], j)
            else:
                blocked = True
            out[half + sign * k] = prev
    return out


def sequential_folders(image_paths: list[Path]) -> set[Path]:
    """Folders whose labeled images are numbered as a sequence, not by video frame.

    DeepLabCut names a labeled image after its frame in the source video, so two labels rarely
    sit on adjacent numbers. When most labels in a folder do (``img00``, ``img01``, ... as in a
    flattened export) the numbers are IDs: ``img01`` is another labeled frame, not the frame after
    ``img00``, and must not be used as its neighbour.
    """
    by_folder: dict[Path, set[int]] = {}
    for p in image_paths:
        parsed = frame_number(Path(p))
        if parsed is not None:
            by_folder.setdefault(Path(p).parent, set()).add(parsed[1])
    out = set()
    for folder, idx in by_folder.items():
        adjacent = sum(1 for i in idx if i + 1 in idx or i - 1 in idx)
        if len(idx) >= 4 and adjacent > len(idx) / 2:
            out.add(folder)
    return out


def _load_rgb_resized(path: Path, input_hw: tuple[int, int]) -> tuple[torch.Tensor, tuple]:
    rgb = read_image_rgb(path)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    return resize_uint8(t, input_hw)[0], rgb.shape[:2]


def _read_video_frames(
    video: Path, indices: list[int], input_hw: tuple[int, int]
) -> dict[int, torch.Tensor]:
    """Frames ``indices`` of ``video`` (see :func:`vidpose.video.read_frames`) at ``input_hw``."""
    from vidpose.video import read_frames

    frames = read_frames(video, indices)
    if not frames:
        return {}
    stacked = torch.from_numpy(np.stack(list(frames.values()))).permute(0, 3, 1, 2)
    return dict(zip(frames, resize_uint8(stacked, input_hw), strict=True))


def _videos_by_folder(
    image_paths: list[Path], videos: list[tuple[Path, int]], untrusted: set[Path]
) -> dict[Path, tuple[Path, int]]:
    """labeled-data/<name>/ -> (videos/<name>.<ext>, n_frames) where the names match."""
    by_stem = {Path(v).stem: (Path(v), int(n)) for v, n in videos}
    out = {}
    for p in image_paths:
        folder = Path(p).parent
        if folder not in untrusted and folder.name in by_stem:
            out[folder] = by_stem[folder.name]
    return out


# A video frame agrees with its labeled PNG when their mean absolute difference at the model's
# input size is at most this (out of 255) and no larger than for the frames on either side: a
# PNG extracted from that very video differs by YUV->RGB rounding only; another video, or image
# numbers off by one, fail one test or the other.
MATCH_TOLERANCE = 3.0


def load_labeled(
    labels: Poses,
    image_paths: list[Path],
    input_hw: tuple[int, int],
    split: np.ndarray,
    context_frames: int = 1,
    videos: list[tuple[Path, int]] | None = None,
) -> LabeledData:
    """Decode every labeled image once, resize to ``input_hw`` and convert keypoints.

    Images of different sizes are allowed (each keeps its own scale factor). With
    ``context_frames`` W > 1 (odd), each image's W - 1 neighbours are loaded too into
    ``windows``: from the PNGs beside it, else from the source video when ``videos`` (a list of
    (path, n_frames)) has one named like the image's folder (``labeled-data/<name>/img0042.png``
    is frame 42 of ``videos/<name>.mp4``; the video is used only if its frames match the labeled
    PNGs), else by edge replication (:func:`neighbour_paths`). Warnings say once how many labels
    lacked some neighbour, and which folders are numbered as a sequence rather than by frame.
    """
    n = labels.n_frames
    w = context_frames
    if w < 1 or w % 2 == 0:
        raise ValueError(f"context_frames must be odd and >= 1, got {w}")
    paths = [Path(p) for p in image_paths]
    windows = torch.empty((n, w, 3, *input_hw), dtype=torch.uint8)
    orig_hw = np.zeros((n, 2), dtype=np.int64)
    for i, path in enumerate(paths):
        windows[i, w // 2], orig_hw[i] = _load_rgb_resized(path, input_hw)
    if w > 1:
        _fill_neighbours(windows, paths, input_hw, videos or [])
    coords = orig_to_input(labels.coords, orig_hw[:, None, :], input_hw)
    visible = ~np.isnan(coords).any(axis=2)
    coords = np.where(visible[..., None], coords, 0.0)
    return LabeledData(
        windows=windows,
        keypoints=torch.from_numpy(coords.astype(np.float32)),
        visible=torch.from_numpy(visible),
        orig_hw=torch.from_numpy(orig_hw),
        split=np.asarray(split, dtype=object),
        labels=labels,
    )


def _fill_neighbours(
    windows: torch.Tensor,
    paths: list[Path],
    input_hw: tuple[int, int],
    videos: list[tuple[Path, int]],
) -> None:
    """Fill every window slot but the centre (already loaded) in place; see load_labeled."""
    n, w = windows.shape[:2]
    half = w // 2
    untrusted = sequential_folders(paths)
    if untrusted:
        shown = ", ".join(sorted(str(f) for f in untrusted)[:3])
        warnings.warn(
            f"labeled images in {shown} are numbered as a sequence (img00, img01, ...), not by "
            f"video frame, so no neighbouring frames can be found for them; the context model "
            f"sees each of them repeated {w} times",
            stacklevel=3,
        )
    folder_video = _videos_by_folder(paths, videos, untrusted)
    plans: list[list[Source]] = []
    for path in paths:
        if path.parent in untrusted:
            plans.append([path] * w)
        else:
            plans.append(neighbour_paths(path, w, folder_video.get(path.parent)))

    # Frames needed from each video, plus each labeled frame's own index and the two beside it
    # to check that image numbers are the video's frame numbers.
    wanted: dict[Path, list[int]] = {}
    for path, plan in zip(paths, plans, strict=True):
        if any(isinstance(src, tuple) for src in plan):
            video, n_frames = folder_video[path.parent]
            own = frame_number(path)[1]  # type: ignore[index]
            wanted.setdefault(video, []).extend(
                [src[1] for src in plan if isinstance(src, tuple)]
                + [j for j in (own - 1, own, own + 1) if 0 <= j < n_frames]
            )
    decoded = {v: _read_video_frames(v, idx, input_hw) for v, idx in wanted.items()}
    rejected = {}
    for video, frames in decoded.items():
        matched = []
        for i, p in enumerate(paths):
            if folder_video.get(p.parent, (None,))[0] != video:
                continue
            own = frame_number(p)[1]  # type: ignore[index]
            diff = {
                j: (windows[i, half].float() - frames[j].float()).abs().mean().item()
                for j in (own - 1, own, own + 1)
                if j in frames
            }
            if own in diff:
                matched.append(
                    diff[own] <= MATCH_TOLERANCE and diff[own] <= min(diff.values()) + 1e-3
                )
        if not matched or np.mean(matched) < 0.8:
            rejected[video] = f"{sum(matched)} of {len(matched)}"
    for video, counts in rejected.items():
        warnings.warn(
            f"{video}: its frames do not match the labeled PNGs named after it (only {counts} "
            f"labeled images equal frame <their number> of the video to within "
            f"{MATCH_TOLERANCE:g}/255 and closer than the frames beside it; images numbered "
            f"from 1, or a re-encoded video?); it is not used for neighbouring frames",
            stacklevel=3,
        )

    lacking: list[str] = []
    for i, (path, plan) in enumerate(zip(paths, plans, strict=True)):
        short = len(set(plan)) < w  # the plan itself repeats a frame: a neighbour is missing
        for sign in (-1, 1):
            prev, blocked = windows[i, half], False
            for k in range(1, half + 1):
                src = plan[half + sign * k]
                frame = None
                if not blocked and isinstance(src, tuple):
                    frame = None if src[0] in rejected else decoded[src[0]].get(src[1])
                elif not blocked and src != path:
                    frame = _load_rgb_resized(src, input_hw)[0]
                if frame is None:  # missing, or repeating the centre: replicate from here out
                    blocked = True
                    frame = prev
                windows[i, half + sign * k] = frame
                prev = frame
            short = short or blocked
        if short and path.parent not in untrusted:
            lacking.append(path.name)
    if lacking:
        shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
        warnings.warn(
            f"{len(lacking)} of {n} labeled frame(s) lack some of their {w - 1} neighbouring "
            f"frames (img<number>.png beside them, or the frame in videos/<folder name>.*); the "
            f"nearest available frame was repeated (edge replication): {shown}",
            stacklevel=3,
        )
