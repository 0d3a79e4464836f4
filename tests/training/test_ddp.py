"""Training on several devices (DDP): on CPU, two processes joined by gloo.

End-to-end runs use the ``tiny_project`` fixture (16 labeled 64 x 64 frames: 12 train, 2 val,
2 test; one 48-frame video) with ResNet-18 from scratch, 3 frames per process and step (so one
step of two processes takes 6 of the 12 training frames and an epoch of 2 steps takes all of
them once). Each run starts two Python processes that import torch and Lightning: 12-16 s on an
idle 2-core machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from vidpose.build import build_network_from_config, build_supervised_loss
from vidpose.cli import main as cli_main
from vidpose.config import compose_config
from vidpose.data.batches import LabeledBatch
from vidpose.errors import ConfigError, VideoError
from vidpose.losses.supervised import SUPERVISED_LOSSES
from vidpose.model_dir import ModelDir
from vidpose.models.heads import HEADS
from vidpose.predict import load_model
from vidpose.training import train
from vidpose.training.datamodule import RandomBatchSampler
from vidpose.training.ddp import STEP_SYNC_ENV, GradientAverager, check_picklable, rank_seed
from vidpose.training.module import PoseModule

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "data.val_fraction=0.125",
    "data.test_fraction=0.125",
    "training.batch_size=3",
    "training.device=cpu",
    "training.devices=2",
]


class Recorder(L.Callback):
    """Gathers, into a JSON file written by rank 0: the rows each process trained on at each
    step, and a checksum of each process's parameters at the end of training."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.rows: list[list[int]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rows.append(batch.rows.tolist())

    def on_train_end(self, trainer, module):
        rows = trainer.strategy.all_gather(torch.tensor(self.rows))
        params = torch.stack([p.detach().double().sum() for p in module.parameters()])
        checksums = trainer.strategy.all_gather(params)
        if trainer.is_global_zero:
            out = {"world_size": trainer.world_size, "rows": rows.tolist()}
            out["params"] = checksums.tolist()
            Path(self.path).write_text(json.dumps(out))


