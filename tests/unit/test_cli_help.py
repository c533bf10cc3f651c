"""Every command and subcommand of bastionctl and bastiond explains itself: description, examples, option help."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from bastion_guard import __version__
from bastion_guard.cli import bastionctl, bastiond
from bastion_guard.cli.help_texts import EXAMPLES, walk

PARSERS = {"bastionctl": bastionctl.build_parser(), "bastiond": bastiond.build_parser()}
COMMANDS = [(path, parser) for root in PARSERS.values() for path, parser in walk(root)]


def test_the_tree_is_walked_whole() -> None:
    """The walk reaches nested subcommands (bans list), not just the first level."""
    paths = {path for path, _ in COMMANDS}
    assert {"bastionctl", "bastionctl bans", "bastionctl bans list", "bastionctl completion", "bastiond"} <= paths
    assert len(paths) == len(COMMANDS)


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_command_has_description_and_examples(path: str, parser: argparse.ArgumentParser) -> None:
    """``--help`` shows a description and an examples section that uses the command itself."""
    assert parser.description and len(parser.description) > 20, path
    text = parser.format_help()
    assert "\nexamples:\n" in text, text
    examples = text.split("\nexamples:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  ") for line in examples if line), text
    assert any(path in line for line in examples), f"no example of {path!r} in:\n{text}"


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_argument_and_subcommand_has_help(path: str, parser: argparse.ArgumentParser) -> None:
    """No option, positional or subcommand is listed without a sentence saying what it does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{path} {choice.dest}: subcommand without help"
        elif action.help != argparse.SUPPRESS:
            assert action.help, f"{path}: {action.option_strings or action.dest} has no help"


def test_examples_name_only_real_commands() -> None:
    """A command removed or renamed cannot leave its examples behind."""
    assert set(EXAMPLES) <= {path for path, _ in COMMANDS}


@pytest.mark.parametrize("root", sorted(PARSERS))
def test_version(root: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` prints the program and the package version and exits 0."""
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()):
        PARSERS[root].parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"{root} {__version__}\n"
