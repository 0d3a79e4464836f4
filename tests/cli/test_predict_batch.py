"""Batch prediction: every good video is predicted whatever the bad ones do, and videos that
share a file name get outputs of their own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import vidpose
from vidpose.cli import main
from vidpose.errors import VideoError
from vidpose.io import read_poses
from vidpose.predict.run import output_stems
from vidpose.video import open_video
from vidpose.video.writer import VideoWriter


def _frames(video: Path, n: int) -> np.ndarray:
    with open_video(video, reader="pyav") as r:
        return np.concatenate([b.frames for b in r.iter_batches(64)])[:n]


def test_cli_predicts_every_good_video_and_lists_the_bad_ones(
    cli_model, cli_video, tmp_path, capsys
):
    good = tmp_path / "good.mp4"
    shutil.copy(cli_video, good)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 500)
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "out"
    argv = ["predict", str(cli_model), str(corrupt), str(missing), str(good)]
    code = main([*argv, "--out", str(out), "--device", "cpu", "--no-progress"])
    output = "".join(capsys.readouterr())
    assert code == 1
    assert read_poses(out / "good.csv").n_frames == 48  # after both bad ones: still predicted
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "good.csv",
        "good_temporal_norm.csv",
        "predict_report.csv",
    ]
    assert "2 of 3 video(s) could not be predicted" in output
    assert f"{corrupt}: not a readable video" in output
    assert f"{missing}: no such file" in output
    assert "Traceback" not in output


def test_videos_with_the_same_name_get_their_own_outputs(cli_model, cli_video, tmp_path, capsys):
    cam1, cam2 = tmp_path / "cam1" / "session.mp4", tmp_path / "cam2" / "session.mp4"
    cam1.parent.mkdir()
    cam2.parent.mkdir()
    shutil.copy(cli_video, cam1)
    with VideoWriter(cam2, fps=30, width=64, height=64) as w:  # a different, shorter video
        w.write(_frames(cli_video, 20)[:, ::-1])
    out = tmp_path / "out"
    code = main(["predict", str(cli_model), str(cam1), str(cam2), "--out", str(out),
                 "--device", "cpu", "--no-progress"])  # fmt: skip
    output = capsys.readouterr().out
    assert code == 0
    assert not (out / "session.csv").exists()
    one, two = read_poses(out / "cam1_session.csv"), read_poses(out / "cam2_session.csv")
    assert (one.n_frames, two.n_frames) == (48, 20)
    direct = vidpose.load_model(cli_model, device="cpu").predict_video(cam2)
    np.testing.assert_allclose(two.coords, direct.coords, atol=1e-4)
    assert (out / "cam1_session_temporal_norm.csv").exists()
    assert (out / "cam2_session_temporal_norm.csv").exists()
    assert f"{cam1} -> cam1_session.csv" in output and f"{cam2} -> cam2_session.csv" in output


def test_a_later_call_with_another_video_of_the_same_name_does_not_overwrite(
    cli_model, cli_video, tmp_path, capsys
):
    cam1, cam2 = tmp_path / "cam1" / "session.mp4", tmp_path / "cam2" / "session.mp4"
    cam1.parent.mkdir()
    cam2.parent.mkdir()
    shutil.copy(cli_video, cam1)
    with VideoWriter(cam2, fps=30, width=64, height=64) as w:
        w.write(_frames(cli_video, 20))
    out = tmp_path / "out"
    opts = ["--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(["predict", str(cli_model), str(cam1), *opts]) == 0
    assert main(["predict", str(cli_model), str(cam2), *opts]) == 0
    assert read_poses(out / "session.csv").n_frames == 48  # cam1's, kept
    assert read_poses(out / "cam2_session.csv").n_frames == 20
    assert "cam2_session.csv" in capsys.readouterr().out
    # predicting cam1 again replaces its own output, under its own name
    assert main(["predict", str(cli_model), str(cam1), *opts]) == 0
    assert sorted(p.name for p in out.glob("*session.csv")) == ["cam2_session.csv", "session.csv"]


def test_ensemble_members_and_smoothed_tables_follow_the_unique_names(
    cli_model, cli_video, tmp_path
):
    ens = tmp_path / "ens"  # two copies of one model: an ensemble without training
    for member in ("seed0", "seed1"):
        shutil.copytree(cli_model, ens / member)
    (ens / "ensemble.json").write_text(json.dumps({"members": ["seed0", "seed1"], "seeds": [0, 1]}))
    videos = [tmp_path / "a" / "s.mp4", tmp_path / "b" / "s.mp4"]
    for v in videos:
        v.parent.mkdir()
        shutil.copy(cli_video, v)
    res = vidpose.predict_videos(ens, videos, device="cpu")
    assert res.ok
    assert res.outputs == {
        videos[0]: ens / "videos" / "a_s.csv",
        videos[1]: ens / "videos" / "b_s.csv",
    }
    for member in ("seed0", "seed1"):
        assert {p.name for p in (ens / "videos" / member).glob("*_s.csv")} == {"a_s.csv", "b_s.csv"}
    assert res.members[videos[1]] == [ens / "videos" / m / "b_s.csv" for m in ("seed0", "seed1")]
    assert read_poses(res.outputs[videos[1]]).n_frames == 48


def test_a_video_failing_during_prediction_is_recorded_and_not_written(
    cli_model, cli_video, tmp_path, monkeypatch
):
    videos = [tmp_path / "first.mp4", tmp_path / "breaks.mp4", tmp_path / "last.mp4"]
    for v in videos:
        shutil.copy(cli_video, v)
    import vidpose.predict.predictor as predictor

    real_open = predictor.open_video

    class Breaking:
        """A reader whose decoder fails after its first batch (as a corrupt stream does)."""

        def __init__(self, vr, path):
            self.vr, self.path, self.info = vr, path, vr.info

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.vr.close()

        def iter_batches(self, bs, start=0, stop=None):
            for i, batch in enumerate(self.vr.iter_batches(bs, start, stop)):
                if i == 1:
                    raise VideoError(f"{self.path}: decoder failed at frame 20")
                yield batch

    def flaky(path, **kwargs):
        vr = real_open(path, **kwargs)
        return Breaking(vr, path) if Path(path).name == "breaks.mp4" else vr

    monkeypatch.setattr(predictor, "open_video", flaky)
    res = vidpose.predict_videos(
        cli_model, videos, tmp_path / "out", device="cpu", batch_size=16, jobs=3
    )
    assert set(res.outputs) == {videos[0], videos[2]}
    assert res.failed == {videos[1]: "decoder failed at frame 20"}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.csv") if "_" not in p.stem) == [
        "first.csv",
        "last.csv",
    ]
    assert not list((tmp_path / "out").glob("breaks*"))
    with pytest.raises(VideoError, match=r"breaks\.mp4: decoder failed at frame 20"):
        res.raise_failures()


def test_evaluate_finds_and_makes_the_unique_names(cli_model, cli_video, tmp_path):
    from vidpose.viz.evaluate import _resolve_predictions

    model = tmp_path / "model"
    shutil.copytree(cli_model, model)
    videos = [tmp_path / "cam1" / "s.mp4", tmp_path / "cam2" / "s.mp4"]
    for v in videos:
        v.parent.mkdir()
        shutil.copy(cli_video, v)
    tables = _resolve_predictions(model, videos, True, "cpu", lambda _m: None)
    assert tables == {
        "cam1_s": (model / "videos" / "cam1_s.csv", videos[0]),
        "cam2_s": (model / "videos" / "cam2_s.csv", videos[1]),
    }
    stamp = tables["cam1_s"][0].stat().st_mtime_ns
    assert _resolve_predictions(model, videos, False, "cpu", lambda _m: None) == tables
    assert tables["cam1_s"][0].stat().st_mtime_ns == stamp  # found, not predicted again


@pytest.mark.parametrize(
    ("videos", "expected"),
    [
        (["x/a.mp4", "y/b.mp4"], ["a", "b"]),
        (["cam1/session.mp4", "cam2/session.mp4"], ["cam1_session", "cam2_session"]),
        (["p/x/s.mp4", "q/x/s.mp4", "r/s.mp4"], ["p_x_s", "q_x_s", "r_s"]),
        (["d/s.mp4", "d/s.avi"], ["s_mp4", "s_avi"]),
        (["d/S.mp4", "e/s.mp4"], ["d_S", "e_s"]),  # one file on a case-insensitive disk
        (["d/s.mp4", "d/../d/s.mp4"], ["s", "s"]),  # the same file twice
    ],
)
def test_output_stems(videos, expected, tmp_path):
    paths = [tmp_path / v for v in videos]
    names = output_stems(paths)
    assert [names[p] for p in paths] == expected


def test_videos_predicted_together_equal_each_predicted_alone(cli_model, cli_video, tmp_path):
    """Concurrent decoding, shared batches and out-of-order results put every frame's
    prediction in its own video's row (batch size not dividing the video, more videos than
    decoders)."""
    from vidpose.predict import load_model

    model = load_model(cli_model, device="cpu")
    alone = model.predict_video(cli_video, batch_size=7)
    videos = [tmp_path / f"v{i}.mp4" for i in range(4)]
    for v in videos:
        shutil.copy(cli_video, v)
    got: dict[Path, object] = {}
    model.predict_videos(
        videos, batch_size=7, jobs=2, on_done=lambda v, poses, stats: got.setdefault(v, poses)
    )
    assert set(got) == set(videos)
    for v in videos:
        assert np.array_equal(got[v].coords, alone.coords, equal_nan=True)
        assert np.array_equal(got[v].likelihood, alone.likelihood, equal_nan=True)


def test_ensemble_members_share_decoded_frames_and_match_their_own_predictions(
    cli_model, cli_video, tmp_path
):
    """Members predicted from the same decoded frames (one pass) give each member's own
    predictions, in member order."""
    import torch

    from vidpose.predict import load_model
    from vidpose.predict.predictor import predict_with_members, shares_frames

    other = tmp_path / "other"
    shutil.copytree(cli_model, other)
    ckpt = other / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=False)
    g = torch.Generator().manual_seed(0)
    for v in state["state_dict"].values():
        if v.is_floating_point():
            v.add_(0.05 * torch.randn(v.shape, generator=g))
    torch.save(state, ckpt)
    models = [load_model(cli_model, device="cpu"), load_model(other, device="cpu")]
    assert shares_frames(models)
    alone = [m.predict_video(cli_video, batch_size=5) for m in models]
    assert not np.allclose(alone[0].coords, alone[1].coords)  # the members differ
    got = {}
    predict_with_members(
        models, [cli_video], batch_size=5, on_done=lambda v, res, st: got.setdefault(v, res)
    )
    for mine, theirs in zip(got[cli_video], alone, strict=True):
        assert np.array_equal(mine.coords, theirs.coords, equal_nan=True)
        assert np.array_equal(mine.likelihood, theirs.likelihood, equal_nan=True)


def test_a_folder_of_videos_predicts_each_video_and_an_empty_folder_is_reported(
    cli_model, cli_video, tmp_path, capsys
):
    from vidpose.cli import main

    folder = tmp_path / "session"
    folder.mkdir()
    for name in ("a.mp4", "B.MP4", "._a.mp4"):
        shutil.copy(cli_video, folder / name)
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(cli_model),
                str(folder),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.glob("*.csv") if "_" not in p.stem) == ["B.csv", "a.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(cli_model), str(empty), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "empty: is a folder with no video in it" in err


def test_predict_writes_dlc_h5_under_dlc_names_on_request(cli_model, cli_video, tmp_path, capsys):
    from vidpose.cli import main
    from vidpose.io import read_poses

    out = tmp_path / "out"
    argv = ["predict", str(cli_model), str(cli_video), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--no-progress", "--format", "csv,h5", "--dlc-names"]) == 0
    csv, h5 = sorted(out.glob("session00DLC_*"))
    assert csv.name.startswith("session00DLC_vidpose_") and csv.suffix == ".csv"
    assert h5.suffix == ".h5" and h5.stem == csv.stem
    a, b = read_poses(csv), read_poses(h5)
    assert np.array_equal(a.coords, b.coords, equal_nan=True) and a.keypoints == b.keypoints
    assert main([*argv, "--format", "csv,json"]) == 2
    assert "--format: expected one or more of csv, h5" in capsys.readouterr().err


def test_a_video_whose_inference_fails_is_reported_and_the_others_are_predicted(
    cli_model, cli_video, tmp_path, monkeypatch
):
    import vidpose.predict.predictor as predictor

    videos = [tmp_path / "first.mp4", tmp_path / "breaks.mp4", tmp_path / "last.mp4"]
    for v in videos:
        shutil.copy(cli_video, v)
    real = predictor._MultiVideo._infer

    def flaky(self, i, st, batch, frames):
        if st.path.name == "breaks.mp4" and batch.start > 0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(self, i, st, batch, frames)

    monkeypatch.setattr(predictor._MultiVideo, "_infer", flaky)
    res = vidpose.predict_videos(
        cli_model, videos, tmp_path / "out", device="cpu", batch_size=16, jobs=3
    )
    assert set(res.outputs) == {videos[0], videos[2]}
    assert "illegal memory access" in res.failed[videos[1]]
    assert not list((tmp_path / "out").glob("breaks*"))
