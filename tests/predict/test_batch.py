"""Batch prediction with the local engine: the ledger (skip what is done, redo the rest),
manifests, the report, the output-folder lock, and the scheduler's retries of dead workers."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from vidpose.cli import main
from vidpose.errors import OutputInUseError
from vidpose.io import read_poses
from vidpose.predict import batch
from vidpose.predict.batch import Died, Job, predict_batch, schedule
from vidpose.predict.ledger import LEDGER_FILE, Ledger, VideoStamp, lock_output
from vidpose.predict.run import VideoResult

CPU = ["--device", "cpu", "--no-progress", "--jobs", "2"]


def _videos(src: Path, folder: Path, names: list[str]) -> list[Path]:
    """Copies of the tiny video (48 frames) named ``names`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        shutil.copy(src, folder / name)
        out.append(folder / name)
    return out


def _report(out: Path) -> dict[str, dict[str, str]]:
    """predict_report.csv as video file name -> its row."""
    with open(out / "predict_report.csv", newline="") as fh:
        return {Path(r["video"]).name: r for r in csv.DictReader(fh)}


def _events(out: Path) -> list[dict]:
    return Ledger(out).events()


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv") if "report" not in p.name}


def test_a_second_run_skips_finished_videos_and_redoes_changed_or_half_done_ones(
    tiny_model, tiny_video, tmp_path
):
    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    out = tmp_path / "out"
    args = ["predict", str(tiny_model), *map(str, videos), "--out", str(out), *CPU]
    assert main(args) == 0
    assert {r["status"] for r in _report(out).values()} == {"ok"}
    assert read_poses(out / "a.csv").n_frames == 48
    finished = {Path(e["video"]).name: e for e in _events(out) if e["event"] == "finished"}
    assert sorted(finished) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    assert finished["a.mp4"]["outputs"] == [
        {"path": name, "size": (out / name).stat().st_size}
        for name in ("a.csv", "a_temporal_norm.csv")
    ]
    assert finished["a.mp4"]["size"] == videos[0].stat().st_size
    before = _mtimes(out)

    assert main(args) == 0  # nothing to do
    assert {r["status"] for r in _report(out).values()} == {"skipped"}
    assert _mtimes(out) == before
    last_run = _events(out)[-5:]
    assert [e["event"] for e in last_run] == ["run"] + ["skipped"] * 4

    # a: the video changed; b: an output is gone; c: a run started it again and died
    shutil.copy(tiny_video, videos[0])  # a new mtime
    (out / "b_temporal_norm.csv").unlink()
    ledger = Ledger(out)
    ledger.append("started", video=str(videos[2].absolute()), stem="c", worker="gone")
    ledger.close()
    with open(out / LEDGER_FILE, "a") as fh:  # and a torn line from a killed writer
        fh.write('{"event": "finished", "video": "/x')
    n_events = len(_events(out))
    assert main(args) == 0
    status = {name: row["status"] for name, row in _report(out).items()}
    assert status == {"a.mp4": "ok", "b.mp4": "ok", "c.mp4": "ok", "d.mp4": "skipped"}
    assert (out / "b_temporal_norm.csv").exists()
    after = _mtimes(out)
    assert after["d.csv"] == before["d.csv"]
    assert all(after[f"{s}.csv"] > before[f"{s}.csv"] for s in "abc")
    # run, skipped, 3 x (started, finished): the torn line swallowed none of them
    assert [e["event"] for e in _events(out)[n_events:]].count("finished") == 3


def test_other_output_settings_predict_again(tiny_model, tiny_video, tmp_path):
    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4"])
    out = tmp_path / "out"
    first = predict_batch(tiny_model, videos, out, device="cpu")
    assert [r.status for r in first.videos] == ["ok"]
    again = predict_batch(tiny_model, videos, out, device="cpu", formats=["csv", "h5"])
    assert [r.status for r in again.videos] == ["ok"]
    assert (out / "a.h5").exists()
    assert [r.status for r in predict_batch(tiny_model, videos, out, device="cpu").videos] == [
        "ok"
    ]  # csv alone is another setting again


def test_an_ensemble_video_is_done_only_with_every_members_table(tiny_model, tiny_video, tmp_path):
    ens = tmp_path / "ens"  # two copies of one model: an ensemble without training
    for member in ("seed0", "seed1"):
        shutil.copytree(tiny_model, ens / member)
    (ens / "ensemble.json").write_text(json.dumps({"members": ["seed0", "seed1"], "seeds": [0, 1]}))
    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4"])
    out = tmp_path / "out"
    report = predict_batch(ens, videos, out, device="cpu")
    (res,) = report.videos
    assert res.status == "ok" and res.table == out / "a.csv"
    written = {p.relative_to(out).as_posix() for p in res.outputs}
    assert written == {
        "a.csv",
        "a_ensemble.csv",
        "seed0/a.csv",
        "seed0/a_temporal_norm.csv",
        "seed1/a.csv",
        "seed1/a_temporal_norm.csv",
    }
    finished = [e for e in _events(out) if e["event"] == "finished"]
    assert {o["path"] for o in finished[0]["outputs"]} == written
    assert [r.status for r in predict_batch(ens, videos, out, device="cpu").videos] == ["skipped"]
    (out / "seed1" / "a_temporal_norm.csv").unlink()  # one member's metrics gone: not done
    assert [r.status for r in predict_batch(ens, videos, out, device="cpu").videos] == ["ok"]
    assert (out / "seed1" / "a_temporal_norm.csv").exists()


def test_a_manifest_lists_videos_and_a_missing_one_fails_alone(
    tiny_model, tiny_video, tmp_path, capsys
):
    _videos(tiny_video, tmp_path / "data" / "day1", ["s1.mp4", "s2.mp4"])
    elsewhere = _videos(tiny_video, tmp_path / "other", ["s3.mp4"])[0]
    manifest = tmp_path / "data" / "sessions.txt"
    manifest.write_text(
        f"# sessions of the week\n\nday1/s1.mp4\n  day1/s2.mp4  \nday1/missing.mp4\n{elsewhere}\n"
    )
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model), str(manifest), "--out", str(out), *CPU]) == 1
    rows = _report(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        "s1.mp4": "ok",
        "s2.mp4": "ok",
        "missing.mp4": "failed",
        "s3.mp4": "ok",
    }
    assert rows["missing.mp4"]["reason"] == "no such file"
    assert rows["s1.mp4"]["outputs"].split(";")[0] == "s1.csv"
    assert int(rows["s1.mp4"]["frames"]) == 48
    doc = json.loads((out / "predict_report.json").read_text())
    summary = doc["summary"]
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (3, 1, 0)
    assert summary["frames"] == 3 * 48 and summary["fps"] > 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'data' / 'day1' / 'missing.mp4'}: no such file" in err
    assert "Traceback" not in err


def test_an_unreadable_manifest_is_an_error_naming_it(tiny_model, tmp_path, capsys):
    manifest = tmp_path / "list.txt"
    manifest.write_bytes(b"\xff\xfe\x00binary")
    assert main(["predict", str(tiny_model), str(manifest), "--out", str(tmp_path / "o")]) == 2
    assert f"{manifest}: cannot be read as a list of videos" in capsys.readouterr().err


def test_a_second_batch_on_the_same_folder_is_refused(tiny_model, tiny_video, tmp_path, capsys):
    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4"])
    out = tmp_path / "out"
    with lock_output(out):
        code = main(["predict", str(tiny_model), str(videos[0]), "--out", str(out), *CPU])
        with pytest.raises(OutputInUseError, match="in use by another `vidpose predict`"):
            predict_batch(tiny_model, videos, out, device="cpu")
    err = capsys.readouterr().err
    assert code == 2
    assert f"{out} is in use by another `vidpose predict` (pid" in err
    assert not (out / "a.csv").exists() and not (out / LEDGER_FILE).exists()
    assert main(["predict", str(tiny_model), str(videos[0]), "--out", str(out), *CPU]) == 0


def test_worker_processes_retry_the_videos_of_one_that_died(
    tiny_model, tiny_video, tmp_path, monkeypatch
):
    """The local engine's one-process-per-GPU path, on two CPU "devices": the first worker to
    start predicting dies; its videos are predicted by the others."""
    monkeypatch.setattr(batch, "_local_devices", lambda settings, workers: ["cpu", "cpu"])
    marker = tmp_path / "crashed"
    monkeypatch.setenv(batch.CRASH_ENV, str(marker))
    videos = _videos(tiny_video, tmp_path / "v", [f"v{i}.mp4" for i in range(4)])
    out = tmp_path / "out"
    report = predict_batch(tiny_model, videos, out, device="cpu", jobs=1)
    assert marker.exists()
    assert [r.status for r in report.videos] == ["ok"] * 4
    assert report.workers == 2
    requeued = [e for e in _events(out) if e["event"] == "requeued"]
    assert requeued and all("died" in e["reason"] for e in requeued)
    dead = {e["reason"].split()[1] for e in requeued}
    assert not dead & {r.worker for r in report.videos}
    assert all(read_poses(out / f"v{i}.csv").n_frames == 48 for i in range(4))
    # every worker that got ready says how long it took, in the report and its JSON
    starts = report.worker_starts
    # the two first (the dead one got ready before it died); the one that replaced it only if
    # it got ready before the survivor had predicted everything (a race)
    assert len(starts) >= 2
    assert len({s["worker"] for s in starts}) == len(starts)
    for s in starts:
        assert s["device"] == "cpu"
        assert 0 < s["load_s"] <= s["ready_s"] < report.seconds
    doc = json.loads((out / "predict_report.json").read_text())
    assert doc["worker_starts"] == starts


def test_a_damaged_checkpoint_is_one_error_while_worker_processes_start(
    tiny_model, tiny_video, tmp_path, monkeypatch
):
    """Several workers: the checkpoint is checked in the driver while they start; a damaged
    one is the one error raised, no video is started, and no worker is left running."""
    import multiprocessing

    from vidpose.model_dir import ModelDirError

    monkeypatch.setattr(batch, "_local_devices", lambda settings, workers: ["cpu", "cpu"])
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    ckpts = list((model / "checkpoints").glob("*.ckpt"))
    assert ckpts
    for ckpt in ckpts:
        ckpt.write_bytes(b"not a checkpoint")
    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    with pytest.raises(ModelDirError, match="ckpt"):
        predict_batch(model, videos, out, device="cpu", jobs=1)
    assert not [e for e in _events(out) if e["event"] == "started"]
    assert not multiprocessing.active_children()


class _FakePool:
    """Workers that succeed, except those named in ``dies``: they die holding their videos."""

    jobs = 1

    def __init__(self, dies: set[str]) -> None:
        self.dies = dies
        self.starts: dict[str, dict] = {}
        self.n = 0
        self.pending: list[tuple[str, Job]] = []

    def start(self) -> str:
        self.n += 1
        return f"w{self.n}"

    def ready(self, worker: str) -> bool:
        return True

    def submit(self, worker: str, job: Job) -> None:
        self.pending.append((worker, job))

    def drain(self, worker: str) -> None:
        self.drains = [*getattr(self, "drains", []), (worker, self.n_submitted())]

    def n_submitted(self) -> int:
        return getattr(self, "submitted", 0)

    def wait(self, timeout: float):
        out = []
        for worker, job in self.pending:
            if worker in self.dies:
                out.append((worker, job, Died("killed")))
            else:
                out.append((worker, job, VideoResult(job.video, job.stem, frames=1)))
        self.pending.clear()
        return out


def _jobs(n: int) -> list[Job]:
    return [Job(Path(f"v{i}.mp4"), f"v{i}", VideoStamp(1, 1)) for i in range(n)]


def _schedule(pool, jobs: list[Job], workers: int, depth, **callbacks) -> dict[str, VideoResult]:
    """``schedule`` with callbacks that do nothing (unless given); the results by stem."""
    results: dict[str, VideoResult] = {}
    schedule(
        pool,
        jobs,
        workers,
        depth=depth,
        **{
            "on_start": lambda job, w: None,
            "on_result": lambda job, r: results.__setitem__(job.stem, r),
            "on_requeue": lambda job, why: None,
            **callbacks,
        },
    )
    return results


def test_schedule_hands_a_dead_workers_videos_to_the_others():
    results: dict[str, VideoResult] = {}
    requeued: list[str] = []
    pool = _FakePool(dies={"w1"})

    schedule(
        pool,
        _jobs(3),
        2,
        depth=2,
        on_start=lambda job, w: None,
        on_result=lambda job, r: results.__setitem__(job.stem, r),
        on_requeue=lambda job, why: requeued.append(job.stem),
    )
    assert {k: r.status for k, r in results.items()} == {"v0": "ok", "v1": "ok", "v2": "ok"}
    assert requeued  # w1 held videos, and they were predicted by w2 or w1's replacement w3
    assert {r.worker for r in results.values()} <= {"w2", "w3"}


class _WritingPool(_FakePool):
    """Workers that say a video is predicted (PREDICTED) one wait before its files are
    written (its result); it logs what happened, in order."""

    def __init__(self) -> None:
        super().__init__(dies=set())
        self.writing: list[tuple[str, Job]] = []
        self.log: list[tuple[str, str, str]] = []

    def submit(self, worker: str, job: Job) -> None:
        self.log.append(("submit", worker, job.stem))
        self.submitted = self.n_submitted() + 1
        super().submit(worker, job)
        self.most_unpredicted = max(getattr(self, "most_unpredicted", 0), len(self.pending))

    def wait(self, timeout: float):
        out = [(w, j, VideoResult(j.video, j.stem, frames=1)) for w, j in self.writing]
        out += [(w, j, batch.PREDICTED) for w, j in self.pending]
        self.log += [("result", w, j.stem) for w, j in self.writing]
        self.writing, self.pending = list(self.pending), []
        return out


def test_schedule_hands_out_the_next_video_once_one_is_predicted_not_written():
    """A worker takes its next video while the last one's files are written, so a depth of
    one decoder's worth keeps it busy and the last videos go to whichever worker frees first."""
    pool = _WritingPool()
    results = _schedule(pool, _jobs(4), 1, 1)
    assert {k: r.status for k, r in results.items()} == {f"v{i}": "ok" for i in range(4)}
    # v1 was handed out once v0 was predicted, before v0's files were written
    assert pool.log.index(("submit", "w1", "v1")) < pool.log.index(("result", "w1", "v0"))
    # never two videos decoding at once with depth 1: each submit follows a prediction
    assert pool.most_unpredicted == 1
    assert [e[2] for e in pool.log if e[0] == "submit"] == ["v0", "v1", "v2", "v3"]


def test_schedule_gives_each_worker_its_own_depth():
    """Ray actors pick their decoders on their node: the depth is per worker."""

    class _Slow(_FakePool):
        def __init__(self) -> None:
            super().__init__(dies=set())
            self.first: dict[str, int] | None = None

        def wait(self, timeout: float):
            if self.first is None:  # what was handed out before anything came back
                self.first = {w: sum(1 for v, _ in self.pending if v == w) for w in ("w1", "w2")}
            return super().wait(timeout)

    pool = _Slow()
    results = _schedule(pool, _jobs(10), 2, {"w1": 1, "w2": 3}.__getitem__)
    assert pool.first == {"w1": 1, "w2": 3}
    assert len(results) == 10 and {r.status for r in results.values()} == {"ok"}


def test_schedule_fails_a_video_that_outlives_three_workers():
    pool = _FakePool(dies={f"w{i}" for i in range(1, 100)})
    results = _schedule(pool, _jobs(2), 1, 1)
    assert {r.status for r in results.values()} == {"failed"}
    assert results["v0"].reason == "3 workers died predicting it (last: worker w3 died: killed)"
    # replacements stop after 3 deaths in a row: v1 is left with no worker
    assert results["v1"].reason == "no worker left (last: worker w4 died: killed)"
    assert pool.n == 4


class _NeverLoads(_FakePool):
    """Workers that die while loading their models."""

    def ready(self, worker: str) -> bool:
        return False

    def wait(self, timeout: float):
        dead, self.fresh = self.fresh, []
        return [(w, None, Died("ModelDirError: /m: not found")) for w in dead]

    def start(self) -> str:
        name = super().start()
        self.fresh = [*getattr(self, "fresh", []), name]
        return name


def test_schedule_fails_every_video_when_no_worker_can_start():
    results: dict[str, VideoResult] = {}
    pool = _NeverLoads(dies=set())
    schedule(
        pool,
        _jobs(3),
        2,
        depth=2,
        on_start=lambda job, w: pytest.fail("a video went to a worker that never loaded"),
        on_result=lambda job, r: results.__setitem__(job.stem, r),
        on_requeue=lambda job, why: None,
    )
    assert set(results) == {"v0", "v1", "v2"}
    assert {r.status for r in results.values()} == {"failed"}
    assert results["v0"].reason.startswith("no worker left (last: worker w")
    assert results["v0"].reason.endswith("died: ModelDirError: /m: not found)")
    assert pool.n == 2 + 2 * (batch.MAX_RETRIES + 1)


def test_address_is_for_the_ray_engine(tiny_model, tmp_path, capsys):
    argv = ["predict", str(tiny_model), str(tmp_path / "v.mp4"), "--address", "auto"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "--address is for --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_video_named_like_the_report_gets_another_name(tiny_model, tiny_video, tmp_path):
    videos = _videos(tiny_video, tmp_path / "cam", ["predict_report.mp4"])
    report = predict_batch(tiny_model, videos, tmp_path / "out", device="cpu")
    assert report.videos[0].table == tmp_path / "out" / "cam_predict_report.csv"
    assert read_poses(report.videos[0].table).n_frames == 48
    assert _report(tmp_path / "out")["predict_report.mp4"]["status"] == "ok"


def test_worker_processes_decode_in_processes_of_their_own(
    tiny_model, tiny_video, tmp_path, monkeypatch
):
    """Two workers with ``predict.decoders=processes``: each worker starts its own decoder
    processes (a worker must be allowed children) and every video is predicted."""
    import yaml

    monkeypatch.setattr(batch, "_local_devices", lambda settings, workers: ["cpu", "cpu"])
    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    cfg = yaml.safe_load((model / "config.yaml").read_text())
    cfg.setdefault("predict", {})["decoders"] = "processes"
    (model / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    videos = _videos(tiny_video, tmp_path / "v", [f"v{i}.mp4" for i in range(4)])
    out = tmp_path / "out"
    report = predict_batch(model, videos, out, device="cpu", jobs=2)
    assert [r.status for r in report.videos] == ["ok"] * 4, [r.reason for r in report.videos]
    assert report.workers == 2
    assert all(read_poses(out / f"v{i}.csv").n_frames == 48 for i in range(4))


def test_writer_modules_are_imported_in_the_background(tmp_path, monkeypatch):
    """The writers' modules are imported by a thread started with the prediction; a module that
    cannot be imported is left to fail where it is used."""
    import sys

    from vidpose.predict.run import _import_in_background

    (tmp_path / "vp_prefetch_probe.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "vp_prefetch_probe" not in sys.modules
    thread = _import_in_background(["vp_no_such_module", "vp_prefetch_probe"])
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert sys.modules["vp_prefetch_probe"].LOADED
    sys.modules.pop("vp_prefetch_probe")


def test_a_batch_whose_videos_are_all_done_loads_neither_torch_nor_the_model(
    tiny_model, tiny_video, tmp_path
):
    """A re-run over finished outputs (a cluster job restarted, a script run twice) reads the
    ledger and stops: importing torch alone took 4 s of the 5 s such a run took on a GPU host."""
    import subprocess
    import sys

    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(tiny_model),
                str(tiny_video),
                "--out",
                str(out),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    script = (
        "import sys\n"
        "from vidpose.cli import main\n"
        f"code = main(['predict', {str(tiny_model)!r}, {str(tiny_video)!r}, '--out', "
        f"{str(out)!r}, '--no-progress', '--device', 'cpu'])\n"
        "print(code, 'torch' in sys.modules, 'vidpose.predict.predictor' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout
    assert {r["status"] for r in _report(out).values()} == {"skipped"}


def test_local_worker_processes_say_when_a_video_is_predicted(tiny_model, tiny_video, tmp_path):
    """The per-GPU worker processes (here two on CPU) report each video predicted before its
    files are written, and the scheduler hands the next one out then."""
    from vidpose.predict.batch import PREDICTED, PREFETCH, PredictSettings, ProcessPool

    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    out = tmp_path / "out"
    out.mkdir()
    settings = PredictSettings(tiny_model, out, device="cpu")
    jobs = [Job(v, v.stem, VideoStamp.of(v)) for v in videos]
    seen: list[tuple[str, str]] = []
    with ProcessPool(settings, ["cpu", "cpu"], 1, None) as pool:
        wait = pool.wait

        def spy(timeout):
            got = wait(timeout)
            seen.extend(
                (j.stem, "predicted" if o is PREDICTED else "result") for _, j, o in got if j
            )
            return got

        pool.wait = spy
        results = _schedule(pool, jobs, 2, pool.jobs + PREFETCH)
    assert {k: r.status for k, r in results.items()} == dict.fromkeys("abcd", "ok")
    for stem in "abcd":
        assert seen.index((stem, "predicted")) < seen.index((stem, "result")), seen
        assert read_poses(out / f"{stem}.csv").n_frames == 48


class _FakePredictor:
    """Predicts each video at once: says it is predicted (unless its stem is "bad", which
    fails first), then gives its result."""

    def predict(self, videos, *, jobs, on_result, waiting, on_predicted, drained):
        for video, stem in videos:
            if stem != "bad":
                on_predicted(video)
                on_result(VideoResult(video, stem, frames=1))
            else:
                on_result(VideoResult(video, stem, "failed", "corrupt"))


def test_future_results_say_when_a_video_is_predicted_and_never_hang_on_a_failed_one():
    """What a Ray actor's predicted() call waits on: True once predicted; False, at once, for
    a video that failed, asked before or after its result came."""
    from vidpose.predict.batch import FutureResults

    results = FutureResults(_FakePredictor(), jobs=1, crash_marker=None)
    early = results.predicted(Path("a.mp4"))  # asked before the video is handed over
    assert results.submit(Path("a.mp4"), "a").result(timeout=10).status == "ok"
    assert early.result(timeout=10) is True
    bad_early = results.predicted(Path("b.mp4"))
    assert results.submit(Path("b.mp4"), "bad").result(timeout=10).status == "failed"
    assert bad_early.result(timeout=10) is False
    assert results.submit(Path("c.mp4"), "bad").result(timeout=10).status == "failed"
    assert results.predicted(Path("c.mp4")).result(timeout=1) is False  # asked after
    assert results.submit(Path("d.mp4"), "d").result(timeout=10).status == "ok"
    assert results.predicted(Path("d.mp4")).result(timeout=1) is True  # asked after its result
    results.loop.close()
    assert not results._predicted and not results._asked  # nothing kept once asked and told


def test_a_predictor_says_which_videos_are_predicted_before_their_files_are_written(
    tiny_model, tiny_video, tmp_path
):
    from vidpose.predict.run import Predictor

    good = _videos(tiny_video, tmp_path / "v", ["good.mp4"])[0]
    bad = tmp_path / "v" / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    predicted: list[tuple[str, bool]] = []
    results: dict[str, VideoResult] = {}
    out = tmp_path / "out"

    def on_result(r: VideoResult) -> None:
        results[r.stem] = r

    def on_predicted(video: Path) -> None:  # before the table is there
        predicted.append((video.name, (out / f"{video.stem}.csv").exists()))

    Predictor(tiny_model, out, device="cpu").predict(
        [(good, "good"), (bad, "bad")], on_result=on_result, on_predicted=on_predicted
    )
    assert {k: r.status for k, r in results.items()} == {"good": "ok", "bad": "failed"}
    assert predicted == [("good.mp4", False)]  # the corrupt one only fails


def test_schedule_tells_each_worker_once_every_video_is_handed_out():
    """Workers hear that nothing more waits (``drain``: they then split their last videos
    so that every decoder has a part) once, each, and only after the last hand-out."""
    pool = _WritingPool()
    results = _schedule(pool, _jobs(5), 2, 1)
    assert len(results) == 5
    assert sorted(w for w, _ in pool.drains) == ["w1", "w2"]
    assert all(n == 5 for _, n in pool.drains)  # after the fifth video was submitted


@pytest.mark.parametrize("passes", [False, True])
def test_no_video_goes_to_a_worker_before_the_checkpoint_check_passes(
    tiny_model, tiny_video, tmp_path, passes
):
    """The local engine checks the checkpoints in a thread while its GPU workers start (the
    check is not on the start-up's critical path), but hands out no video before it passed:
    a failed check is its one clear error, with nothing handed out; a check passing late
    lets the workers loaded meanwhile start at once."""
    import threading
    import time
    from concurrent.futures import Future

    from vidpose.model_dir import ModelDirError
    from vidpose.predict.batch import PREFETCH, PredictSettings, ProcessPool

    videos = _videos(tiny_video, tmp_path / "v", ["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    out.mkdir()
    settings = PredictSettings(tiny_model, out, device="cpu")
    jobs = [Job(v, v.stem, VideoStamp.of(v)) for v in videos]
    submitted: list[str] = []
    gate: Future = Future()
    with ProcessPool(settings, ["cpu", "cpu"], 1, None) as pool:
        pool.gate = gate
        real_submit = pool.submit

        def submit(worker, job):
            submitted.append(job.stem)
            real_submit(worker, job)

        pool.submit = submit

        def decide() -> None:  # once both workers have loaded, and a little later
            while len(pool.loaded) < 2:
                time.sleep(0.05)
            time.sleep(0.5)
            if passes:
                gate.set_result(None)
            else:
                gate.set_exception(ModelDirError("checkpoints/best.ckpt is damaged"))

        threading.Thread(target=decide, daemon=True).start()
        if passes:
            results = _schedule(pool, jobs, 2, pool.jobs + PREFETCH)
            assert {k: r.status for k, r in results.items()} == {"a": "ok", "b": "ok"}
        else:
            with pytest.raises(ModelDirError, match="damaged"):
                _schedule(pool, jobs, 2, pool.jobs + PREFETCH)
            assert submitted == []


def test_the_drivers_check_loads_every_checkpoint_without_the_speed_ups(tiny_model, monkeypatch):
    """The check loads each member as a worker would, on the CPU, but folds no batch norm (its
    probe forwards) and loads no compiled package: only whether the checkpoints load counts."""
    from vidpose.predict import predictor as predictor_mod
    from vidpose.predict.run import Predictor

    calls: list[dict] = []
    real = predictor_mod.load_model

    def spy(path, **kwargs):
        calls.append(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(predictor_mod, "load_model", spy)
    seconds = Predictor(tiny_model).check()
    assert seconds > 0
    assert len(calls) == 1
    assert calls[0]["device"] == "cpu" and calls[0]["fold"] is False and calls[0]["aot"] is False
