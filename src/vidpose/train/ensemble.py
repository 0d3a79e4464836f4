"""Ensembles: several models that differ only in seed, kept together in one directory.

    ENSEMBLE_DIR/
      ensemble.json          {"members": ["seed0", "seed1", ...], "seeds": [0, 1, ...]}
      seed0/ seed1/ ...      complete model directories (see vidpose.train.run)

Members differ in data order, augmentation draws and initialisation (``training.seed``); the
split (``data.split_seed``) is shared, so that every member is evaluated on the same frames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vidpose._atomic import atomic_write_text
from vidpose.errors import VidposeError
from vidpose.train.run import TrainResult, train

ENSEMBLE_FILE = "ensemble.json"


def train_ensemble(
    project_dir: str | Path,
    seeds: Sequence[int],
    ensemble_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    progress: bool = True,
) -> list[TrainResult]:
    """Train one member per seed into ``ensemble_dir/seed<k>``; members already finished
    (their metrics.json exists) are kept, so an interrupted ensemble run can be restarted."""
    ensemble_dir = Path(ensemble_dir)
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    members = [f"seed{s}" for s in seeds]
    atomic_write_text(
        ensemble_dir / ENSEMBLE_FILE,
        json.dumps({"members": members, "seeds": list(seeds)}, indent=2) + "\n",
    )
    results = []
    for seed, name in zip(seeds, members):
        member_dir = ensemble_dir / name
        if (member_dir / "metrics.json").exists():
            metrics = json.loads((member_dir / "metrics.json").read_text())
            results.append(
                TrainResult(
                    member_dir, metrics, metrics.get("train_seconds", 0.0), metrics.get("steps", 0)
                )
            )
            continue
        results.append(
            train(
                project_dir,
                [*overrides, f"training.seed={seed}"],
                model_dir=member_dir,
                progress=progress,
            )
        )
    return results


def is_ensemble(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).exists()


def ensemble_members(ensemble_dir: str | Path) -> list[Path]:
    """The member model directories of an ensemble, in order."""
    ensemble_dir = Path(ensemble_dir)
    info = json.loads((ensemble_dir / ENSEMBLE_FILE).read_text())
    members = [ensemble_dir / m for m in info["members"]]
    missing = [str(m) for m in members if not (m / "checkpoints" / "best.ckpt").exists()]
    if missing:
        raise VidposeError(
            f"{ensemble_dir}: members not trained yet: {missing} (run "
            "`vidpose train PROJECT --seeds ... --model-dir ENSEMBLE_DIR` again)"
        )
    return members
