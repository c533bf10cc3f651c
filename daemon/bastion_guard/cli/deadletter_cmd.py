"""``bastionctl deadletter list | show ID | replay [ID...] [--sink NAME]``: records a sink rejected for good.

Works on the spool file directly (``<state_dir>/spool.db``), so it works whether bastiond runs or not; the
spool is SQLite in WAL mode, and a replay is one transaction the running workers pick up on their next
look. A replay puts the records back for the sink that rejected them only (the others had them already).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bastion_guard.cli.common import EXIT_OK, EXIT_USAGE, fail
from bastion_guard.errors import BastionError, ConfigError
from bastion_guard.runtime.config import load_config
from bastion_guard.shipping.spool import DeadLetter, Spool


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``deadletter`` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="bastiond.yaml, for state_dir (default: the installed one)")
    common.add_argument("--state-dir", type=Path, help="where spool.db lives (overrides the configuration)")
    common.add_argument("-o", "--output", choices=("human", "json"), default="human", help="output format")

    parser = subparsers.add_parser("deadletter", parents=[common], help="records a sink rejected: list, show, replay")
    commands = parser.add_subparsers(title="deadletter commands", metavar="COMMAND")
    listing = commands.add_parser("list", parents=[common], help="list dead letters")
    listing.add_argument("--sink", help="only this sink's")
    listing.set_defaults(run=_list)
    parser.set_defaults(run=_list, sink=None)

    show = commands.add_parser("show", parents=[common], help="one dead letter with its record")
    show.add_argument("number", type=int, help="the number from deadletter list")
    show.set_defaults(run=_show)

    replay = commands.add_parser("replay", parents=[common], help="put dead letters back in the spool")
    replay.add_argument("numbers", type=int, nargs="*", help="numbers from deadletter list (default: all)")
    replay.add_argument("--sink", help="only those rejected by this sink")
    replay.set_defaults(run=_replay)


def _open(args: argparse.Namespace) -> Spool | int:
    try:
        state_dir = args.state_dir or load_config(args.config).state_dir
        return Spool.open_existing(state_dir / "spool.db")
    except ConfigError as error:
        return fail(f"invalid configuration:\n{error}", EXIT_USAGE)
    except BastionError as error:
        return fail(str(error))


def _letter_json(letter: DeadLetter, *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"number": letter.number, "sink": letter.sink, "id": letter.record.id,
                            "kind": letter.record.kind.value, "epoch": letter.record.epoch,
                            "reason": letter.reason, "rejected": letter.rejected}
    if full:
        data["body"] = letter.record.body
    return data


def _emit(args: argparse.Namespace, data: Any, human: str) -> int:
    if args.output == "json":
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(human)
    return EXIT_OK


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _list(args: argparse.Namespace) -> int:
    spool = _open(args)
    if isinstance(spool, int):
        return spool
    try:
        letters = spool.dead_letters(args.sink)
    finally:
        spool.close()
    rows = [f"{'#':>5}  {'SINK':<16} {'REJECTED':<19}  {'KIND':<8} REASON"]
    rows += [f"{letter.number:>5}  {letter.sink:<16} {_when(letter.rejected):<19}  {letter.record.kind.value:<8} "
             f"{letter.reason}" for letter in letters]
    return _emit(args, [_letter_json(letter, full=False) for letter in letters],
                 "\n".join(rows) if letters else "no dead letters")


def _show(args: argparse.Namespace) -> int:
    spool = _open(args)
    if isinstance(spool, int):
        return spool
    try:
        letter = spool.dead_letter(args.number)
    finally:
        spool.close()
    if letter is None:
        return fail(f"no dead letter {args.number} (see bastionctl deadletter list)")
    human = "\n".join([
        f"dead letter {letter.number}: rejected by {letter.sink} at {_when(letter.rejected)}",
        f"reason: {letter.reason}",
        f"record {letter.record.id} ({letter.record.kind.value}, event time {_when(letter.record.epoch)}):",
        json.dumps(letter.record.body, indent=2, ensure_ascii=False),
    ])
    return _emit(args, _letter_json(letter, full=True), human)


def _replay(args: argparse.Namespace) -> int:
    spool = _open(args)
    if isinstance(spool, int):
        return spool
    try:
        known = {letter.number for letter in spool.dead_letters(args.sink)}
        missing = sorted(set(args.numbers) - known)
        if missing:
            return fail(f"no dead letter {', '.join(map(str, missing))}"
                        f"{f' for sink {args.sink}' if args.sink else ''} (see bastionctl deadletter list)")
        count = spool.replay(args.numbers or None, args.sink)
    except BastionError as error:
        return fail(str(error))
    finally:
        spool.close()
    return _emit(args, {"replayed": count}, f"replayed {count} records into the spool")
