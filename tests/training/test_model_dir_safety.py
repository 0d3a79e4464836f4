"""A training run never damages a model directory, leaves no half directory when it fails
early, refuses a directory in use, and resumes only what can be resumed; warm-up and early
stopping do what the config says.

Tiny runs on the ``tiny_project`` fixture (16 labeled 64 x 64 frames, one 48-frame video):
ResNet-18 from scratch, 2-5 steps each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import pytest

from vidpose.errors import ConfigError
from vidpose.model_dir import ModelDir, ModelDirError
from vidpose.predict import load_model
from vidpose.training import train

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "model.heatmap_stride=2",
    "data.image_height=64",
    "data.image_width=64",
    "data.val_fraction=0.125",
    "data.test_fraction=0.125",
    "training.batch_size=4",
    "training.steps_per_epoch=2",
    "training.checkpoint_every_n_steps=1",
]


def _digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` (the lock file aside)."""
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def trained(tiny_project_src, tmp_path_factory) -> Path:
    """A finished 2-step model (read-only for the tests: copy before changing it)."""
    md = tmp_path_factory.mktemp("trained") / "m"
    train(tiny_project_src, [*TINY, "training.max_steps=2"], model_dir=md, progress=False)
    return md


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "m"
    shutil.copytree(trained, dst)
    return dst


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.losses=[pca_multiview]"],  # fails the loss check (no view_matches)
        ["training.device=cuda"] if not __import__("torch").cuda.is_available() else ["x.y=1"],
        ["training.max_steps=3"],  # a valid run is refused as well: never overwritten
    ],
)
def test_train_into_an_existing_model_changes_nothing(tiny_project, model_copy, overrides):
    before = _digest(model_copy)
    with pytest.raises((ConfigError, ModelDirError)) as err:
        train(tiny_project, [*TINY, *overrides], model_dir=model_copy, progress=False)
    assert _digest(model_copy) == before
    load_model(model_copy, device="cpu")  # still a working model
    if overrides == ["training.max_steps=3"]:
        assert "already holds a model" in str(err.value) and "--resume" in str(err.value)


def test_a_rejected_first_run_creates_nothing(tiny_project, tmp_path):
    md = tmp_path / "new"
    with pytest.raises(ConfigError, match="pca_multiview"):
        train(tiny_project, [*TINY, "model.losses=[pca_multiview]"], model_dir=md, progress=False)
    assert not md.exists()


class _FailAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("disk unplugged")


def test_a_first_run_failing_before_any_checkpoint_leaves_no_half_directory(tiny_project, tmp_path):
    md = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk unplugged"):
        train(
            tiny_project,
            [*TINY, "training.max_steps=3"],
            model_dir=md,
            progress=False,
            callbacks=[_FailAt(0)],
        )
    assert not md.exists()
    # into an empty folder the user made: the folder stays, empty
    md.mkdir()
    with pytest.raises(RuntimeError):
        train(tiny_project, TINY, model_dir=md, progress=False, callbacks=[_FailAt(0)])
    assert md.is_dir() and list(md.iterdir()) == []


def test_a_run_failing_after_a_checkpoint_stays_resumable(tiny_project, tmp_path):
    md = tmp_path / "new"
    said: list[str] = []
    with pytest.raises(RuntimeError):
        train(
            tiny_project,
            [*TINY, "training.max_steps=4", "training.checkpoint_every_n_steps=2"],
            model_dir=md,
            progress=False,
            callbacks=[_FailAt(2)],
            log=said.append,
        )
    assert ModelDir(md).last_ckpt.exists() and not ModelDir(md).is_complete()
    assert any("--resume" in s for s in said)
    with pytest.raises(ModelDirError, match="training has not finished"):
        load_model(md, device="cpu")
    res = train(tiny_project, model_dir=md, resume=True, progress=False, log=said.append)
    assert res.steps == 4 and ModelDir(md).is_complete()
    assert "from step 2 of 4" in said[-1]


def test_a_directory_in_use_is_refused(tiny_project, model_copy):
    before = _digest(model_copy)
    with ModelDir(model_copy).lock(), pytest.raises(ModelDirError, match="in use by another"):
        train(
            tiny_project,
            ["training.max_steps=3"],
            model_dir=model_copy,
            resume=True,
            progress=False,
        )
    assert _digest(model_copy) == before


