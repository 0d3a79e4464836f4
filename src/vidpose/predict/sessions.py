"""Multi-camera prediction: the videos of one session, one per camera, triangulated into 3D.

A multi-camera model (its ``model.json`` lists ``views``; see :class:`~vidpose.model_dir.
ModelRecord`) predicts every video on its own, like any model: one 2D table per video, that
is per view (an ensemble's members smoothed per view). Videos are then grouped into sessions
by their output stem ``<session>_<view>`` (:func:`~vidpose.project.multicamera.split_view`:
the view as a ``_``/``-``/``.``-separated token, at the end, the start or inside), and once
every video of a session has its table, the session is triangulated, in the process driving
the batch, with the model's copy of the calibration::

    OUT/<session>_<view>.csv     each view's 2D predictions (as for any video)
    OUT/<session>_3d.csv         the session in 3D (vidpose.io.points3d: x, y, z, reprojection
                                 error, views used, per keypoint and frame; ``3d.csv`` for
                                 videos named by the bare view)

Triangulation is :func:`~vidpose.geometry.triangulate_tables` (lens undone, views weighted by
likelihood, points below ``min_confidence`` left out, outlier views dropped), optionally
followed by the 3D Kalman smoother (:func:`~vidpose.smooth.smooth_points_3d`). A session
whose views are not all there is triangulated from those that are, when at least 2 are, and
reported (``partial``); with fewer it gets no 3D table (``incomplete``); tables that cannot be
triangulated together (different frame counts) are reported with the reason (``failed``). A
model without a calibration writes the 2D tables only.

The ledger records each 3D table (``triangulated``: the 2D tables it was made from with their
sizes and modification times, the table written, the settings), so a later batch on the same
folder keeps a 3D table whose inputs and settings are unchanged (``skipped``) and redoes the
others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpose.errors import VidposeError
from vidpose.geometry import Calibration, TriangulationSummary
from vidpose.geometry.tables import MIN_CONFIDENCE, OUTLIER_PX
from vidpose.model_dir import ModelDirError, model_members

POINTS3D_SUFFIX = "_3d"
"""A session's 3D table is ``<session>_3d.csv``."""

SESSION_STATUSES = ("ok", "partial", "skipped", "incomplete", "failed")
"""ok: every view triangulated; partial: at least 2 views, some missing; skipped: the 3D table
of an earlier batch still holds; incomplete: fewer than 2 views, no 3D table; failed: the
tables could not be triangulated (the reason says why)."""


def points3d_name(session: str) -> str:
    """The file name of a session's 3D table."""
    return f"{session}{POINTS3D_SUFFIX}.csv" if session else f"{POINTS3D_SUFFIX[1:]}.csv"


@dataclass(frozen=True)
class ModelCameras:
    """The cameras of a model or ensemble directory.

    Attributes:
        views: the cameras' names, in the project's order; empty for a single-camera model.
        calibration: the model's copy of the calibration (cameras in ``views`` order), or None.
        source: that copy's file, for messages.
    """

    views: list[str] = field(default_factory=list)
    calibration: Calibration | None = None
    source: Path | None = None

    @property
    def triangulates(self) -> bool:
        """Whether predictions are triangulated: at least 2 views and a calibration."""
        return len(self.views) >= 2 and self.calibration is not None


def model_cameras(model_dir: str | Path) -> ModelCameras:
    """The views and calibration of a model, or of an ensemble's members (which must agree).

    Raises:
        ModelDirError: the directory is not a complete model or ensemble, members list other
            views, or the calibration a record names is missing, damaged, or not of its views.
    """
    members, _ = model_members(model_dir)
    records = [m.read_record() for m in members]
    views = list(records[0].views)
    differ = [m.name for m, r in zip(members, records, strict=True) if list(r.views) != views]
    if differ:
        raise ModelDirError(
            f"{model_dir}: ensemble members {differ} have other views than {members[0].name} "
            f"({views}); an ensemble's members are trained on the same project"
        )
    calibration = members[0].read_calibration(records[0])
    return ModelCameras(views, calibration, members[0].calibration_file(records[0]))


