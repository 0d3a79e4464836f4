"""Batch prediction: many videos into one folder, resumable, on this machine or a Ray cluster.

:func:`predict_batch` (what ``vidpose predict`` runs):

1. expands the sources (videos, folders, manifests: :func:`vidpose.video.expand_videos`);
2. locks the output folder (a second batch on it is refused) and reads its ledger
   (:mod:`vidpose.predict.ledger`): a video whose outputs are complete is skipped;
3. predicts the others with an engine, each video through :class:`~vidpose.predict.run.
   Predictor` (models loaded once per worker, tables, metrics and an ensemble's smoothed
   table written, then one :class:`~vidpose.predict.run.VideoResult`):

   - ``local``: in this process; with several GPUs visible, one worker process per GPU;
   - ``ray``: one Ray actor per GPU (``--gpus-per-worker``), or ``--workers`` CPU actors on a
     cluster without GPUs (:mod:`vidpose.predict.ray_engine`);

   workers take videos from the driver's queue; a worker that dies has its videos retried on
   the others (at most :data:`MAX_RETRIES` times each, then failed with the reason);
4. with a multi-camera model and its calibration, groups the videos into sessions
   (``<session>_<view>``) and triangulates each session here, in the driver, once its videos
   are done: ``OUT/<session>_3d.csv`` (:mod:`vidpose.predict.sessions`);
5. records every start, result, retry and 3D table in the ledger as it happens, and writes
   ``predict_report.csv`` / ``.json`` at the end.

Workers read the videos and write the outputs at the paths the driver gives them: on a cluster
both must be on a file system every node mounts at the same path.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import io
import json
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from vidpose import __version__
from vidpose._atomic import atomic_write_text, pid_alive
from vidpose._cpus import cpu_shares, pin_to, usable_cpus
from vidpose.errors import ConfigError
from vidpose.predict.ledger import LEDGER_FILE, Ledger, VideoStamp, lock_output
from vidpose.predict.run import (
    Predictor,
    VideoResult,
    assign_stems,
    check_path,
    claim_stems,
    decodes_in_processes,
    log_renamed,
    normalized_path,
    read_sources,
)
from vidpose.predict.sessions import (
    ModelCameras,
    SessionResult,
    Sessions,
    Settings3D,
    model_cameras,
)

ENGINES = ("local", "ray")
MAX_RETRIES = 2
"""Times a video is given to another worker after the one predicting it died."""

REPORT_CSV = "predict_report.csv"
REPORT_JSON = "predict_report.json"

CRASH_ENV = "VIDPOSE_TEST_CRASH_WORKER"
"""For tests: a marker file path; the first worker to start predicting creates it and exits
at once (``os._exit(1)``), as a worker killed mid-run would. Never set it otherwise."""


@dataclass(frozen=True)
class PredictSettings:
    """Everything a worker needs to build its :class:`Predictor` (picklable)."""

    model_dir: Path
    out_dir: Path
    batch_size: int | None = None
    device: str | None = None
    precision: str | None = None
    reader: str | None = None
    compile: bool | None = None
    formats: tuple[str, ...] = ("csv",)
    dlc_names: bool = False

    def predictor(self, device: str | None = None) -> Predictor:
        """A Predictor with these settings (``device`` overriding theirs); not loaded yet."""
        return Predictor(
            self.model_dir,
            self.out_dir,
            batch_size=self.batch_size,
            device=device or self.device,
            precision=self.precision,
            reader=self.reader,
            compile=self.compile,
            formats=self.formats,
            dlc_names=self.dlc_names,
        )

    def identity(self) -> dict[str, Any]:
        """What outputs depend on besides the video (recorded in the ledger)."""
        return {
            "model": normalized_path(self.model_dir),
            "formats": list(self.formats),
            "dlc_names": self.dlc_names,
        }


@dataclass
class BatchReport:
    """What :func:`predict_batch` did: one :class:`VideoResult` per video, in input order."""

    out_dir: Path
    videos: list[VideoResult] = field(default_factory=list)
    engine: str = "local"
    workers: int = 0
    seconds: float = 0.0
    """Wall time of the prediction (workers starting, models loading, videos, writing)."""
    views: list[str] = field(default_factory=list)
    """A multi-camera model's views (empty for a single-camera model)."""
    sessions: list[SessionResult] = field(default_factory=list)
    """A multi-camera model's sessions and their 3D tables (none without a calibration)."""
    worker_starts: list[dict[str, Any]] = field(default_factory=list)
    """Each worker process or actor that got ready (several-worker engines): its name, device,
    seconds from its start to ready (``ready_s``) and its own account of them (``device_s``:
    the GPU's start-up; ``load_s``: reading and building the models)."""

    @property
    def frames(self) -> int:
        """Frames predicted by this batch (skipped videos not counted)."""
        return sum(r.frames for r in self.videos if r.status == "ok")

    @property
    def fps(self) -> float:
        """Frames predicted per second of wall time: the batch's throughput."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def report_csv(self) -> Path:
        return self.out_dir / REPORT_CSV

    @property
    def report_json(self) -> Path:
        return self.out_dir / REPORT_JSON

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.videos)

    @property
    def failed(self) -> list[VideoResult]:
        return [r for r in self.videos if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(eq=False)
class Job:
    """A video to predict: where it goes, its file's stamp, and the workers it has outlived."""

    video: Path
    stem: str
    stamp: VideoStamp
    attempts: int = 0


# -- the batch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """Where a batch runs (see :func:`predict_batch`'s arguments)."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 1.0
    jobs: int | None = None


