"""CSV tables: the real mirror-mouse labels, layout variants, and every malformed-file error."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.errors import LabelsError
from vidpose.io import Poses, csv_format, read_poses, write_poses

HEADER = "scorer,ann,ann,ann,ann\nbodyparts,nose,nose,paw,paw\ncoords,x,y,x,y\n"


@pytest.fixture
def slow_only(monkeypatch):
    """Force the row-by-row reader (the one that explains errors) instead of pandas' parser."""
    monkeypatch.setattr(csv_format._DataReader, "read_fast", lambda self, text, line: False)


def read_both_ways(path, monkeypatch) -> tuple[Poses, Poses]:
    fast = read_poses(path)
    with monkeypatch.context() as m:
        m.setattr(csv_format._DataReader, "read_fast", lambda self, text, line: False)
        slow = read_poses(path)
    return fast, slow


# ---------------------------------------------------------------------------------------------
# the real example


def test_reads_mirror_mouse_labels(mirror_mouse):
    poses = read_poses(mirror_mouse / "CollectedData.csv")
    assert poses.n_frames == 90 and poses.n_keypoints == 17
    assert poses.is_labels and poses.scorer == "rick"
    assert poses.frames[0] == "labeled-data/img01.png"
    assert poses.keypoints[:2] == ["paw1LH_top", "paw2LF_top"]
    assert poses.coords[0, 0, 0] == 77.25
    assert poses.coords[0, 1, 1] == 101.900392541708
    assert np.isnan(poses.coords[0, 4]).all()  # tailBase_top is unlabelled in img01
    assert np.isnan(poses.likelihood).all()


def test_mirror_mouse_is_rewritten_byte_for_byte(mirror_mouse, tmp_path, monkeypatch):
    source = mirror_mouse / "CollectedData.csv"
    fast, slow = read_both_ways(source, monkeypatch)
    assert fast.equals(slow)
    write_poses(fast, tmp_path / "CollectedData.csv")
    assert (tmp_path / "CollectedData.csv").read_bytes() == source.read_bytes()


# ---------------------------------------------------------------------------------------------
# layout variants


def test_fast_and_row_by_row_readers_agree(predictions_with_extras, tmp_path, monkeypatch):
    path = tmp_path / "pred.csv"
    write_poses(predictions_with_extras, path)
    fast, slow = read_both_ways(path, monkeypatch)
    assert fast.equals(predictions_with_extras) and slow.equals(predictions_with_extras)


def test_extra_columns_layout(predictions_with_extras, tmp_path):
    path = tmp_path / "pred.csv"
    write_poses(predictions_with_extras, path)
    lines = path.read_text().splitlines()
    assert lines[1].startswith("bodyparts,nose,nose,nose,nose,nose,tail base,")
    assert lines[2].startswith("coords,x,y,likelihood,ens_var_x,ens_var_y,x,")
    # per-frame columns as Lightning Pose writes its ("set", "", "") column
    assert lines[0].endswith(",split,train_step,in_train")
    assert lines[1].endswith(",tail base,,,")
    assert lines[2].endswith(",ens_var_y,,,")
    assert lines[3].startswith("0,") and lines[3].endswith(",train,0,True")
    back = read_poses(path)
    assert back.frame_columns["train_step"].dtype == np.int64
    assert back.frame_columns["in_train"].dtype == bool
    assert back.frame_columns["split"].tolist()[:3] == ["train", "val", "test"]


def test_missing_values_are_empty_cells(write_text):
    path = write_text(
        "p.csv", HEADER + "labeled-data/a.png,1.5,2,,\nlabeled-data/b.png,nan,NaN,3,4\n"
    )
    poses = read_poses(path)
    assert poses.coords[0, 0].tolist() == [1.5, 2.0]
    assert np.isnan(poses.coords[0, 1]).all() and np.isnan(poses.coords[1, 0]).all()
    assert poses.visible.tolist() == [[True, False], [False, True]]


