"""Command-line parsing shared by every subcommand."""

from __future__ import annotations

import pytest

from vidpose.cli import parse_args


def test_overrides_may_follow_options():
    args = parse_args(["train", "P", "a.b=1", "--no-progress", "c.d=[x,y]", "--resume"])
    assert args.overrides == ["a.b=1", "c.d=[x,y]"]
    assert args.no_progress and args.resume


def test_unknown_options_and_stray_words_are_still_errors(capsys):
    with pytest.raises(SystemExit):
        parse_args(["train", "P", "--no-such-option"])
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["check", "P", "x=1"])  # check takes no overrides


def test_every_argument_of_every_command_has_help():
    import argparse

    from vidpose.cli import build_parser

    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for a in sub._actions:
                    if not isinstance(a, argparse._HelpAction) and not a.help:
                        missing.append(f"{name} {a.option_strings or a.dest}")
    assert not missing, missing


def test_the_command_prints_a_warning_as_one_line(monkeypatch, capsys):
    """Run as the command, a warning is ``warning: message``, without Python's file:line and
    source line; called with arguments, the caller's warning handling is left alone."""
    import argparse
    import warnings

    import vidpose.cli as cli

    def handle(_args):
        warnings.warn("12 frame(s) could not be decoded", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "parse_args", lambda argv=None: argparse.Namespace(handle=handle))
    monkeypatch.delenv("VIDPOSE_DEBUG", raising=False)
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main() == 0
        err = capsys.readouterr().err
        assert "warning: 12 frame(s) could not be decoded" in err
        assert "UserWarning" not in err and "test_cli.py" not in err
        with pytest.warns(UserWarning, match="could not be decoded"):
            assert cli.main(["anything"]) == 0
    assert warnings.showwarning is before
