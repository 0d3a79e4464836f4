"""Ensembles: several models that differ only in seed, kept together in one directory.

    ENSEMBLE_DIR/
      ensemble.json          {"members": ["seed0", "seed1", ...], "seeds": [0, 1, ...]}
      seed0/ seed1/ ...      complete model directories (see vidpose.training.run)

Members differ in data order, augmentation draws and initialisation (``training.seed``); the
split (``data.split_seed``) is shared, so that every member is evaluated on the same frames.

On one CUDA device the members train at once (``training.ensemble_concurrency``, null = all of
them): each in its own thread and CUDA stream, so that their steps overlap on the GPU
(:mod:`vidpose.training.concurrent`); each member's results are those it gets trained alone
(to the last bit on CPU; up to a GPU's usual run-to-run differences on one).
On CPU, with several devices or with ``training.compile``, they train one after another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidpose._device import resolve_device
from vidpose.config import compose_config
from vidpose.model_dir import ModelDir, write_ensemble
from vidpose.project import load_project
from vidpose.training.concurrent import Job, members_at_once, train_concurrently
from vidpose.training.run import Log, TrainResult, train

AGAIN = "run the same command again: finished members are kept and interrupted ones resumed"


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
    interrupted ones resumed, so an interrupted ensemble run can simply be started again.

    Members train at once on one CUDA device, as many as ``training.ensemble_concurrency``
    says (of ``overrides`` and the project's config; null = all), else one after another.
    ``progress`` shows one display for all of them; ``log`` gets each member's notices prefixed
    with its name.

    Raises:
        ConfigError, ProjectError: before any member trains.
        The first failure of a member, naming it (the others stop, keeping their last
        checkpoints); KeyboardInterrupt once every member has stopped.
    """
    ensemble_dir = Path(ensemble_dir)
    say: Log = log or (lambda _m: None)
    project = load_project(project_dir)
    cfg = compose_config(
        project.settings.config, list(overrides), project_file=project.root / "vidpose.yaml"
    )
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    members = [f"seed{s}" for s in seeds]
    write_ensemble(ensemble_dir, members, list(seeds))
    results: dict[str, TrainResult] = {}
    todo: list[tuple[int, str, ModelDir]] = []
    for seed, name in zip(seeds, members):
        md = ModelDir(ensemble_dir / name)
        if md.is_complete():
            results[name] = TrainResult.of_finished(md)
        else:
            todo.append((seed, name, md))

    def run_member(seed: int, md: ModelDir, shown: bool, callbacks=(), member_log=log):
        resume = md.has_model()
        return train(
            project_dir,
            [] if resume else [*overrides, f"training.seed={seed}"],
            model_dir=md.path,
            resume=resume,
            progress=shown,
            callbacks=callbacks,
            log=member_log,
        )

    t = cfg.training
    accelerator = resolve_device(t.device).type
    at_once = members_at_once(
        t.ensemble_concurrency,
        accelerator,
        devices=t.devices,
        compile=t.compile,
        members=len(todo),
    )
    if at_once <= 1:
        for seed, name, md in todo:
            results[name] = run_member(seed, md, progress)
    else:
        say(f"training {len(todo)} members, {at_once} at once on {accelerator}")
        jobs = [
            # each member's own bar is off: train_concurrently shows them all
            Job(name, lambda cbs, lg, seed=seed, md=md: run_member(seed, md, False, cbs, lg))
            for seed, name, md in todo
        ]
        done = train_concurrently(
            jobs, at_once, cuda=accelerator == "cuda", progress=progress, log=say, again=AGAIN
        )
        results.update({name: res for (_, name, _), res in zip(todo, done)})
    return [results[name] for name in members]
