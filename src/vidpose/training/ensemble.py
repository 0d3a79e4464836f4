"""Ensembles: several models that differ only in seed, kept together in one directory.

    ENSEMBLE_DIR/
      ensemble.json          {"members": ["seed0", "seed1", ...], "seeds": [0, 1, ...]}
      seed0/ seed1/ ...      complete model directories (see vidpose.training.run)

Members differ in data order, augmentation draws and initialisation (``training.seed``); the
split (``data.split_seed``) is shared, so that every member is evaluated on the same frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidpose.model_dir import ModelDir, write_ensemble
from vidpose.training.run import Log, TrainResult, train


def train_ensemble(
    project_dir: str | Path,
    seeds: Sequence[int],
    ensemble_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    progress: bool = True,
    log: Log | None = None,
) -> list[TrainResult]:
    """Train one member per seed into ``ensemble_dir/seed<k>``; finished members are kept and
    interrupted ones resumed, so an interrupted ensemble run can simply be started again."""
    ensemble_dir = Path(ensemble_dir)
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    members = [f"seed{s}" for s in seeds]
    write_ensemble(ensemble_dir, members, list(seeds))
    results = []
    for seed, name in zip(seeds, members):
        md = ModelDir(ensemble_dir / name)
        if md.is_complete():
            results.append(TrainResult.of_finished(md))
            continue
        resume = md.has_model()
        results.append(
            train(
                project_dir,
                [] if resume else [*overrides, f"training.seed={seed}"],
                model_dir=md.path,
                resume=resume,
                progress=progress,
                log=log,
            )
        )
    return results
