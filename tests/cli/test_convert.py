"""vidpose convert: any readable table to the format of DST's extension."""

from __future__ import annotations

import numpy as np

from vidpose.cli import main
from vidpose.io import read_poses, write_poses
from vidpose.io.poses import Poses


def _labels() -> Poses:
    coords = np.arange(24, dtype=float).reshape(4, 3, 2) / 3.0
    coords[1, 2] = np.nan
    return Poses(
        coords=coords,
        keypoints=["nose", "ear", "tail"],
        frames=np.array([f"labeled-data/s/img{i}.png" for i in range(4)], dtype=object),
        scorer="me",
    )


def test_convert_h5_to_csv_and_back_is_exact(tmp_path, capsys):
    src = tmp_path / "CollectedData_me.h5"
    write_poses(_labels(), src)
    assert main(["convert", str(src), str(tmp_path / "c.csv")]) == 0
    assert "4 frames x 3 keypoints of labels" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "c.csv"), str(tmp_path / "again.h5")]) == 0
    assert read_poses(tmp_path / "again.h5").equals(_labels())


def test_convert_refuses_unknown_extensions_and_missing_sources(tmp_path, capsys):
    src = tmp_path / "c.csv"
    write_poses(_labels(), src)
    assert main(["convert", str(src), str(tmp_path / "c.txt")]) == 2
    assert "'.txt'" in capsys.readouterr().err
    assert not (tmp_path / "c.txt").exists()
    assert main(["convert", str(tmp_path / "nope.csv"), str(tmp_path / "x.h5")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert main(["convert", str(src), str(src)]) == 2