@dataclass(frozen=True)
class Settings3D:
    """How sessions are triangulated (see :func:`~vidpose.geometry.triangulate_tables`).

    Attributes:
        smooth: Kalman-smooth the 3D trajectories (:func:`~vidpose.smooth.smooth_points_3d`).
        outlier_px: drop a view reprojecting further than this while more than 2 remain, px.
        min_confidence: leave out 2D points with a likelihood below this.
    """

    smooth: bool = False
    outlier_px: float = OUTLIER_PX
    min_confidence: float = MIN_CONFIDENCE

    def identity(self) -> dict[str, Any]:
        return {
            "smooth": self.smooth,
            "outlier_px": self.outlier_px,
            "min_confidence": self.min_confidence,
        }


@dataclass
class SessionPlan:
    """A batch's videos grouped into sessions.

    Attributes:
        sessions: session -> view -> the video (normalised path) of that view.
        unnamed: videos whose output stem names none of the views.
        duplicates: session -> one line per view given more than one video.
        member_of: video -> its session (every video of ``sessions`` and ``duplicates``).
    """

    sessions: dict[str, dict[str, str]] = field(default_factory=dict)
    unnamed: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    member_of: dict[str, str] = field(default_factory=dict)


def group_sessions(stems: Mapping[str, str], views: Sequence[str]) -> SessionPlan:
    """Group videos (key: the video, value: its output stem) into sessions by the view their
    stem names (:func:`~vidpose.project.multicamera.split_view`), in the order given."""
    from vidpose.project.multicamera import split_view

    plan = SessionPlan()
    for video, stem in stems.items():
        split = split_view(stem, list(views))
        if split is None:
            plan.unnamed.append(video)
            continue
        session, view = split
        plan.member_of[video] = session
        by_view = plan.sessions.setdefault(session, {})
        if view in by_view:
            plan.duplicates.setdefault(session, []).append(
                f"{video} and {by_view[view]} are both view {view}"
            )
            continue
        by_view[view] = video
    return plan


@dataclass
class SessionResult:
    """What became of one session (statuses: :data:`SESSION_STATUSES`).

    Attributes:
        session: its name ("" for videos named by the bare view).
        status: see :data:`SESSION_STATUSES`.
        reason: what was missing or went wrong (also for ``partial``).
        videos: view -> the session's video of that view, as given.
        views: the views triangulated.
        missing: views without a 2D table, each with why.
        table: the 3D table (None without one).
        frames: its frames.
        seconds: the time the triangulation took.
        summary: how well the views agreed (:class:`~vidpose.geometry.TriangulationSummary`
            as a dict; {} without a triangulation).
    """

    session: str
    status: str
    reason: str = ""
    videos: dict[str, str] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    table: Path | None = None
    frames: int = 0
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"session {self.session!r}" if self.session else "the session of bare view names"


