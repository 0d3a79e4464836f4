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
