"""A vidpose project from a SLEAP labels file (``.slp``, or ``.pkg.slp`` with embedded images).

What :func:`import_sleap` writes (see :mod:`vidpose.project.load` for the layout)::

    PROJECT/
      CollectedData.csv                  # one row per frame with a user-labeled instance
      labeled-data/<video>/img<f>.png    # those frames: the images a .pkg.slp embeds, else
                                         # decoded from the video (names: vidpose.io.sleap)
      videos/<video file>                # each source video found: a symbolic link to it (a
                                         # copy with copy_videos=True, or where links fail)
      vidpose.yaml                       # the skeleton's edges; its symmetries as flip_pairs

A video is looked for at the path the labels file records, then by file name in each of
``video_dirs`` and beside the labels file. Frames embedded in the labels file need no video;
the others need theirs.

Everything is read and checked (labels, videos found, frame counts and sizes) before the
project is touched. The project is built in a temporary folder beside ``PROJECT`` and renamed
into place, so a failure leaves no half project. A non-empty ``PROJECT`` is refused unless
``force``: then its ``CollectedData.csv``, the ``labeled-data/<video>/`` folders and
``videos/`` entries of the imported videos are replaced (each old one moved aside until the new
one is in place, and put back if the import fails), ``vidpose.yaml`` gets the new skeleton and
flip pairs and keeps its other keys, and everything else (models, other videos) stays.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from vidpose._atomic import install_entries
from vidpose.errors import ProjectError, VideoError, VidposeError
from vidpose.io import write_poses
from vidpose.io.sleap import SleapFile, read_sleap
from vidpose.project.load import LABELED_DATA_DIR, LABELS_STEM, VIDEOS_DIR
from vidpose.project.settings import SETTINGS_FILE, ProjectSettings, dump_settings, parse_settings
from vidpose.video import probe_video, read_frames

_CHUNK = 32  # frames decoded at once: bounds memory on projects with thousands of labels


@dataclass
class ImportResult:
    """What :func:`import_sleap` wrote.

    Attributes:
        project: the project folder.
        n_labeled: label rows in ``CollectedData.csv``.
        images: the PNGs written, one per label row.
        videos: the ``videos/`` entries made (links or copies).
        not_found: recorded videos that were not found (their frames came embedded).
    """

    project: Path
    n_labeled: int
    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


@dataclass
class _Source:
    """Where the pixels of one video's labeled frames come from."""

    index: int  # in SleapFile.videos
    rows: np.ndarray  # label rows of this video
    found: Path | None  # the video file, when found
    size: tuple[int, int] | None  # (height, width) of its frames, when known


