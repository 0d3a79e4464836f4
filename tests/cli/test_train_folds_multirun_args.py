"""`vidpose train --folds / --multirun / --jobs`: bad values and combinations are refused
before any work, naming the option."""

from __future__ import annotations

import pytest

from vidpose.cli import main

CASES = [
    # argparse errors (usage, exit 2), the option named
    (["--folds", "0"], ["argument --folds", "integer >= 2", "'0'"]),
    (["--folds", "1"], ["argument --folds", "integer >= 2", "'1'"]),
    (["--folds", "17"], ["argument --folds", "at most 16", "got 17"]),
    (["--folds", "two"], ["argument --folds", "'two'"]),
    (["--multirun", "--jobs", "0"], ["argument --jobs", "integer >= 1", "'0'"]),
    # combinations that cannot work, with what to do instead
    (["--folds", "2", "--seeds", "0,1"], ["--folds and --seeds cannot be combined"]),
    (["--folds", "2", "--resume"], ["--resume is for one model", "run the same command again"]),
    (["--multirun", "--seeds", "0,1"], ["--multirun and --seeds cannot be combined"]),
    (["--multirun", "--resume"], ["--resume is for one model", "--multirun"]),
    (["--jobs", "2"], ["--jobs", "needs --multirun"]),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_options_are_refused_before_any_work(
    args, expected, tiny_project_src, tmp_path, capsys
):
    out = tmp_path / "out"
    try:
        code = main(["train", str(tiny_project_src), *args, "--model-dir", str(out)])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2, text
    for e in expected:
        assert e in text, text
    assert "Traceback" not in text
    assert not out.exists()
    assert not (tiny_project_src / "models").exists()
