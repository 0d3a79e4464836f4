"""Format registry, format detection, exact round trips for every format, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import ConfigError, LabelsError, MissingDependencyError
from vidpose.io import (
    FORMATS as REGISTRY,
)
from vidpose.io import (
    Poses,
    detect_format,
    read_poses,
    register_format,
    write_poses,
)

FORMATS = REGISTRY.names()
EXACT = [f.name for f in REGISTRY if f.exact]  # hold everything a Poses holds
LOSSY = [f.name for f in REGISTRY if not f.exact]
EXTENSION = {f.name: f.extensions[0] for f in REGISTRY}


def test_builtin_formats_are_registered():
    assert {"csv", "dlc_h5"} <= set(REGISTRY.names())
    assert ".csv" in REGISTRY.get("csv").extensions
    assert ".h5" in REGISTRY.get("dlc_h5").extensions


@pytest.mark.parametrize("fmt", EXACT)
@pytest.mark.parametrize("table", ["labels_table", "predictions_table", "predictions_with_extras"])
def test_round_trip_is_exact(fmt, table, request, tmp_path):
    poses = request.getfixturevalue(table)
    path = tmp_path / f"table{EXTENSION[fmt]}"
    write_poses(poses, path)
    back = read_poses(path)
    assert back.equals(poses)
    # read -> write -> read is stable too
    write_poses(back, path)
    assert read_poses(path).equals(poses)


@pytest.mark.parametrize("fmt", EXACT)
def test_round_trip_keeps_awkward_floats_bit_exact(fmt, tmp_path):
    values = np.array([101.900392541708, 0.1, 2 / 3, 5e-324, 1e300, -0.5, 77.25, 1e16 + 2])
    poses = Poses(
        coords=np.stack([values, values[::-1]], axis=1)[:, None, :],
        keypoints=["nose"],
        frames=np.arange(len(values)),
        likelihood=np.linspace(0, 1, len(values))[:, None],
    )
    path = tmp_path / f"t{EXTENSION[fmt]}"
    write_poses(poses, path)
    back = read_poses(path)
    assert back.coords.tobytes() == poses.coords.tobytes()
    assert back.likelihood.tobytes() == poses.likelihood.tobytes()


@pytest.mark.parametrize("fmt", EXACT)
@pytest.mark.parametrize("table", ["labels_table", "predictions_with_extras"])
def test_round_trip_of_zero_frames(fmt, table, request, tmp_path):
    empty = request.getfixturevalue(table).select_frames(slice(0, 0))
    path = tmp_path / f"t{EXTENSION[fmt]}"
    write_poses(empty, path)
    back = read_poses(path)
    assert back.n_frames == 0
    assert back.keypoints == empty.keypoints
    assert back.is_labels == empty.is_labels
    assert back.frames.dtype.kind == empty.frames.dtype.kind
    assert list(back.keypoint_columns) == list(empty.keypoint_columns)
    assert list(back.frame_columns) == list(empty.frame_columns)


@pytest.mark.parametrize("fmt", EXACT)
def test_reserved_keypoint_column_name_is_refused(fmt, labels_table, tmp_path):
    labels_table.keypoint_columns["likelihood"] = np.zeros(labels_table.likelihood.shape)
    with pytest.raises(ValueError, match="reserved"):
        write_poses(labels_table, tmp_path / f"t{EXTENSION[fmt]}")


@pytest.mark.parametrize("fmt", LOSSY)
def test_lossy_formats_round_trip_one_videos_predictions(fmt, tmp_path):
    """What every format holds: x, y, likelihood of frames 0..N-1 of one video, bit-exact, and
    its fps and skeleton. Formats needing an optional dependency are skipped without it."""
    values = np.array([101.900392541708, 0.1, 2 / 3, 5e-324, 1e300, -0.5, 77.25, 1e16 + 2])
    coords = np.stack([values, values[::-1]], axis=1)[:, None, :].repeat(2, axis=1)
    coords[2, 1] = np.nan
    likelihood = np.linspace(0, 1, len(values))[:, None].repeat(2, axis=1)
    likelihood[5, 0] = np.nan
    poses = Poses(
        coords=coords,
        keypoints=["nose", "tail"],
        frames=np.arange(len(values)),
        likelihood=likelihood,
        fps=30.0,
        skeleton=[("nose", "tail")],
    )
    path = tmp_path / f"t{EXTENSION[fmt]}"
    try:
        write_poses(poses, path)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    back = read_poses(path)
    assert detect_format(path).name == fmt
    assert back.keypoints == poses.keypoints and back.is_labels is False
    assert back.frames.tolist() == poses.frames.tolist()
    assert back.coords.tobytes() == poses.coords.tobytes()
    assert back.likelihood.tobytes() == poses.likelihood.tobytes()
    assert back.fps == 30.0 and back.skeleton == [("nose", "tail")]


def test_content_wins_over_extension(predictions_table, tmp_path):
    path = tmp_path / "really_hdf5.csv"
    write_poses(predictions_table, path, format="dlc_h5")
    assert detect_format(path).name == "dlc_h5"
    assert read_poses(path).equals(predictions_table)


def test_extension_decides_when_content_is_unclear(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("frame,x\n0,1\n")
    assert detect_format(path).name == "csv"
    with pytest.raises(LabelsError, match="row 1 should start with 'scorer'"):
        read_poses(path)


def test_unknown_format_is_reported(labels_table, tmp_path):
    with pytest.raises(ConfigError, match=r"\.txt.*use one of \.csv"):
        write_poses(labels_table, tmp_path / "t.txt")
    path = tmp_path / "t.txt"
    path.write_text("hello\n")
    with pytest.raises(LabelsError, match=r"t.txt: cannot tell which pose table format"):
        read_poses(path)
    write_poses(labels_table, path, format="csv")
    assert read_poses(path, format="csv").equals(labels_table)
    with pytest.raises(ConfigError, match="format: unknown format 'xlsx'"):
        read_poses(path, format="xlsx")


def test_missing_file_is_a_labels_error(tmp_path):
    with pytest.raises(LabelsError, match=r"nope.csv does not exist"):
        read_poses(tmp_path / "nope.csv")
    with pytest.raises(LabelsError, match="is a directory"):
        read_poses(tmp_path)


def test_registering_a_clashing_extension_fails():
    class Other:
        name = "other_csv"
        extensions = (".csv",)
        description = "clash"
        sniff = staticmethod(lambda head: False)
        load = staticmethod(lambda path: None)
        save = staticmethod(lambda poses, path: None)

    with pytest.raises(ValueError, match=r"\.csv.*already used by 'csv'"):
        register_format(Other)
    assert "other_csv" not in REGISTRY


@pytest.mark.parametrize("fmt", EXACT)
def test_failed_write_leaves_old_file_and_no_temp_file(
    fmt, labels_table, predictions_table, tmp_path, monkeypatch
):
    path = tmp_path / f"table{EXTENSION[fmt]}"
    write_poses(labels_table, path)
    before = path.read_bytes()
    fmt_cls = REGISTRY.get(fmt).cls
    real_save = fmt_cls.save

    def half_then_crash(poses, tmp):
        real_save(poses, tmp)  # a complete temp file exists when the crash comes
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(fmt_cls, "save", staticmethod(half_then_crash))
    with pytest.raises(KeyboardInterrupt):
        write_poses(predictions_table, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_write_creates_parent_folders(labels_table, tmp_path):
    path = tmp_path / "a" / "b" / "CollectedData.csv"
    write_poses(labels_table, path)
    assert read_poses(path).equals(labels_table)
