"""Predict videos with a model directory or an ensemble directory, writing the standard files.

For a model ``M`` and video ``v.mp4`` (``OUT`` defaults to ``M/videos``)::

    OUT/v.csv                        predictions (DeepLabCut / Lightning Pose layout)
    OUT/v_temporal_norm.csv, ...     per-frame metrics (see vidpose.predict.metrics)

For an ensemble directory each member writes into ``OUT/<member>/``, ``OUT/v.csv`` is the
Kalman-smoothed ensemble (x, y, likelihood) and ``OUT/v_ensemble.csv`` adds its ensemble median,
variance and posterior variance columns (Lightning Pose's / EKS's names).

Videos of one call that share a file name (``cam1/v.mp4``, ``cam2/v.mp4``) get outputs named
with as many parent folders as tell them apart (``cam1_v.csv``, ``cam2_v.csv``); see
:func:`output_stems`. ``OUT/.vidpose-sources.json`` records which video each output came from,
so that a later call with another video of the same name does not overwrite it either (its
output gets a name with its parent folders; predicting the same video again replaces its own).

A batch never stops at a bad video: every video is checked before the model is loaded, every
good one is predicted, and the bad ones come back in :attr:`PredictResult.failed` with the
reason.

:class:`Predictor` is the one path from videos to files: the models loaded once, videos
predicted with concurrent decoders, each video's tables, metrics and smoothed table written,
then one :class:`VideoResult` per video. :func:`predict_videos` and
the batch engines of :mod:`vidpose.predict.batch` (a resumable ledger, several GPUs, Ray)
both call it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpose._atomic import atomic_write_text, commit_staged, discard_staged
from vidpose.errors import ConfigError, VideoError, VidposeError
from vidpose.model_dir import model_members
from vidpose.predict.processes import decode_in_processes
from vidpose.video import probe_video

if TYPE_CHECKING:
    from vidpose.predict.predictor import PredictStats


@dataclass
class PredictResult:
    """What :func:`predict_videos` did, keyed by the video paths as they were given.

    Attributes:
        outputs: video -> its final predictions table (the smoothed one for an ensemble).
        failed: video -> why it has no predictions (missing, not a video, failed to decode).
        names: video -> the output stem used for it (its file stem unless stems collided).
        members: video -> each ensemble member's predictions table (one entry for a model).
    """

    outputs: dict[Path, Path] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    names: dict[Path, str] = field(default_factory=dict)
    members: dict[Path, list[Path]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def failure_lines(self) -> list[str]:
        """One ``video: reason`` line per failed video."""
        return [f"{video}: {reason}" for video, reason in self.failed.items()]

    def raise_failures(self) -> None:
        """VideoError listing every failed video, if any failed."""
        if self.failed:
            raise VideoError(
                f"{len(self.failed)} video(s) could not be predicted: "
                + "; ".join(self.failure_lines())
            )


def normalized_path(path: str | Path) -> str:
    """The absolute, normalised spelling of ``path`` (symlinks kept) that outputs are keyed by."""
    # absolute without resolving symlinks: names follow the folders the user gave
    return os.path.normpath(Path(path).absolute())


def output_stems(videos: Sequence[str | Path]) -> dict[Path, str]:
    """Video -> output stem: the file stem, or, for videos whose stems collide (ignoring
    case, for case-insensitive file systems), the stem prefixed with as many parent folders
    as tell them apart (``cam1/s.mp4``, ``cam2/s.mp4`` -> ``cam1_s``, ``cam2_s``); the
    extension is added for the same stem in the same folder (``s.mp4``, ``s.avi`` ->
    ``s_mp4``, ``s_avi``). The same file given twice gets one name."""
    paths = [Path(v) for v in videos]
    unique: dict[str, Path] = {}
    for p in paths:
        unique.setdefault(normalized_path(p), p)
    norms = list(unique)
    folders = [Path(n).parent.parts[1:] for n in norms]
    depth = [0] * len(norms)
    ext = [False] * len(norms)

    def name(i: int) -> str:
        p = unique[norms[i]]
        stem = f"{p.stem}_{p.suffix.lstrip('.')}" if ext[i] and p.suffix else p.stem
        parents = folders[i][len(folders[i]) - depth[i] :] if depth[i] else ()
        return "_".join([*parents, stem])

    for _ in range(64):  # each round lengthens every clashing name that can grow
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(norms)):
            groups[name(i).lower()].append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            break
        for group in clashes:
            for i in group:
                if not ext[i] and any(folders[j] == folders[i] for j in group if j != i):
                    ext[i] = True  # same folder: only the extension tells them apart
                elif depth[i] < len(folders[i]):
                    depth[i] += 1
    final = [name(i) for i in range(len(norms))]
    # what still clashes differs in letter case alone: a counter keeps them apart
    count: dict[str, int] = defaultdict(int)
    for i, nm in enumerate(final):
        count[nm.lower()] += 1
        if count[nm.lower()] > 1:
            final[i] = f"{nm}_{count[nm.lower()]}"
    by_norm = dict(zip(norms, final))
    return {p: by_norm[normalized_path(p)] for p in paths}


def _check_formats(formats: Sequence[str], ensemble: bool) -> tuple[str, ...]:
    """The table formats to write, as extensions without the dot (any in the format registry).

    An ensemble's first format holds the smoothed table and its statistics columns, so it must
    be one that holds every column (an ``exact`` format: csv, h5).
    """
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    if out == ("csv",):  # the default: known without loading every format's module (0.9 s of
        return out  # `vidpose predict`'s start on the H100 host; the writers load meanwhile)
    from vidpose.io import FORMATS

    known = {e.lstrip("."): f for f in FORMATS for e in f.extensions}
    bad = [f for f in out if f not in known]
    if not out or bad:
        raise ConfigError(
            f"--format: expected one or more of {', '.join(known)} (e.g. csv,h5), "
            f"got {','.join(formats)!r}"
        )
    if ensemble and not known[out[0]].exact:
        exact = ", ".join(e for e, f in known.items() if f.exact)
        raise ConfigError(
            f"--format: an ensemble's smoothed table and its statistics go to the first format, "
            f"which must hold every column ({exact}): e.g. --format csv,{','.join(out)}"
        )
    return out


def _preload_writers() -> None:
    import contextlib

    with contextlib.suppress(Exception):  # a real import error shows where the writer runs
        import vidpose.io.csv_format
        import vidpose.predict.metrics  # noqa: F401


WRITERS = 4
"""Threads writing prediction tables while later videos are predicted."""

SOURCES_FILE = ".vidpose-sources.json"
"""In an output folder: output stem -> the video (absolute path) it was predicted from."""


def read_sources(out_dir: Path) -> dict[str, str]:
    """The output folder's record of which video each output stem came from ({} if none or
    unreadable: a damaged record must not stop prediction)."""
    try:
        data = json.loads((out_dir / SOURCES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def avoid_earlier_outputs(stems: dict[Path, str], sources: Mapping[str, str]) -> dict[Path, str]:
    """``stems`` with every name an earlier call gave to *another* video replaced by one with
    the video's parent folders (``cam2_session``), then a counter, so that no output of another
    video is overwritten."""
    taken = {k.lower(): v for k, v in sources.items()}
    mine = {n.lower() for n in stems.values()}
    out = dict(stems)
    for video, name in stems.items():
        owner = taken.get(name.lower())
        if owner is None or owner == normalized_path(video):
            continue
        parents = Path(normalized_path(video)).parent.parts[1:]
        candidates = [
            "_".join([*parents[len(parents) - d :], name]) for d in range(1, len(parents) + 1)
        ]
        candidates += [f"{name}_{i}" for i in range(2, 1000)]
        for c in candidates:
            holder = taken.get(c.lower())
            if (holder is None or holder == normalized_path(video)) and c.lower() not in mine:
                out[video] = c
                mine.add(c.lower())
                break
    return out


def _reason(video: Path, exc: BaseException) -> str:
    """The message of ``exc`` without the leading ``video:`` (it is printed beside it)."""
    msg = str(exc).strip()
    for prefix in (f"{video}: ", f"{video}:"):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    if isinstance(exc, VidposeError):
        return msg
    return f"{type(exc).__name__}: {msg}"


def check_path(video: Path) -> str | None:
    """Why ``video`` cannot be predicted, or None if it is a file (not opened: see
    :func:`check_video`)."""
    if not video.exists():
        return "no such file"
    if not video.is_file():
        if video.is_dir():
            return "is a folder with no video in it (files ending in .mp4, .avi, .mov, .mkv)"
        return "not a regular file"
    return None


def check_video(video: Path) -> str | None:
    """Why ``video`` cannot be predicted, or None if it can be opened as a video."""
    why = check_path(video)
    if why is not None:
        return why
    try:
        probe_video(video)
    except (VidposeError, OSError) as exc:
        return _reason(video, exc)
    return None


def assign_stems(
    videos: Sequence[Path],
    out_dir: Path,
    names: Mapping[Path, str] | None = None,
    reserved: Sequence[str] = (),
) -> dict[Path, str]:
    """Video -> output stem in ``out_dir``: the name an earlier call gave the video there (so
    that its outputs stay where they are), else ``names``' or :func:`output_stems`' name,
    never one that ``out_dir`` records for another video (:func:`avoid_earlier_outputs`) nor
    one of ``reserved`` (stems of other files there)."""
    stems = output_stems(videos)
    sources = {**read_sources(out_dir), **{r: "" for r in reserved}}
    earlier = {video: stem for stem, video in sources.items()}
    stems.update({v: earlier[normalized_path(v)] for v in stems if normalized_path(v) in earlier})
    if names:
        stems.update({Path(v): n for v, n in names.items() if Path(v) in stems})
    return avoid_earlier_outputs(stems, sources)


def claim_stems(out_dir: Path, stems: Mapping[Path, str]) -> None:
    """Record in ``out_dir``'s sources file that each stem belongs to its video (before
    predicting: an interrupted run's partial outputs keep their owner)."""
    sources = read_sources(out_dir)
    sources.update({stem: normalized_path(v) for v, stem in stems.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SOURCES_FILE, json.dumps(sources, indent=1) + "\n")


@dataclass
class VideoResult:
    """What became of one video: predicted (``ok``), ``failed`` or ``skipped`` (a batch found
    its outputs complete from an earlier run).

    Attributes:
        video: the video, as given.
        stem: its output stem.
        status: "ok", "failed" or "skipped".
        reason: why it failed (or why it was skipped).
        frames: frames predicted; seconds: the time it took (decoding, network, writing).
        table: the final predictions table (an ensemble's smoothed one).
        members: each member's predictions table (the table itself for a single model).
        outputs: every file written for it, ``table`` first (tables in every format, the
            per-frame metrics, an ensemble's members and statistics).
        sizes: the size of each of ``outputs`` in bytes, as written.
        worker: which worker predicted it (batches over several workers).
    """

    video: Path
    stem: str
    status: str = "ok"
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    table: Path | None = None
    members: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    worker: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def decodes_in_processes(config: Path, device: str | None = None) -> bool:
    """Whether a model's videos will likely be decoded in worker processes
    (:func:`~vidpose.predict.processes.decode_in_processes`), from its saved config and the
    ``device`` asked for, without torch (``vidpose.config`` imports it): it only decides
    whether to start their fork server early. A device left to auto counts as a GPU where the
    NVIDIA driver is there and ``CUDA_VISIBLE_DEVICES`` does not hide every GPU. False when the
    config cannot be read (loading the model says why)."""
    import yaml

    try:
        cfg = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
        predict = cfg.get("predict") or {}
        decoders = predict.get("decoders", "auto")
        device = str(device or predict.get("device") or "auto")
        reader = str(predict.get("reader") or "auto")
    except Exception:
        return False
    if device == "auto":
        device = "cuda" if _gpu_present() else "cpu"
    return decode_in_processes(decoders, device, reader)


def _gpu_present() -> bool:
    return Path("/dev/nvidiactl").exists() and os.environ.get("CUDA_VISIBLE_DEVICES") != ""


class Predictor:
    """A model or ensemble directory's models, loaded once, predicting videos into one folder.

    :meth:`predict` takes (video, output stem) pairs and reports each video once all of its
    files are in place (it may be called again with more videos). :func:`predict_videos` and
    the batch engines (``vidpose.predict.batch``) both predict through it.

    Raises:
        ModelDirError: ``model_dir`` is not a complete model or ensemble.
        ConfigError: bad ``formats``.
    """

    def __init__(
        self,
        model_dir: str | Path,
        out_dir: str | Path | None = None,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        reader: str | None = None,
        compile: bool | None = None,
        formats: Sequence[str] = ("csv",),
        dlc_names: bool = False,
        log: Callable[[str], object] = lambda _msg: None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.members, self.ensemble = model_members(self.model_dir)
        self.formats = _check_formats(formats, self.ensemble)
        self.out_dir = Path(out_dir or (self.model_dir / "videos"))
        self.batch_size, self.reader, self.dlc_names = batch_size, reader, dlc_names
        self._load_args = (device, precision, compile)
        self.log = log
        self.models: list = []

    def load(self, *, decoders: bool = True) -> None:
        """Load every member's network (once).

        ``decoders``: when the models' frames are to be decoded in worker processes
        (``predict.decoders: processes``), start those workers' fork server first, so that its
        imports run while this process imports torch and loads the models instead of after
        (False for a load that only checks the checkpoints).

        Raises:
            ModelDirError: a checkpoint cannot be loaded.
            ConfigError: a bad device or precision.
        """
        if self.models:
            return
        device = self._load_args[0]
        # (not in a GPU worker that forked its decoders and writers ahead: none is needed)
        if decoders and decodes_in_processes(self.members[0].config, device) and not _SPARE_WRITERS:
            from vidpose.predict.processes import start_server

            if start_server():
                # and the table writers' processes, which import pandas (~1.3 s) while the
                # models load and the videos are predicted: started at the first video, they
                # were still importing when a one-video `vidpose predict` was done predicting
                # (py-spy, H200 host: its last 1.5 s waited for them; session 18)
                start_writers_early(self.writer_modules())
        # torch and the network's code load here, not at import: a batch whose videos are
        # all done (the ledger says so) starts and ends without them
        device, _, compile = self._load_args
        for model in self._loaded_members(device):
            if model.cfg.predict.compile if compile is None else compile:
                model.compile()
            self.models.append(model)

    def _loaded_members(self, device: str | None, **options: Any) -> Iterator[Any]:
        """Each member's model loaded on ``device`` in turn (the later ones built like the
        first: ``load_model(like=)``); ``options`` go to ``load_model``."""
        from vidpose.predict.predictor import load_model

        first = None
        for member in self.members:
            model = load_model(
                member.path, device=device, precision=self._load_args[1], like=first, **options
            )
            first = first or model
            yield model

    def check(self) -> float:
        """Load every member's checkpoint on the CPU as :meth:`load` does, and drop it: what a
        batch's driver runs once so that a damaged checkpoint is one error, not the death of
        every worker. Without the speed-ups that only change how fast it predicts (no batch
        norms folded, with their probe forwards; no compiled package). Returns its seconds.

        Raises:
            ModelDirError: a checkpoint cannot be loaded.
            ConfigError: a bad precision.
        """
        t0 = time.perf_counter()
        for _ in self._loaded_members("cpu", aot=False, fold=False):
            pass
        return time.perf_counter() - t0

    def predict(
        self,
        videos: Sequence[tuple[Path, str]] | Iterable[tuple[Path, str]],
        *,
        jobs: int | None = None,
        progress: bool = False,
        on_result: Callable[[VideoResult], object],
        waiting: Callable[[], int] | None = None,
        on_predicted: Callable[[Path], object] | None = None,
        drained: Callable[[], bool] | None = None,
    ) -> None:
        """Predict every (video, output stem) of ``videos`` into the output folder.

        ``videos`` may be a list or any iterable, such as a
        :class:`~vidpose.predict.predictor.VideoFeed` whose videos arrive while the first ones
        are predicted (a worker's queue: the decoders and captured graphs serve them all);
        ``waiting()`` says how many are ready to be taken, and ``drained()`` whether nothing
        will come beyond them (a feed's own by default; then the last videos are split so that
        every decoder has a part to the end).

        ``on_result`` gets one :class:`VideoResult` per video, ok or failed, only once all of
        that video's files are written; it is called from writer threads, and must be
        thread-safe. A video that fails is reported and the others are predicted; nothing is
        written for it. A video must not be in two calls running at once. ``on_predicted``
        hears of each video as soon as its frames are predicted, before its files are written
        (a scheduler may then hand out the next video); of a video that fails, only
        ``on_result`` hears.
        """
        self.load()
        from vidpose.predict.predictor import (
            predict_with_members,
            shares_frames,
            uses_decoder_processes,
        )

        # beside decoder processes, tables are written in processes too (their fork server
        # runs, and the predicting thread's GIL is worth sparing); threads import what they
        # need while the first videos are predicted
        processes = uses_decoder_processes(self.models[0], self.reader)
        writing = self.writer_modules()
        # with writer processes, they import these themselves as they start (below)
        imports = _import_in_background([] if processes else writing)
        lock = threading.Lock()
        stems: dict[Path, str] = {}  # taken and not reported yet
        if isinstance(videos, Sequence):
            stems.update((Path(v), stem) for v, stem in videos)
            paths: Sequence[Path] | Iterable[Path] = list(stems)
        else:
            waiting = waiting or getattr(videos, "waiting", None)
            drained = drained or getattr(videos, "drained", None)

            def taken() -> Iterator[Path]:
                for video, stem in videos:
                    with lock:
                        stems[Path(video)] = stem
                    yield Path(video)

            paths = taken()

        def report(result: VideoResult) -> None:
            with lock:
                if stems.pop(result.video, None) is None:
                    return
            on_result(result)

        def done(video: Path, res, stats: PredictStats | None) -> None:
            if on_predicted is not None and not isinstance(res, BaseException):
                on_predicted(video)
            with lock:
                stem = stems[video]
            if isinstance(res, BaseException):  # one bad video must not cost the others
                report(VideoResult(video, stem, "failed", _reason(video, res)))
            else:
                writers.submit(spec, (video, stem, res, stats), report)

        common = dict(batch_size=self.batch_size, reader=self.reader, progress=progress)
        error: Exception | None = None
        # Tables are written by a small pool while the next videos are predicted.
        spec = self.outputs()
        writers = _Writers(processes, self.log, warm=writing)
        with contextlib.closing(writers):
            try:
                if len(self.models) == 1:
                    self.models[0].predict_videos(
                        paths,
                        jobs=jobs,
                        on_done=lambda v, r, st: done(
                            v, r if isinstance(r, BaseException) else [r], st
                        ),
                        waiting=waiting,
                        drained=drained,
                        **common,
                    )
                elif shares_frames(self.models):  # each frame decoded once for every member
                    predict_with_members(
                        self.models,
                        paths,
                        jobs=jobs,
                        on_done=done,
                        waiting=waiting,
                        drained=drained,
                        **common,
                    )
                else:
                    for video in paths:
                        self._predict_one_by_one(video, done, common)
            except Exception as exc:  # videos already taken are reported; nothing is lost
                error = exc
        with lock:  # what is left was taken and never reported: nothing is lost silently
            left = list(stems.items())
        reason = (
            f"prediction stopped: {type(error).__name__}: {error}"
            if error is not None
            else "no result came back (a bug in vidpose; please report it)"
        )
        for video, stem in left:
            report(VideoResult(video, stem, "failed", reason))
        imports.join()

    def writer_modules(self) -> list[str]:
        """What the table writers import (an ensemble's smoothing too)."""
        return [
            "vidpose.io",
            "vidpose.predict.metrics",
            *(["vidpose.smooth"] if self.ensemble else []),
        ]

    def _predict_one_by_one(self, video: Path, done: Callable, common: dict) -> None:
        """Every member in turn on ``video`` (members that cannot share decoded frames)."""
        from vidpose.predict.predictor import PredictStats

        stats: list[PredictStats] = []
        try:
            poses = [m.predict_video(video, stats=stats, **common) for m in self.models]
        except Exception as exc:
            done(video, exc, None)
            return
        invalid = sorted(set().union(*(s.invalid_frames for s in stats)))
        seconds = sum(s.seconds for s in stats)
        done(video, poses, PredictStats(stats[0].frames, seconds, invalid))

    def outputs(self) -> Outputs:
        """Where and how this predictor writes a video's files."""
        return Outputs(
            self.out_dir, tuple(self.members), self.ensemble, tuple(self.formats), self.dlc_names
        )


@dataclass(frozen=True)
class Outputs:
    """Where and how a video's files are written (picklable: writer processes get it).

    Attributes:
        out_dir: the output folder.
        members: the models' directories (one, or an ensemble's members).
        ensemble: whether ``members`` are an ensemble's (a folder each, and a smoothed table).
        formats: table formats, the first one the main table's.
        dlc_names: DeepLabCut's file names (``<stem>DLC_<scorer>``).
    """

    out_dir: Path
    members: tuple
    ensemble: bool
    formats: tuple[str, ...]
    dlc_names: bool


def write_outputs(
    spec: Outputs, video: Path, stem: str, poses: list, stats: PredictStats
) -> tuple[VideoResult, list[str]]:
    """Write every member's tables and metrics, then an ensemble's smoothed table; (the
    result, the lines to log). Runs in a writer thread or process: every file is written
    atomically, and a failure is the video's result, not an exception."""
    t0 = time.perf_counter()
    members: list = []
    for i, member_poses in enumerate(poses):
        members.append(write_member(spec, i, stem, member_poses, stats))
        if isinstance(members[-1], str):  # failed: the video fails, the rest is not written
            break
    smoothed = None
    if spec.ensemble and not any(isinstance(m, str) for m in members):
        smoothed = smooth_outputs(spec, stem, poses)
    return finish_outputs(spec, video, stem, members, smoothed, stats, time.perf_counter() - t0)


def write_member(
    spec: Outputs, index: int, stem: str, poses: Any, stats: PredictStats
) -> tuple[list[Path], list[str]] | str:
    """One member's tables (every format) and metrics: (the files written, its main table
    first; the line to log), or why they could not be written. A writer task of its own for
    an ensemble's members (:class:`_Writers`), so that they are written side by side."""
    from vidpose.io import write_poses
    from vidpose.predict.metrics import write_video_metrics

    member = spec.members[index]
    try:
        member_out = spec.out_dir / member.name if spec.ensemble else spec.out_dir
        named = f"{stem}DLC_{poses.scorer}" if spec.dlc_names else stem
        paths = [member_out / f"{named}.{fmt}" for fmt in spec.formats]
        for path in paths:
            write_poses(poses, path)
        written = paths + write_video_metrics(poses, member.path, member_out, stem)
    except Exception as exc:
        return f"its predictions could not be written: {exc}"
    return written, [f"wrote {paths[0]}  ({stats.frames} frames, {stats.fps:,.0f} frames/s)"]


def smooth_outputs(spec: Outputs, stem: str, poses: list) -> list[tuple[Path, Path]] | str:
    """An ensemble's Kalman-smoothed tables, from its members' poses in memory, written to
    temporary files beside their final paths: the (temporary, final) pairs, renamed by
    :func:`finish_outputs` once the members' tables are written too, or why they could not
    be made. The members are taken rounded as their tables hold them, so the smoothed table
    is the one ``vidpose smooth`` makes from the members' CSV or h5 files, byte for byte.

    Its own writer task, at once with the members' (:class:`_Writers`): smoothing from the
    files after them, a one-video 5-member ensemble waited ~3 s for its tables on an H200
    host (session 19's py-spy: the members' tables, then reading them back, smoothing and
    formatting the two smoothed tables, in turn)."""
    from vidpose.io.registry import stage_poses
    from vidpose.smooth.run import ensemble_table_path, smooth_members, without_keypoint_columns

    named = f"{stem}DLC_ensemble" if spec.dlc_names else stem
    final = spec.out_dir / f"{named}.{spec.formats[0]}"
    staged: list[tuple[Path, Path]] = []
    try:
        smoothed = smooth_members(
            [p.rounded() for p in poses], "auto", names=[m.name for m in spec.members]
        )
        plain = without_keypoint_columns(smoothed)
        # what a table cannot hold comes from the members (the first member's, as they agree)
        plain.fps, plain.video, plain.skeleton = poses[0].fps, poses[0].video, poses[0].skeleton
        tables = [(plain, final), (smoothed, ensemble_table_path(final))]
        # the table in the other formats (statistics: first format only)
        tables += [(plain, spec.out_dir / f"{named}.{fmt}") for fmt in spec.formats[1:]]
        for table, path in tables:
            staged.append((stage_poses(table, path), path))
    except VidposeError as exc:
        discard_staged([t for t, _ in staged])
        return f"the members' predictions cannot be smoothed: {exc}"
    except Exception as exc:
        discard_staged([t for t, _ in staged])
        return f"its smoothed predictions could not be written: {exc}"
    return staged


def finish_outputs(
    spec: Outputs,
    video: Path,
    stem: str,
    members: list,
    smoothed: list[tuple[Path, Path]] | str | None,
    stats: PredictStats,
    seconds: float,
) -> tuple[VideoResult, list[str]]:
    """The video's result once its members' files are written (:func:`write_member`'s
    returns, in the members' order): an ensemble's smoothed tables (:func:`smooth_outputs`'
    return) renamed into place if every member's were written, else dropped; every file
    listed with its size. ``seconds``: the writing so far."""
    t0 = time.perf_counter()
    staged = smoothed if isinstance(smoothed, list) else []
    lines = [line for m in members if not isinstance(m, str) for line in m[1]]
    failed = next((m for m in members if isinstance(m, str)), None)
    if failed is None and spec.ensemble and not isinstance(smoothed, list):
        failed = smoothed or "its predictions were not smoothed"
    if failed is not None:
        discard_staged([t for t, _ in staged])
        return VideoResult(video, stem, "failed", failed), lines
    result = VideoResult(video, stem, frames=stats.frames)
    written = [p for m in members for p in m[0]]
    result.members = [m[0][0] for m in members]
    result.table = result.members[0]
    if spec.ensemble:
        try:
            for tmp, path in staged:
                commit_staged(tmp, path)
        except OSError as exc:
            discard_staged([t for t, _ in staged])
            reason = f"its smoothed predictions could not be written: {exc}"
            return VideoResult(video, stem, "failed", reason), lines
        result.table = staged[0][1]
        written = [path for _, path in staged] + written
        lines.append(f"wrote {result.table}  (ensemble of {len(members)}, Kalman-smoothed)")
    result.outputs = [result.table, *(p for p in written if p != result.table)]
    result.sizes = [p.stat().st_size for p in result.outputs]
    result.seconds = stats.seconds + seconds + time.perf_counter() - t0
    return result, lines


def _writer_died(exc: BaseException) -> str:
    """A video's failure when the writer process writing it died."""
    return f"its predictions could not be written: the writer process failed ({exc})"


class _Writers:
    """Writes videos' files while later videos are predicted: in :data:`WRITERS` threads, or
    in as many processes when ``processes``, whose CSV formatting then does not hold the
    predicting process's GIL (on this 2-core machine, a thread standing for the predicting one
    stalled up to 218-250 ms while 4 threads wrote 8 tables of 9,940 frames, and ran 19-26k
    loops/s; 15-24 ms and 38-39k loops/s beside 4 processes: ``bench/writer_stalls.py``). A
    writer process that dies fails its video; the videos after it are written in threads."""

    def __init__(
        self, processes: bool, log: Callable[[str], object], warm: Sequence[str] = ()
    ) -> None:
        self.log = log
        self.threads = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="vidpose-write")
        self.procs: Any = None
        self.warming: list = []  # the writer processes' imports (futures), when processes
        self._chains: list[Future] = []  # ensembles written member by member (_submit_members)
        if processes:
            _wait_early_writers()
        if processes and _SPARE_WRITERS:  # started ahead (prestart_writers, start_writers_early)
            self.procs, self.warming = _SPARE_WRITERS.pop()
        elif processes:
            from concurrent.futures import ProcessPoolExecutor

            from vidpose.predict.processes import worker_context

            self.procs = ProcessPoolExecutor(max_workers=WRITERS, mp_context=worker_context())
            # The pool's processes start, and import the writers' modules (pandas: ~2 s on the
            # H200 host), while the first videos are predicted, not once the first is done:
            # py-spy found a one-video `vidpose predict` waiting 3.0 s for its table's writer.
            if warm:
                with contextlib.suppress(Exception):  # only a head start
                    self.warming = _warm(self.procs, warm)

    def submit(
        self,
        spec: Outputs,
        args: tuple[Path, str, list, PredictStats],
        report: Callable[[VideoResult], None],
    ) -> None:
        def finish(result: VideoResult, lines: list[str]) -> None:
            for line in lines:
                self.log(line)
            report(result)

        if self.procs is not None:
            from vidpose.predict.processes import main_hidden

            try:
                with main_hidden():  # the pool starts its processes as work comes
                    if spec.ensemble and len(args[2]) > 1:
                        self._submit_members(spec, args, finish)
                        return
                    future = self.procs.submit(write_outputs, spec, *args)
            except Exception:  # a writer died before, or none can start: threads now
                self.procs = None
            else:
                future.add_done_callback(lambda f: self._done(f, args, finish))
                return
        self.threads.submit(lambda: finish(*write_outputs(spec, *args)))

    def _submit_members(self, spec: Outputs, args: tuple, finish: Callable) -> None:
        """An ensemble's smoothed tables and its members' tables and metrics, a writer process
        each at once (:func:`smooth_outputs` from the poses in memory, first: the longest);
        a writer thread waits for them and finishes the video (renames the smoothed tables
        into place). One process writing the members one after the other, then smoothing
        their files, took 3.0 s + 1.6 s of a one-video ensemble's end on this project's
        2-core machine (9,940 frames, 17 keypoints, 5 members)."""
        video, stem, poses, stats = args
        t0 = time.perf_counter()
        smoothing = self.procs.submit(smooth_outputs, spec, stem, poses)
        futures = [
            self.procs.submit(write_member, spec, i, stem, p, stats) for i, p in enumerate(poses)
        ]
        chain: Future = Future()
        self._chains.append(chain)

        def outcome(f: Future) -> Any:
            exc = f.exception()
            return _writer_died(exc) if exc is not None else f.result()

        def rest() -> None:
            try:
                members = [outcome(f) for f in futures]
                smoothed = outcome(smoothing)
                seconds = time.perf_counter() - t0
                finish(*finish_outputs(spec, video, stem, members, smoothed, stats, seconds))
            finally:
                chain.set_result(None)

        self.threads.submit(rest)

    @staticmethod
    def _done(future: Any, args: tuple, finish: Callable) -> None:
        exc = future.exception()
        if exc is None:
            finish(*future.result())
            return
        video, stem = args[0], args[1]
        finish(VideoResult(video, stem, "failed", _writer_died(exc)), [])

    def close(self) -> None:
        """Wait for every file to be written."""
        wait_futures(self._chains)  # ensembles still to smooth, in self.procs
        if self.procs is not None:
            self.procs.shutdown(wait=True)
        self.threads.shutdown(wait=True)


def predict_videos(
    model_dir: str | Path,
    videos: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    reader: str | None = None,
    compile: bool | None = None,
    jobs: int | None = None,
    formats: Sequence[str] = ("csv",),
    dlc_names: bool = False,
    progress: bool = False,
    names: Mapping[Path, str] | None = None,
    log: Callable[[str], object] = lambda _msg: None,
) -> PredictResult:
    """Predict every video that can be read; the others are listed in the result's ``failed``.

    Every video is checked (exists, is a file, can be probed) before the model is loaded; a
    video that fails while it is predicted is recorded too, and the next one is predicted. A
    failed video's output is never written (tables are written atomically, once complete).
    (``vidpose predict`` goes through :func:`vidpose.predict.batch.predict_batch`, which adds a
    resumable ledger, a report and several workers.)

    Args:
        model_dir: a model directory, or an ensemble directory (``vidpose train --seeds``).
        videos: the videos.
        out_dir: where the tables go (default ``model_dir/videos``).
        batch_size, device, precision, reader, compile: None takes the model's ``predict.*``.
        jobs: videos decoded at once (default: ``predictor.default_jobs``); single-frame
            networks predict them together.
        formats: table formats written per video, by extension: "csv" (DeepLabCut / Lightning
            Pose layout), "h5" (DeepLabCut's), "nwb" (ndx-pose) or any other in the format
            registry; the first is the one returned and smoothed.
        dlc_names: name tables ``<stem>DLC_<scorer>.<ext>`` as DeepLabCut's tools look for them.
        progress: show a progress bar per video.
        names: video -> output stem, overriding :func:`output_stems` (for callers that must
            agree with an earlier call on names).
        log: receives one line per file written and per renamed output.

    Raises:
        ModelDirError: ``model_dir`` is not a complete model or ensemble, or its checkpoint
            cannot be loaded.
        ConfigError: a bad device or precision.
    """
    # The table writers (pandas, a second of imports) load in the background while the
    # model loads and the first frames are predicted.
    threading.Thread(target=_preload_writers, daemon=True, name="vidpose-preload").start()
    predictor = Predictor(
        model_dir,
        out_dir,
        batch_size=batch_size,
        device=device,
        precision=precision,
        reader=reader,
        compile=compile,
        formats=formats,
        dlc_names=dlc_names,
        log=log,
    )
    out_dir = predictor.out_dir
    given = [Path(v) for v in videos]
    stems = assign_stems(given, out_dir, names)
    result = PredictResult(names=stems)

    todo: list[Path] = []
    first_of: dict[str, Path] = {}  # normalized path -> the video as first given
    for video in given:
        key = normalized_path(video)
        if key in first_of:
            log(f"{video} was given before (as {first_of[key]}): predicted once")
            continue
        first_of[key] = video
        why = check_video(video)
        if why is None:
            todo.append(video)
        else:
            result.failed[video] = why
    log_renamed(todo, stems, out_dir, log)
    if todo:
        claim_stems(out_dir, {v: stems[v] for v in todo})
        done: dict[Path, VideoResult] = {}
        predictor.predict(
            [(v, stems[v]) for v in todo],
            jobs=jobs,
            progress=progress,
            on_result=lambda r: done.__setitem__(r.video, r),
        )
        for video in todo:
            res = done[video]
            if res.status == "ok":
                result.outputs[video] = res.table
                result.members[video] = res.members
            else:
                result.failed[video] = res.reason
                log(f"{video}: failed: {res.reason}")
    # a video given under two spellings can be looked up by either (failures are listed once)
    for video in given:
        first = first_of[normalized_path(video)]
        if video != first and first in result.outputs:
            result.outputs[video] = result.outputs[first]
    return result


def log_renamed(
    videos: Sequence[Path], stems: Mapping[Path, str], out_dir: Path, log: Callable
) -> None:
    """Tell which videos' outputs are named after their folders, if any."""
    renamed = [v for v in videos if stems[v] != v.stem]
    if renamed:
        log(
            "videos share a file name (in this call or with earlier outputs in "
            f"{out_dir}); outputs are named after their folders: "
            + ", ".join(f"{v} -> {stems[v]}.csv" for v in renamed)
        )


_SPARE_WRITERS: list[tuple[Any, list]] = []
"""Writer process pools forked ahead (:func:`prestart_writers`), with their warm-up futures."""


def prestart_writers(modules: Sequence[str]) -> bool:
    """Fork the table writers' :data:`WRITERS` processes from this process now, importing
    ``modules``, for the next prediction that writes in processes to take; False (nothing
    started) where it is not safe.

    Why: in a GPU worker of the local batch engine (a fork server's child, not that server's
    client), the writer pool's first process waited for a fork server of the worker's own to
    import torch: the worker's first video started only then, 2.6 s after it asked on this
    project's 2-core machine (~4 s on the 2-H200 host), against 0.03 s for processes forked
    here. Safe only before this process makes a CUDA context or starts a thread (checked).
    """
    from concurrent.futures import ProcessPoolExecutor

    from vidpose.predict.processes import fork_context

    ctx = fork_context()
    if ctx is None:
        return False
    try:
        pool = ProcessPoolExecutor(max_workers=WRITERS, mp_context=ctx)
        # with fork, the first submit forks every process before the pool starts a thread
        warming = _warm(pool, modules)
    except Exception:  # only a head start: the prediction starts its own
        return False
    _SPARE_WRITERS.append((pool, warming))
    return True


_EARLY_WRITERS: list[threading.Thread] = []
"""Threads starting writer pools ahead (:func:`start_writers_early`), until they are done."""


def start_writers_early(modules: Sequence[str]) -> None:
    """Start the table writers' :data:`WRITERS` processes from the fork server now, each
    importing ``modules``, for this process's next prediction that writes in processes
    (:class:`_Writers` takes the pool; it waits for this start if it is still under way).

    In a thread: a process starts only once the fork server (started by the caller) has
    imported torch, which the caller need not wait for. Nothing happens if anything fails (the
    prediction then starts its own writers, as without this)."""

    def start() -> None:
        try:
            from concurrent.futures import ProcessPoolExecutor

            from vidpose.predict.processes import worker_context

            pool = ProcessPoolExecutor(max_workers=WRITERS, mp_context=worker_context())
            warming = _warm(pool, modules)
        except Exception:  # only a head start
            return
        _SPARE_WRITERS.append((pool, warming))

    thread = threading.Thread(target=start, daemon=True, name="vidpose-writers-start")
    _EARLY_WRITERS.append(thread)
    thread.start()


def _wait_early_writers() -> None:
    """Wait for the writer pools being started ahead (:func:`start_writers_early`)."""
    while _EARLY_WRITERS:
        _EARLY_WRITERS.pop().join()


def _warm(pool: Any, modules: Sequence[str]) -> list:
    """Start each of a writer pool's :data:`WRITERS` processes importing ``modules`` (without
    the parent's main script: :func:`~vidpose.predict.processes.main_hidden`); the futures."""
    from vidpose.predict.processes import main_hidden

    with main_hidden():
        return [pool.submit(_import_quietly, tuple(modules)) for _ in range(WRITERS)]


def _import_quietly(modules: Sequence[str]) -> list[str]:
    """Import ``modules`` (a writer process's head start); those now imported. One that fails
    fails again, with its message, where it is used."""
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    return [name for name in modules if name in sys.modules]


def _import_in_background(modules: Sequence[str]) -> threading.Thread:
    """Import what the table writers need (pandas; numba for an ensemble's smoothing: 1.1 s and
    1.3 s on the H200 host) in a thread while the first videos are decoded and predicted; the
    writers import them only once a video is predicted, which put those seconds after the
    prediction of a single video. Join the thread before returning (no import left running
    when the process exits). A module that fails to import fails again, with its message, where
    it is used."""
    thread = threading.Thread(target=_import_quietly, args=(modules,), name="vidpose-imports")
    thread.start()
    return thread
