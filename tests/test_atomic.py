"""Atomic writes: temporaries carry the writer's PID, and a killed writer's leftovers go away.

Before, ``atomic_path`` wrote ``.NAME.<random>.tmp``; a writer killed with SIGKILL left it there
for ever.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vidpose._atomic import atomic_path, atomic_write_text

pytestmark = pytest.mark.skipif(os.name != "posix", reason="PID probing needs POSIX signals")

HOUR = 3600


def machine_tag(folder: Path) -> str:
    """This machine's tag, read off the name of a real temporary file."""
    with atomic_path(folder / "probe.txt") as tmp:
        tmp.write_text("x")
        match = re.fullmatch(
            rf"\.probe\.txt\.{os.getpid()}-([0-9a-f]{{8}})\.[0-9a-f]{{12}}\.tmp", tmp.name
        )
    (folder / "probe.txt").unlink()
    assert match is not None, tmp.name
    return match.group(1)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leftover(folder: Path, target: str, pid: int, tag: str, age_s: float = 0) -> Path:
    path = folder / f".{target}.{pid}-{tag}.{os.urandom(6).hex()}.tmp"
    path.write_text("half written")
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_temporary_name_holds_the_writer_pid(tmp_path):
    target = tmp_path / "labels.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert re.fullmatch(
            rf"\.labels\.csv\.{os.getpid()}-[0-9a-f]{{8}}\.[0-9a-f]{{12}}\.tmp", tmp.name
        )
        assert tmp.exists() and not target.exists()
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_failed_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_dead_writers_leftover_is_removed_live_writers_kept(tmp_path):
    tag = machine_tag(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = leftover(tmp_path, "labels.csv", dead_pid(), tag)
        mine = leftover(tmp_path, "labels.csv", os.getpid(), tag)
        other_live = leftover(tmp_path, "labels.csv", sleeper.pid, tag)
        # another target's leftover, and a name that merely looks alike, are not this write's
        other_target = leftover(tmp_path, "labels.csv.bak", dead_pid(), tag)
        lookalike = tmp_path / ".labels.csv.notes.tmp"
        lookalike.write_text("mine")
        atomic_write_text(tmp_path / "labels.csv", "new")
        assert not dead.exists()
        assert mine.exists() and other_live.exists()
        assert other_target.exists() and lookalike.exists()
        assert (tmp_path / "labels.csv").read_text() == "new"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_leftovers_that_cannot_be_probed_go_after_an_hour(tmp_path):
    before_pid_names = [
        tmp_path / ".labels.csv.ab_d12x9.tmp",
        tmp_path / ".labels.csv.q1w2e3r4.tmp",
    ]
    old_style, fresh_old_style = before_pid_names
    for path in before_pid_names:
        path.write_text("half")
    past = time.time() - 2 * HOUR
    os.utime(old_style, (past, past))
    # written on another machine sharing the folder: its PID means nothing here
    foreign_old = leftover(tmp_path, "labels.csv", dead_pid(), "0000beef", age_s=2 * HOUR)
    foreign_fresh = leftover(tmp_path, "labels.csv", dead_pid(), "0000beef", age_s=60)
    atomic_write_text(tmp_path / "labels.csv", "new")
    assert not old_style.exists() and not foreign_old.exists()
    assert fresh_old_style.exists() and foreign_fresh.exists()


def test_writer_killed_mid_write_is_cleaned_up_by_the_next_write(tmp_path):
    target = tmp_path / "preds.csv"
    target.write_text("old")
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from vidpose._atomic import atomic_path

        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write("half of the new")
                fh.flush()
                Path({str(ready)!r}).write_text(tmp.name)
                time.sleep(60)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not ready.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the writer never started writing"
    tmp_name = ready.read_text()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert tmp_name.startswith(f".preds.csv.{writer.pid}-")
    assert (tmp_path / tmp_name).read_text() == "half of the new"  # the leftover
    assert target.read_text() == "old"  # atomic: the old file is whole

    atomic_write_text(target, "new")
    assert not (tmp_path / tmp_name).exists()
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv", "ready"]


def test_leftover_with_an_impossible_pid_does_not_break_writes(tmp_path):
    tag = machine_tag(tmp_path)
    odd = leftover(tmp_path, "labels.csv", 10**30, tag)  # os.kill raises OverflowError
    atomic_write_text(tmp_path / "labels.csv", "new")
    assert (tmp_path / "labels.csv").read_text() == "new"
    assert odd.exists()  # cannot be probed and is fresh: kept
