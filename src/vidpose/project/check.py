"""``vidpose check``: report everything wrong with a project at once.

:func:`check_project` runs the same scan as :func:`~vidpose.project.load.load_project` (labels,
image headers, video metadata, settings) and adds the checks too slow for every load: it
verifies each labeled image's data and that training can read its mode (warning about 16-bit
images that would read almost black), and decodes the first and last frame of each video. Every
problem is collected; nothing stops at the first. :func:`run_check` prints the report for the
CLI and returns its exit code.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.text import Text

from vidpose.errors import ProjectError
from vidpose.project.load import (
    Problem,
    ProjectScan,
    check_config_section,
    scan_project,
    strip_path_prefix,
)
from vidpose.video import open_video

__all__ = ["CheckReport", "Problem", "check_project", "run_check"]

# Lines printed per kind of problem before the rest are counted, so that one systematic
# mistake (say 500 images of the wrong size) does not bury the others.
MAX_LINES_PER_KIND = 20
# A 16-bit grey image whose brightest pixel is below this uses at most 12 bits (say a 12-bit
# camera stored in 16): scaled over the full 16-bit range it reads as 0..15 of 255, near black.
DIM_16BIT_MAX = 4096


@dataclass
class CheckReport:
    """Every problem found in a project, and what could be read of it.

    Attributes:
        root: the project folder.
        problems: errors and warnings, in the order found (labels, images, rows, settings,
            videos).
        notes: things worth knowing that are not problems, e.g. unlabeled images.
        scan: what was read (labels, image size, videos), for summaries.
    """

    root: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scan: ProjectScan | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def usable(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors


def check_project(project_dir: str | Path) -> CheckReport:
    """Check a project folder and collect every problem found."""
    scan = scan_project(project_dir)
    check_config_section(scan)
    for part in [scan, *scan.cameras.values()]:
        _verify_images(part)
    _decode_videos(scan)
    return CheckReport(root=scan.root, problems=scan.problems, notes=scan.notes, scan=scan)


def _verify_images(scan: ProjectScan) -> None:
    """Check each readable labeled image's data (PNG chunk checksums) and that training can
    read its mode; warn about 16-bit images that use a small part of the 16-bit range.

    Each file is read from disk once; only 16-bit and refused modes are decoded here.
    """
    # imported here: vidpose.data pulls in torch, which a check without images never needs
    from vidpose.data.labeled import GREY16_MODES, RGB_MODES, image_to_rgb

    done: set[Path] = set()
    for i, (path, size) in enumerate(zip(scan.image_paths, scan.image_sizes)):
        if size is None or path in done:
            continue
        done.add(path)
        src = scan.rows[i]
        frame = scan.labels.frames[i]
        try:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                mode = im.mode
                im.verify()
        except Exception as exc:  # PIL raises SyntaxError, OSError, ValueError ... on bad data
            scan.add(
                "error",
                src.file,
                src.where,
                f"image {frame} is corrupt: {_first_line(exc)}",
                "image-corrupt",
            )
            continue
        if mode in RGB_MODES:
            continue
        brightest: int | None = None
        try:
            with Image.open(io.BytesIO(data)) as im:
                if mode in GREY16_MODES:
                    brightest = int(np.asarray(im).max(initial=0))
                image_to_rgb(im, frame)  # refuses exactly what training would refuse
        except ProjectError as exc:
            why = str(exc).removeprefix(f"{frame}: ")
            scan.add(
                "error",
                src.file,
                src.where,
                f"image {frame} cannot be used: {why}",
                "image-mode-unsupported",
            )
            continue
        except Exception as exc:  # pixel data that verify() passed but does not decode
            scan.add(
                "error",
                src.file,
                src.where,
                f"image {frame} is corrupt: {_first_line(exc)}",
                "image-corrupt",
            )
            continue
        if brightest is not None and brightest < DIM_16BIT_MAX:
            guess = (
                f" (a {brightest.bit_length()}-bit camera stored in 16 bits?)" if brightest else ""
            )
            scan.add(
                "warning",
                src.file,
                src.where,
                f"image {frame} is 16-bit grey but its brightest pixel is {brightest} of "
                f"65535{guess}: scaled over the full 16-bit range it reads as almost black (at "
                f"most {round(brightest * 255 / 65535)} of 255); rescale the images to the "
                "full 16-bit range or save them as 8-bit",
                "image-16bit-dim",
            )


def _decode_videos(scan: ProjectScan) -> None:
    """Decode the first and the last frame of each video: cheap, and catches most damage."""
    broken: set[Path] = set()
    for info in scan.videos:
        failure = _first_undecodable(info.path, sorted({0, info.n_frames - 1}))
        if failure is not None:
            index, why = failure
            scan.add(
                "error",
                info.path,
                f"frame {index}",
                f"cannot be decoded ({info.n_frames} frames reported): {why}",
                "video-undecodable",
            )
            broken.add(info.path)
    # A video that cannot be decoded is not usable for training: keep the summary honest.
    scan.videos = [v for v in scan.videos if v.path not in broken]


def _first_undecodable(path: Path, indices: list[int]) -> tuple[int, str] | None:
    """(frame index, why) for the first of ``indices`` that does not decode; None if all do."""
    index = indices[0]
    try:
        # the reader warns about undecodable frames; here they become a Problem instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_video(path, reader="pyav", device="cpu") as reader:
                for index in indices:
                    batch = reader.read_clip(index, 1)
                    if len(batch.valid) != 1 or not bool(batch.valid[0]):
                        return index, "the decoder returned no picture for this frame"
    except Exception as exc:  # whatever the backend raises, a check reports it
        return index, strip_path_prefix(_first_line(exc), path, path.parent)
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- printing ---------------------------------------------------------------------------------


def run_check(
    project_dir: str | Path,
    console: Console | None = None,
    max_per_kind: int | None = MAX_LINES_PER_KIND,
) -> int:
    """Check a project, print the report, return the exit code (0 iff usable).

    Prints one line per problem (``file:where: message``; errors red, warnings yellow), at most
    ``max_per_kind`` per kind of problem (None: all), then a short summary of the project and
    a verdict line.
    """
    console = console or Console()
    report = check_project(project_dir)
    console.print(Text(f"Checking {report.root}", style="bold"))
    shown: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    for problem in report.problems:
        key = problem.code or problem.message
        shown[key] += 1
        if max_per_kind is not None and shown[key] > max_per_kind:
            hidden[key] += 1
            continue
        console.print(_problem_text(problem), soft_wrap=True)
    for key, n in hidden.items():
        console.print(Text(f"  ... and {n} more {key} problem{'s' if n != 1 else ''}", "dim"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"), soft_wrap=True)
    for line in project_summary(report):
        console.print(Text(line), soft_wrap=True)
    console.print(_verdict(report))
    return 0 if report.usable else 1


def _problem_text(problem: Problem) -> Text:
    style = "red" if problem.severity == "error" else "yellow"
    text = Text()
    text.append(f"{problem.severity}: ", style=f"bold {style}")
    text.append(str(problem), style=style)
    return text


def _verdict(report: CheckReport) -> Text:
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "project is usable" if report.usable else "project is NOT usable"
    if report.scan is not None and report.scan.cameras:
        verdict = (
            "multi-camera layout is valid" if report.usable else "multi-camera layout is NOT valid"
        )
    line = (
        f"{n_err} error{'s' if n_err != 1 else ''}, {n_warn} warning{'s' if n_warn != 1 else ''}"
        f" — {verdict}"
    )
    return Text(line, style="bold green" if report.usable else "bold red")


def project_summary(report: CheckReport) -> list[str]:
    """A few lines: labeled frames, keypoints, image size, videos (frames, fps, size)."""
    scan = report.scan
    if scan is None:
        return []
    lines: list[str] = []
    if scan.cameras:
        lines += _camera_summary(scan)
    if scan.labels is not None:
        source = ", ".join(scan.rel(p) for p in scan.label_files[:3])
        if len(scan.label_files) > 3:
            source += f" (+{len(scan.label_files) - 3} more)"
        lines.append(
            f"labels: {scan.labels.n_frames} labeled frames x {scan.labels.n_keypoints} "
            f"keypoints from {source}"
        )
    if scan.image_size is not None:
        height, width = scan.image_size
        lines.append(f"images: {width}x{height} (width x height)")
    if scan.videos:
        lines.append(f"videos: {len(scan.videos)}")
        for v in scan.videos:
            lines.append(
                f"  {scan.rel(v.path)}: {v.n_frames} frames, {v.fps:g} fps, "
                f"{v.width}x{v.height}, {v.codec}"
            )
    else:
        lines.append("videos: none usable")
    return lines


def _camera_summary(scan: ProjectScan) -> list[str]:
    """The views, where their cameras come from, and each view's labels."""
    cameras = "no calibration"
    if scan.calibration is not None and scan.calibration.source is not None:
        cameras = f"cameras from {scan.rel(scan.calibration.source)}"
    lines = [f"views: {', '.join(scan.cameras)} ({cameras})"]
    for view, sub in scan.cameras.items():
        if sub.labels is None:
            continue
        size = ""
        if sub.image_size is not None:
            height, width = sub.image_size
            size = f", images {width}x{height}"
        lines.append(
            f"  {view}: {sub.labels.n_frames} labeled frames x {sub.labels.n_keypoints} "
            f"keypoints from {scan.rel(sub.label_files[0])}{size}"
        )
    return lines
