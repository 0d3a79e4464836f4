"""SLEAP files: .slp / .pkg.slp and analysis HDF5 both ways through sleap-io's own API, the
single-animal refusals, format detection among HDF5 formats, and ``vidpose import-sleap``.

The files are made in each test with sleap-io from a 20-frame 64x64 colour video at 25 fps
(frame i: red a gradient shifted by 10 i pixels, green the reverse gradient, blue 60) and a
3-node skeleton nose, ear_left, ear_right (edges from the nose to each ear; the ears a
symmetric pair). The labeled points of frame f are ``_points(f)``: the nose at
(10 + f, 20.25), ear_left at (30.5, 40 + f / 3), ear_right missing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidpose.errors import LabelsError, MissingDependencyError, ProjectError
from vidpose.io import Poses, detect_format, read_poses, write_poses

sio = pytest.importorskip("sleap_io")

N_FRAMES = 20
KEYPOINTS = ["nose", "ear_left", "ear_right"]  # copied before sleap-io sees it (it edits lists)
EDGES = [("nose", "ear_left"), ("nose", "ear_right")]


def _points(frame: int) -> np.ndarray:
    return np.array([[10.0 + frame, 20.25], [30.5, 40 + frame / 3], [np.nan, np.nan]])


def _scores(frame: int) -> np.ndarray:
    return np.array([0.9, frame / 100, 0.125])


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from vidpose.video import VideoWriter

    path = tmp_path_factory.mktemp("sleap_video") / "mouse1.mp4"
    ramp = np.linspace(0, 200, 64)[None, :]
    frames = [
        np.stack(np.broadcast_arrays(np.roll(ramp, 10 * i), ramp[:, ::-1], 60 + 0 * ramp), -1)
        for i in range(20)
    ]
    frames = [np.broadcast_to(f, (64, 64, 3)) for f in frames]
    with VideoWriter(path, fps=25, width=64, height=64) as w:
        w.write(np.stack(frames).astype(np.uint8))
    return path


def _skeleton():
    skeleton = sio.Skeleton(list(KEYPOINTS), edges=list(EDGES))
    skeleton.add_symmetry("ear_left", "ear_right")
    return skeleton


def _sleap_video(path: Path):
    """A video as SLEAP records it: opened, so that its frame count, size and fps are saved."""
    return sio.Video.from_filename(str(path))


def _save(labels, path: Path, embed: bool = False) -> Path:
    if embed:
        sio.save_slp(labels, str(path), embed="user", verbose=False)
    else:
        sio.save_slp(labels, str(path), verbose=False)
    return path


def _labels_slp(path: Path, video_path: Path, frames=(3, 11), embed: bool = False) -> Path:
    """User instances (``_points``) on ``frames`` of ``video_path``."""
    skeleton = _skeleton()
    video = _sleap_video(video_path)
    lfs = [
        sio.LabeledFrame(
            video=video,
            frame_idx=f,
            instances=[sio.Instance.from_numpy(_points(f), skeleton=skeleton)],
        )
        for f in frames
    ]
    return _save(sio.Labels(lfs, videos=[video], skeletons=[skeleton]), path, embed)


def _predicted(frame: int, skeleton, track=None):
    return sio.PredictedInstance.from_numpy(
        _points(frame), point_scores=_scores(frame), score=0.5, skeleton=skeleton, track=track
    )


def _predictions_labels(video_path: Path, frames=(2, 5)):
    skeleton = _skeleton()
    video = _sleap_video(video_path)
    lfs = [
        sio.LabeledFrame(video=video, frame_idx=f, instances=[_predicted(f, skeleton)])
        for f in frames
    ]
    return sio.Labels(lfs, videos=[video], skeletons=[skeleton])


# --- sleap-io writes, vidpose reads ---------------------------------------------------------------


def test_sleap_labels_read_as_labels_named_as_the_import_writes_them(video, tmp_path):
    path = _labels_slp(tmp_path / "labels.slp", video, frames=(3, 5))
    assert detect_format(path).name == "sleap"
    poses = read_poses(path)
    assert poses.is_labels and poses.scorer == "sleap"
    # 20 recorded frames -> 2 digits (the largest labeled frame, 5, would give 1)
    assert poses.frames.tolist() == [
        "labeled-data/mouse1/img03.png",
        "labeled-data/mouse1/img05.png",
    ]
    np.testing.assert_array_equal(poses.coords, np.stack([_points(3), _points(5)]))
    assert poses.keypoints == KEYPOINTS and poses.skeleton == EDGES
    assert poses.video == str(video) and poses.fps == 25.0


def test_sleap_predictions_read_one_row_per_video_frame(video, tmp_path):
    path = _save(_predictions_labels(video, frames=(2, 5)), tmp_path / "pred.slp")
    poses = read_poses(path)
    assert not poses.is_labels
    assert poses.frames.tolist() == list(range(N_FRAMES))  # the video's recorded length
    for f in (2, 5):
        np.testing.assert_array_equal(poses.coords[f], _points(f))
        np.testing.assert_array_equal(poses.likelihood[f], _scores(f))
    others = np.setdiff1d(np.arange(N_FRAMES), [2, 5])
    assert np.isnan(poses.coords[others]).all() and np.isnan(poses.likelihood[others]).all()


def test_labels_from_several_videos_get_one_folder_each(video, tmp_path):
    other = tmp_path / "mouse2.mp4"
    shutil.copy(video, other)
    skeleton = _skeleton()
    v1, v2 = _sleap_video(video), _sleap_video(other)
    lfs = [
        sio.LabeledFrame(v2, 7, [sio.Instance.from_numpy(_points(7), skeleton=skeleton)]),
        sio.LabeledFrame(v1, 4, [sio.Instance.from_numpy(_points(4), skeleton=skeleton)]),
    ]
    path = _save(sio.Labels(lfs, videos=[v1, v2], skeletons=[skeleton]), tmp_path / "two.slp")
    poses = read_poses(path)
    assert poses.frames.tolist() == [
        "labeled-data/mouse1/img04.png",
        "labeled-data/mouse2/img07.png",
    ]
    np.testing.assert_array_equal(poses.coords, np.stack([_points(4), _points(7)]))
    assert poses.video is None  # no one video


# --- vidpose writes, sleap-io reads ---------------------------------------------------------------


def test_vidpose_labels_written_as_user_instances(video, tmp_path):
    labels = Poses(
        coords=np.stack([_points(3), _points(11)]),
        keypoints=KEYPOINTS,
        frames=["labeled-data/mouse1/img03.png", "labeled-data/mouse1/img11.png"],
        scorer="rick",
        video=str(video),
        fps=25.0,
        skeleton=EDGES,
    )
    path = tmp_path / "out.slp"
    write_poses(labels, path)
    loaded = sio.load_slp(str(path), open_videos=False)
    assert [lf.frame_idx for lf in loaded] == [3, 11]
    assert [type(i).__name__ for lf in loaded for i in lf.instances] == ["Instance", "Instance"]
    np.testing.assert_array_equal(loaded[1].instances[0].numpy(), _points(11))
    assert loaded.videos[0].filename == str(video)
    assert [n.name for n in loaded.skeletons[0].nodes] == KEYPOINTS
    assert [(e.source.name, e.destination.name) for e in loaded.skeletons[0].edges] == EDGES
    back = read_poses(path)
    assert back.equals(labels)  # the scorer too (kept in the file's provenance)
    assert (back.video, back.fps, back.skeleton) == (str(video), 25.0, EDGES)


def test_labels_without_video_reference_videos_of_their_folders(tmp_path):
    labels = Poses(
        coords=np.stack([_points(1), _points(2), _points(30)]),
        keypoints=KEYPOINTS,
        frames=["labeled-data/a/img1.png", "labeled-data/b/img2.png", "labeled-data/a/img30.png"],
    )
    path = tmp_path / "out.slp"
    write_poses(labels, path)
    loaded = sio.load_slp(str(path), open_videos=False)
    assert [(lf.video.filename, lf.frame_idx) for lf in loaded] == [
        ("videos/a.mp4", 1),
        ("videos/b.mp4", 2),
        ("videos/a.mp4", 30),
    ]
    back = read_poses(path)  # frame counts unknown: digits of the largest labeled frame
    assert back.frames.tolist() == [
        "labeled-data/a/img01.png",
        "labeled-data/a/img30.png",
        "labeled-data/b/img2.png",
    ]
    np.testing.assert_array_equal(back.coords, labels.coords[[0, 2, 1]])


def test_label_rows_must_name_a_frame_and_be_distinct(tmp_path):
    def labels(frames):
        return Poses(coords=np.zeros((2, 3, 2)), keypoints=KEYPOINTS, frames=frames)

    with pytest.raises(LabelsError, match=r"row 2 \(labeled-data/a/best\.png\): no frame number"):
        write_poses(
            labels(["labeled-data/a/img1.png", "labeled-data/a/best.png"]), tmp_path / "x.slp"
        )
    with pytest.raises(LabelsError, match=r"rows 1 and 2: both are frame 1 of videos/a\.mp4"):
        write_poses(
            labels(["labeled-data/a/img1.png", "labeled-data/a/img01.png"]), tmp_path / "x.slp"
        )
    assert not (tmp_path / "x.slp").exists()


def test_vidpose_predictions_written_with_scores_and_read_back_exactly(video, tmp_path):
    coords = np.stack([_points(f) for f in range(6)])
    likelihood = np.stack([_scores(f) for f in range(6)])
    coords[0, 0] = (1 / 3, 1e300)
    coords[2] = np.nan  # nothing at all: an empty frame
    likelihood[2] = np.nan
    coords[3] = np.nan  # no visible point, but scores: an instance of invisible points
    poses = Poses(coords=coords, keypoints=KEYPOINTS, frames=np.arange(6), likelihood=likelihood)
    path = tmp_path / "pred.slp"
    write_poses(poses, path)
    loaded = sio.load_slp(str(path), open_videos=False)
    assert [len(lf.instances) for lf in loaded] == [1, 1, 0, 1, 1, 1]
    np.testing.assert_array_equal(loaded[4].instances[0].numpy(scores=True)[:, 2], _scores(4))
    assert loaded.videos[0].filename == "unknown-video.mp4"  # the documented placeholder
    back = read_poses(path)
    assert back.equals(poses) and back.video is None
    poses.video = str(video)
    write_poses(poses, path)
    assert read_poses(path).video == str(video)


def test_extra_columns_are_dropped_with_a_warning(tmp_path):
    poses = Poses(
        coords=np.zeros((2, 3, 2)),
        keypoints=KEYPOINTS,
        frames=[0, 1],
        likelihood=np.ones((2, 3)),
        keypoint_columns={"ens_var_x": np.ones((2, 3))},
    )
    with pytest.warns(UserWarning, match=r"cannot store the columns \['ens_var_x'\]"):
        write_poses(poses, tmp_path / "p.slp")
    assert read_poses(tmp_path / "p.slp").keypoint_columns == {}


# --- analysis HDF5 --------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["matlab", "standard"])
def test_analysis_h5_from_sleap_io_reads_as_predictions(video, tmp_path, preset):
    path = tmp_path / "pred.analysis.h5"
    sio.save_analysis_h5(_predictions_labels(video), str(path), preset=preset)
    assert detect_format(path).name == "sleap_analysis"
    poses = read_poses(path)
    assert not poses.is_labels and poses.frames.tolist() == list(range(N_FRAMES))
    np.testing.assert_array_equal(poses.coords[5], _points(5))
    np.testing.assert_array_equal(poses.likelihood[2], _scores(2))
    assert np.isnan(poses.coords[[0, 1, 3, 4, 6]]).all()
    assert poses.skeleton == EDGES and poses.video == str(video)


def _sleap_layout_h5(path: Path, tracks_fthn: np.ndarray) -> Path:
    """An analysis file as SLEAP writes it (no ``dims`` attributes): ``tracks_fthn`` is
    (frame, track, node, xy), stored as (track, xy, node, frame)."""
    n_frames, n_tracks, n_nodes, _ = tracks_fthn.shape
    with h5py.File(path, "w") as f:
        f["tracks"] = tracks_fthn.transpose(1, 3, 2, 0)
        f["point_scores"] = np.full((n_tracks, n_nodes, n_frames), 0.75)
        f["track_occupancy"] = (~np.isnan(tracks_fthn).all(axis=(2, 3))).astype(np.uint8)
        f["node_names"] = np.array([k.encode() for k in KEYPOINTS])
        f["track_names"] = np.array([f"track_{t}".encode() for t in range(n_tracks)])
        f["edge_names"] = np.array([(a.encode(), b.encode()) for a, b in EDGES])
        f["video_path"] = "mouse1.mp4"
    return path


def test_analysis_h5_in_sleaps_layout_is_detected_by_content_not_extension(tmp_path):
    tracks = np.full((4, 1, 3, 2), np.nan)
    tracks[1, 0] = _points(1)
    path = _sleap_layout_h5(tmp_path / "session.h5", tracks)  # DeepLabCut's extension
    assert detect_format(path).name == "sleap_analysis"
    poses = read_poses(path)
    np.testing.assert_array_equal(poses.coords[:, :, :], tracks[:, 0])
    np.testing.assert_array_equal(poses.likelihood, np.full((4, 3), 0.75))
    assert poses.video == "mouse1.mp4" and poses.skeleton == EDGES


def test_dlc_h5_and_renamed_slp_are_still_told_apart(video, tmp_path):
    dlc = Poses(coords=np.ones((2, 3, 2)), keypoints=KEYPOINTS, frames=[0, 1], likelihood=None)
    write_poses(dlc, tmp_path / "CollectedData_me.h5")
    assert detect_format(tmp_path / "CollectedData_me.h5").name == "dlc_h5"
    assert read_poses(tmp_path / "CollectedData_me.h5").equals(dlc)
    slp = _labels_slp(tmp_path / "labels.slp", video)
    renamed = tmp_path / "labels.h5"
    shutil.copy(slp, renamed)
    assert detect_format(renamed).name == "sleap"
    assert read_poses(renamed).equals(read_poses(slp))


def test_labels_cannot_be_written_as_an_analysis_file(tmp_path):
    labels = Poses(coords=np.zeros((1, 3, 2)), keypoints=KEYPOINTS, frames=["a/img1.png"])
    with pytest.raises(LabelsError, match=r"write labels as \.slp"):
        write_poses(labels, tmp_path / "x.analysis.h5")


# --- single animal --------------------------------------------------------------------------------


def test_two_instances_in_a_frame_are_refused_naming_the_frame(video, tmp_path):
    skeleton = _skeleton()
    v = _sleap_video(video)
    two = [sio.Instance.from_numpy(_points(f), skeleton=skeleton) for f in (0, 1)]
    lfs = [
        sio.LabeledFrame(v, 2, [sio.Instance.from_numpy(_points(2), skeleton=skeleton)]),
        sio.LabeledFrame(v, 5, two),
    ]
    path = _save(sio.Labels(lfs, videos=[v], skeletons=[skeleton]), tmp_path / "pair.slp")
    with pytest.raises(LabelsError) as err:
        read_poses(path)
    message = str(err.value)
    assert "pair.slp: video mouse1, frame 5: 2 user-labeled instances" in message
    assert "single-animal" in message and "keep one instance per frame" in message


def test_instances_on_two_tracks_are_refused_naming_the_frame(video, tmp_path):
    skeleton = _skeleton()
    v = _sleap_video(video)
    a, b = sio.Track("a"), sio.Track("b")
    lfs = [
        sio.LabeledFrame(v, 1, [_predicted(1, skeleton, a)]),
        sio.LabeledFrame(v, 4, [_predicted(4, skeleton, b)]),
    ]
    labels = sio.Labels(lfs, videos=[v], skeletons=[skeleton], tracks=[a, b])
    path = _save(labels, tmp_path / "tracks.slp")
    with pytest.raises(LabelsError, match=r"frame 4: an instance on track 'b' after track 'a'"):
        read_poses(path)


def test_analysis_file_with_two_animals_is_refused_naming_the_frame(tmp_path):
    tracks = np.full((5, 2, 3, 2), np.nan)
    tracks[:, 0] = _points(0)
    tracks[3:, 1] = _points(1)
    path = _sleap_layout_h5(tmp_path / "two.analysis.h5", tracks)
    with pytest.raises(LabelsError, match=r"two.analysis.h5: frame 3: 2 tracks hold an animal"):
        read_poses(path)
    tracks[:, 1] = np.nan  # a second track without data is no animal
    path = _sleap_layout_h5(tmp_path / "one.analysis.h5", tracks)
    np.testing.assert_array_equal(read_poses(path).coords, tracks[:, 0])


def test_predictions_of_two_videos_are_refused(video, tmp_path):
    other = tmp_path / "mouse2.mp4"
    shutil.copy(video, other)
    skeleton = _skeleton()
    v1, v2 = _sleap_video(video), _sleap_video(other)
    lfs = [
        sio.LabeledFrame(v1, 1, [_predicted(1, skeleton)]),
        sio.LabeledFrame(v2, 1, [_predicted(1, skeleton)]),
    ]
    path = _save(sio.Labels(lfs, videos=[v1, v2], skeletons=[skeleton]), tmp_path / "p.slp")
    with pytest.raises(LabelsError, match="predictions of 2 videos"):
        read_poses(path)


def test_without_sleap_io_the_error_says_how_to_install_it(video, tmp_path, monkeypatch):
    path = _labels_slp(tmp_path / "labels.slp", video)
    monkeypatch.setitem(sys.modules, "sleap_io", None)
    with pytest.raises(
        MissingDependencyError, match=r"needs sleap-io: uv pip install 'vidpose\[sleap\]'"
    ):
        read_poses(path)
    assert issubclass(MissingDependencyError, ImportError)


# --- vidpose import-sleap -------------------------------------------------------------------------


def test_import_of_a_pkg_slp_writes_the_embedded_images(video, tmp_path):
    from vidpose.project import import_sleap, load_project

    gone = tmp_path / "gone" / "mouse1.mp4"  # the source video, deleted after packaging
    gone.parent.mkdir()
    shutil.copy(video, gone)
    pkg = _labels_slp(tmp_path / "labels.pkg.slp", gone, frames=(3, 11), embed=True)
    shutil.rmtree(gone.parent)
    result = import_sleap(pkg, tmp_path / "project")
    assert result.not_found == [str(gone)] and result.videos == []
    project = load_project(tmp_path / "project")
    labels = read_poses(pkg)
    assert project.labels.frames.tolist() == labels.frames.tolist()
    np.testing.assert_array_equal(project.labels.coords, labels.coords)
    assert project.image_size == (64, 64)
    assert project.settings.skeleton == EDGES
    assert project.settings.flip_pairs == [("ear_left", "ear_right")]
    embedded = sio.load_slp(str(pkg)).videos[0]
    from PIL import Image

    for f, image in zip((3, 11), project.image_paths):
        np.testing.assert_array_equal(np.asarray(Image.open(image)), embedded[f])


def test_import_of_a_video_backed_slp_decodes_and_links_the_video(video, tmp_path):
    from PIL import Image

    from vidpose.project import import_sleap, load_project
    from vidpose.video import read_frames

    slp = _labels_slp(tmp_path / "labels.slp", video, frames=(0, 19))
    import_sleap(slp, tmp_path / "project")
    project = load_project(tmp_path / "project")
    link = tmp_path / "project" / "videos" / "mouse1.mp4"
    assert link.is_symlink() and link.resolve() == video.resolve()
    assert [v.n_frames for v in project.videos] == [N_FRAMES]
    decoded = read_frames(video, [0, 19])
    for f, image in zip((0, 19), project.image_paths):
        np.testing.assert_array_equal(np.asarray(Image.open(image)), decoded[f])


def test_import_checks_the_video_before_writing_anything(video, tmp_path):
    from vidpose.project import import_sleap

    moved = tmp_path / "old" / "mouse1.mp4"
    moved.parent.mkdir()
    shutil.copy(video, moved)
    (tmp_path / "elsewhere").mkdir()
    slp = _labels_slp(tmp_path / "elsewhere" / "labels.slp", moved)
    moved.unlink()
    with pytest.raises(ProjectError, match=r"video .*mouse1\.mp4 .* not found.*--videos DIR"):
        import_sleap(slp, tmp_path / "project")
    assert not (tmp_path / "project").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "old"]  # no temp left
    result = import_sleap(slp, tmp_path / "project", video_dirs=[video.parent])
    assert result.videos == [tmp_path / "project" / "videos" / "mouse1.mp4"]


def test_import_into_an_existing_project_needs_force_and_keeps_other_files(video, tmp_path):
    from vidpose.project import import_sleap, load_project

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "keep.txt").write_text("trained")
    (project / "vidpose.yaml").write_text("config:\n  training: {max_epochs: 3}\n")
    slp = _labels_slp(tmp_path / "labels.slp", video, frames=(3, 11))
    with pytest.raises(ProjectError, match="exists and is not empty"):
        import_sleap(slp, project)
    import_sleap(slp, project, force=True)
    slp2 = _labels_slp(tmp_path / "labels2.slp", video, frames=(5,))
    import_sleap(slp2, project, force=True)  # replaces the labels and labeled-data/mouse1/
    loaded = load_project(project)
    assert loaded.labels.frames.tolist() == ["labeled-data/mouse1/img05.png"]
    assert sorted(p.name for p in (project / "labeled-data" / "mouse1").iterdir()) == ["img05.png"]
    assert (project / "models" / "keep.txt").read_text() == "trained"
    assert loaded.settings.config == {"training": {"max_epochs": 3}}
    assert loaded.settings.skeleton == EDGES
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_check_points_to_import_sleap_when_a_folder_holds_only_a_slp(video, tmp_path):
    from vidpose.project import check_project

    folder = tmp_path / "sleap-project"
    folder.mkdir()
    _labels_slp(folder / "labels.slp", video)
    report = check_project(folder)
    [problem] = [p for p in report.problems if p.code == "labels-missing"]
    assert "found labels.slp: import it with `vidpose import-sleap" in problem.message
    assert "labels.slp DIR`" in problem.message


def test_import_sleap_command(video, tmp_path, capsys):
    from vidpose.cli import main

    pkg = _labels_slp(tmp_path / "labels.pkg.slp", video, embed=True)
    out = tmp_path / "project"
    assert main(["import-sleap", str(pkg), str(out)]) == 0
    assert "2 labeled frames, 2 images, 1 videos linked" in capsys.readouterr().out
    assert main(["import-sleap", str(pkg), str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["import-sleap", str(out / "CollectedData.csv"), str(tmp_path / "x")]) == 2
    assert "expected a SLEAP .slp or .pkg.slp file" in capsys.readouterr().err
