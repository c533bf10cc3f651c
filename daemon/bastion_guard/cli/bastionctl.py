"""``bastionctl``: the operator's tool. Each subcommand lives in its own module; this one only routes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bastion_guard import __version__
from bastion_guard.cli import (
    audit_cmd,
    completion_cmd,
    config_reference_cmd,
    control_cmds,
    deadletter_cmd,
    help_texts,
    keys_cmd,
    parse_cmd,
    ssh_config_cmd,
    test_cmd,
    webhook_cmd,
)
from bastion_guard.cli.common import EXIT_OK, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The root argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="bastionctl",
        description="Operate bastion-guard: parse and test auth logs, and control the running bastiond.",
    )
    parser.add_argument("--version", action="version", version=f"bastionctl {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    parse_cmd.add_parser(subparsers)
    test_cmd.add_parser(subparsers)
    control_cmds.add_parsers(subparsers)
    ssh_config_cmd.add_parser(subparsers)
    audit_cmd.add_parser(subparsers)
    deadletter_cmd.add_parser(subparsers)
    webhook_cmd.add_parser(subparsers)
    keys_cmd.add_parsers(subparsers)
    config_reference_cmd.add_parser(subparsers)
    completion_cmd.add_parser(subparsers, parser)
    return help_texts.apply(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bastionctl`` and return its exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours. Keep Python from complaining at exit.
        sys.stderr.close()
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
