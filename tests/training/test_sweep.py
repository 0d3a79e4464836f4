"""Sweeps: `vidpose train --multirun`, its summary, resuming, up-front checks, parallel trials."""

from __future__ import annotations

import base64
import csv
import html.parser
import json
import os
import re
import subprocess
import sys

import vidpose.training.sweep as sweep
from vidpose.cli import main
from vidpose.project import load_project

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "data.image_height=64",
    "data.image_width=64",
    "training.max_steps=1",
]


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out + err


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


class _Tags(html.parser.HTMLParser):
    """Checks that every opened element is closed, in order (void elements aside)."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def _forbid_training(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a trial was trained")

    monkeypatch.setattr(sweep, "train", boom)


def test_two_by_two_sweep_end_to_end_then_rerun_skips_every_trial(
    tiny_project, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "sweep"
    sweep_args = ["training.lr=1e-3,2e-3", "training.batch_size=2,4", "--multirun"]
    where = ["--model-dir", str(out), "--no-progress"]
    argv = ["train", str(tiny_project), *TINY, *sweep_args, *where]
    code, text = _run(argv, capsys)
    assert code == 0, text

    spec = json.loads((out / "sweep.json").read_text())
    assert [a["key"] for a in spec["axes"]] == ["training.lr", "training.batch_size"]
    assert [t["name"] for t in spec["trials"]] == [f"trial00{i}" for i in range(4)]
    rows = _rows(out / "summary.csv")
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    errors = [float(r["val_pixel_error_mean"]) for r in rows]
    assert errors == sorted(errors)
    assert {(r["training.lr"], r["training.batch_size"]) for r in rows} == {
        (lr, bs) for lr in ("0.001", "0.002") for bs in ("2", "4")
    }
    for r in rows:  # each trial trained with its own values
        cfg = (out / r["dir"] / "config.yaml").read_text()
        assert f"batch_size: {r['training.batch_size']}" in cfg
        assert f"lr: {r['training.lr']}" in cfg
        assert r["status"] == "done"
    best = rows[0]
    assert f"best {best['trial']} (training.lr={best['training.lr']}" in text

    page = (out / "summary.html").read_text()
    tags = _Tags()
    tags.feed(page)
    tags.close()
    assert tags.stack == []
    png = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    assert page.count("<tr>") == 1 + 4  # header + one row per trial
    assert "http" not in page.replace("http-equiv", "")  # self-contained

    # Again: every trial finished, none is trained, nothing of theirs is rewritten.
    metrics = {p: p.stat().st_mtime_ns for p in out.glob("trial*/model/metrics.json")}
    _forbid_training(monkeypatch)
    code, text = _run(argv, capsys)
    assert code == 0, text
    assert "4 of 4 trials finished before" in text
    assert {p: p.stat().st_mtime_ns for p in out.glob("trial*/model/metrics.json")} == metrics

    # Other axes into the same folder: refused, naming what differs.
    other = ["train", str(tiny_project), *TINY, "training.lr=1e-3,5e-3", "--multirun", *where]
    code, text = _run(other, capsys)
    assert code == 2
    assert "holds another sweep" in text and "training.lr=1e-3,5e-3" in text


def test_an_invalid_trial_fails_the_sweep_before_any_training(
    tiny_project, tmp_path, capsys, monkeypatch
):
    _forbid_training(monkeypatch)
    out = tmp_path / "sweep"
    code, text = _run(
        ["train", str(tiny_project), *TINY, "training.batch_size=4,0", "training.lr=1e-3,2e-3",
         "--multirun", "--model-dir", str(out)], capsys,
    )  # fmt: skip
    assert code == 2
    assert "trial002 (training.batch_size=0 training.lr=0.001)" in text
    assert "training.batch_size must be >= 1" in text
    assert not out.exists()


def test_a_sweep_override_without_multirun_says_to_add_it(tiny_project, capsys):
    code, text = _run(["train", str(tiny_project), "training.lr=1e-3,2e-3"], capsys)
    assert code == 2
    assert "gives several values" in text and "add --multirun" in text


class _FakeProcess:
    def __init__(self, cmd, env, **_kw) -> None:
        self.cmd, self.env, self.returncode = cmd, env, None

    def poll(self):
        self.returncode = 0
        return 0


def test_parallel_trials_are_spread_over_the_gpus(tiny_project, tmp_path, monkeypatch):
    launched: list[_FakeProcess] = []

    def popen(cmd, env, **kw):
        launched.append(_FakeProcess(cmd, env, **kw))
        return launched[-1]

    monkeypatch.setattr(sweep.subprocess, "Popen", popen)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    project = load_project(tiny_project)
    _, planned = sweep.plan_sweep(project, ["training.seed=range(5)"], tmp_path / "s")
    outcome = sweep._run_processes(project, planned, None, 3, print)
    assert outcome == {p.trial.name: None for p in planned}
    # three at once: GPUs 2, 5, 2; each later trial takes the least busy one
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in launched[:3]] == ["2", "5", "2"]
    threads = str(max(1, (os.cpu_count() or 1) // 3))
    assert all(p.env["OMP_NUM_THREADS"] == threads for p in launched)
    assert launched[0].cmd[1:4] == ["-m", "vidpose.cli", "train"]
    assert "training.seed=0" in launched[0].cmd and "--no-progress" in launched[0].cmd
    assert (tmp_path / "s" / "trial000" / "train.log").exists()


def test_two_jobs_run_trials_as_processes_and_a_crash_spares_the_others(
    tiny_project, tmp_path, capsys, monkeypatch
):
    """trial000 trains in a real `vidpose train` process; trial001's process crashes as a
    process killed by CUDA running out of memory would (a stand-in, to keep the test short)."""
    real_popen = subprocess.Popen

    def popen(cmd, **kw):
        if any(c.endswith("trial001/model") for c in cmd):
            crash = (
                "import sys; print('RuntimeError: CUDA out of memory', file=sys.stderr); exit(1)"
            )
            cmd = [sys.executable, "-c", crash]
        return real_popen(cmd, **kw)

    monkeypatch.setattr(sweep.subprocess, "Popen", popen)
    out = tmp_path / "sweep"
    code, text = _run(
        ["train", str(tiny_project), *TINY, "training.batch_size=4", "training.seed=0,1",
         "--multirun", "--jobs", "2", "--model-dir", str(out), "--no-progress"], capsys,
    )  # fmt: skip
    assert code == 1, text
    rows = {r["trial"]: r for r in _rows(out / "summary.csv")}
    assert rows["trial000"]["status"] == "done" and rows["trial000"]["rank"] == "1"
    assert rows["trial001"]["status"] == "failed" and rows["trial001"]["rank"] == ""
    assert rows["trial001"]["error"] == "RuntimeError: CUDA out of memory"
    assert (out / "trial000" / "model" / "metrics.json").exists()
    assert "training.seed=1" in (out / "trial001" / "train.log").read_text()  # the command
    assert "trial failed: trial001 (training.seed=1): RuntimeError: CUDA out of memory" in text
    assert "1 of 2 trials failed" in text
    assert "Failed trials" in (out / "summary.html").read_text()