def test_dlc_three_column_index_is_joined(write_text, monkeypatch):
    text = (
        "scorer,,,ann,ann\nbodyparts,,,nose,nose\ncoords,,,x,y\n"
        "labeled-data,mouse1,img001.png,1.5,2.5\nlabeled-data,mouse1,img002.png,,\n"
    )
    fast, slow = read_both_ways(write_text("CollectedData_ann.csv", text), monkeypatch)
    assert fast.equals(slow)
    assert fast.frames.tolist() == [
        "labeled-data/mouse1/img001.png",
        "labeled-data/mouse1/img002.png",
    ]
    assert fast.keypoints == ["nose"] and fast.coords[0, 0].tolist() == [1.5, 2.5]


def test_windows_line_endings_bom_and_blank_lines(write_text, monkeypatch):
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + "a.png,1,2,3,4\r\n\r\nb.png,5,6,7,8\r\n\r\n"
    fast, slow = read_both_ways(write_text("w.csv", text), monkeypatch)
    assert fast.equals(slow)
    assert fast.frames.tolist() == ["a.png", "b.png"] and fast.coords[1, 1].tolist() == [7.0, 8.0]


def test_frame_ids_integer_only_when_canonical(write_text):
    ints = read_poses(write_text("i.csv", HEADER + "0,1,2,3,4\n17,1,2,3,4\n"))
    assert ints.frames.dtype == np.int64 and ints.frames.tolist() == [0, 17]
    padded = read_poses(write_text("s.csv", HEADER + "007,1,2,3,4\n17,1,2,3,4\n"))
    assert padded.frames.tolist() == ["007", "17"]


def test_quoted_frame_ids_round_trip(tmp_path):
    poses = Poses(
        coords=np.ones((2, 1, 2)), keypoints=["a,b"], frames=["odd,name.png", 'say "hi".png']
    )
    write_poses(poses, tmp_path / "q.csv")
    assert read_poses(tmp_path / "q.csv").equals(poses)


def test_header_only_gives_zero_frames(write_text):
    poses = read_poses(write_text("h.csv", HEADER))
    assert poses.n_frames == 0 and poses.keypoints == ["nose", "paw"] and poses.is_labels
    assert poses.frames.dtype == object


# ---------------------------------------------------------------------------------------------
# errors: each names the file and the row (1-based line in a text editor)


@pytest.mark.parametrize("reader", ["fast", "slow"])
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "a.png,1,2,3,4\nb.png,1,2\n",
            r"bad.csv row 5 \(b.png\): 2 keypoints in the header but 1 coordinate pairs",
        ),
        (
            "a.png,1,2,3,4\nb.png,1,2,3\n",
            r"bad.csv row 5 \(b.png\): 2 keypoints in the header \(4 values after the frame id\) "
            r"but 3 values",
        ),
        ("a.png,1,2,3,4,5\n", r"bad.csv row 4 \(a.png\): 2 keypoints .* but 5 values"),
        (
            "a.png,1,2,3,4\n\nb.png,1,2,abc,4\n",
            r"bad.csv row 6 \(b.png\), column 4 \(keypoint 'paw', x\): 'abc' is not a number",
        ),
        (
            "a.png,1,2,3,4\nb.png,1,,3,4\n",
            r"bad.csv row 5 \(b.png\): keypoint 'nose' has x \(1.0\) but no y",
        ),
        ("a.png,1,2,,4.5\n", r"bad.csv row 4 \(a.png\): keypoint 'paw' has y \(4.5\) but no x"),
    ],
)
def test_data_row_errors(body, expected, reader, write_text, monkeypatch):
    if reader == "slow":
        monkeypatch.setattr(csv_format._DataReader, "read_fast", lambda self, text, line: False)
    with pytest.raises(LabelsError, match=expected):
        read_poses(write_text("bad.csv", HEADER + body))