def predict_batch(
    model_dir: str | Path,
    sources: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 1.0,
    jobs: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    reader: str | None = None,
    compile: bool | None = None,
    formats: Sequence[str] = ("csv",),
    dlc_names: bool = False,
    smooth3d: bool = False,
    outlier_px: float = Settings3D.outlier_px,
    min_confidence: float = Settings3D.min_confidence,
    progress: bool = False,
    log: Callable[[str], object] = lambda _msg: None,
) -> BatchReport:
    """Predict every video of ``sources`` into ``out_dir`` that an earlier batch there has not.

    With a multi-camera model (its record lists views) and its calibration, the videos are
    also grouped into sessions by their names (``<session>_<view>``) and every session with at
    least 2 views predicted is triangulated into ``out_dir/<session>_3d.csv``
    (:mod:`vidpose.predict.sessions`); the report lists each session.

    Args:
        model_dir: a model or ensemble directory.
        sources: videos, folders of videos and manifests (``.txt`` / ``.list``: one video path
            per line, relative to the manifest; blank lines and ``#`` comments allowed).
        out_dir: the output folder (default ``model_dir/videos``); it holds the ledger and the
            report.
        engine: "local" (this machine: in this process, or one process per GPU when several
            are visible) or "ray" (a Ray cluster; the optional extra ``vidpose[ray]``).
        address: the Ray cluster to join ("auto": the one this machine belongs to,
            "HOST:PORT"); None starts a local one.
        workers: most workers: local GPUs used, or Ray actors (default: one per GPU; on a Ray
            cluster without GPUs, 1).
        gpus_per_worker: GPUs each Ray actor holds (fractions share a GPU).
        jobs: videos each worker decodes at once (default 4 threads; 8 decoder processes, at
            most half its cores, when PyAV feeds a GPU: ``predictor.default_jobs``).
        batch_size, device, precision, reader, compile, formats, dlc_names: as
            :func:`vidpose.predict.run.predict_videos`.
        smooth3d: Kalman-smooth each session's 3D trajectories
            (:func:`vidpose.smooth.smooth_points_3d`); multi-camera models only.
        outlier_px, min_confidence: how sessions are triangulated, as
            :func:`vidpose.geometry.triangulate_tables`.
        progress: show a progress bar over the batch.
        log: receives one line per video and per notice.

    Returns:
        The report, also written to ``out_dir/predict_report.csv`` and ``.json``.

    Raises:
        ModelDirError: ``model_dir`` is not a complete model or ensemble.
        ConfigError: a bad engine, format, device or Ray address.
        OutputInUseError: another batch is writing to ``out_dir``.
        MissingDependencyError: ``engine="ray"`` without Ray installed.
        VideoError: a manifest cannot be read.
    """
    from vidpose.video import expand_videos

    if engine not in ENGINES:
        raise ConfigError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if not outlier_px > 0:
        raise ConfigError(f"--outlier-px: expected a number of px > 0, got {outlier_px!r}")
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"--min-confidence: expected a number in [0, 1], got {min_confidence!r}")
    cluster: contextlib.AbstractContextManager = contextlib.nullcontext()
    if engine == "ray":  # before anything is written: a missing Ray or cluster is an error
        from vidpose.predict.ray_engine import import_ray, ray_session

        import_ray()
        if address is not None:  # a local cluster is started only when there is work
            cluster = ray_session(address)
    probe = Predictor(model_dir, out_dir, formats=formats, dlc_names=dlc_names)  # checks both
    if engine == "local" and decodes_in_processes(probe.members[0].config, device):
        # decoder processes, and this machine's GPU workers, come from one fork server: it
        # imports torch beside this process, which imports it next to count the GPUs
        from vidpose.predict.processes import start_server

        start_server()
    cameras = model_cameras(model_dir)  # a multi-camera model's calibration, checked now
    settings = PredictSettings(  # absolute: workers run elsewhere (another folder, node)
        Path(normalized_path(model_dir)),
        Path(normalized_path(probe.out_dir)),
        batch_size=batch_size,
        device=device,
        precision=precision,
        reader=reader,
        compile=compile,
        formats=probe.formats,
        dlc_names=dlc_names,
    )
    videos = expand_videos([Path(s) for s in sources])
    how = Engine(engine, address, workers, gpus_per_worker, jobs)
    with cluster, lock_output(settings.out_dir):
        three_d = Settings3D(smooth3d, float(outlier_px), float(min_confidence))
        batch = _Batch(settings, how, log, cameras, three_d)
        try:
            todo = batch.plan(videos)
            batch.run(todo, progress)
        finally:
            batch.ledger.close()
    write_report(batch.report, settings)
    return batch.report