def summary_dict(summary: TriangulationSummary) -> dict[str, Any]:
    """A :class:`~vidpose.geometry.TriangulationSummary` as JSON values (NaN as None)."""

    def num(x: float) -> float | None:
        return None if x != x else round(float(x), 6)

    return {
        "keypoint_frames": summary.keypoint_frames,
        "triangulated": num(summary.triangulated),
        "median_error_px": num(summary.median_error_px),
        "disagree": num(summary.disagree),
        "disagree_px": summary.disagree_px,
        "few_views": num(summary.few_views),
        "dropped": {v: num(f) for v, f in summary.dropped.items()},
    }


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Sessions:
    """The sessions of one batch, triangulated in this process as their videos finish.

    :meth:`plan` groups the batch's videos; :meth:`video_done` takes each video's result (the
    ones failed or skipped at planning too) and, once a session's last video is in, hands the
    session to a background thread; :meth:`finish` waits for them and returns one
    :class:`SessionResult` per session. Thread-safe.

    Args:
        out_dir: the output folder (the 3D tables go there).
        cameras: the model's cameras (:func:`model_cameras`); must triangulate.
        settings: how to triangulate.
        ledger: the batch's ledger (:class:`~vidpose.predict.ledger.Ledger`), or None (no
            record, every session triangulated).
        identity: what the 2D outputs depend on (the ledger's settings), recorded with each 3D
            table.
        log: receives one line per 3D table written.
    """

    def __init__(
        self,
        out_dir: Path,
        cameras: ModelCameras,
        settings: Settings3D,
        ledger: Any = None,
        identity: Mapping[str, Any] | None = None,
        log: Callable[[str], object] = lambda _msg: None,
    ) -> None:
        assert cameras.triangulates and cameras.calibration is not None
        self.out_dir = Path(out_dir)
        self.cameras = cameras
        self.settings = settings
        self.ledger = ledger
        self.identity = {**(identity or {}), "points3d": settings.identity()}
        self.log = log
        self.plan_: SessionPlan = SessionPlan()
        self._given: dict[str, Path] = {}  # normalised video -> as given
        self._results: dict[str, Any] = {}  # normalised video -> its VideoResult
        self._of_video: dict[str, str] = {}  # normalised video -> its session
        self._taken: dict[str, str] = {}  # lower-case output stem -> its video
        self._earlier: dict[str, dict[str, Any]] = {}
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidpose-3d")

    # -- planning ---------------------------------------------------------------------------

    def plan(self, videos: Mapping[str, tuple[Path, str]], taken: Mapping[str, str]) -> None:
        """Group the batch's videos: normalised path -> (the video as given, its output stem);
        ``taken``: output stem -> video of every predictions table in the folder (a session's
        3D table must not replace one)."""
        self._given = {key: video for key, (video, _) in videos.items()}
        stems = {k: stem for k, (_, stem) in videos.items()}
        self.plan_ = group_sessions(stems, self.cameras.views)
        self._of_video = dict(self.plan_.member_of)
        self._taken = {stem.lower(): video for stem, video in taken.items()}
        if self.ledger is not None:
            for event in self.ledger.events():
                if event.get("event") == "triangulated" and isinstance(event.get("session"), str):
                    self._earlier[event["session"]] = event

    def video_done(self, key: str, result: Any) -> None:
        """Record a video's :class:`~vidpose.predict.run.VideoResult` (``key``: its normalised
        path); start its session when it was the session's last."""
        with self._lock:
            self._results[key] = result
            session = self._of_video.get(key)
            if session is None or session in self._futures:
                return
            keys = [k for k, s in self._of_video.items() if s == session]
            if any(k not in self._results for k in keys):
                return
            self._futures[session] = self._pool.submit(self._run, session)

    def finish(self) -> list[SessionResult]:
        """Wait for every session started; one result per session, in the order planned
        (sessions whose videos did not all report are triangulated here)."""
        for session in self.plan_.sessions:
            with self._lock:
                if session not in self._futures:
                    self._futures[session] = self._pool.submit(self._run, session)
        out = []
        for session in self.plan_.sessions:
            try:
                out.append(self._futures[session].result())
            except Exception as exc:  # a bug: the batch's 2D results stand
                why = f"{type(exc).__name__}: {exc}"
                out.append(SessionResult(session, "failed", f"3D step failed: {why}"))
        self._pool.shutdown(wait=True)
        return out

    def cancel(self) -> None:
        """Stop: sessions not started are dropped; one being triangulated finishes."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def session_of(self, key: str) -> str | None:
        """The session of a video (normalised path), None when its name names no view."""
        return self._of_video.get(key)

    # -- one session ------------------------------------------------------------------------

    def _run(self, session: str) -> SessionResult:
        by_view = self.plan_.sessions[session]
        views = self.cameras.views
        with self._lock:
            results = dict(self._results)
        res = SessionResult(session, "incomplete")
        res.videos = {v: str(self._given.get(k, k)) for v, k in by_view.items()}
        tables: dict[str, Path] = {}
        for view in views:
            key = by_view.get(view)
            if key is None:
                res.missing[view] = "no video of this view given"
                continue
            vr = results.get(key)
            if vr is None:
                res.missing[view] = "no result came back for its video"
            elif vr.status not in ("ok", "skipped") or vr.table is None:
                res.missing[view] = f"its video failed ({vr.reason})"
            elif not Path(vr.table).is_file():
                res.missing[view] = f"its table {vr.table} is gone"
            else:
                tables[view] = Path(vr.table)
        if session in self.plan_.duplicates:
            res.status = "failed"
            res.reason = (
                "more than one video of a view: "
                + "; ".join(self.plan_.duplicates[session])
                + "; give one video per view and session"
            )
            return res
        missing = "; ".join(f"view {v}: {why}" for v, why in res.missing.items())
        if len(tables) < 2:
            res.reason = (
                f"no 3D table: {len(tables)} of {len(views)} views predicted ({missing}); "
                "triangulation needs at least 2"
            )
            return res
        name = points3d_name(session)
        owner = self._taken.get(Path(name).stem.lower())
        if owner is not None:
            res.status = "failed"
            res.reason = (
                f"no 3D table: {self.out_dir / name} is the predictions table of {owner}; "
                "rename that video"
            )
            return res
        out = self.out_dir / name
        inputs = [{"view": v, "path": self._relative(p), **_stamp(p)} for v, p in tables.items()]
        res.views = list(tables)
        res.table = out
        done = self._still_done(session, inputs, out)
        if done is not None:
            res.status = "skipped"
            res.reason = "3D table complete from an earlier run"
            res.frames = int(done.get("frames", 0))
            res.summary = dict(done.get("summary") or {})
            if res.missing:
                res.reason += f"; views missing: {missing}"
            return res
        t0 = time.perf_counter()
        try:
            tri = self._triangulate(tables, out)
        except VidposeError as exc:
            res.status, res.table, res.views = "failed", None, []
            res.reason = f"no 3D table: {exc}"
            return res
        res.seconds = time.perf_counter() - t0
        res.frames = tri.points.n_frames
        res.summary = summary_dict(tri.summary)
        res.status = "partial" if res.missing else "ok"
        if res.missing:
            res.reason = f"triangulated from {', '.join(res.views)} only; {missing}"
        if self.ledger is not None:
            self.ledger.append(
                "triangulated",
                session=session,
                inputs=inputs,
                outputs=[{"path": self._relative(out), **_stamp(out)}],
                frames=res.frames,
                views=res.views,
                summary=res.summary,
                settings=self.identity,
            )
        smoothed = ", smoothed in 3D" if self.settings.smooth else ""
        median = res.summary.get("median_error_px")
        error = f"; median reprojection error {median:.2f} px" if median is not None else ""
        self.log(
            f"{res.label}: {res.frames} frames from {', '.join(res.views)}{smoothed}{error} "
            f"-> {out}"
        )
        return res

    def _triangulate(self, tables: dict[str, Path], out: Path):
        from vidpose.geometry import triangulate_tables

        smoother = None
        if self.settings.smooth:
            from vidpose.smooth import smooth_points_3d

            smoother = smooth_points_3d
        assert self.cameras.calibration is not None
        return triangulate_tables(
            self.cameras.calibration,
            tables,
            out,
            outlier_px=self.settings.outlier_px,
            min_confidence=self.settings.min_confidence,
            smoother=smoother,
        )

    def _still_done(
        self, session: str, inputs: list[dict[str, Any]], out: Path
    ) -> dict[str, Any] | None:
        """The earlier ``triangulated`` event of the session if it still holds: the same
        settings and 2D tables (sizes and modification times), the 3D table there at its size."""
        event = self._earlier.get(session)
        if event is None or event.get("settings") != self.identity:
            return None
        if event.get("inputs") != inputs:
            return None
        outputs = event.get("outputs") or []
        if len(outputs) != 1 or outputs[0].get("path") != self._relative(out):
            return None
        try:
            if _stamp(out) != {k: outputs[0].get(k) for k in ("size", "mtime_ns")}:
                return None
        except OSError:
            return None
        return event

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.out_dir).as_posix()
        except ValueError:
            return str(Path(path).absolute())
