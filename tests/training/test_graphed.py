"""The captured training step (CUDA graphs) and the device-side best weights.

The graph tests need a CUDA device (marked ``gpu``); the rest runs on CPU.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from vidpose.errors import ConfigError
from vidpose.training import train
from vidpose.training.best import BestWeights
from vidpose.training.graphed import ReplayOptimizer, lr_to_tensors

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "data.val_fraction=0.125",
    "data.test_fraction=0.125",
    "training.batch_size=4",
    "training.steps_per_epoch=3",
]


def test_cuda_graphs_on_a_cpu_run_is_a_config_error(tiny_project, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"cuda_graphs=true needs a CUDA device"):
        train(
            tiny_project,
            [*TINY, "training.max_steps=2", "training.cuda_graphs=true"],
            model_dir=tmp_path / "m",
            progress=False,
        )
    assert not (tmp_path / "m").exists()


def test_replay_optimizer_shares_groups_and_saves_float_learning_rates():
    p = torch.nn.Parameter(torch.ones(3))
    inner = torch.optim.Adam([p], lr=0.1)
    opt = ReplayOptimizer(inner)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    lr_to_tensors(inner, torch.device("cpu"))
    lr_tensor = inner.param_groups[0]["lr"]
    calls = []
    opt.step(lambda: calls.append(1))
    sched.step()
    # the scheduler filled the inner optimizer's tensor in place (a captured update reads it)
    assert inner.param_groups[0]["lr"] is lr_tensor
    assert float(lr_tensor) == pytest.approx(0.05)
    assert calls == [1] and torch.equal(p.detach(), torch.ones(3))  # step ran only the closure
    saved = opt.state_dict()
    assert isinstance(saved["param_groups"][0]["lr"], float)
    plain = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=1.0)
    plain.load_state_dict(saved)
    assert plain.param_groups[0]["lr"] == pytest.approx(0.05)


class _Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def _trainer(tmp_path: Path, score: float, step: int):
    from vidpose.training.checkpoint_io import AtomicCheckpointIO

    return SimpleNamespace(
        sanity_checking=False,
        callback_metrics={"val/pixel_error": torch.tensor(score)},
        global_step=step,
        is_global_zero=True,
        strategy=SimpleNamespace(checkpoint_io=AtomicCheckpointIO()),
    )


def test_best_weights_keep_the_lowest_validation_error_and_ignore_nan(tmp_path):
    net = _Net()
    cb = BestWeights(tmp_path / "best.ckpt")
    for step, (w, score) in enumerate([(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, float("nan"))]):
        with torch.no_grad():
            net.w.fill_(w)
            net.count.fill_(step)
        cb.on_validation_end(_trainer(tmp_path, score, step), net)
    cb.on_train_end(_trainer(tmp_path, 0.0, 9), net)
    saved = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["w"], torch.full((2,), 2.0))
    assert int(saved["state_dict"]["count"]) == 1
    assert saved["global_step"] == 1
    assert cb.state_dict() == {"best_score": 3.0, "best_step": 1}


def test_best_weights_resume_from_the_written_file(tmp_path):
    net = _Net()
    cb = BestWeights(tmp_path / "best.ckpt")
    with torch.no_grad():
        net.w.fill_(7.0)
    cb.on_validation_end(_trainer(tmp_path, 2.0, 4), net)
    cb.on_train_end(_trainer(tmp_path, 0.0, 4), net)
    again = BestWeights(tmp_path / "best.ckpt")
    again.load_state_dict(cb.state_dict())
    again.on_fit_start(None, net)
    with torch.no_grad():
        net.w.fill_(8.0)
    again.on_validation_end(_trainer(tmp_path, 2.5, 6), net)  # worse: the old best stays
    again.on_train_end(_trainer(tmp_path, 0.0, 6), net)
    saved = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["w"], torch.full((2,), 7.0))


def test_flat_copies_channels_last_weights_in_logical_order():
    from vidpose.training.best import _Flat

    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    state = {k: v.detach() for k, v in conv.state_dict(keep_vars=True).items()}
    state["count"] = torch.tensor(3)
    flat = _Flat.empty_like(state)
    flat.fill(state)
    out = flat.state_dict()
    assert set(out) == set(state)
    for k, v in state.items():
        assert torch.equal(out[k], v), k
    # filled again after the weights change: the same buffers, new values
    before = flat.clone()
    original = conv.weight.detach().clone()
    with torch.no_grad():
        conv.weight.add_(1.0)
    flat.fill(state)
    assert torch.equal(flat.state_dict()["weight"], conv.weight.detach())
    assert torch.equal(before.state_dict()["weight"], original)
    before.update_where(torch.tensor(True), flat)
    assert torch.equal(before.state_dict()["weight"], conv.weight.detach())


class _Counter(L.Callback):
    def on_train_end(self, trainer, module):
        self.graphs = module._graphs
        self.val_graphs = module._val_graphs


@pytest.mark.gpu
@pytest.mark.parametrize("losses", [[], ["temporal", "pca_singleview", "equivariance"]])
def test_graphed_training_replays_and_matches_eager_accuracy(tiny_project, tmp_path, losses):
    """The same run with and without graphs: the graph run replays almost every step and
    ends with a similar training error (bf16 and cuDNN are not bit-reproducible)."""
    extra = [f"model.losses=[{','.join(losses)}]"] if losses else []
    errors, val_errors = {}, {}
    for graphs in ("true", "false"):
        spy = _Counter()
        res = train(
            tiny_project,
            [*TINY, *extra, "training.max_steps=60", f"training.cuda_graphs={graphs}"],
            model_dir=tmp_path / graphs,
            progress=False,
            callbacks=[spy],
        )
        assert res.steps == 60
        errors[graphs] = res.metrics["train"]["pixel_error_mean"]
        val_errors[graphs] = res.metrics["val"]["pixel_error_mean"]
        if graphs == "true":
            assert spy.graphs is not None
            assert spy.graphs.replays >= 60 - 2 * spy.graphs.warmup
            # validation replays its forward too (after one eager call of its shape)
            assert spy.val_graphs is not None and spy.val_graphs.replays > 0
        else:
            assert spy.graphs is None and spy.val_graphs is None
    assert errors["true"] == pytest.approx(errors["false"], rel=0.5, abs=1.0)
    assert val_errors["true"] == pytest.approx(val_errors["false"], rel=0.5, abs=1.0)
