"""Builders for project tests: a tiny synthetic project with known labels.

``make_project(root)`` writes::

    root/
      CollectedData.csv         3 header rows (scorer / bodyparts / coords), then one row per
                                frame: labeled-data/img{i}.png, x, y per keypoint
      labeled-data/img{i}.png   WIDTH x HEIGHT greyscale, pixel value 10 * i
      videos/clip.avi           N_VIDEO_FRAMES frames of WIDTH x HEIGHT, mpeg4, 30 fps

The label row of frame i is line i + 4 of the CSV. Keypoint k of frame i sits at
``COORDS[i, k]``; every coordinate is inside the image.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import av
import numpy as np
from PIL import Image

KEYPOINTS = ["nose", "ear_left", "ear_right"]
N_FRAMES = 6
WIDTH, HEIGHT = 32, 24
N_VIDEO_FRAMES = 8
VIDEO_FPS = 30
HEADER_ROWS = 3
MIRROR_MOUSE = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mirror-mouse-example"
).resolve()


def _coords() -> np.ndarray:
    """(N_FRAMES, K, 2) pixel (x, y), distinct, inside a WIDTH x HEIGHT image."""
    i = np.arange(N_FRAMES)[:, None]
    k = np.arange(len(KEYPOINTS))[None, :]
    x = 2.0 + 3.0 * i + 7.0 * k
    y = 1.5 + 2.0 * i + 4.0 * k
    return np.stack([x, y], axis=-1)


COORDS = _coords()


def frame_name(i: int) -> str:
    return f"labeled-data/img{i}.png"


def csv_line(i: int) -> int:
    """1-based CSV line of frame i's label row."""
    return i + HEADER_ROWS + 1


def write_labels_csv(
    path: Path,
    frames: list[str],
    coords: np.ndarray,
    keypoints: list[str] = KEYPOINTS,
    scorer: str = "tester",
) -> None:
    """LP/DLC layout CSV; NaN coordinates are written as empty cells."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["scorer"] + [scorer] * (2 * len(keypoints)))
    w.writerow(["bodyparts"] + [k for k in keypoints for _ in "xy"])
    w.writerow(["coords"] + ["x", "y"] * len(keypoints))
    for frame, row in zip(frames, coords):
        w.writerow([frame] + ["" if np.isnan(v) else f"{v:g}" for v in row.reshape(-1)])
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_png(path: Path, value: int = 0, size: tuple[int, int] = (HEIGHT, WIDTH)) -> None:
    """A greyscale PNG of (height, width) ``size`` filled with ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8), mode="L").save(path)


def write_video(
    path: Path,
    n_frames: int = N_VIDEO_FRAMES,
    fps: int = VIDEO_FPS,
    size: tuple[int, int] = (HEIGHT, WIDTH),
) -> None:
    """A tiny mpeg4 video of (height, width) ``size``; frame t is uniform grey 20 * t.

    n_frames=0 gives a container with a video stream but no frames.
    """
    height, width = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        container.start_encoding()
        for t in range(n_frames):
            frame = av.VideoFrame.from_ndarray(
                np.full((height, width, 3), 20 * t, dtype=np.uint8), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        if n_frames:
            for packet in stream.encode():
                container.mux(packet)


def make_project(root: Path, *, videos: bool = True, settings: str | None = None) -> Path:
    """Write the synthetic project described in the module docstring into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    frames = [frame_name(i) for i in range(N_FRAMES)]
    for i, frame in enumerate(frames):
        write_png(root / frame, value=10 * i)
    write_labels_csv(root / "CollectedData.csv", frames, COORDS.reshape(N_FRAMES, -1))
    if videos:
        write_video(root / "videos" / "clip.avi")
    if settings is not None:
        (root / "vidpose.yaml").write_text(settings, encoding="utf-8")
    return root


def rewrite_csv_line(path: Path, line: int, new: str) -> None:
    """Replace 1-based line ``line`` of a text file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
