"""Manifests among video arguments: one video path per line, relative to the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidpose.errors import VideoError
from vidpose.video import expand_videos, read_manifest


def test_a_manifest_lists_paths_relative_to_itself_and_folders_expand(tmp_path, monkeypatch):
    (tmp_path / "lists").mkdir()
    day = tmp_path / "lists" / "day1"
    day.mkdir()
    for name in ("b.mp4", "a.MP4", "notes.txt"):
        (day / name).write_bytes(b"")
    far = tmp_path / "far.avi"
    manifest = tmp_path / "lists" / "week.list"
    manifest.write_text(f"# week 1\n\n  day1  \n{far}\nmissing.mp4\n~/home.mp4\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_manifest(manifest) == [
        day,
        far,
        tmp_path / "lists" / "missing.mp4",
        tmp_path / "home.mp4",
    ]
    monkeypatch.chdir(tmp_path)
    lists = Path("lists")  # a relative manifest lists relative paths
    assert expand_videos([lists / "week.list", lists / "day1" / "b.mp4"]) == [
        lists / "day1" / "a.MP4",  # the folder's videos, sorted by name
        lists / "day1" / "b.mp4",
        far,
        lists / "missing.mp4",  # passed on: reported as a missing video
        tmp_path / "home.mp4",
        lists / "day1" / "b.mp4",
    ]


def test_a_manifest_that_is_not_text_is_an_error_naming_it(tmp_path):
    manifest = tmp_path / "videos.txt"
    manifest.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(VideoError, match=r"videos\.txt: cannot be read as a list of videos"):
        expand_videos([manifest])
    assert expand_videos([tmp_path / "absent.txt"]) == [tmp_path / "absent.txt"]