def test_width_error_for_predictions_counts_triples(write_text):
    header = "scorer,m,m,m\nbodyparts,nose,nose,nose\ncoords,x,y,likelihood\n"
    with pytest.raises(
        LabelsError, match=r"p.csv row 5 \(1\): 1 keypoints .* but 2 coordinate trip"
    ):
        read_poses(write_text("p.csv", header + "0,1,2,0.5\n1,1,2,0.5,3,4,0.5\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", r"bad.csv is empty: expected 3 header rows"),
        ("\n \n", r"bad.csv is empty"),
        ("frame,x,y\n0,1,2\n", r"bad.csv row 1 should start with 'scorer', found 'frame'"),
        (
            "scorer,a,a\nbodypart,n,n\ncoords,x,y\n",
            r"bad.csv row 2 should start with 'bodyparts', found 'bodypart'",
        ),
        ("scorer,a,a\n\nbodyparts,n,n\n", r"bad.csv has only 2 header row\(s\)"),
        (
            "scorer,a,a\nbodyparts,n,n\nlabeled-data/a.png,1,2\n",
            r"bad.csv row 3 should start with 'coords', found 'labeled-data/a.png'",
        ),
        (
            "scorer,a,a,a\nbodyparts,n,n\ncoords,x,y\n",
            r"bad.csv row 2 \(bodyparts\) has 3 cells but row 1 \(scorer\) has 4",
        ),
        (
            "scorer,a,a,a,a\nindividuals,m1,m1,m1,m1\nbodyparts,n,n,p,p\ncoords,x,y,x,y\n",
            r"bad.csv row 2 starts with 'individuals': multi-animal .* not supported yet",
        ),
        ("scorer,a\nbodyparts,n\ncoords,x\n", r"bad.csv: keypoint 'n' has no 'y' column"),
        ("scorer,a,a,a\nbodyparts,n,n,n\ncoords,x,y,x\n", r"keypoint 'n' has two 'x' columns"),
        (
            "scorer,a,a,a,a,a\nbodyparts,n,n,n,p,p\ncoords,x,y,likelihood,x,y\n",
            r"bad.csv: some keypoints have a likelihood column .*without: \['p'\]",
        ),
        ("scorer\nbodyparts\ncoords\n", r"bad.csv: the header names no keypoints"),
    ],
)
def test_header_errors(text, expected, write_text):
    with pytest.raises(LabelsError, match=expected):
        read_poses(write_text("bad.csv", text))


def test_not_utf8_names_byte_and_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "caf\xe9.png,1,2,3,4\n").encode("latin-1"))
    offset = len(HEADER) + 3
    with pytest.raises(
        LabelsError, match=rf"latin1.csv is not UTF-8 text: byte {offset} \(line 4\)"
    ):
        read_poses(path)


def test_binary_and_utf16_files_are_refused(tmp_path):
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes((HEADER + "a.png,1,2,3,4\n").encode("utf-16"))
    with pytest.raises(LabelsError, match=r"u16.csv is UTF-16 text"):
        read_poses(utf16)
    binary = tmp_path / "sheet.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00junk")
    with pytest.raises(LabelsError, match=r"sheet.csv is not a text CSV file: byte 4 \(line 1\)"):
        read_poses(binary)


def test_errors_do_not_chain_pandas_tracebacks(write_text):
    with pytest.raises(LabelsError) as info:
        read_poses(write_text("bad.csv", HEADER + "a.png,1,2,x,4\n"))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_lightning_pose_set_column_round_trips_in_place(write_text, tmp_path):
    """LP's predictions.csv keeps ``set`` in the scorer row after a read and a write."""
    src = write_text(
        "predictions.csv",
        "scorer,ht,ht,ht,set\nbodyparts,nose,nose,nose,\ncoords,x,y,likelihood,\n"
        "labeled-data/a/img0.png,1.0,2.0,0.9,train\n"
        "labeled-data/a/img1.png,5.0,6.0,0.7,validation\n",
    )
    back = read_poses(src)
    assert back.frame_columns["set"].tolist() == ["train", "validation"]
    write_poses(back, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text() == src.read_text()


def test_frame_columns_of_older_vidpose_files_still_read(write_text):
    src = write_text(
        "old.csv",
        "scorer,me,me,me,me\nbodyparts,nose,nose,nose,split\ncoords,x,y,likelihood,\n"
        "0,1.0,2.0,0.9,train\n",
    )
    back = read_poses(src)
    assert back.frame_columns["split"].tolist() == ["train"] and back.scorer == "me"
