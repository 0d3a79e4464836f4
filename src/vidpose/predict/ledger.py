"""The ledger of a batch prediction: what became of each video, kept in its output folder.

``OUT/.vidpose-ledger.jsonl`` gets one JSON object per line, appended, flushed and fsync'd
before the batch goes on, e.g.::

    {"event": "run", "time": "2026-11-27T10:00:00+00:00", "host": "node3", "pid": 81, ...}
    {"event": "started", "video": "/data/s1.mp4", "stem": "s1", "worker": "gpu0", ...}
    {"event": "finished", "video": "/data/s1.mp4", "size": 812345, "mtime_ns": ...,
     "frames": 216000, "seconds": 70.1, "fps": 3081.3,
     "outputs": [{"path": "s1.csv", "size": 51234567}, ...], "settings": {...}, ...}
    {"event": "failed", "video": "/data/s2.mp4", "reason": "not a readable video", ...}
    {"event": "requeued", "video": "/data/s3.mp4", "reason": "worker gpu1 died: ...", ...}
    {"event": "skipped", "video": "/data/s1.mp4", "reason": "...", ...}
    {"event": "triangulated", "session": "s1", "inputs": [{"view": "cam0", "path":
     "s1_cam0.csv", "size": ..., "mtime_ns": ...}, ...], "outputs": [{"path": "s1_3d.csv", ...}],
     "settings": {...}, ...}      (a multi-camera session: vidpose.predict.sessions)

A video is done when its last ``finished`` line is not followed by a ``started`` or ``failed``
one, every output it lists exists with the size it had, the video still has the size and
modification time it had, and the run used the same model and output settings; a later batch
skips it and redoes every other video (half-done ones included). The ``finished`` line is
written only once all of a video's files are in place.

Why JSON lines and not SQLite: one process writes the ledger (the one driving the batch; its
workers report to it), so the folder lock is the only concurrency control needed; an append is
crash-safe (a torn last line is skipped when read, and the next append starts a new line); it
behaves on the network file systems clusters share outputs on, where SQLite's locking is
unreliable; and ``tail -f`` or ``jq`` read it while the batch runs. 30,000 videos make about
90,000 lines, ~40 MB, read in well under a few seconds.

:func:`lock_output` holds ``OUT/.vidpose-predict.lock`` (``flock``, released by the OS when
the process dies) for the whole batch, so that a second batch on the same folder is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vidpose._atomic import exclusive_file
from vidpose.errors import OutputInUseError

LEDGER_FILE = ".vidpose-ledger.jsonl"
LOCK_FILE = ".vidpose-predict.lock"


@dataclass(frozen=True)
class VideoStamp:
    """A video file's size and modification time: what must not change for its outputs to
    stay valid."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> VideoStamp:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def lock_output(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for this batch; OutputInUseError naming the holder if another process
    holds it. The lock is an advisory ``flock`` on ``.vidpose-predict.lock``, released by the
    OS when the process dies (a killed batch never leaves the folder locked); the file records
    the holder's host and PID."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def busy(holder: str) -> OutputInUseError:
        return OutputInUseError(
            f"{out_dir} is in use by another `vidpose predict` ({holder}); wait for it to "
            "finish, or give another --out"
        )

    with exclusive_file(out_dir / LOCK_FILE, f"pid {os.getpid()} on {socket.gethostname()}", busy):
        yield


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """``OUT/.vidpose-ledger.jsonl``: read what earlier runs did, append this run's events.

    Thread-safe; hold :func:`lock_output` while appending.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LEDGER_FILE
        self._lock = threading.Lock()
        self._fh = None

    def events(self) -> list[dict[str, Any]]:
        """Every event recorded so far, oldest first (a torn or damaged line is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and isinstance(event.get("event"), str):
                    out.append(event)
        return out

    def finished(self) -> dict[str, dict[str, Any]]:
        """Video (normalised path) -> its ``finished`` event, for videos whose last prediction
        finished (none started or failed after it)."""
        done: dict[str, dict[str, Any]] = {}
        for event in self.events():
            video = event.get("video")
            if not isinstance(video, str):
                continue
            if event["event"] == "finished":
                done[video] = event
            elif event["event"] in ("started", "failed"):
                done.pop(video, None)
        return done

    def why_not_done(
        self, event: Mapping[str, Any] | None, stamp: VideoStamp, settings: Mapping[str, Any]
    ) -> str | None:
        """None if ``event`` (a ``finished`` one) still stands for the video: same settings,
        same video size and modification time, every output there with its size; else why
        the video must be predicted again."""
        if event is None:
            return "not predicted yet"
        if event.get("settings") != dict(settings):
            return "predicted with another model or other output settings"
        if (event.get("size"), event.get("mtime_ns")) != (stamp.size, stamp.mtime_ns):
            return "the video changed since it was predicted"
        for out in event.get("outputs", []):
            try:
                if self.resolve(out["path"]).stat().st_size != out["size"]:
                    return f"{out['path']} changed since it was written"
            except (OSError, KeyError, TypeError):
                return f"an output is missing ({out})"
        return None

    def resolve(self, path: str) -> Path:
        """An output path as recorded (relative to the output folder, or absolute)."""
        return self.out_dir / path

    def relative(self, path: Path) -> str:
        """How an output path is recorded: relative to the output folder when inside it."""
        try:
            return Path(path).relative_to(self.out_dir).as_posix()
        except ValueError:
            return str(Path(path).absolute())

    def append(self, event: str, **fields: Any) -> None:
        """Record one event, on disk before this returns."""
        record = {"event": event, "time": _now(), **fields}
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            if self._fh is None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a+b")  # noqa: SIM115 - kept open for the run
                if self._fh.tell() > 0:  # a torn last line (a killed run) must not swallow ours
                    self._fh.seek(-1, os.SEEK_END)
                    if self._fh.read(1) != b"\n":
                        self._fh.write(b"\n")
            self._fh.write(line.encode("utf-8"))
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
