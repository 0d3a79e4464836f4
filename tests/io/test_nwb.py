"""NWB (ndx-pose) files: exact round trips, pynwb's validator, other tools' files, refusals,
format detection among HDF5 formats, ``vidpose convert --fps`` and ``predict --format``."""

from __future__ import annotations

import datetime

import numpy as np
import pytest

from vidpose.cli import main
from vidpose.errors import ConfigError, LabelsError
from vidpose.io import Poses, detect_format, read_poses, write_poses

pynwb = pytest.importorskip("pynwb")
ndx_pose = pytest.importorskip("ndx_pose")

AWKWARD = np.array([101.900392541708, 0.1, 2 / 3, 5e-324, 1e300, -0.5, 77.25, 1e16 + 2])


def _predictions(frames=None, **meta) -> Poses:
    """8 frames (0..7 unless given) x 3 keypoints of bit-awkward floats, keypoint "paw" of frame
    2 missing, likelihoods in [0, 1] with one NaN; fps 30000/1001, a video and a skeleton."""
    n = 8
    coords = np.stack([AWKWARD, AWKWARD[::-1]], axis=1)[:, None, :] + np.arange(3)[None, :, None]
    coords[2, 2] = np.nan
    likelihood = np.linspace(0, 1, n * 3).reshape(n, 3)
    likelihood[2, 2] = np.nan
    defaults = {
        "fps": 30000 / 1001,
        "video": "sessions/mouse1.mp4",
        "skeleton": [("tail base", "nose"), ("nose", "paw")],
    }
    return Poses(
        coords=coords,
        # not in sorted order: HDF5 lists series sorted, the skeleton keeps the order
        keypoints=["tail base", "nose", "paw"],
        frames=np.arange(n) if frames is None else frames,
        likelihood=likelihood,
        scorer="model_v1",
        **{**defaults, **meta},
    )


def _same_meta(a: Poses, b: Poses) -> bool:
    return (a.fps, a.video, a.skeleton) == (b.fps, b.video, b.skeleton)


@pytest.mark.parametrize(
    "frames",
    [None, np.arange(100, 108), np.array([0, 1, 2, 4, 5, 9, 10, 11])],
    ids=["from-0", "from-100", "with-gaps"],
)
def test_predictions_round_trip_exactly(frames, tmp_path):
    poses = _predictions(frames)
    path = tmp_path / "mouse1.nwb"
    write_poses(poses, path)
    back = read_poses(path)
    assert back.equals(poses)  # coords and likelihood bit for bit, frames, keypoints, scorer
    assert back.coords.tobytes() == poses.coords.tobytes()
    assert back.video == poses.video and back.skeleton == poses.skeleton
    assert back.fps == pytest.approx(poses.fps, rel=1e-12)


def test_labels_of_a_video_round_trip_without_confidence(tmp_path):
    labels = Poses(
        coords=_predictions().coords, keypoints=["a", "b", "c"], frames=np.arange(8), fps=25
    )
    path = tmp_path / "labels.nwb"
    write_poses(labels, path)
    back = read_poses(path)
    assert back.is_labels and back.equals(labels) and _same_meta(back, labels)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        series = io.read().processing["behavior"]["PoseEstimation"]["b"]
        assert series.confidence is None


def test_written_file_passes_pynwbs_validator_and_follows_ndx_pose(tmp_path):
    path = tmp_path / "mouse1.nwb"
    write_poses(_predictions(), path)
    assert pynwb.validate(path=str(path)) == []
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        behavior = nwbfile.processing["behavior"]
        estimation = behavior["PoseEstimation"]
        assert estimation.source_software == "vidpose" and estimation.source_software_version
        assert estimation.scorer == "model_v1"
        assert list(estimation.original_videos[:]) == ["sessions/mouse1.mp4"]
        assert estimation.skeleton is behavior["Skeletons"]["skeleton"]
        assert list(estimation.skeleton.nodes[:]) == ["tail base", "nose", "paw"]
        assert estimation.skeleton.edges[:].tolist() == [[0, 1], [1, 2]]
        series = estimation["nose"]
        assert series.unit == "pixels" and series.rate == 30000 / 1001
        assert series.data.shape == (8, 2) and series.confidence.shape == (8,)
        assert nwbfile.session_start_time.tzinfo is not None


