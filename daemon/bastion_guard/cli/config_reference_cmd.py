"""``bastionctl config-reference``: the configuration reference, or a commented ``bastiond.yaml``.

Both come from the field docs of the config model (:mod:`bastion_guard.runtime.config_reference`), so
``docs/configuration.md`` and the installed default configuration are regenerated, never hand-edited.
"""

from __future__ import annotations

import argparse
import sys

from bastion_guard.cli.common import EXIT_OK
from bastion_guard.runtime.config_reference import render, render_commented_config


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``config-reference``."""
    parser = subparsers.add_parser(
        "config-reference",
        help="print the bastiond.yaml reference (Markdown) or a commented default file",
        description="Print every key of bastiond.yaml with its default, meaning and an example, generated "
        "from the configuration model: as Markdown (docs/configuration.md) or as a fully commented "
        "bastiond.yaml that runs on the defaults.",
    )
    parser.add_argument("--format", choices=("markdown", "yaml"), default="markdown",
                        help="markdown reference (default) or commented YAML configuration")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the chosen form."""
    sys.stdout.write(render() + "\n" if args.format == "markdown" else render_commented_config() + "\n")
    return EXIT_OK