class _Batch:
    """One batch's bookkeeping: the plan, the ledger's events, the results."""

    def __init__(
        self,
        settings: PredictSettings,
        engine: Engine,
        log: Callable,
        cameras: ModelCameras | None = None,
        settings3d: Settings3D | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.log = log
        self.ledger = Ledger(settings.out_dir)
        self.identity = settings.identity()
        cameras = cameras or ModelCameras()
        self.report = BatchReport(settings.out_dir, engine=engine.name, views=list(cameras.views))
        self.cameras = cameras
        self.sessions: Sessions | None = None
        if cameras.triangulates:
            three_d = settings3d or Settings3D()
            self.sessions = Sessions(
                settings.out_dir, cameras, three_d, self.ledger, self.identity, log
            )
        self.results: dict[str, VideoResult] = {}  # normalised path -> its result
        self.order: list[str] = []
        self.bar = None
        self._lock = threading.Lock()

    def plan(self, videos: list[Path]) -> list[Job]:
        """The jobs to run; missing videos failed and finished ones skipped (in the ledger)."""
        out, ledger, log = self.settings.out_dir, self.ledger, self.log
        first_of: dict[str, Path] = {}
        for video in videos:
            key = normalized_path(video)
            if key in first_of:
                log(f"{video} was given before (as {first_of[key]}): predicted once")
                continue
            first_of[key] = video
            self.order.append(key)
        unique = list(first_of.values())
        why_not = {v: check_path(v) for v in unique}
        reserved = [Path(REPORT_CSV).stem]  # a video named predict_report.mp4 gets another
        stems = assign_stems([v for v in unique if why_not[v] is None], out, reserved=reserved)
        finished = ledger.finished()
        ledger.append(
            "run",
            host=socket.gethostname(),
            pid=os.getpid(),
            vidpose=__version__,
            engine=self.engine.name,
            videos=len(unique),
            settings=self.identity,
        )
        todo: list[Job] = []
        for video in unique:
            key = normalized_path(video)
            if why_not[video] is not None:
                self.results[key] = VideoResult(video, "", "failed", why_not[video])
                ledger.append("failed", video=key, stem="", reason=why_not[video])
                continue
            stamp = VideoStamp.of(video)
            event = finished.get(key)
            why = ledger.why_not_done(event, stamp, self.identity)
            if event is not None and why is None:
                self.results[key] = _skipped(video, event, ledger)
                ledger.append(
                    "skipped",
                    video=key,
                    stem=event.get("stem", ""),
                    reason=self.results[key].reason,
                )
                continue
            if event is not None:
                log(f"{video}: predicted before, again now: {why}")
            todo.append(Job(video, stems[video], stamp))
        log_renamed([j.video for j in todo], stems, out, log)
        if todo:
            claim_stems(out, {j.video: j.stem for j in todo})
        skipped = sum(r.status == "skipped" for r in self.results.values())
        if skipped:
            log(f"{skipped} video(s) skipped: their outputs in {out} are complete ({LEDGER_FILE})")
        self._plan_sessions(unique, stems)
        return todo

    def _plan_sessions(self, unique: list[Path], stems: dict[Path, str]) -> None:
        """Group a multi-camera model's videos into sessions (those done already reported);
        a note when the model has views but no calibration, or a video names no view."""
        views = self.cameras.views
        if len(views) < 2:
            return
        if self.sessions is None:
            self.log(
                f"the model's views are {', '.join(views)} but it has no calibration: 2D tables "
                "only; triangulate a session's tables with `vidpose triangulate "
                "CALIBRATION.toml TABLE...`"
            )
            return
        videos = {normalized_path(v): (v, stems.get(v) or v.stem) for v in unique}
        taken = read_sources(self.settings.out_dir)
        self.sessions.plan(videos, taken)
        unnamed = self.sessions.plan_.unnamed
        if unnamed:
            shown = ", ".join(str(videos[k][0]) for k in unnamed[:5])
            more = f" and {len(unnamed) - 5} more" if len(unnamed) > 5 else ""
            self.log(
                f"{len(unnamed)} video(s) name no view of the model ({', '.join(views)}): "
                f"{shown}{more}; 2D tables only (name them <session>_<view>.mp4 for 3D)"
            )
        for key, res in list(self.results.items()):
            self.sessions.video_done(key, res)

    def run(self, todo: list[Job], progress: bool) -> None:
        """Predict ``todo`` with the engine; the report lists every video in input order."""
        if progress and todo:
            from vidpose._progress import VideosProgress

            self.bar = VideosProgress(len(self.order), done=len(self.results))
        t0 = time.perf_counter()
        try:
            if todo:
                self.report.workers = _run_engine(self, todo)
        except BaseException:
            if self.sessions is not None:
                self.sessions.cancel()
            raise
        finally:
            self.report.seconds = time.perf_counter() - t0
            if self.bar is not None:
                self.bar.stop()
        self.report.videos = [self.results[k] for k in self.order]
        if self.sessions is not None:
            self.report.sessions = self.sessions.finish()

    def on_start(self, job: Job, worker: str) -> None:
        self.ledger.append(
            "started",
            video=normalized_path(job.video),
            stem=job.stem,
            worker=worker,
            attempt=job.attempts + 1,
        )

    def on_ready(self, worker: str, start: dict[str, Any]) -> None:
        self.report.worker_starts.append({"worker": worker, **start})
        if "ready_s" in start:
            parts = [
                f"{what} {start[key]:.1f} s"
                for key, what in (("device_s", "GPU start-up"), ("load_s", "models"))
                if key in start
            ]
            more = f" ({', '.join(parts)})" if parts else ""
            self.log(f"worker {worker} ready after {start['ready_s']:.1f} s{more}")

    def on_requeue(self, job: Job, reason: str) -> None:
        self.ledger.append(
            "requeued",
            video=normalized_path(job.video),
            stem=job.stem,
            reason=reason,
            attempt=job.attempts,
        )
        self.log(f"{job.video}: {reason}; trying again on another worker")

    def on_result(self, job: Job, res: VideoResult) -> None:
        res = replace(res, video=job.video, stem=job.stem)
        key = normalized_path(job.video)
        if res.status == "ok":
            outputs = [
                {"path": self.ledger.relative(p), "size": n}
                for p, n in zip(res.outputs, res.sizes, strict=True)
            ]
            self.ledger.append(
                "finished",
                video=key,
                stem=job.stem,
                size=job.stamp.size,
                mtime_ns=job.stamp.mtime_ns,
                frames=res.frames,
                seconds=round(res.seconds, 3),
                fps=round(res.fps, 1) if res.seconds > 0 else None,
                outputs=outputs,
                settings=self.identity,
                worker=res.worker,
            )
            self.log(f"{job.video}: {res.frames} frames, {res.fps:,.0f} frames/s -> {res.table}")
        else:
            self.ledger.append(
                "failed", video=key, stem=job.stem, reason=res.reason, worker=res.worker
            )
            self.log(f"{job.video}: failed: {res.reason}")
        with self._lock:
            self.results[key] = res
            if self.bar is not None:
                self.bar.advance(res.frames, failed=res.status == "failed")
        if self.sessions is not None:
            self.sessions.video_done(key, res)


def _skipped(video: Path, event: dict[str, Any], ledger: Ledger) -> VideoResult:
    outputs = [ledger.resolve(o["path"]) for o in event.get("outputs", [])]
    return VideoResult(
        video,
        str(event.get("stem", "")),
        "skipped",
        f"outputs complete from an earlier run ({event.get('time', '?')})",
        frames=int(event.get("frames", 0)),
        seconds=float(event.get("seconds", 0.0)),
        table=outputs[0] if outputs else None,
        outputs=outputs,
        worker=str(event.get("worker", "")),
    )


def _run_engine(batch: _Batch, todo: list[Job]) -> int:
    """Predict ``todo`` with the batch's engine; returns the number of workers used."""
    settings, engine, log = batch.settings, batch.engine, batch.log
    crash_marker = os.environ.get(CRASH_ENV) or None
    callbacks = dict(
        on_start=batch.on_start,
        on_result=batch.on_result,
        on_requeue=batch.on_requeue,
        on_ready=batch.on_ready,
    )
    devices = _local_devices(settings, engine.workers) if engine.name == "local" else []
    devices = devices[: len(todo)]  # one video left: no second worker to start
    if engine.name == "ray":
        # a damaged checkpoint is one error here, not a death of every worker: checked while
        # the actors start, and no video handed out before it passed (the pool's gate)
        from vidpose.predict.ray_engine import RayPool

        with (
            concurrent.futures.ThreadPoolExecutor(1) as checker,
            RayPool(settings, engine, crash_marker, log) as pool,
        ):
            pool.gate = checker.submit(_check, settings, log)
            schedule(pool, todo, pool.workers, depth=pool.depth_of, **callbacks)
            return pool.workers
    if len(devices) > 1:
        log(f"predicting on {', '.join(devices)}: one worker process each")
        # A damaged checkpoint is one error here, not a death of every worker. The check runs
        # in a thread while the workers start (the fork server importing, each loading its
        # models): their start-up is the batch's fixed cost, and the check need not add to it.
        # No video is handed out before it passed (the pool's gate); if it fails, the pool
        # raises its error, and leaving the block stops the workers.
        with (
            concurrent.futures.ThreadPoolExecutor(1) as checker,
            ProcessPool(settings, devices, engine.jobs, crash_marker) as pool,
        ):
            pool.gate = checker.submit(_check, settings, log)
            started = [pool.start() for _ in devices]
            depth = pool.jobs + PREFETCH
            schedule(pool, todo, len(devices), depth=depth, started=started, **callbacks)
        return len(devices)
    # one device: this process, every video at once (concurrent decoders share the batches)
    predictor = settings.predictor()
    predictor.load()
    by_video = {j.video: j for j in todo}
    for job in todo:
        batch.on_start(job, "local")
    predictor.predict(
        [(j.video, j.stem) for j in todo],
        jobs=engine.jobs,
        on_result=lambda r: batch.on_result(by_video[r.video], replace(r, worker="local")),
    )
    return 1


def _check(settings: PredictSettings, log: Callable[[str], object]) -> None:
    """The driver's check of the checkpoints (:meth:`Predictor.check`), timed in the log."""
    seconds = settings.predictor("cpu").check()
    log(f"checkpoints checked in {seconds:.1f} s")


def _local_devices(settings: PredictSettings, workers: int | None) -> list[str]:
    """The devices of the local engine's workers: every visible GPU (at most ``workers``) when
    the device is auto or cuda and several are visible, else the one device."""
    from vidpose.config import load_config
    from vidpose.model_dir import model_members

    device = settings.device
    if device is None:
        first = model_members(settings.model_dir)[0][0]
        device = load_config(first.config).predict.device
    if device not in ("auto", "cuda"):
        return [device]
    import torch

    n = torch.cuda.device_count()
    if workers:
        n = min(n, workers)
    return [f"cuda:{i}" for i in range(n)] if n > 1 else [device]


# -- workers and the scheduler ----------------------------------------------------------------


@dataclass
class Died:
    """A worker died while it held a video."""

    reason: str


PREDICTED = "predicted"
"""What :meth:`WorkerPool.wait` may return for a job whose frames are predicted and whose
files are being written: the worker can take another video (it still holds this one)."""

DRAINED = "drained"
"""Sent to a local worker process once the scheduler has handed out every video."""

PREFETCH = 2
"""Videos a local worker holds beyond its decoders (``jobs``): enough to start a decoder as
soon as one is free, few enough that the last videos go to whichever worker frees first (with
as many queued as decoders, and videos counted until their files were written, one GPU of two
was handed 24 of 40 videos and the other sat idle for the last 11 s on the 2-GPU H200 host)."""


class WorkerPool(Protocol):
    """Workers that each predict the videos handed to them (Ray actors, local processes)."""

    jobs: int | None  # videos each decodes at once (None: each worker picks its own)
    starts: dict[str, dict[str, Any]]
    """Per worker that got ready: its ``device``, ``ready_s`` (seconds from :meth:`start` to
    ready, on the driver's clock) and what the worker timed itself (:func:`load_predictor`)."""

    def start(self) -> str:
        """Start one more worker; its name."""
        ...

    def ready(self, worker: str) -> bool:
        """Whether ``worker`` has loaded its models (videos go to ready workers only)."""
        ...

    def submit(self, worker: str, job: Job) -> None:
        """Hand ``job`` to ``worker``."""
        ...

    def drain(self, worker: str) -> None:
        """Tell ``worker`` that no more videos wait (:meth:`WorkerLoop.drain`)."""
        ...

    def wait(self, timeout: float) -> list[tuple[str, Job | None, VideoResult | Died | str]]:
        """What came back within ``timeout`` s: results, :data:`PREDICTED` for a job whose
        files are being written (optional), and for a worker that died one :class:`Died` per
        job it held (job None if it held none)."""
        ...


def schedule(
    pool: WorkerPool,
    todo: Sequence[Job],
    workers: int,
    *,
    depth: int | Callable[[str], int],
    on_start: Callable[[Job, str], None],
    on_result: Callable[[Job, VideoResult], None],
    on_requeue: Callable[[Job, str], None],
    on_ready: Callable[[str, dict[str, Any]], None] | None = None,
    started: Sequence[str] = (),
    max_retries: int = MAX_RETRIES,
) -> None:
    """Hand the videos to ``workers`` workers, at most ``depth`` each at a time (a number, or
    a worker's own from a function of its name; a video whose frames are predicted,
    :data:`PREDICTED`, no longer counts), the least busy ready worker first. A worker that
    dies is replaced and each of its videos handed to another, until a video has outlived
    ``max_retries`` workers (then it failed). Once workers have died
    ``workers * (max_retries + 1)`` times in a row without a video finishing, none is started
    any more, and what is left fails when none is alive. ``on_ready`` hears of each worker
    once it is ready, with its :attr:`WorkerPool.starts` entry. ``started``: workers the
    caller started already (counted among the ``workers``)."""
    waiting = deque(todo)
    held: dict[str, list[Job]] = {w: [] for w in started}
    held.update({pool.start(): [] for _ in range(workers - len(held))})
    alive = set(held)
    written: set[int] = set()  # jobs predicted, their files being written (by id)

    def busy(worker: str) -> int:
        return sum(id(j) not in written for j in held[worker])

    announced: set[str] = set()
    drained: set[str] = set()  # workers told that every video is handed out
    deaths_in_a_row, last_death = 0, ""
    while waiting or any(held.values()):
        ready = [w for w in alive if pool.ready(w)]
        for worker in sorted(set(ready) - announced):
            announced.add(worker)
            if on_ready is not None:
                on_ready(worker, dict(pool.starts.get(worker, {})))
        while waiting and ready:
            room = [w for w in ready if busy(w) < (depth(w) if callable(depth) else depth)]
            if not room:
                break
            worker = min(room, key=busy)
            job = waiting.popleft()
            held[worker].append(job)
            on_start(job, worker)
            pool.submit(worker, job)
        if not waiting:  # every video handed out: the workers split their last ones
            for worker in sorted(alive - drained):
                drained.add(worker)
                pool.drain(worker)
        if not alive and not any(held.values()):
            for job in waiting:
                on_result(job, VideoResult(job.video, job.stem, "failed", last_death))
            return
        for worker, job, outcome in pool.wait(timeout=1.0):
            if outcome is PREDICTED:
                if job is not None and job in held.get(worker, ()):
                    written.add(id(job))
                continue
            if job is not None:
                held[worker].remove(job)
                written.discard(id(job))
            if not isinstance(outcome, Died):
                assert job is not None
                deaths_in_a_row = 0
                on_result(job, replace(outcome, worker=worker))
                continue
            reason = f"worker {worker} died: {outcome.reason}"
            last_death = f"no worker left (last: {reason})"
            if worker in alive:  # the first news of its death: replace it
                alive.discard(worker)
                deaths_in_a_row += 1
                if deaths_in_a_row <= workers * (max_retries + 1):
                    new = pool.start()
                    held[new] = []
                    alive.add(new)
            if job is None:
                continue
            job.attempts += 1
            if job.attempts > max_retries:
                why = f"{job.attempts} workers died predicting it (last: {reason})"
                on_result(job, VideoResult(job.video, job.stem, "failed", why, worker=worker))
            else:
                on_requeue(job, reason)
                waiting.appendleft(job)


class WorkerLoop:
    """A worker's side: its loaded :class:`Predictor` fed from a queue. The videos stream
    into one prediction (:class:`~vidpose.predict.predictor.VideoFeed`): its decoders,
    decoder processes and captured graphs serve every video the worker gets, and a video
    starts as soon as a decoder is free; each video's result goes to ``on_result`` once its
    files are in place.
    """

    def __init__(
        self,
        predictor: Predictor,
        jobs: int,
        on_result: Callable[[VideoResult], object],
        crash_marker: str | None = None,
        on_predicted: Callable[[Path], object] | None = None,
    ) -> None:
        self.predictor = predictor
        self.jobs = jobs
        self.on_result = on_result
        self.on_predicted = on_predicted
        self.crash_marker = crash_marker
        self.inbox: queue.Queue = queue.Queue()
        self._closed = False
        self._drained = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="vidpose-worker")
        self.thread.start()

    def put(self, video: Path, stem: str) -> None:
        self.inbox.put((video, stem))

    def drain(self) -> None:
        """The scheduler has no more videos for now: split the last ones so that every decoder
        has a part of them to the end (more may still come: a dead worker's, say)."""
        self._drained.set()

    def close(self) -> None:
        """Predict what was put, then stop."""
        self.inbox.put(None)
        self.thread.join()

    def _feed(self) -> Iterator[tuple[Path, str]]:
        while (item := self.inbox.get()) is not None:
            if self.crash_marker:
                _crash_once(self.crash_marker)
            yield item
        self._closed = True

    def _run(self) -> None:
        while not self._closed:  # a new prediction only after a bug stopped the last one
            self._serve()

    def _serve(self) -> None:
        taken: dict[Path, str] = {}
        lock = threading.Lock()

        def feed() -> Iterator[tuple[Path, str]]:
            for video, stem in self._feed():
                with lock:
                    taken[video] = stem
                yield video, stem

        def on_result(result: VideoResult) -> None:
            with lock:
                taken.pop(result.video, None)
            self.on_result(result)

        try:
            self.predictor.predict(
                feed(),
                jobs=self.jobs,
                on_result=on_result,
                waiting=self.inbox.qsize,
                drained=self._drained.is_set,
                on_predicted=self.on_predicted,
            )
        except Exception as exc:  # a bug: fail the videos taken, keep the worker serving
            why = f"the worker failed: {type(exc).__name__}: {exc}"
            with lock:
                left = list(taken.items())
            if not left:  # it failed before taking any: fail the next, so that the loop moves
                item = self.inbox.get()
                if item is None:
                    self._closed = True
                    return
                left = [item]
            for video, stem in left:
                self.on_result(VideoResult(video, stem, "failed", why))


