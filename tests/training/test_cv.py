"""K-fold cross-validation: fold splits, the CV directory, its summary, restarts, refusals."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest

from vidpose.errors import ConfigError
from vidpose.model_dir import ModelDirError
from vidpose.project import load_project
from vidpose.training.cv import fold_splits, plan_folds, train_folds

TINY = [
    "model.backbone=resnet18",
    "model.pretrained=false",
    "data.image_height=64",
    "data.image_width=64",
    "training.batch_size=4",
    "training.max_steps=2",
    "training.checkpoint_every_n_steps=1",
]


@pytest.mark.parametrize(("n", "k"), [(16, 2), (16, 5), (7, 7), (10, 3)])
def test_every_frame_is_held_out_exactly_once(n, k):
    splits = fold_splits(n, k, val_fraction=0.2, seed=3)
    assert len(splits) == k
    held_out = np.stack([s == "test" for s in splits])
    assert (held_out.sum(axis=0) == 1).all()  # each frame tested by exactly one fold
    sizes = held_out.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1
    for s in splits:
        rest = int((s != "test").sum())
        assert (s == "val").sum() == round(rest * 0.2)
        assert (s == "train").sum() >= 1


def test_fold_splits_are_deterministic_by_seed():
    a = fold_splits(16, 4, 0.1, seed=0)
    b = fold_splits(16, 4, 0.1, seed=0)
    c = fold_splits(16, 4, 0.1, seed=1)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert any((x != y).any() for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(
    ("n", "k", "val", "message"),
    [
        (16, 1, 0.1, "at least 2 folds"),
        (16, 17, 0.1, "the project has 16"),
        (4, 2, 0.9, "data.val_fraction=0.9 leaves no training frame"),
    ],
)
def test_fold_splits_refuse_what_cannot_work(n, k, val, message):
    with pytest.raises(ConfigError, match=message):
        fold_splits(n, k, val, seed=0)


class _StopAtStep(L.Callback):
    """Fails a run just before step ``step`` of the fold named ``fold`` (after its checkpoint
    of the step before was saved), as a crash or a kill would."""

    def __init__(self, fold: str, step: int) -> None:
        self.fold, self.step = fold, step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.default_root_dir.endswith(self.fold) and trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def _files(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def test_two_folds_summarise_keep_finished_folds_and_resume_interrupted_ones(
    tiny_project, tmp_path
):
    cv = tmp_path / "cv"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_folds(tiny_project, 2, cv, TINY, progress=False, callbacks=[_StopAtStep("fold1", 1)])
    assert (cv / "fold0" / "metrics.json").exists()  # fold 0 finished
    assert (cv / "fold1" / "checkpoints" / "last.ckpt").exists()  # fold 1 stopped at step 1
    assert not (cv / "fold1" / "metrics.json").exists()
    fold0 = _files(cv / "fold0")

    notes: list[str] = []
    res = train_folds(tiny_project, 2, cv, TINY, progress=False, log=notes.append)
    assert _files(cv / "fold0") == fold0  # the finished fold was not touched
    assert any("resuming" in n and "from step 1 of 2" in n for n in notes), notes
    assert res.folds[1].steps == 2

    # each fold's model recorded its split file; every labeled frame was tested exactly once
    frames = sorted(str(f) for f in load_project(tiny_project).labels.frames)
    tested = []
    for i in range(2):
        record = json.loads((cv / f"fold{i}" / "model.json").read_text())
        tested += record["split"]["test"]
        assert f"splits/fold{i}.csv" in (cv / f"fold{i}" / "config.yaml").read_text()
    assert sorted(tested) == frames

    info = json.loads((cv / "cv.json").read_text())
    assert info["folds"] == 2 and info["members"] == ["fold0", "fold1"]
    summary = json.loads((cv / "cv_summary.json").read_text())
    per_fold = [
        json.loads((cv / f"fold{i}" / "metrics.json").read_text())["test"] for i in range(2)
    ]
    for key in ("pixel_error_mean", "pixel_error_median", "pixel_error_p95"):
        values = [m[key] for m in per_fold]
        assert [f[key] for f in summary["folds"]] == values
        assert summary["mean"][key] == pytest.approx(np.mean(values))
        assert summary["sd"][key] == pytest.approx(np.std(values, ddof=1))
    assert sum(f["frames"] for f in summary["folds"]) == len(frames)
    rows = (cv / "cv_summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["fold", "fold0", "fold1", "mean", "sd"]

    # the same folds with other settings: refused, nothing touched
    with pytest.raises(ModelDirError, match="holds another cross-validation"):
        train_folds(tiny_project, 2, cv, [*TINY, "training.lr=0.01"], progress=False)
    assert _files(cv / "fold0") == fold0


@pytest.mark.parametrize(
    ("extra", "error", "message"),
    [
        (["data.test_fraction=0.2"], ConfigError, "data.test_fraction=0.2' cannot be combined"),
        (["data.split_file=split.csv"], ConfigError, "each fold gets its own split file"),
        (["training.lr=-1"], ConfigError, "training.lr"),
    ],
)
def test_bad_combinations_are_refused_before_any_work(
    tiny_project, tmp_path, extra, error, message
):
    cv = tmp_path / "cv"
    with pytest.raises(error, match=message):
        train_folds(tiny_project, 2, cv, [*TINY, *extra], progress=False)
    assert not cv.exists()


def test_split_file_of_the_project_and_foreign_folders_are_refused(tiny_project, tmp_path):
    settings = tiny_project / "vidpose.yaml"
    settings.write_text(settings.read_text() + "config:\n  data:\n    split_file: split.csv\n")
    with pytest.raises(ConfigError, match=r"vidpose\.yaml.*data\.split_file=null"):
        plan_folds(tiny_project, 2, tmp_path / "cv", TINY)
    plan_folds(tiny_project, 2, tmp_path / "cv", [*TINY, "data.split_file=null"])

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ModelDirError, match="not empty and holds no cross-validation"):
        plan_folds(tiny_project, 2, busy, [*TINY, "data.split_file=null"])
