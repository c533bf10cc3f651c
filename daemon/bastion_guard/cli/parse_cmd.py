"""``bastionctl parse``: print the events found in a log, one JSON object per line.

The first six keys are a stable contract used by outside evaluations:
``{"line", "kind", "outcome", "ip", "port", "user"}``; more keys may follow, never in between.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from bastion_guard.cli.common import EXIT_OK, fail, open_log
from bastion_guard.events import Event
from bastion_guard.native import choose_path, iter_results
from bastion_guard.parsing import LineParser, LineStatus
from bastion_guard.reading import iter_lines

_OPTIONAL_FIELDS = (
    "host", "program", "pid", "method", "key_type", "fingerprint", "cert_id", "cert_serial",
    "client_host", "user_valid", "attributed_by", "detail",
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``parse`` on the root parser."""
    parser = subparsers.add_parser(
        "parse",
        help="print the events found in a log (JSON lines)",
        description="Parse an auth log and print one JSON object per event. Lines that yield no event "
        "print nothing.",
    )
    parser.add_argument("file", nargs="?", default="-", help="log file, or - for standard input (default)")
    parser.add_argument("-o", "--output", choices=("jsonl",), default="jsonl", help="output format")
    parser.set_defaults(run=run)


def event_record(number: int, event: Event) -> dict[str, Any]:
    """The JSON object for one event, contract keys first."""
    record: dict[str, Any] = {
        "line": number,
        "kind": event.kind.value,
        "outcome": event.outcome.value,
        "ip": event.ip,
        "port": event.port,
        "user": event.user,
        "time": event.timestamp.isoformat(),
    }
    for name in _OPTIONAL_FIELDS:
        value = getattr(event, name)
        if value is not None:
            record[name] = value
    if event.repeat != 1:
        record["repeat"] = event.repeat
    return record


def _results(stream: BinaryIO, name: str, reference: float) -> Iterator[tuple[int, Event | LineStatus]]:
    """``(line number, result)`` per line, positions being byte offsets: natively when the library is
    built and suits the log (:func:`bastion_guard.native.choose_path`), else with :class:`LineParser`."""
    library, _description = choose_path(stream)
    if library is not None:
        yield from iter_results(stream, name, reference, library)
        return
    parser = LineParser(reference)
    for line in iter_lines(stream):
        yield line.number, parser.parse(line.text, name, line.offset)


def run(args: argparse.Namespace) -> int:
    """Parse ``args.file`` and write JSON lines to standard output."""
    try:
        with open_log(args.file) as (stream, reference, name):
            write = sys.stdout.write
            dumps = json.dumps
            for number, result in _results(stream, name, reference):
                if isinstance(result, Event):
                    write(dumps(event_record(number, result), ensure_ascii=False) + "\n")
    except OSError as error:
        return fail(f"cannot read {args.file}: {error.strerror or error}")
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK
