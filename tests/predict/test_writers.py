"""Writing a video's files in writer processes: the same files as in threads, failures per
video."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidpose.io import read_poses
from vidpose.predict.predictor import PredictStats
from vidpose.predict.run import Predictor, VideoResult, _Writers, predict_videos


@pytest.fixture(scope="module")
def predicted(tiny_model, tiny_video, tmp_path_factory):
    """The tiny model's poses of the tiny video, and the table it wrote."""
    out = tmp_path_factory.mktemp("pred")
    predict_videos(tiny_model, [tiny_video], out, device="cpu")
    table = out / f"{tiny_video.stem}.csv"
    return read_poses(table), table


class _DiesWhenUnpickled:
    """Unpickled in a writer process, it ends that process at once (a crash, an OOM kill)."""

    frames, seconds, invalid_frames, fps = 48, 1.0, [], 48.0

    def __reduce__(self):
        return (os._exit, (3,))


def _write(writers: _Writers, spec, jobs: list, ensemble: bool = False) -> dict[str, VideoResult]:
    """Each job's (video, stem, poses, stats) written; ``poses``: a model's, or with
    ``ensemble`` the list of its members'."""
    results: dict[str, VideoResult] = {}
    for video, stem, poses, stats in jobs:
        members = poses if ensemble else [poses]
        writers.submit(spec, (video, stem, members, stats), lambda r: results.update({r.stem: r}))
    writers.close()
    return results


def test_writer_processes_write_what_threads_write(predicted, tiny_model, tmp_path):
    poses, table = predicted
    stats = PredictStats(poses.n_frames, 0.5, [])
    lines: dict[bool, list[str]] = {True: [], False: []}
    got = {}
    for processes in (True, False):
        out = tmp_path / str(processes)
        spec = Predictor(tiny_model, out, formats=("csv", "h5")).outputs()
        writers = _Writers(processes, lines[processes].append)
        assert (writers.procs is not None) == processes
        got[processes] = _write(writers, spec, [(Path("v.mp4"), "a", poses, stats)])["a"]
        assert got[processes].status == "ok", got[processes].reason
        assert [p.name for p in got[processes].outputs[:2]] == ["a.csv", "a.h5"]
        assert (out / "a.csv").read_bytes() == table.read_bytes()
    on_disk = {
        flag: sorted(p.relative_to(tmp_path / str(flag)) for p in (tmp_path / str(flag)).rglob("*"))
        for flag in (True, False)
    }
    assert on_disk[True] == on_disk[False]
    for name in on_disk[True]:
        if name.suffix == ".csv":
            a = (tmp_path / "True" / name).read_bytes()
            assert a == (tmp_path / "False" / name).read_bytes(), name
    assert got[True].sizes == got[False].sizes
    assert len(lines[True]) == len(lines[False]) == 1 and "a.csv" in lines[True][0]


def test_a_dead_writer_process_fails_its_video_and_the_next_ones_are_written(
    predicted, tiny_model, tmp_path
):
    poses, _ = predicted
    spec = Predictor(tiny_model, tmp_path).outputs()
    writers = _Writers(True, lambda _line: None)
    first: dict[str, VideoResult] = {}
    writers.submit(
        spec, (Path("x.mp4"), "x", [poses], _DiesWhenUnpickled()), lambda r: first.update(x=r)
    )
    writers.procs.shutdown(wait=True)  # the crash has happened and been reported
    assert first["x"].status == "failed"
    assert "writer process failed" in first["x"].reason
    assert not (tmp_path / "x.csv").exists()
    rest = _write(writers, spec, [(Path("y.mp4"), "y", poses, PredictStats(48, 0.5, []))])
    assert rest["y"].status == "ok", rest["y"].reason
    assert writers.procs is None  # written in a thread
    assert read_poses(tmp_path / "y.csv").n_frames == poses.n_frames


def test_writer_processes_start_and_import_before_the_first_table():
    """The pool's processes start as it is made, and import the writers' modules (pandas)
    while the first videos are predicted: a one-video run waited 3 s for its writer otherwise."""
    import sys

    module = "vidpose.predict.metrics"
    had = module in sys.modules
    writers = _Writers(True, lambda _msg: None, warm=(module,))
    try:
        assert len(writers.procs._processes) == 4  # started with no table to write yet
        assert len(writers.warming) == 4
        for future in writers.warming:
            assert future.result(timeout=120) == [module]
    finally:
        writers.close()
    assert (module in sys.modules) == had  # imported over there, not here


_PRESTART_WRITERS = """
import sys
from vidpose.predict import run

assert run.prestart_writers(["json", "vidpose.io"])
pool, warming = run._SPARE_WRITERS[0]
procs = list(pool._processes.values())
assert len(procs) == run.WRITERS and all(type(p).__name__ == "ForkProcess" for p in procs)
assert all(f.result(timeout=60) == ["json", "vidpose.io"] for f in warming)
w = run._Writers(True, print, warm=["json"])
assert w.procs is pool and w.warming is warming and not run._SPARE_WRITERS
again = run._Writers(True, print, warm=["json"])  # none left: a pool of its own
assert again.procs is not None and again.procs is not pool
again.close()
w.close()
print("ok")
"""


def test_a_gpu_workers_writer_processes_are_forked_ahead_and_taken_by_its_prediction():
    """A local GPU worker forks its table writers (importing what they need) before its CUDA
    context, instead of waiting for a fork server of its own at its first video; the next
    prediction's writers are those. In a fresh process, as a worker is."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _PRESTART_WRITERS], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


def test_writers_are_not_forked_beside_a_thread():
    import threading

    from vidpose.predict import run

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not run.prestart_writers(["json"])
    finally:
        stop.set()
        t.join()
    assert not run._SPARE_WRITERS


_EARLY_WRITERS = """
import sys
from pathlib import Path
from vidpose.predict import run

model, video, out = sys.argv[1:4]
predictor = run.Predictor(model, out, device="cpu")
predictor.load()  # predict.decoders=processes: the fork server, and the writers from it
run._wait_early_writers()
pool, warming = run._SPARE_WRITERS[0]
procs = list(pool._processes.values())
assert len(procs) == run.WRITERS, procs
assert all(type(p).__name__ == "ForkServerProcess" for p in procs), procs
assert all(f.result(timeout=120) == predictor.writer_modules() for f in warming)
taken = []
real = run._Writers.__init__
def spy(self, *a, **k):
    real(self, *a, **k)
    taken.append(self.procs)
