"""Ensemble members trained at once (``training.ensemble_concurrency``), on CPU: two threads.

On a GPU the members also get a CUDA stream each and their CUDA graph captures go through
``vidpose._graphs.CAPTURE_GATE``; here the gate is tested with plain threads, and end-to-end
runs check what does not depend on the device: each member's weights are exactly those of
training it alone, Ctrl-C stops every member so that the same command resumes them, a failing
member is one error naming it. End-to-end runs use the ``tiny_project`` fixture with ResNet-18
from scratch at 64 x 64, a few steps each.
"""

from __future__ import annotations

import _thread
import json
import re
import threading
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from vidpose._graphs import CaptureGate
from vidpose.cli import main as cli_main
from vidpose.config import compose_config
from vidpose.errors import ConfigError
from vidpose.model_dir import ModelDir
from vidpose.training import concurrent, ensemble
from vidpose.training.concurrent import (
    MemberError,
    SharedCUDAAccelerator,
    members_at_once,
    trainer_accelerator,
)
from vidpose.training.ensemble import train_ensemble

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.device=cpu",
]
AT_ONCE = "training.ensemble_concurrency=2"


def _weights(model_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    ckpt = torch.load(model_dir / "checkpoints" / name, map_location="cpu", weights_only=False)
    return ckpt["state_dict"]


def _step(model_dir: Path) -> int:
    try:
        ckpt = torch.load(
            model_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
        )
    except (OSError, EOFError, RuntimeError):  # not there yet, or being replaced
        return 0
    return int(ckpt["global_step"])


# -- how many at once, and which settings refuse it ----------------------------------------------


@pytest.mark.parametrize(
    ("setting", "accelerator", "devices", "compile", "members", "expected"),
    [
        (None, "cuda", 1, False, 5, 5),  # null: all of them on one GPU
        (None, "cpu", 1, False, 5, 1),  # null: one at a time on CPU
        (None, "cuda", 2, False, 5, 1),  # each member already uses two processes
        (None, "cuda", 1, True, 5, 1),  # no torch.compile from several threads
        (3, "cuda", 1, False, 5, 3),
        (3, "cuda", 1, False, 2, 2),  # never more threads than members left to train
        (2, "cpu", 1, False, 5, 2),  # asked for: also on CPU (how these tests run)
        (1, "cuda", 1, False, 5, 1),
    ],
)
def test_members_at_once(setting, accelerator, devices, compile, members, expected):
    got = members_at_once(setting, accelerator, devices=devices, compile=compile, members=members)
    assert got == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.ensemble_concurrency=0"], r"training\.ensemble_concurrency.*>= 1"),
        (
            [AT_ONCE, "training.devices=2"],
            r"training\.ensemble_concurrency.*1 or null when training\.devices=2",
        ),
        (
            [AT_ONCE, "training.compile=true"],
            r"training\.ensemble_concurrency.*1 or null with training\.compile=true",
        ),
    ],
)
def test_concurrency_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_config(None, overrides)


def test_a_refused_setting_stops_the_ensemble_before_anything_is_written(tiny_project, tmp_path):
    ens = tmp_path / "ens"
    with pytest.raises(ConfigError, match=r"training\.ensemble_concurrency"):
        train_ensemble(tiny_project, [0, 1], ens, [*TINY, "training.ensemble_concurrency=0"])
    assert not ens.exists()


def test_the_setting_is_listed_by_help_config(capsys):
    assert cli_main(["train", "--help-config"]) == 0
    assert "training.ensemble_concurrency = " in capsys.readouterr().out


def test_only_members_trained_with_others_on_cuda_keep_the_cuda_caches():
    assert trainer_accelerator("cpu") == "cpu"
    assert trainer_accelerator("cuda") == "cuda"  # not a member: Lightning's own
    concurrent._LOCAL.member = object()
    try:
        assert trainer_accelerator("cpu") == "cpu"
        assert isinstance(trainer_accelerator("cuda"), SharedCUDAAccelerator)
    finally:
        concurrent._LOCAL.member = None


