"""extract-frames: PNGs of chosen video frames land in the project, named by frame number."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidpose.cli import main
from vidpose.data.labeled import read_image_rgb
from vidpose.errors import VideoError, VidposeError
from vidpose.project import load_project
from vidpose.video import open_video
from vidpose.viz.extract import extract_frames


def _frames(video):
    with open_video(video, reader="pyav") as r:
        return np.concatenate([b.frames for b in r.iter_batches(64)])


def test_frames_and_context_are_saved_exactly_and_existing_pngs_are_kept(tiny_project):
    video = tiny_project / "videos" / "session00.mp4"
    folder = tiny_project / "labeled-data" / "session00"
    existing = load_project(tiny_project).image_paths[0]  # a labeled image
    assert existing.name == "img00003.png"
    before = existing.read_bytes()
    keep_frame = int(existing.stem[3:])
    table = pd.DataFrame(
        {"video": ["session00", "session00"], "frame": [0, keep_frame], "reason": ["a", "b"]}
    )
    (folder / "img00001.png").unlink(missing_ok=True)  # a neighbour PNG of label img00003
    res = extract_frames(tiny_project, table, context=1)
    decoded = _frames(video)
    assert (folder / "img00000.png") in res.written
    np.testing.assert_array_equal(read_image_rgb(folder / "img00000.png"), decoded[0])
    assert (folder / "img00001.png") in res.neighbours  # frame -1 does not exist
    np.testing.assert_array_equal(read_image_rgb(folder / "img00001.png"), decoded[1])
    assert existing in res.existing and existing.read_bytes() == before
    listing = pd.read_csv(folder / "frames_to_label.csv")
    assert list(listing["image"]) == ["img00000.png", existing.name]
    assert list(listing["reason"]) == ["a", "b"]


def test_cli_extracts_outliers_and_bad_frames_are_clear_errors(tiny_project, tmp_path):
    out = tmp_path / "outliers.csv"
    video = tiny_project / "videos" / "session00.mp4"
    out.write_text(f"video,frame,score\n{video},47,9.0\n")
    assert main(["extract-frames", str(tiny_project), str(out)]) == 0
    assert (tiny_project / "labeled-data" / "session00" / "img00047.png").exists()
    with pytest.raises(VideoError, match=r"session00.mp4: has 48 frames \(0..47\) but frame 48"):
        extract_frames(tiny_project, pd.DataFrame({"video": ["session00"], "frame": [48]}))
    with pytest.raises(VidposeError, match="video 'nope' not found"):
        extract_frames(tiny_project, pd.DataFrame({"video": ["nope"], "frame": [1]}))
    assert main(["extract-frames", str(tiny_project), "--video", str(video), "--frames", "5"]) == 0
    assert (tiny_project / "labeled-data" / "session00" / "img00005.png").exists()


def test_a_new_folder_names_frames_with_the_digits_the_video_needs(tiny_project):
    """As DeepLabCut and sleap-io name them: a 48-frame video gives img03.png, img47.png."""
    import shutil

    shutil.copy(tiny_project / "videos" / "session00.mp4", tiny_project / "videos" / "fresh.mp4")
    extract_frames(tiny_project, pd.DataFrame({"video": ["fresh", "fresh"], "frame": [3, 47]}))
    names = sorted(p.name for p in (tiny_project / "labeled-data" / "fresh").glob("*.png"))
    assert names[0] == "img03.png" and "img47.png" in names