class FailOn(L.Callback):
    """Raises a VideoError in process ``rank`` at its second step."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step == 1:
            raise VideoError("clips.mp4: frame 7 cannot be decoded")


# -- no processes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "batch", "world", "steps"), [(12, 3, 2, 2), (10, 4, 2, 5), (7, 2, 3, 4)]
)
def test_processes_share_the_batches_of_one_larger_batch(n, batch, world, steps):
    rows = np.arange(100, 100 + n)
    one = RandomBatchSampler(rows, batch * world, steps, seed=3)
    shards = [
        RandomBatchSampler(rows, batch, steps, seed=3, rank=r, world_size=world)
        for r in range(world)
    ]
    for _epoch in range(2):
        per_rank = [np.asarray(list(s)) for s in shards]  # each (steps, batch)
        assert all(p.shape == (steps, batch) for p in per_rank)
        assert np.array_equal(np.concatenate(per_rank, axis=1), np.asarray(list(one)))
    if n == batch * world * steps:  # an epoch is one permutation: disjoint shards, all rows
        first = np.concatenate([np.asarray(list(s)).ravel() for s in shards])
        assert sorted(first.tolist()) == rows.tolist()


def test_rank_seeds_differ_and_rank_0_keeps_the_seed():
    assert rank_seed(5, 0) == 5
    seeds = {rank_seed(5, r) for r in range(8)} | {rank_seed(6, r) for r in range(1, 8)}
    assert len(seeds) == 15
    assert rank_seed(5, 1) == rank_seed(5, 1)


def _pairs():
    for head in HEADS:
        for loss in SUPERVISED_LOSSES:
            if loss.needs_heatmaps <= head.produces_heatmaps:
                yield head.name, loss.name


@pytest.mark.parametrize(("head", "loss"), list(_pairs()))
def test_the_supervised_loss_reaches_every_parameter(head, loss):
    """DDP runs without ``find_unused_parameters``: a parameter without a gradient would stop
    the second step of a multi-device run."""
    cfg = compose_config(None, [*TINY[:5], f"model.head={head}", f"model.supervised_loss={loss}"])
    network = build_network_from_config(cfg, 4)
    module = PoseModule(network, build_supervised_loss(cfg), [], None, sigma=2.0)
    w = network.context_frames
    windows = torch.rand(2, w, 3, 64, 64)
    batch = LabeledBatch(
        images=windows[:, w // 2],
        keypoints=torch.rand(2, 4, 2) * 60,
        visible=torch.ones(2, 4, dtype=torch.bool),
        frame_index=torch.arange(2),
        orig_hw=torch.full((2, 2), 64),
        windows=windows,
    )
    out, _ = network.forward_train(batch.as_windows())
    module._supervised(out.decoders, batch).backward()
    unused = [n for n, p in network.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


def test_callbacks_that_cannot_be_sent_are_refused_before_anything_is_written(
    tiny_project, tmp_path
):
    class Local(L.Callback):
        pass

    with pytest.raises(TypeError, match="cannot be pickled"):
        check_picklable([Local()], 2)
    with pytest.raises(TypeError, match=r"training\.devices=2"):
        train(tiny_project, TINY, model_dir=tmp_path / "m", progress=False, callbacks=[Local()])
    assert not (tmp_path / "m").exists()


def test_a_bad_config_on_two_devices_is_one_message(tiny_project, tmp_path, capsys):
    md = tmp_path / "m"
    code = cli_main(
        ["train", str(tiny_project), *TINY, "model.backbone=resnet5000", "--model-dir", str(md)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "resnet5000" in err and "Traceback" not in err
    assert err.count("ConfigError") == 1 and not md.exists()
    with pytest.raises(ConfigError, match=r"cuda_graphs=true"):
        train(tiny_project, [*TINY, "training.cuda_graphs=true"], model_dir=md, progress=False)


# -- two processes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_run(tiny_project_src, tmp_path_factory) -> tuple[Path, dict]:
    """A finished 4-step run on two processes (2 epochs of 2 steps) and what Recorder saw."""
    tmp = tmp_path_factory.mktemp("ddp")
    seen = tmp / "seen.json"
    train(
        tiny_project_src,
        [*TINY, "training.max_steps=4", "training.checkpoint_every_n_steps=2"],
        model_dir=tmp / "m",
        progress=False,
        callbacks=[Recorder(seen)],
    )
    return tmp / "m", json.loads(seen.read_text())


def test_two_processes_write_one_complete_model_directory(ddp_run, tiny_project_src):
    md, _ = ddp_run
    files = sorted(str(p.relative_to(md)) for p in md.rglob("*") if p.is_file())
    tb = [f for f in files if f.startswith("logs/tb/events.")]
    assert len(tb) <= 1  # TensorBoard is optional
    assert [f for f in files if f not in tb] == [
        ".lock",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "config.yaml",
        "logs/csv/hparams.yaml",
        "logs/csv/metrics.csv",
        *(["logs/tb/hparams.yaml"] if tb else []),
        "metrics.json",
        "model.json",
        "predictions_labeled.csv",
    ]
    metrics = json.loads((md / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["steps_per_epoch"] == 2
    assert metrics["devices"] == 2 and metrics["global_batch_size"] == 6
    assert {"train", "val", "test"} <= set(metrics)
    ckpt = torch.load(md / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    model = load_model(md, device="cpu")
    assert model.keypoints == json.loads((md / "model.json").read_text())["keypoints"]


def test_each_process_trains_on_its_own_rows_and_all_keep_the_same_weights(ddp_run):
    md, seen = ddp_run
    rows = np.asarray(seen["rows"])  # (process, step, row)
    assert seen["world_size"] == 2 and rows.shape == (2, 4, 3)
    record = json.loads((md / "model.json").read_text())
    assert len(record["split"]["train"]) == 12
    for epoch in range(2):  # 2 steps x 2 processes x 3 rows: each training frame once
        first, second = (set(rows[r, 2 * epoch : 2 * epoch + 2].ravel()) for r in range(2))
        assert len(first) == len(second) == 6 and not first & second
    # Gradients are averaged over the processes: after different rows, the same weights.
    assert seen["params"][0] == seen["params"][1]
    assert any(a != 0 for a in seen["params"][0])


@pytest.fixture
def one_process_group(tmp_path):
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1
    )
    yield
    torch.distributed.destroy_process_group()


def test_buckets_are_reduced_during_backward_and_unused_parameters_left_alone(
    one_process_group,
):
    """The averager starts a bucket's all-reduce as soon as backward has its last gradient
    (overlapping the rest of backward), leaves a parameter without a gradient alone, and
    writes back the averages (here of one process: the gradients themselves)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 2)
    )
    unused = torch.nn.Linear(3, 3)
    params = [*unused.parameters(), *net.parameters()]  # unused: the last bucket
    averager = GradientAverager(params, world_size=1, bucket_mb=64 * 64 * 2 / 2**20)
    assert len(averager.buckets) == 3  # the last layers' first
    assert averager.buckets[0][0] is params[-1]
    launched_in_backward = []
    net[0].weight.register_post_accumulate_grad_hook(
        lambda p: launched_in_backward.append(len(averager._launched))
    )
    x = torch.randn(8, 64)
    expected = torch.autograd.grad(net(x).square().sum(), list(net.parameters()))
    averager.start()
    net(x).square().sum().backward()
    averager.finish()
    assert launched_in_backward and launched_in_backward[0] >= 1  # some went before the end
    for p, g in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert all(p.grad is None for p in unused.parameters())
    averager.close()
    net.zero_grad()
    averager.start()
    net(x).sum().backward()  # hooks removed: nothing launched
    assert averager._launched == []