def _crash_once(marker: str) -> None:
    """Exit this process at once if ``marker`` does not exist yet (creating it): tests."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


class FutureResults:
    """Per-video futures over a :class:`WorkerLoop`: ``submit(video, stem).result()`` once its
    files are written, ``predicted(video).result()`` once its frames are predicted (True), or
    once it failed before (False)."""

    def __init__(self, predictor: Predictor, jobs: int, crash_marker: str | None) -> None:
        self._futures: dict[Path, Future] = {}
        self._predicted: dict[Path, Future] = {}  # told, or asked about, not both yet
        self._asked: set[Path] = set()
        self._was_predicted: set[Path] = set()  # told True, result not given yet
        self._lock = threading.Lock()
        self.loop = WorkerLoop(
            predictor, jobs, self._done, crash_marker, on_predicted=self._on_predicted
        )

    def submit(self, video: Path, stem: str) -> Future:
        fut: Future = Future()
        with self._lock:
            self._futures[video] = fut
        self.loop.put(video, stem)
        return fut

    def drain(self) -> None:
        """No more videos for now (:meth:`WorkerLoop.drain`)."""
        self.loop.drain()

    def predicted(self, video: Path) -> Future:
        """The future of ``video``'s prediction, asked for before or after :meth:`submit` or
        its result (each video's once)."""
        with self._lock:
            fut = self._predicted.setdefault(video, Future())
            if fut.done():  # told already: nothing more will come for it
                del self._predicted[video]
            else:
                self._asked.add(video)
            return fut

    def _tell(self, video: Path, predicted: bool) -> None:
        with self._lock:
            fut = self._predicted.setdefault(video, Future())
            if not fut.done():
                fut.set_result(predicted)
            if video in self._asked:  # the asker holds it: forget it here
                self._asked.discard(video)
                del self._predicted[video]

    def _on_predicted(self, video: Path) -> None:
        with self._lock:
            self._was_predicted.add(video)
        self._tell(video, True)

    def _done(self, result: VideoResult) -> None:
        with self._lock:
            fut = self._futures.pop(result.video)
            told = result.video in self._was_predicted
            self._was_predicted.discard(result.video)
        if not told:  # it failed before its frames were predicted
            self._tell(result.video, False)
        fut.set_result(result)


# -- local processes, one per GPU -------------------------------------------------------------


def load_predictor(
    settings: PredictSettings, device: str | None = None
) -> tuple[Predictor, dict[str, Any]]:
    """A worker's start: its :class:`Predictor` loaded on ``device`` (None: the settings'),
    and how long the parts took: ``device_s``, the GPU's start-up (the CUDA context, made here
    so that it is counted); ``load_s``, reading and building the models; and the ``device``
    the models are on."""
    import torch

    t0 = time.perf_counter()
    if device is not None and device.startswith("cuda"):
        torch.cuda.set_device(device)  # streams and captured graphs use the current device
        torch.zeros(1, device=device)
    t1 = time.perf_counter()
    predictor = settings.predictor(device)
    predictor.load()
    t2 = time.perf_counter()
    timings: dict[str, Any] = {"device_s": round(t1 - t0, 3), "load_s": round(t2 - t1, 3)}
    if predictor.models:
        timings["device"] = str(predictor.models[0].device)
    return predictor, timings


def _process_main(
    settings, device, jobs, name, inbox, results, crash_marker, cores, driver
) -> None:
    """A local worker process: load the models on ``device``, then predict what comes in.
    Sends ``(name, "ready", timings)`` (:func:`load_predictor`), ``(name, "result",
    VideoResult)`` or, when the models
    cannot be loaded, ``(name, "error", reason)``. ``cores``: the CPU cores it runs on (its
    share of the machine's, so that the workers' decoders do not compete for the same ones),
    or None for all. ``driver``: the process id of the run that started it; the worker stops
    when that process is gone (it is not a daemon, so that it may start decoder processes,
    and must not outlive a killed run)."""
    entered = time.monotonic()  # the system's clock: the driver's start() is on it too
    pin_to(cores)  # first: the threads and processes started below inherit it
    import torch

    forked = writers = False
    if device.startswith("cuda"):  # before its CUDA context, which a fork must not copy
        forked = _prestart_decoders(settings, device, jobs)
        writers = forked and _prestart_writers(settings, device)
    else:  # CPU workers share the cores
        torch.set_num_threads(max(1, usable_cpus() // max(1, jobs)))
    try:
        predictor, timings = load_predictor(settings, device)
    except Exception as exc:
        results.put((name, "error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    timings["decoders_forked"] = forked
    timings["writers_forked"] = writers
    timings["entered"] = entered
    results.put((name, "ready", timings))
    loop = WorkerLoop(
        predictor,
        jobs,
        lambda r: results.put((name, "result", r)),
        crash_marker,
        on_predicted=lambda v: results.put((name, "predicted", str(v))),
    )
    while True:
        try:
            item = inbox.get(timeout=2.0)
        except queue.Empty:
            if pid_alive(driver) is False:
                os._exit(1)  # the run was killed: its results have nowhere to go
            continue
        if item is None:
            break
        if item == DRAINED:
            loop.drain()
            continue
        loop.put(Path(item[0]), item[1])
    loop.close()


def _prestart_decoders(settings: PredictSettings, device: str, jobs: int) -> bool:
    """Fork the decoder processes a GPU worker will use now, before it loads its models
    (:func:`~vidpose.predict.decoders.prestart`): a worker started by the fork server would
    otherwise wait for a fork server of its own to import torch again before its first video
    is decoded. Nothing happens when the models do not decode in processes, or when anything
    here fails (the prediction then starts its decoders as usual, and says what is wrong).
    Returns whether decoders were started."""
    from vidpose.config import load_config
    from vidpose.model_dir import model_members
    from vidpose.predict.decoders import prestart
    from vidpose.predict.processes import decode_in_processes

    try:
        cfg = load_config(model_members(settings.model_dir)[0][0].config).predict
        reader = settings.reader or cfg.reader
        if not decode_in_processes(cfg.decoders, device, reader):
            return False
        bs = settings.batch_size or cfg.batch_size
        # what _MultiVideo._start_processes asks for on a GPU: planes, its batch, PyAV
        return prestart(jobs, bs, "pyav" if reader == "auto" else reader, planar=True)
    except Exception:
        return False


def _prestart_writers(settings: PredictSettings, device: str) -> bool:
    """Fork a GPU worker's table writers now too (:func:`~vidpose.predict.run.prestart_writers`),
    when its decoders were: the tables are then written in processes, whose pool would
    otherwise wait for the worker's own fork server at its first video. Whether they were."""
    from vidpose.predict.run import prestart_writers

    try:
        return prestart_writers(settings.predictor(device).writer_modules())
    except Exception:  # only a head start
        return False


class ProcessPool:
    """One worker process per device of this machine (from a fork server, or spawned: never
    forked from this process, which may hold a CUDA context)."""

    def __init__(
        self,
        settings: PredictSettings,
        devices: list[str],
        jobs: int | None,
        crash_marker: str | None,
    ) -> None:
        from vidpose.predict.predictor import default_jobs
        from vidpose.predict.processes import worker_context

        self.ctx = worker_context()  # not forked from this process: CUDA may be initialised
        self.settings = settings
        self.free = list(devices)
        # each device's worker runs on its own share of the cores (a restarted one too)
        shares = cpu_shares(len(devices)) if len(devices) > 1 else None
        self.cores = dict(zip(devices, shares)) if shares else {}
        config = settings.predictor().members[0].config
        processes = decodes_in_processes(config, devices[0] if devices else None)
        self.jobs = jobs or default_jobs(processes, len(shares[0]) if shares else None)
        self.crash_marker = crash_marker
        self.results = self.ctx.Queue()
        self.procs: dict[str, tuple[Any, Any, str]] = {}  # name -> (process, inbox, device)
        self.held: dict[str, dict[str, Job]] = {}  # name -> normalised video path -> job
        self.loaded: set[str] = set()
        self.errors: dict[str, str] = {}
        self.starts: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}  # name -> when start() started it
        self._n = 0
        self.gate: concurrent.futures.Future | None = None
        """A check that must pass before any worker counts as ready (its error is raised by
        :meth:`wait`)."""

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        for _, inbox, _ in self.procs.values():
            inbox.put(None)
        deadline = time.monotonic() + 10
        for proc, _, _ in self.procs.values():
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()

    def start(self) -> str:
        device = self.free.pop(0)
        name = f"{device}#{self._n}"
        self._n += 1
        inbox = self.ctx.Queue()
        proc = self.ctx.Process(
            target=_process_main,
            args=(
                self.settings,
                device,
                self.jobs,
                name,
                inbox,
                self.results,
                self.crash_marker,
                self.cores.get(device),
                os.getpid(),
            ),
            # not a daemon: a daemon may not start processes, and a worker starts its decoder
            # processes (predict.decoders=processes); __exit__ stops it, and it stops itself
            # when this process is gone
            daemon=False,
            name=f"vidpose-{name}",
        )
        self._started[name] = time.monotonic()  # before: the first start starts the fork server
        from vidpose.predict.processes import main_hidden

        with main_hidden():
            proc.start()
        self.procs[name] = (proc, inbox, device)
        self.held[name] = {}
        return name

    def ready(self, worker: str) -> bool:
        return worker in self.loaded and (self.gate is None or self.gate.done())

    def submit(self, worker: str, job: Job) -> None:
        self.held[worker][normalized_path(job.video)] = job
        self.procs[worker][1].put((normalized_path(job.video), job.stem))

    def drain(self, worker: str) -> None:
        if worker in self.procs:
            self.procs[worker][1].put(DRAINED)

    def wait(self, timeout: float) -> list[tuple[str, Job | None, VideoResult | Died]]:
        out: list[tuple[str, Job | None, VideoResult | Died]] = []
        deadline = time.monotonic() + timeout
        gated = self.gate is not None and not self.gate.done()
        while True:
            if self.gate is not None and self.gate.done():
                self.gate.result()  # raises the check's error
                if gated:  # it just passed: the workers loaded already are ready now
                    return out
            loaded = len(self.loaded)
            self._drain(out, min(0.05, max(0.0, deadline - time.monotonic())))
            for name, (proc, _, device) in list(self.procs.items()):
                if proc.is_alive():
                    continue
                self._drain(out, 0.0)  # what it sent before it died still counts
                why = self.errors.get(name) or f"its process exited with code {proc.exitcode}"
                jobs = list(self.held.pop(name).values())
                out += [(name, job, Died(why)) for job in jobs] or [(name, None, Died(why))]
                del self.procs[name]
                self.loaded.discard(name)
                self.free.append(device)
            if out or len(self.loaded) > loaded or time.monotonic() >= deadline:
                return out

    def _drain(self, out: list, timeout: float) -> None:
        """Move what the workers sent into ``out`` (waiting up to ``timeout`` s for it)."""
        try:
            item = self.results.get(timeout=timeout) if timeout > 0 else self.results.get_nowait()
            while True:
                name, kind, payload = item
                if kind == "ready":
                    self.loaded.add(name)
                    timings = dict(payload or {})
                    entered = timings.pop("entered", None)
                    self.starts[name] = {
                        "ready_s": round(time.monotonic() - self._started[name], 3),
                        **timings,
                    }
                    if entered is not None:  # from start() until its code ran
                        self.starts[name]["process_s"] = round(entered - self._started[name], 3)
                elif kind == "error":
                    self.errors[name] = payload
                elif kind == "predicted":  # its files are being written: still held
                    job = self.held.get(name, {}).get(normalized_path(payload))
                    if job is not None:
                        out.append((name, job, PREDICTED))
                elif normalized_path(payload.video) in self.held.get(name, {}):
                    out.append((name, self.held[name].pop(normalized_path(payload.video)), payload))
                item = self.results.get_nowait()
        except queue.Empty:
            return


# -- the report -------------------------------------------------------------------------------


def write_report(report: BatchReport, settings: PredictSettings) -> None:
    """``predict_report.csv`` (one row per video) and ``predict_report.json`` (the same, with
    the totals and settings), written atomically. A multi-camera model's report adds to each
    video its ``session`` and the session's 3D table (``points3d``; empty without one), and to
    the JSON one entry per session (status, reason, views triangulated, views missing, the
    table, the agreement summary)."""
    out = report.out_dir
    session_of = {normalized_path(video): s for s in report.sessions for video in s.videos.values()}
    rows = []
    for r in report.videos:
        row = {
            "video": str(r.video),
            "status": r.status,
            "reason": r.reason,
            "frames": r.frames,
            "seconds": round(r.seconds, 3),
            "fps": round(r.fps, 1) if r.seconds > 0 else None,
            "outputs": [_relative(p, out) for p in r.outputs],
            "stem": r.stem,
            "worker": r.worker,
        }
        if report.sessions:
            s = session_of.get(normalized_path(r.video))
            row["session"] = s.session if s is not None else None
            table = s.table if s is not None and s.status != "failed" else None
            row["points3d"] = _relative(table, out) if table is not None else ""
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["video"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "outputs": ";".join(row["outputs"])})
    atomic_write_text(out / REPORT_CSV, buf.getvalue())
    summary = {s: report.count(s) for s in ("ok", "failed", "skipped")}
    summary.update(
        frames=report.frames,
        seconds=round(report.seconds, 3),
        fps=round(report.fps, 1) if report.seconds > 0 else None,
    )
    doc: dict[str, Any] = {
        "engine": report.engine,
        "workers": report.workers,
        "settings": settings.identity(),
        "summary": summary,
        "videos": rows,
    }
    if report.worker_starts:
        doc["worker_starts"] = report.worker_starts
    if report.views:
        doc["views"] = list(report.views)
    if report.sessions:
        summary["sessions"] = {
            st: sum(s.status == st for s in report.sessions)
            for st in ("ok", "partial", "skipped", "incomplete", "failed")
        }
        doc["sessions"] = [
            {
                "session": s.session,
                "status": s.status,
                "reason": s.reason,
                "points3d": _relative(s.table, out) if s.table is not None else None,
                "frames": s.frames,
                "seconds": round(s.seconds, 3),
                "views": s.views,
                "missing": s.missing,
                "videos": s.videos,
                "triangulation": s.summary,
            }
            for s in report.sessions
        ]
    atomic_write_text(out / REPORT_JSON, json.dumps(doc, indent=1) + "\n")


def _relative(path: Path, out: Path) -> str:
    try:
        return Path(path).relative_to(out).as_posix()
    except ValueError:
        return str(path)