def import_sleap(
    labels_path: str | os.PathLike,
    project_dir: str | os.PathLike,
    *,
    force: bool = False,
    video_dirs: Sequence[str | os.PathLike] = (),
    copy_videos: bool = False,
    on_image: Callable[[Path], None] | None = None,
) -> ImportResult:
    """Build a vidpose project from a SLEAP ``.slp`` / ``.pkg.slp`` (see the module docstring).

    Args:
        labels_path: the SLEAP labels file.
        project_dir: the project folder to create (or, with ``force``, to update).
        force: write into an existing, non-empty ``project_dir``.
        video_dirs: folders to look for videos in, by file name.
        copy_videos: copy the videos into ``videos/`` instead of linking them.
        on_image: called with each PNG written (progress).

    Raises:
        ProjectError: ``project_dir`` is not empty (without ``force``) or is a file; the labels
            hold no user-labeled frame; a video is missing, too short or of another size.
        LabelsError: the labels file is unreadable or not single-animal (named).
        VideoError: a labeled frame cannot be decoded.
        MissingDependencyError: sleap-io is not installed.
    """
    labels_path = Path(labels_path)
    project = Path(project_dir)
    if project.exists() and not project.is_dir():
        raise ProjectError(f"{project}: is a file; expected a new project folder")
    existing = project.is_dir() and any(project.iterdir())
    if existing and not force:
        raise ProjectError(
            f"{project}: exists and is not empty; choose a new project folder, or import into "
            "it with --force (force=True): its CollectedData.csv, vidpose.yaml skeleton and the "
            "imported videos' labeled-data/ folders are replaced, other files kept"
        )
    sf = read_sleap(labels_path)
    if not sf.poses.is_labels or sf.poses.n_frames == 0:
        what = "predictions only" if not sf.poses.is_labels else "no labeled frame"
        raise ProjectError(
            f"{labels_path}: holds {what}; a project needs frames with user-labeled instances"
        )
    settings = _settings(sf, project / SETTINGS_FILE if existing else None)
    sources = [_locate(sf, i, labels_path, video_dirs) for i in range(len(sf.videos))]
    _check_sizes(sf, sources)

    project.parent.mkdir(parents=True, exist_ok=True)
    tmp = project.parent / f".{project.name}.import-{secrets.token_hex(6)}"
    tmp.mkdir()  # not mkdtemp: the project gets the mode a plain mkdir gives
    try:
        result = ImportResult(project=project, n_labeled=sf.poses.n_frames)
        sizes: set[tuple[int, int]] = set()
        for source in sources:
            for rel, image in _images(sf, source):
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                _save_png(image, path)
                sizes.add(image.shape[:2])
                result.images.append(project / rel)
                if on_image is not None:
                    on_image(project / rel)
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
            raise ProjectError(
                f"{labels_path}: labeled frames come in several sizes ({shown}); a vidpose "
                "project's labeled images share one size"
            )
        write_poses(sf.poses, tmp / f"{LABELS_STEM}.csv")
        (tmp / SETTINGS_FILE).write_text(dump_settings(settings), encoding="utf-8")
        entries = _add_videos(sf, sources, tmp, project, copy_videos, result)
        stems = [f"{LABELED_DATA_DIR}/{sf.videos[s.index].stem}" for s in sources]
        install_entries(tmp, project, [*stems, *entries, SETTINGS_FILE, f"{LABELS_STEM}.csv"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _settings(sf: SleapFile, existing: Path | None) -> ProjectSettings:
    """The skeleton and flip pairs of the labels; other keys from an existing vidpose.yaml."""
    settings = ProjectSettings()
    if existing is not None and existing.is_file():
        try:
            data = yaml.safe_load(existing.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{existing}: not valid UTF-8 YAML: {exc}") from None
        settings = parse_settings(data, existing)
    settings.skeleton = list(sf.poses.skeleton or [])
    settings.flip_pairs = list(sf.symmetries)
    return settings


def _locate(
    sf: SleapFile, index: int, labels_path: Path, video_dirs: Sequence[str | os.PathLike]
) -> _Source:
    video = sf.videos[index]
    rows = np.flatnonzero(sf.row_video == index)
    found = _find_video(video.filename, labels_path.parent, video_dirs)
    if found is None:
        if not video.embedded:
            looked = ", ".join(str(Path(d)) for d in [*video_dirs, labels_path.parent])
            raise ProjectError(
                f"{labels_path}: video {video.filename} (labeled frames of "
                f"{LABELED_DATA_DIR}/{video.stem}/) not found there, nor by its file name in "
                f"{looked}; give the folder holding it (--videos DIR, video_dirs=), or import a "
                ".pkg.slp that embeds the labeled frames"
            )
        return _Source(index, rows, None, video.frame_size)
    try:
        info = probe_video(found)
    except VidposeError as exc:
        raise ProjectError(f"{labels_path}: video {found}: {exc}") from None
    last = int(sf.row_frame[rows].max())
    if last >= info.n_frames:
        raise ProjectError(
            f"{labels_path}: frame {last} of {video.filename} is labeled but {found} has "
            f"{info.n_frames} frames; is it the right video?"
        )
    size = (info.height, info.width)
    if video.frame_size is not None and video.frame_size != size:
        h, w = video.frame_size
        raise ProjectError(
            f"{labels_path}: {found} is {info.width}x{info.height} but the labels were made on "
            f"{w}x{h} frames of {video.filename}; is it the right video?"
        )
    return _Source(index, rows, found, size)


def _find_video(
    recorded: str, beside: Path, video_dirs: Sequence[str | os.PathLike]
) -> Path | None:
    """The recorded video path if it exists, else a file of its name in ``video_dirs`` or
    ``beside`` (SLEAP records absolute paths of the labeling machine, Windows ones too)."""
    name = re.split(r"[\\/]", recorded)[-1]
    candidates = [Path(recorded)]
    if not Path(recorded).is_absolute():
        candidates.append(beside / recorded)
    candidates += [Path(d) / name for d in video_dirs] + [beside / name]
    return next((p for p in candidates if name and p.is_file()), None)


def _check_sizes(sf: SleapFile, sources: list[_Source]) -> None:
    sizes = {s.size for s in sources if s.size is not None}
    if len(sizes) > 1:
        shown = ", ".join(
            f"{sf.videos[s.index].stem} {s.size[1]}x{s.size[0]}" for s in sources if s.size
        )
        raise ProjectError(
            f"{sf.path}: the videos have different frame sizes ({shown}); a vidpose project's "
            "labeled images share one size: import each size into its own project"
        )


def _images(sf: SleapFile, source: _Source):
    """(project-relative path, (H, W, C) uint8 image) of each label row of ``source``."""
    video = sf.videos[source.index]
    for start in range(0, len(source.rows), _CHUNK):
        rows = source.rows[start : start + _CHUNK]
        frames = [int(f) for f in sf.row_frame[rows]]
        if video.embedded:
            images = sf.read_embedded(source.index, frames)
        else:
            assert source.found is not None
            images = read_frames(source.found, frames)
            bad = [f for f in frames if f not in images]
            if bad:
                raise VideoError(f"{source.found}: frames {bad} cannot be decoded")
        for row, frame in zip(rows.tolist(), frames):
            yield str(sf.poses.frames[row]), images[frame]


def _save_png(image: np.ndarray, path: Path) -> None:
    pixels = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path, format="PNG")


def _add_videos(
    sf: SleapFile,
    sources: list[_Source],
    tmp: Path,
    project: Path,
    copy_videos: bool,
    result: ImportResult,
) -> list[str]:
    """Link (or copy) each found video into ``tmp/videos/``; the project-relative entries."""
    entries = []
    for source in sources:
        if source.found is None:
            result.not_found.append(sf.videos[source.index].filename)
            continue
        rel = f"{VIDEOS_DIR}/{source.found.name}"
        target = project / rel
        if target.exists() and target.resolve() == source.found.resolve():
            continue  # the project's own video (an import forced into its project)
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if copy_videos:
            shutil.copy2(source.found, dst)
        else:
            try:
                dst.symlink_to(source.found.resolve())
            except OSError:  # no symbolic links here (Windows without the privilege)
                shutil.copy2(source.found, dst)
        entries.append(rel)
        result.videos.append(target)
    return entries