def test_resume_extends_the_budget_and_says_what_changed(tiny_project, model_copy):
    said: list[str] = []
    res = train(
        tiny_project,
        ["training.max_steps=3"],
        model_dir=model_copy,
        resume=True,
        progress=False,
        log=said.append,
    )
    assert res.steps == 3
    assert "from step 2 of 3" in said[0] and "training.max_steps: 2 -> 3" in said[0]
    assert "max_steps: 3" in (model_copy / "config.yaml").read_text()  # the new budget is saved
    assert (model_copy / "logs" / "csv_1").is_dir()  # earlier logs kept


def test_resume_rejects_what_cannot_change(tiny_project, model_copy):
    before = _digest(model_copy)
    with pytest.raises(ConfigError) as err:
        train(
            tiny_project,
            ["training.lr=0.1", "model.backbone=resnet34", "training.max_steps=4"],
            model_dir=model_copy,
            resume=True,
            progress=False,
        )
    msg = str(err.value)
    assert "training.lr: saved 0.001, asked 0.1" in msg and "model.backbone" in msg
    assert "training.max_steps" not in msg.split("cannot change:")[1].split("Only")[0]
    assert _digest(model_copy) == before


def test_resume_of_a_finished_run_without_more_budget_says_so(tiny_project, model_copy):
    with pytest.raises(ConfigError, match=r"finished training at step 2.*training\.max_steps=4"):
        train(tiny_project, model_dir=model_copy, resume=True, progress=False)


def test_resume_without_a_checkpoint_says_it_starts_from_step_0(tiny_project, model_copy):
    md = ModelDir(model_copy)
    md.last_ckpt.unlink()
    md.metrics_path.unlink()
    said: list[str] = []
    res = train(tiny_project, model_dir=model_copy, resume=True, progress=False, log=said.append)
    assert res.steps == 2 and "step 0 (no checkpoint was saved)" in said[0]


def test_resume_of_a_folder_without_a_run_is_refused(tiny_project, tmp_path):
    with pytest.raises(ModelDirError, match="holds no run to resume"):
        train(tiny_project, model_dir=tmp_path / "nothing", resume=True, progress=False)
    assert not (tmp_path / "nothing").exists()


class _LrRecorder(L.Callback):
    def __init__(self) -> None:
        self.lr: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_learning_rate_warms_up_linearly_over_warmup_epochs(tiny_project, tmp_path):
    rec = _LrRecorder()
    train(
        tiny_project,
        [
            *TINY,
            "training.max_steps=6",
            "training.warmup_epochs=2",  # 2 epochs x 2 steps = 4 warm-up steps
            "training.scheduler=none",
            "training.lr=0.002",
            "training.checkpoint_every_n_steps=100",
            "data.val_fraction=0",
        ],
        model_dir=tmp_path / "m",
        progress=False,
        callbacks=[rec],
    )
    assert rec.lr == pytest.approx([0.0005, 0.001, 0.0015, 0.002, 0.002, 0.002])


def test_early_stopping_ends_a_run_whose_val_error_stops_improving(tiny_project, tmp_path):
    # A learning rate this large wrecks the network after its first steps, so the validation
    # error never again beats its first value and patience runs out.
    res = train(
        tiny_project,
        [
            *TINY,
            "training.max_steps=40",
            "training.steps_per_epoch=1",
            "training.checkpoint_every_n_steps=100",
            "training.optimizer=sgd",
            "training.lr=1e4",
            "training.early_stopping_patience=2",
        ],
        model_dir=tmp_path / "m",
        progress=False,
    )
    assert res.steps < 40


def test_a_run_killed_after_its_last_checkpoint_is_finished_by_resume(tiny_project, model_copy):
    md = ModelDir(model_copy)
    md.metrics_path.unlink()  # killed between the last checkpoint and metrics.json
    said: list[str] = []
    res = train(tiny_project, model_dir=model_copy, resume=True, progress=False, log=said.append)
    assert res.steps == 2 and md.is_complete() and "from step 2 of 2" in said[0]
