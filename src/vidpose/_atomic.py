"""Atomic file writes: a killed process leaves the old file or the new one, never half.

The new content goes to ``.NAME.<pid>-<machine>.<random>.tmp`` beside ``NAME`` and is renamed
onto it when complete. A writer killed mid-write (SIGKILL, out of memory) leaves that file
behind, so each atomic write first deletes the leftovers of its own target whose writer is
gone: written on this machine (same ``<machine>`` tag) by a PID no longer alive. A leftover
whose writer cannot be asked (another machine sharing the folder, Windows, or the
``.NAME.<random>.tmp`` names of earlier versions) is deleted once unmodified for an hour.

Whole folders (an imported or synthesized project) are built in a folder beside their
destination and moved in when complete (:func:`install_entries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# A leftover whose writer's liveness cannot be checked is deleted once unmodified this long:
# writers write as they go (video frames, table rows), so an hour of silence means it is gone.
STALE_AFTER_S = 3600.0


def _machine_tag() -> str:
    """8 hex digits naming this host and PID namespace: where a PID means this process."""
    ident = socket.gethostname()
    # containers share folders with the host but not PIDs: the PID namespace tells them apart
    with contextlib.suppress(OSError):
        ident += os.readlink("/proc/self/ns/pid")
    return hashlib.sha256(ident.encode()).hexdigest()[:8]


_MACHINE = _machine_tag()
# ".NAME." is stripped first; what remains of a temporary written by this module, and of one
# written by tempfile.mkstemp before (8 characters of its alphabet). Neither can be mistaken
# for the other, nor for a temporary of another target ("NAME.x" leaves a dot in the rest).
_CURRENT = re.compile(r"(\d+)-([0-9a-f]{8})\.[0-9a-f]{12}")
_BEFORE_PID = re.compile(r"[a-z0-9_]{8}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file lives in the same directory so that the final ``os.replace`` is atomic
    on POSIX filesystems. On error the temporary file is removed and ``path`` is untouched.
    Leftovers of writers to ``path`` that were killed are removed first (see the module).
    """
    tmp_path = staged_path(path)
    try:
        yield tmp_path
        commit_staged(tmp_path, path)
    except BaseException:
        discard_staged([tmp_path])
        raise


def staged_path(path: str | os.PathLike) -> Path:
    """A new temporary file beside ``path`` (its folder created) for content that
    :func:`commit_staged` renames onto ``path`` later, possibly from another process of this
    machine, or :func:`discard_staged` deletes: :func:`atomic_path` in two steps, for files
    that must appear together once others are written. Leftovers of writers to ``path`` that
    were killed are removed first; this one is removed the same way if its writer dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    return _create_temporary(path)


def commit_staged(tmp_path: Path, path: str | os.PathLike) -> None:
    """Rename the staged ``tmp_path`` onto ``path``, with the mode a plain open() would give
    it (or the old file's): it was created 0600."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp_path, mode)
    os.replace(tmp_path, path)


def discard_staged(tmp_paths: Iterable[Path]) -> None:
    """Delete staged files that will not be committed (those already gone are skipped)."""
    for tmp in tmp_paths:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()


def _create_temporary(path: Path) -> Path:
    prefix = f".{path.name}.{os.getpid()}-{_MACHINE}."
    for _ in range(100):
        candidate = path.parent / f"{prefix}{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no unused temporary file name beside {path}")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete leftover temporaries of ``path`` whose writer is gone; returns those deleted.

    Best effort: a leftover that cannot be deleted (permissions) is left where it is.
    """
    path = Path(path)
    prefix, suffix = f".{path.name}.", ".tmp"
    now = time.time()
    try:
        with os.scandir(path.parent) as entries:
            candidates = [
                e
                for e in entries
                if e.name.startswith(prefix)
                and e.name.endswith(suffix)
                and len(e.name) > len(prefix) + len(suffix)
            ]
    except OSError:
        return []
    removed: list[Path] = []
    for entry in candidates:
        if _writer_gone(entry.name[len(prefix) : -len(suffix)], entry, now):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _writer_gone(rest: str, entry: os.DirEntry, now: float) -> bool:
    current = _CURRENT.fullmatch(rest)
    if current is None and _BEFORE_PID.fullmatch(rest) is None:
        return False  # not a temporary of this target
    if current is not None and current.group(2) == _MACHINE:
        alive = pid_alive(int(current.group(1)))
        if alive is not None:
            return not alive
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists on this machine; None when that cannot be told."""
    if pid <= 0 or os.name != "posix":
        # signal 0 only probes on POSIX (on Windows os.kill terminates the process)
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except (OSError, OverflowError):  # OverflowError: not a PID this platform can have
        return None
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def install_entries(tmp: Path, dest: Path, entries: list[str]) -> None:
    """Put a folder built in ``tmp`` in place at ``dest``: rename it when ``dest`` is missing or
    empty, else move each of ``entries`` (paths relative to both) in, the old one moved aside
    first and all restored if a later move fails. ``tmp`` must sit beside ``dest``."""
    if not dest.exists() or not any(dest.iterdir()):
        with contextlib.suppress(FileNotFoundError):
            dest.rmdir()
        os.rename(tmp, dest)
        return
    aside = tmp / ".replaced"
    aside.mkdir()
    done: list[tuple[Path, Path | None]] = []  # (entry in dest, its old version)
    try:
        for i, rel in enumerate(entries):
            src, dst = tmp / rel, dest / rel
            old = None
            if dst.exists() or dst.is_symlink():
                old = aside / str(i)
                os.rename(dst, old)
            dst.parent.mkdir(parents=True, exist_ok=True)
            done.append((dst, old))
            os.rename(src, dst)
    except BaseException:
        for dst, old in reversed(done):
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    dst.unlink()
            if old is not None:
                os.rename(old, dst)
        raise


@contextlib.contextmanager
def exclusive_file(path: Path, holder: str, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold an advisory ``flock`` on ``path`` (created if missing) for this process, writing
    ``holder`` into it; raise ``busy(text the current holder wrote)`` if another process holds
    it. The OS releases the lock when the process dies, so a killed run never leaves it held.
    Without flock (Windows) the holder text alone is written, best effort."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(os.pread(fd, 200, 0).decode(errors="replace").strip() or "?") from None
        except ImportError:
            pass
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
