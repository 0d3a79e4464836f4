"""`vidpose synthesize` with shifted sessions: options reach the library, bad ones are refused
before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpose.cli import main
from vidpose.cli.commands import synthesize as synthesize_cli
from vidpose.synthetic import SHIFT_KINDS, read_sessions
from vidpose.synthetic.shift import MAX_MAGNITUDE


def test_cli_shift_options(tmp_path: Path, capsys):
    out = tmp_path / "p"
    argv = ["synthesize", str(out), "--labeled", "2", "--videos", "1", "--frames", "12",
            "--height", "32", "--width", "32", "--shifted", "1", "--shift", "mild",
            "--shift-kinds", "lighting,camera"]  # fmt: skip
    assert main(argv) == 0
    assert "shifted sessions: shift00; their shifts are in" in capsys.readouterr().out
    (shift,) = [s for s in read_sessions(out) if s.kind == "shifted"]
    record = json.loads((out / "ground_truth" / "sessions.json").read_text())
    assert record["shift_magnitude"] == 0.5 and record["shift_kinds"] == ["lighting", "camera"]
    assert abs(shift.shift.lamp_gain - 1) == pytest.approx(0.2) and shift.shift.moves_camera
    assert shift.shift.body_scale == 1.0 and shift.shift.background_mix == 0.0
    assert (out / "videos" / "shift00.mp4").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shift", "mild"], "--shifted N"),
        (["--shifted", "1", "--shift", "3"], "mild, strong or a number from 0 to 2"),
        (["--shifted", "1", "--shift-kinds", "size,zoom"], "background,lighting,size"),
        (["--shifted", "-1"], "--shifted"),
    ],
)
def test_cli_refuses_bad_shift_options(tmp_path: Path, capsys, extra, message):
    try:
        code = main(["synthesize", str(tmp_path / "p"), *extra])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_cli_lists_the_library_factors():
    assert synthesize_cli.SHIFT_KINDS == SHIFT_KINDS
    assert synthesize_cli.MAX_SHIFT == MAX_MAGNITUDE