# -- nothing a member draws comes from the generators other members share --------------------


def test_the_equivariance_view_draws_from_the_given_generator_only():
    from vidpose.losses.builtin import EquivarianceLoss, EquivarianceParams

    loss = EquivarianceLoss(EquivarianceParams(), None)
    frames = torch.rand(2, 3, 32, 32)
    before = torch.get_rng_state()
    a = loss.second_view(frames, torch.Generator().manual_seed(5))
    b = loss.second_view(frames, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    c = loss.second_view(frames, torch.Generator().manual_seed(6))
    assert not torch.equal(a[1], c[1])


def test_the_data_loaders_draw_nothing_from_the_global_generator(tiny_project):
    from vidpose.config import default_config
    from vidpose.data.labeled import load_labeled, make_splits
    from vidpose.project import load_project
    from vidpose.training.datamodule import LabeledDataModule

    project = load_project(tiny_project)
    split = make_splits(project.labels.n_frames, 0.2, 0.0, 0)
    data = load_labeled(project.labels, project.image_paths, (64, 64), split)
    dm = LabeledDataModule(data, 4, 3, default_config().augment, None, seed=0)
    before = torch.get_rng_state()
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        assert len(list(loader)) > 0
    assert torch.equal(torch.get_rng_state(), before)


# -- the capture gate ----------------------------------------------------------------------------


def test_a_capture_waits_for_the_other_running_threads_to_pause_and_they_wait_for_it():
    gate = CaptureGate()
    log: list[tuple[str, str]] = []
    capturing = threading.Event()
    ready = threading.Barrier(3)
    violations = []

    def member(name: str) -> None:
        with gate.running():
            ready.wait()
            time.sleep(0.2)  # a stretch without pause points (loading frames, say)
            log.append((name, "first pause"))
            for _ in range(30):
                gate.pause_point()
                if capturing.is_set():
                    violations.append(name)  # working while another thread captures
                time.sleep(0.002)

    def capturer() -> None:
        with gate.running():
            ready.wait()
            with gate.exclusive():
                capturing.set()
                log.append(("capturer", "captures"))
                time.sleep(0.05)
                capturing.clear()
            gate.pause_point()  # back to running: pause points return at once

    threads = [threading.Thread(target=member, args=(n,)) for n in ("a", "b")]
    threads.append(threading.Thread(target=capturer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert violations == []
    # it waited for both to reach their first pause point
    assert log.index(("capturer", "captures")) > log.index(("a", "first pause"))
    assert log.index(("capturer", "captures")) > log.index(("b", "first pause"))


def test_two_captures_never_overlap_and_threads_not_running_are_not_waited_for():
    gate = CaptureGate()
    inside = []
    overlaps = []

    def capture() -> None:
        with gate.running():
            for _ in range(20):
                with gate.exclusive():
                    inside.append(1)
                    if len(inside) > 1:
                        overlaps.append(1)
                    time.sleep(0.001)
                    inside.pop()
                gate.pause_point()

    threads = [threading.Thread(target=capture) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and overlaps == []
    # the main thread never declared itself running: a capture here starts at once
    with gate.exclusive():
        pass


# -- end to end ----------------------------------------------------------------------------------


def test_members_trained_at_once_equal_members_trained_one_after_another(tiny_project, tmp_path):
    """Same initial weights, data order, augmentation, clips and second views: the weights
    are equal to the last bit (CPU kernels are deterministic for a fixed number of threads,
    and nothing a member draws depends on the other one)."""
    overrides = [
        *TINY,
        "training.max_steps=4",
        "training.steps_per_epoch=2",
        "model.losses=[temporal,equivariance]",
        "unlabeled.clip_length=4",
    ]
    lines: list[str] = []
    seq = train_ensemble(
        tiny_project,
        [0, 1],
        tmp_path / "seq",
        [*overrides, "training.ensemble_concurrency=1"],
        progress=False,
    )
    con = train_ensemble(
        tiny_project,
        [0, 1],
        tmp_path / "con",
        [*overrides, AT_ONCE],
        progress=False,
        log=lines.append,
    )
    # the two really trained at once: both started before either finished
    started = [i for i, line in enumerate(lines) if line.endswith(": training")]
    ended = [i for i, line in enumerate(lines) if ": finished after" in line]
    assert len(started) == len(ended) == 2 and max(started) < min(ended), lines
    for a, b in zip(seq, con):
        assert a.model_dir.name == b.model_dir.name and b.steps == 4
        wa, wb = _weights(a.model_dir), _weights(b.model_dir)
        assert wa.keys() == wb.keys()
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a.model_dir.name
        assert a.metrics["test"] == b.metrics["test"]
    w0, w1 = _weights(con[0].model_dir), _weights(con[1].model_dir)
    assert not all(torch.equal(w0[k], w1[k]) for k in w0)  # the seeds differ
    info = json.loads((tmp_path / "con" / "ensemble.json").read_text())
    assert info == {"members": ["seed0", "seed1"], "seeds": [0, 1]}


def test_ctrl_c_stops_every_member_and_the_same_command_resumes_them(tiny_project, tmp_path):
    # Ctrl-C as an interactive process has it: Python's handler. An earlier test in this
    # process may have left another one (Lightning ignores SIGINT from a KeyboardInterrupt in
    # a fit on the main thread on), and interrupt_main() does nothing then.
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_and_resume(tiny_project, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_and_resume(tiny_project, tmp_path):
    ens = tmp_path / "ens"
    overrides = [
        *TINY,
        "training.max_steps=60",
        "training.steps_per_epoch=5",
        "training.checkpoint_every_n_steps=2",
        AT_ONCE,
    ]
    members = [ModelDir(ens / "seed0"), ModelDir(ens / "seed1")]

    def interrupt_once_both_have_a_checkpoint() -> None:
        # last.ckpt is first written at step 2; polling its existence, not loading it (two
        # checkpoints with Adam state per poll), keeps this watcher quick beside the training
        deadline = time.time() + 240
        last = [md.path / "checkpoints" / "last.ckpt" for md in members]
        while time.time() < deadline:
            if all(p.is_file() for p in last):
                _thread.interrupt_main()  # what Ctrl-C does
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_both_have_a_checkpoint, daemon=True)
    watcher.start()
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train_ensemble(tiny_project, [0, 1], ens, overrides, progress=True, log=lines.append)
    watcher.join()
    assert any(line.startswith("stopping: every member stops") for line in lines)
    stopped_at = [_step(md.path) for md in members]
    assert all(0 < s < 60 for s in stopped_at), stopped_at
    assert not any(md.is_complete() for md in members)
    for md in members:  # released
        with md.lock():
            pass

    lines.clear()
    res = train_ensemble(tiny_project, [0, 1], ens, overrides, progress=False, log=lines.append)
    assert [r.steps for r in res] == [60, 60]
    assert all(md.is_complete() for md in members)
    for md, step in zip(members, stopped_at):
        assert any(
            line.startswith(f"{md.path.name}: resuming") and f"from step {step} of 60" in line
            for line in lines
        ), lines

    # a third member: the two finished ones are kept as they are
    written = [md.metrics_path.stat().st_mtime_ns for md in members]
    res = train_ensemble(
        tiny_project, [0, 1, 2], ens, [*overrides, "training.max_steps=3"], progress=False
    )
    assert [r.steps for r in res] == [60, 60, 3]
    assert [md.metrics_path.stat().st_mtime_ns for md in members] == written


def test_a_member_that_cannot_start_is_one_error_naming_it(tiny_project, tmp_path, capsys):
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "seed1").write_text("not a folder")
    rc = cli_main(
        [
            "train",
            str(tiny_project),
            *TINY,
            "training.max_steps=200",
            AT_ONCE,
            "--seeds",
            "0,1",
            "--model-dir",
            str(ens),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "ModelDirError: ensemble member seed1: " in err and "is a file, not a folder" in err
    # it did not train 200 steps for nothing (or never started, had seed1 failed first)
    assert re.search(r"seed0 (stopped with it|did not start)", err)
    assert "Traceback" not in err
    assert not (ens / "seed0").exists()  # stopped before its first checkpoint: nothing left


class FailOnceExists(L.Callback):
    """Raises a plain RuntimeError (a bug, as far as vidpose knows) at the first training step
    after ``path`` appears."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.path.exists():
            raise RuntimeError("boom")


def test_a_member_failing_mid_run_stops_the_others_and_is_raised_once(
    tiny_project, tmp_path, monkeypatch
):
    real_train = ensemble.train

    def train_with_a_failing_seed1(*args, callbacks=(), **kwargs):
        if Path(kwargs["model_dir"]).name == "seed1":  # once seed0 has a checkpoint
            callbacks = [*callbacks, FailOnceExists(ens / "seed0" / "checkpoints" / "last.ckpt")]
        return real_train(*args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(ensemble, "train", train_with_a_failing_seed1)
    ens = tmp_path / "ens"
    overrides = [*TINY, "training.max_steps=300", "training.checkpoint_every_n_steps=2", AT_ONCE]
    with pytest.raises(MemberError) as err:
        train_ensemble(tiny_project, [0, 1], ens, overrides, progress=False)
    message = str(err.value)
    assert message.startswith("ensemble member seed1 failed: RuntimeError: boom")
    assert "seed0 stopped with it" in message and "run the same command again" in message
    assert isinstance(err.value.__cause__, RuntimeError)  # its traceback, for VIDPOSE_DEBUG=1
    # seed0 stopped long before its 300 steps, keeping its last checkpoint to resume from
    assert 0 < _step(ens / "seed0") < 300 and not ModelDir(ens / "seed0").is_complete()
    with ModelDir(ens / "seed0").lock():
        pass


class GraphSpy(L.Callback):
    """Puts the run's StepGraphs (its captures and replays) in ``found`` when training ends."""

    def __init__(self, name: str, found: dict) -> None:
        self.name = name
        self.found = found

    def on_train_end(self, trainer, pl_module):
        self.found[self.name] = pl_module._graphs


@pytest.mark.gpu
def test_members_trained_at_once_on_a_gpu_replay_their_graphs_and_match_alone(
    tiny_project, tmp_path, monkeypatch
):
    """Three members at once on one GPU, each on its own stream: every capture succeeds (the
    others paused meanwhile), almost every step is a replay, and each member ends near where
    it ends trained alone (bf16 and cuDNN are not bit-reproducible on a GPU)."""
    real_train = ensemble.train
    found: dict = {}

    def spied(*args, callbacks=(), **kwargs):
        spy = GraphSpy(Path(kwargs["model_dir"]).name, found)
        return real_train(*args, callbacks=[*callbacks, spy], **kwargs)

    monkeypatch.setattr(ensemble, "train", spied)
    overrides = [
        *[o for o in TINY if o != "training.device=cpu"],
        "training.max_steps=60",
        "training.steps_per_epoch=5",
        "model.losses=[temporal,equivariance]",
        "unlabeled.clip_length=4",
    ]
    seeds = [0, 1, 2]
    errors = {}
    for at_once in ("1", "null"):
        found.clear()
        with warnings.catch_warnings(record=True) as caught:  # every thread's
            warnings.simplefilter("always")
            res = train_ensemble(
                tiny_project,
                seeds,
                tmp_path / at_once,
                [*overrides, f"training.ensemble_concurrency={at_once}"],
                progress=False,
            )
        failed = [str(w.message) for w in caught if "capture failed" in str(w.message)]
        assert failed == []
        assert [r.steps for r in res] == [60, 60, 60] and len(found) == 3
        for name, graphs in found.items():
            assert graphs is not None and graphs.replays >= 60 - 2 * graphs.warmup, name
        errors[at_once] = [r.metrics["train"]["pixel_error_mean"] for r in res]
    assert errors["null"] == pytest.approx(errors["1"], rel=0.5, abs=1.0)