def _foreign_file(path, n_estimations=1) -> None:
    """An NWB file made with ndx-pose's own API as another tool would: skeleton order
    snout, ear, tail; shared timestamps at 25 fps from frame 3 with frame 5 skipped; the video
    as a linked external ImageSeries (ndx-pose 0.4's way)."""
    nwbfile = pynwb.NWBFile(
        session_description="other tool",
        identifier="abc",
        session_start_time=datetime.datetime(2024, 5, 1, 9, tzinfo=datetime.timezone.utc),
    )
    video = pynwb.image.ImageSeries(
        name="video",
        external_file=["cam0.avi"],
        starting_frame=[0],
        format="external",
        rate=25.0,
        num_samples=100,
    )
    nwbfile.add_acquisition(video)
    skeleton = ndx_pose.Skeleton(
        name="mouse", nodes=["snout", "ear", "tail"], edges=np.array([[0, 1], [0, 2]], "uint8")
    )
    behavior = nwbfile.create_processing_module(name="behavior", description="poses")
    behavior.add(ndx_pose.Skeletons(skeletons=[skeleton]))
    times = np.array([3, 4, 6, 7]) / 25.0
    for e in range(n_estimations):
        series = []
        for j, name in enumerate(["snout", "ear", "tail"]):
            series.append(
                ndx_pose.PoseEstimationSeries(
                    name=name,
                    data=np.full((4, 2), 10.0 * j + e) + np.arange(4)[:, None],
                    confidence=np.full(4, 0.5 + j / 10),
                    reference_frame="top left",
                    timestamps=series[0] if series else times,
                )
            )
        behavior.add(
            ndx_pose.PoseEstimation(
                name=f"PoseEstimation{e}" if n_estimations > 1 else "dlc",
                pose_estimation_series=series,
                scorer="DLC_resnet50",
                source_software="DeepLabCut",
                skeleton=skeleton,
                source_video=video,
            )
        )
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def test_a_file_written_with_ndx_poses_api_is_read(tmp_path):
    path = tmp_path / "other.nwb"
    _foreign_file(path)
    poses = read_poses(path)
    assert poses.keypoints == ["snout", "ear", "tail"]
    assert poses.frames.tolist() == [3, 4, 6, 7]
    assert poses.fps == 25.0 and poses.video == "cam0.avi"
    assert poses.skeleton == [("snout", "ear"), ("snout", "tail")]
    assert poses.scorer == "DLC_resnet50" and not poses.is_labels
    assert poses.coords[:, 2, 0].tolist() == [20.0, 21.0, 22.0, 23.0]
    assert np.allclose(poses.likelihood[0], [0.5, 0.6, 0.7])


def test_several_pose_estimations_are_refused_by_name(tmp_path):
    path = tmp_path / "two.nwb"
    _foreign_file(path, n_estimations=2)
    with pytest.raises(LabelsError, match=r"2 PoseEstimation .*behavior/PoseEstimation0.*1"):
        read_poses(path)


def test_missing_fps_and_image_files_are_refused_before_writing(tmp_path, labels_table):
    path = tmp_path / "out.nwb"
    with pytest.raises(ConfigError, match=r"out\.nwb: .*frame rate.*--fps 30"):
        write_poses(_predictions(fps=None), path)
    with pytest.raises(ConfigError, match=r"image files .*labeled-data/img000\.png"):
        write_poses(labels_table, path)
    bad = Poses(coords=np.zeros((1, 1, 2)), keypoints=["a/b"], frames=[0], fps=30)
    with pytest.raises(ConfigError, match=r"'/' or ':'.*a/b"):
        write_poses(bad, path)
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_fails_leaves_the_old_file(tmp_path, monkeypatch):
    from vidpose.io.nwb import NwbFormat, save_nwb

    path = tmp_path / "mouse1.nwb"
    write_poses(_predictions(), path)
    before = path.read_bytes()

    def crash_after_writing(poses, tmp):
        save_nwb(poses, tmp)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(NwbFormat, "save", staticmethod(crash_after_writing))
    with pytest.raises(KeyboardInterrupt):
        write_poses(_predictions(fps=25.0), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["mouse1.nwb"]


def test_extra_columns_are_named_in_a_warning(tmp_path, predictions_with_extras):
    predictions_with_extras.fps = 30.0
    with pytest.warns(UserWarning, match="not written: ens_var_x, ens_var_y, split"):
        write_poses(predictions_with_extras, tmp_path / "x.nwb")
    assert read_poses(tmp_path / "x.nwb").keypoint_columns == {}


def test_hdf5_formats_are_told_apart_by_content(tmp_path):
    nwb, dlc = tmp_path / "a.nwb", tmp_path / "a.h5"
    write_poses(_predictions(), nwb)
    write_poses(_predictions(), dlc)
    assert detect_format(nwb).name == "nwb"
    assert detect_format(dlc).name == "dlc_h5"
    renamed = tmp_path / "really_nwb.h5"
    renamed.write_bytes(nwb.read_bytes())
    assert detect_format(renamed).name == "nwb"
    assert read_poses(dlc).equals(_predictions())


def test_convert_to_nwb_needs_fps_and_records_it_and_the_video(tmp_path, capsys):
    src, dst = tmp_path / "preds.csv", tmp_path / "preds.nwb"
    write_poses(_predictions(), src)  # CSV keeps neither fps nor the video
    assert main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "--fps" in err and "preds.csv" in err
    assert not dst.exists()
    assert main(["convert", str(src), str(dst), "--fps", "30", "--video", "v.mp4"]) == 0
    back = read_poses(dst)
    assert (back.fps, back.video) == (30.0, "v.mp4")
    assert back.equals(_predictions())


def test_predict_formats_come_from_the_registry():
    from vidpose.predict.run import _check_formats

    assert _check_formats(["csv", "nwb"], ensemble=True) == ("csv", "nwb")
    assert _check_formats([".NWB"], ensemble=False) == ("nwb",)
    with pytest.raises(ConfigError, match=r"first format.*--format csv,nwb"):
        _check_formats(["nwb"], ensemble=True)
    with pytest.raises(ConfigError, match=r"expected one or more of csv, h5, .*nwb"):
        _check_formats(["json"], ensemble=False)


def test_without_pynwb_the_error_says_what_to_install(monkeypatch):
    import builtins

    from vidpose.io import nwb

    real_import = builtins.__import__

    def no_pynwb(name, *args, **kwargs):
        if name in ("pynwb", "ndx_pose"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynwb)
    with pytest.raises(ImportError, match=r"vidpose\[nwb\]"):
        nwb._nwb()