def test_the_gradient_average_inside_the_step_trains_as_the_ddp_wrapper_does(
    ddp_run, tiny_project_src, tmp_path, monkeypatch
):
    """The path of multi-GPU training with CUDA graphs (no DistributedDataParallel wrapper; the
    step all-reduces the gradients itself), run eagerly on CPU: the same rows, the same
    weights in both processes, and the weights the wrapper's run reached."""
    monkeypatch.setenv(STEP_SYNC_ENV, "1")
    seen_path = tmp_path / "seen.json"
    train(
        tiny_project_src,
        [*TINY, "training.max_steps=4", "training.checkpoint_every_n_steps=2"],
        model_dir=tmp_path / "m",
        progress=False,
        callbacks=[Recorder(seen_path)],
    )
    seen = json.loads(seen_path.read_text())
    assert seen["rows"] == ddp_run[1]["rows"]
    assert seen["params"][0] == seen["params"][1]  # averaged: the processes agree
    mine, theirs = (
        torch.load(md / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        for md in (tmp_path / "m", ddp_run[0])
    )
    assert mine["global_step"] == theirs["global_step"] == 4
    state, ref = mine["state_dict"], theirs["state_dict"]
    assert state.keys() == ref.keys()  # the same checkpoint, not a wrapper's
    moved = 0
    for key, value in state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, ref[key], rtol=1e-4, atol=1e-5, msg=key)
            moved += 1
    assert moved > 0


def test_resume_on_two_processes_from_the_command_line(ddp_run, tmp_path, tiny_project_src):
    md = tmp_path / "m"
    shutil.copytree(ddp_run[0], md)
    args = ["train", str(tiny_project_src), "--model-dir", str(md), "--resume", "--no-progress"]
    assert cli_main([*args, "training.max_steps=6"]) == 0
    metrics = json.loads((md / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["devices"] == 2
    assert (md / "logs" / "csv_1" / "metrics.csv").exists()  # the first logs are kept
    ckpt = torch.load(md / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6


def test_resume_cannot_change_the_number_of_devices(ddp_run, tmp_path, tiny_project_src):
    md = tmp_path / "m"
    shutil.copytree(ddp_run[0], md)
    with pytest.raises(ConfigError, match=r"training\.devices: saved 2, asked 1"):
        train(
            tiny_project_src,
            ["training.max_steps=6", "training.devices=1"],
            model_dir=md,
            resume=True,
            progress=False,
        )


def test_a_failure_in_one_process_is_one_error(tiny_project, tmp_path):
    md = tmp_path / "m"
    with pytest.raises(VideoError) as err:
        train(
            tiny_project,
            [*TINY, "training.max_steps=4"],
            model_dir=md,
            progress=False,
            callbacks=[FailOn(1)],
        )
    assert str(err.value) == "clips.mp4: frame 7 cannot be decoded (training process 1 of 2)"
    assert not md.exists()  # no checkpoint yet: nothing worth resuming is left
    assert not ModelDir(md).lock_path.exists()
