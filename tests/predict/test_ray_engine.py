"""Batch prediction on Ray (a local 2-CPU cluster, started once for the module): corrupt videos
reported, dead workers' videos retried, re-runs skipping finished videos; and the message when
Ray is not installed."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import pytest

from vidpose.cli import main
from vidpose.errors import MissingDependencyError
from vidpose.predict import batch
from vidpose.predict.batch import predict_batch
from vidpose.predict.ledger import Ledger

RAY = ["--engine", "ray", "--workers", "2", "--jobs", "2", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def ray_cluster():
    from vidpose.predict.ray_engine import import_ray

    try:
        ray = import_ray()
    except MissingDependencyError:
        pytest.skip("Ray is not installed (the optional extra vidpose[ray])")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _videos(src: Path, folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True)
    for i in range(n):
        shutil.copy(src, folder / f"v{i}.mp4")
    return [folder / f"v{i}.mp4" for i in range(n)]


def _report(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "predict_report.csv", newline="") as fh:
        return {Path(r["video"]).name: r for r in csv.DictReader(fh)}


def test_a_corrupt_video_is_reported_and_a_second_run_skips_the_finished_ones(
    ray_cluster, tiny_model, tiny_video, tmp_path, capsys
):
    good = _videos(tiny_video, tmp_path / "v", 5)
    corrupt = tmp_path / "v" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01garbage" * 500)
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model), str(tmp_path / "v"), "--out", str(out), *RAY]) == 1
    rows = _report(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        **{f"v{i}.mp4": "ok" for i in range(5)},
        "corrupt.mp4": "failed",
    }
    assert rows["corrupt.mp4"]["reason"].startswith("not a readable video")
    assert {r["worker"] for k, r in rows.items() if k != "corrupt.mp4"} <= {"ray0", "ray1"}
    assert sorted(p.name for p in out.glob("v*.csv") if "_" not in p.stem) == [
        f"v{i}.csv" for i in range(5)
    ]
    assert not list(out.glob("corrupt*"))
    assert f"{corrupt}: not a readable video" in capsys.readouterr().err

    # the same good videos again: every one skipped, nothing rewritten, no worker started
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("v*.csv")}
    report = predict_batch(tiny_model, good, out, engine="ray", device="cpu")
    assert [r.status for r in report.videos] == ["skipped"] * 5
    assert report.workers == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("v*.csv")} == stamps
    assert {r["status"] for r in _report(out).values()} == {"skipped"}
    events = Ledger(out).events()
    assert [e["event"] for e in events[-6:]] == ["run"] + ["skipped"] * 5


def test_a_worker_that_dies_has_its_videos_retried_on_another(
    ray_cluster, tiny_model, tiny_video, tmp_path, monkeypatch
):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(batch.CRASH_ENV, str(marker))  # the first worker to predict exits
    videos = _videos(tiny_video, tmp_path / "v", 4)
    out = tmp_path / "out"
    report = predict_batch(tiny_model, videos, out, engine="ray", workers=2, jobs=1, device="cpu")
    assert marker.exists()
    assert [r.status for r in report.videos] == ["ok"] * 4
    requeued = [e for e in Ledger(out).events() if e["event"] == "requeued"]
    assert requeued and all(e["attempt"] == 1 for e in requeued)
    dead = {e["reason"].split()[1] for e in requeued}
    assert len(dead) == 1 and not dead & {r.worker for r in report.videos}
    assert {Path(e["video"]).name for e in requeued} <= {v.name for v in videos}
    assert len(report.worker_starts) >= 2  # the actors' start-up, as each got ready
    assert all(0 < s["load_s"] <= s["ready_s"] for s in report.worker_starts)


def test_without_ray_the_engine_says_how_to_install_it(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'vidpose\[ray\]'"):
        predict_batch(tiny_model, [tmp_path / "v.mp4"], tmp_path / "out", engine="ray")
    assert not (tmp_path / "out" / ".vidpose-ledger.jsonl").exists()


def test_ray_workers_say_when_a_video_is_predicted_before_its_files_are_written(
    ray_cluster, tiny_model, tiny_video, tmp_path, monkeypatch
):
    """The scheduler hears of each video predicted (and may hand out the next one) while the
    actor writes its files."""
    from vidpose.predict.ray_engine import RayPool

    seen: list[tuple[str, str]] = []
    wait = RayPool.wait

    def spy(self, timeout):
        got = wait(self, timeout)
        seen.extend(
            (j.stem, "predicted" if o is batch.PREDICTED else "result")
            for _, j, o in got
            if j is not None
        )
        return got

    monkeypatch.setattr(RayPool, "wait", spy)
    videos = _videos(tiny_video, tmp_path / "v", 3)
    report = predict_batch(tiny_model, videos, tmp_path / "out", engine="ray", device="cpu")
    assert [v.status for v in report.videos] == ["ok"] * 3
    # no --jobs: the actor picked its own, 4 decoder threads on CPU
    assert [w["jobs"] for w in report.worker_starts] == [4]
    # predictions were heard of, once each (on a tiny video often in the same wait as its
    # result, and listed first then). Two Ray calls answer for a video, so its "predicted" may
    # also reach the driver after its result (ignored by the scheduler), or not before the
    # batch ends: CI saw that once for one of the three videos.
    heard = [stem for stem, kind in seen if kind == "predicted"]
    assert heard and len(set(heard)) == len(heard), seen
    assert sorted(stem for stem, kind in seen if kind == "result") == ["v0", "v1", "v2"], seen