run._Writers.__init__ = spy
results = []
predictor.predict([(Path(video), "v")], on_result=results.append)
assert taken == [pool] and not run._SPARE_WRITERS, taken
assert [r.status for r in results] == ["ok"], results
print("ok")
"""


def test_a_prediction_in_processes_starts_its_writers_while_the_models_load(
    tiny_model, tiny_video, tmp_path
):
    """With decoder processes (here ``predict.decoders=processes`` on CPU), loading the models
    also starts the table writers' processes from the fork server, importing what they need:
    a one-video run no longer waits for their imports once its frames are predicted. The
    prediction takes that pool. In a fresh process, as ``vidpose predict`` is."""
    import shutil
    import subprocess
    import sys

    import yaml

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    cfg = yaml.safe_load((model / "config.yaml").read_text())
    cfg.setdefault("predict", {})["decoders"] = "processes"
    (model / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = [str(model), str(tiny_video), str(tmp_path / "out")]
    run = subprocess.run(
        [sys.executable, "-c", _EARLY_WRITERS, *args], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")
    assert (tmp_path / "out" / "v.csv").is_file()


def _ensemble(tiny_model, where: Path, members: int = 3) -> Path:
    import json
    import shutil

    for i in range(members):
        shutil.copytree(tiny_model, where / f"seed{i}")
    names = [f"seed{i}" for i in range(members)]
    (where / "ensemble.json").write_text(json.dumps({"members": names, "seeds": list(range(3))}))
    return where


def test_an_ensembles_members_are_written_side_by_side_as_one_process_writes_them(
    predicted, tiny_model, tmp_path
):
    """In writer processes, an ensemble's members' tables are written by one task each, and
    smoothed in another at once: the same files and result as one task writing them in turn;
    the smoothed tables are those `vidpose smooth` makes from the members' files."""
    import numpy as np

    poses, _ = predicted
    ens = _ensemble(tiny_model, tmp_path / "ens")
    rng = np.random.default_rng(0)
    members = []
    for _ in range(3):  # members that disagree a little, as trained ones do
        m = read_poses(predicted[1])
        m.coords = m.coords + rng.normal(0, 0.5, m.coords.shape)
        members.append(m.rounded())  # as predictions are
    stats = PredictStats(poses.n_frames, 0.5, [])
    got, lines = {}, {}
    for processes in (True, False):
        out = tmp_path / str(processes)
        spec = Predictor(ens, out).outputs()
        assert spec.ensemble
        lines[processes] = []
        writers = _Writers(processes, lines[processes].append)
        results = _write(writers, spec, [(Path("v.mp4"), "a", members, stats)], ensemble=True)
        got[processes] = results["a"]
        assert got[processes].status == "ok", got[processes].reason
    a, b = got[True], got[False]
    rel = [[p.relative_to(tmp_path / str(k)) for p in r.outputs] for k, r in got.items()]
    assert rel[0] == rel[1] and a.sizes == b.sizes
    assert [p.name for p in a.outputs[:2]] == ["a.csv", "a_ensemble.csv"]
    for p in rel[0]:
        assert (tmp_path / "True" / p).read_bytes() == (tmp_path / "False" / p).read_bytes(), p
    said = {
        k: sorted(line.replace(str(tmp_path / str(k)), "") for line in v) for k, v in lines.items()
    }
    assert said[True] == said[False] and len(said[True]) == 4
    from vidpose.smooth import run_smooth

    files = tmp_path / "True"
    run_smooth(sorted(files.glob("seed*/a.csv")), tmp_path / "cli" / "a.csv", smoothing="auto")
    for name in ("a.csv", "a_ensemble.csv"):
        assert (tmp_path / "cli" / name).read_bytes() == (files / name).read_bytes(), name


def test_an_ensemble_member_whose_writer_dies_fails_the_video_and_nothing_is_smoothed(
    predicted, tiny_model, tmp_path
):
    poses, _ = predicted
    ens = _ensemble(tiny_model, tmp_path / "ens")
    spec = Predictor(ens, tmp_path / "out").outputs()
    writers = _Writers(True, lambda _msg: None)
    dies = _DiesWhenUnpickled()
    results = _write(writers, spec, [(Path("v.mp4"), "a", [poses] * 3, dies)], ensemble=True)
    assert results["a"].status == "failed"
    assert "writer process failed" in results["a"].reason
    assert not (tmp_path / "out" / "a.csv").exists()  # no smoothed table


@pytest.mark.parametrize("processes", [True, False])
def test_an_ensemble_member_that_cannot_be_written_fails_the_video_and_drops_its_smoothing(
    predicted, tiny_model, tmp_path, processes
):
    """The smoothed tables, made beside the members' (in processes) or after them, appear only
    once every member's are written: a member whose folder cannot be made fails the video,
    an older smoothed table stays as it was, and no temporary file is left."""
    poses, _ = predicted
    ens = _ensemble(tiny_model, tmp_path / "ens")
    out = tmp_path / "out"
    out.mkdir()
    (out / "seed1").write_text("a file where the member's folder goes")
    (out / "a.csv").write_text("an earlier run's table")
    spec = Predictor(ens, out).outputs()
    writers = _Writers(processes, lambda _msg: None)
    stats = PredictStats(poses.n_frames, 0.5, [])
    results = _write(writers, spec, [(Path("v.mp4"), "a", [poses] * 3, stats)], ensemble=True)
    assert results["a"].status == "failed"
    assert "could not be written" in results["a"].reason
    assert (out / "a.csv").read_text() == "an earlier run's table"
    assert not (out / "a_ensemble.csv").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
