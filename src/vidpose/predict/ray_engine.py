"""The Ray engine of a batch prediction: one actor per GPU, each loading the models once.

Each actor builds its :class:`~vidpose.predict.run.Predictor` (every ensemble member) when it
starts and predicts the videos the driver hands it, up to ``jobs`` together
(:class:`~vidpose.predict.batch.WorkerLoop`); one call per video returns its
:class:`~vidpose.predict.run.VideoResult`. An actor that dies (killed, out of memory, a crashed
process or node) fails its pending calls with ``RayActorError``: the scheduler
(:func:`~vidpose.predict.batch.schedule`) starts another and hands the videos to the others.

Ray is an optional extra (``pip install 'vidpose[ray]'``), imported only here.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vidpose.errors import ConfigError, MissingDependencyError
from vidpose.predict.batch import (
    PREDICTED,
    PREFETCH,
    Died,
    Engine,
    FutureResults,
    Job,
    PredictSettings,
    load_predictor,
)
from vidpose.predict.run import VideoResult, normalized_path

INSTALL_HINT = "pip install 'vidpose[ray]' (or, in a checkout, uv sync --extra ray)"


def import_ray():
    """The ``ray`` module, or MissingDependencyError saying how to install it."""
    # Under `uv run`, Ray would ship the current folder to every worker and run them through
    # uv (and refuse when the project is elsewhere); workers use the installed vidpose instead.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            f"--engine ray needs Ray, an optional extra that is not installed: {INSTALL_HINT}"
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, joined to the cluster at ``address`` (None: a local one started here) unless it is
    initialised already; what this starts is shut down on exit.

    Raises:
        ConfigError: no cluster answers at ``address``.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False)
    except (ConnectionError, ValueError) as exc:  # nothing there; not an address
        raise ConfigError(
            f"--address {address}: no Ray cluster to join ({exc}); start one with "
            "`ray start --head`, or leave --address out to start a local one"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


class _Worker:
    """The actor: a loaded Predictor; ``predict`` blocks until its video's files are written
    (the actor is threaded, so that many calls wait while a group is predicted)."""

    def __init__(
        self, settings: PredictSettings, jobs: int | None, crash_marker: str | None
    ) -> None:
        predictor, self.timings = load_predictor(settings)
        if jobs is None:  # this node's: its cores, shared by its GPUs' actors
            jobs = _default_jobs(predictor, settings)
        self.timings["jobs"] = jobs
        self.results = FutureResults(predictor, jobs, crash_marker)

    def ready(self) -> dict[str, Any]:
        """How long loading took (:func:`~vidpose.predict.batch.load_predictor`)."""
        return self.timings

    def predict(self, video: str, stem: str) -> VideoResult:
        return self.results.submit(Path(video), stem).result()

    def predicted(self, video: str) -> bool:
        """Returns once ``video``'s frames are predicted (True; its files are being written)
        or it failed before (False)."""
        return self.results.predicted(Path(video)).result()

    def drain(self) -> None:
        """Every video is handed out (:meth:`~vidpose.predict.batch.WorkerLoop.drain`)."""
        self.results.drain()


def _default_jobs(predictor, settings: PredictSettings) -> int:
    """An actor's videos decoded at once when ``--jobs`` is not given:
    :func:`~vidpose.predict.predictor.default_jobs` for its models, with its GPU's share of
    the node's cores (Ray does not pin actors to cores)."""
    from vidpose._cpus import node_gpus, usable_cpus
    from vidpose.predict.predictor import default_jobs, uses_decoder_processes

    model = predictor.models[0]
    gpus = node_gpus() if model.device.type == "cuda" else 0
    processes = uses_decoder_processes(model, settings.reader)
    return default_jobs(processes, usable_cpus() // max(1, gpus))


class RayPool:
    """Ray actors as the workers of :func:`~vidpose.predict.batch.schedule`.

    Joins the cluster at ``engine.address`` (:func:`ray_session`) unless Ray is initialised
    already, and leaves it (killing its actors) when done.
    """

    def __init__(
        self,
        settings: PredictSettings,
        engine: Engine,
        crash_marker: str | None,
        log: Callable[[str], object],
    ) -> None:
        self.session = ray_session(engine.address)
        self.ray = ray = self.session.__enter__()
        self.settings = settings
        self.crash_marker = crash_marker
        from vidpose.predict.predictor import PROCESS_JOBS

        self.jobs = engine.jobs  # None: each actor picks its own (_default_jobs)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if gpus > 0:
            per = engine.gpus_per_worker
            fits = max(1, int(gpus // per))
            self.workers = min(engine.workers or fits, fits)
            options: dict[str, Any] = {"num_gpus": per, "num_cpus": 1}
            what = f"{per:g} GPU each"
        else:
            self.workers = engine.workers or 1
            options = {"num_cpus": 1}
            what = "CPU only"
        log(f"Ray: {self.workers} worker(s), {what} ({gpus:g} GPU(s) in the cluster)")
        # threaded: calls wait for their videos while a group is predicted (two calls per
        # video held: predicted and predict; held: up to the depth, plus those being written)
        most = (self.jobs or PROCESS_JOBS) + PREFETCH
        self.actor = ray.remote(_Worker).options(
            max_concurrency=4 * most + 8, max_restarts=0, **options
        )
        self.actors: dict[str, Any] = {}
        self.starting: dict[Any, str] = {}  # ready() call -> actor still loading its models
        self.loaded: set[str] = set()
        self.starts: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}  # name -> when start() started it
        self.refs: dict[Any, tuple[str, Job]] = {}
        self.told: dict[Any, tuple[str, Job]] = {}  # predicted() calls not back yet
        self._n = 0
        self.gate: concurrent.futures.Future | None = None
        """A check that must pass before any actor counts as ready (its error is raised by
        :meth:`wait`)."""

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor)
        self.session.__exit__(None, None, None)

    def start(self) -> str:
        name = f"ray{self._n}"
        self._n += 1
        actor = self.actor.remote(self.settings, self.jobs, self.crash_marker)
        self.actors[name] = actor
        self.starting[actor.ready.remote()] = name
        self._started[name] = time.monotonic()
        return name

    def ready(self, worker: str) -> bool:
        return worker in self.loaded and (self.gate is None or self.gate.done())

    def depth_of(self, worker: str) -> int:
        """Videos ``worker`` may hold not yet predicted: its decoders, plus :data:`PREFETCH`."""
        return (self.jobs or self.starts.get(worker, {}).get("jobs") or 1) + PREFETCH

    def submit(self, worker: str, job: Job) -> None:
        actor, video = self.actors[worker], normalized_path(job.video)
        self.refs[actor.predict.remote(video, job.stem)] = (worker, job)
        self.told[actor.predicted.remote(video)] = (worker, job)

    def drain(self, worker: str) -> None:
        if worker in self.actors:  # its answer is not awaited: a dead actor's is lost
            self.actors[worker].drain.remote()

    def wait(self, timeout: float) -> list[tuple[str, Job | None, VideoResult | Died | str]]:
        ray = self.ray
        pending = [*self.refs, *self.told, *self.starting]
        if self.gate is not None:
            if not self.gate.done():  # look again soon: it lets the loaded workers start
                timeout = min(timeout, 0.05)
                if not pending:
                    concurrent.futures.wait([self.gate], timeout=timeout)
            if self.gate.done():
                self.gate.result()  # raises the check's error
        if not pending:
            return []
        ready, _ = ray.wait(pending, num_returns=1, timeout=timeout)
        if ready:  # and whatever else is ready too
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        out: list[tuple[str, Job | None, VideoResult | Died | str]] = []
        for ref in sorted(ready, key=lambda r: r not in self.told):  # predicted ones first
            if ref in self.told:  # a dead worker's: its predict call says so
                worker, job = self.told.pop(ref)
                with contextlib.suppress(ray.exceptions.RayError):
                    if ray.get(ref):
                        out.append((worker, job, PREDICTED))
                continue
            if ref in self.starting:
                worker = self.starting.pop(ref)
                try:
                    timings = ray.get(ref)
                    self.loaded.add(worker)
                    self.starts[worker] = {
                        "ready_s": round(time.monotonic() - self._started[worker], 3),
                        **(timings or {}),
                    }
                except ray.exceptions.RayError as exc:  # it could not load the models
                    self.actors.pop(worker, None)
                    out.append((worker, None, Died(_last_line(exc))))
                continue
            worker, job = self.refs.pop(ref)
            try:
                out.append((worker, job, ray.get(ref)))
            except ray.exceptions.RayActorError as exc:
                self.actors.pop(worker, None)
                self.loaded.discard(worker)
                out.append((worker, job, Died(_last_line(exc))))
            except ray.exceptions.RayError as exc:  # the call failed, not the worker
                reason = f"the worker could not predict it: {_last_line(exc)}"
                out.append((worker, job, VideoResult(job.video, job.stem, "failed", reason)))
        return out


def _last_line(exc: BaseException) -> str:
    """The most telling line of a Ray error (its tracebacks are long)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln.split(":", 1)[0] or "died" in ln:
            return ln[:500]
    return (lines[-1] if lines else type(exc).__name__)[:500]
