"""``bastiond``: follow an auth log, run the detection core on every new line, report decisions.

This is the first cut of the daemon: it follows one file (reopening it after rename rotation), parses
each line, feeds the rules engine and prints each decision as a JSON line. Enforcement (nftables),
saved positions and the control socket come with the daemon issue; until then it runs as a dry run and
says so. ``--check-config`` validates the rules and exits, for ExecStartPre/ExecReload.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bastion_guard import __version__
from bastion_guard.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bastion_guard.cli.test_cmd import decision_json
from bastion_guard.defaults import default_rules_dir
from bastion_guard.errors import ConfigError
from bastion_guard.events import Event
from bastion_guard.parsing import LineParser
from bastion_guard.reading import decode
from bastion_guard.rules import Engine, load_rules

_POLL_SECS = 0.2
_MAX_PENDING_BYTES = 64 * 1024  # a partial line longer than this is dropped, never buffered without bound
_CANDIDATE_LOGS = (Path("/var/log/auth.log"), Path("/var/log/secure"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; return its exit code."""
    parser = argparse.ArgumentParser(prog="bastiond", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"bastiond {__version__}")
    parser.add_argument(
        "--log", type=Path, help="log file to follow (default: /var/log/auth.log, else /var/log/secure)"
    )
    parser.add_argument("--rules", type=Path, help="rules directory (default: installed or bundled rules)")
    parser.add_argument("--from-start", action="store_true", help="read the file from its start, then follow")
    parser.add_argument("--check-config", action="store_true", help="validate the rules and exit")
    args = parser.parse_args(argv)
    rules_dir = args.rules or default_rules_dir()
    try:
        ruleset = load_rules(rules_dir)
    except ConfigError as error:
        print(f"bastiond: invalid rules in {rules_dir}:\n{error}", file=sys.stderr)
        return EXIT_USAGE
    if args.check_config:
        print(f"bastiond: {len(ruleset.rules)} rules in {rules_dir} are valid")
        return EXIT_OK
    log = args.log or next((path for path in _CANDIDATE_LOGS if path.exists()), None)
    if log is None:
        print("bastiond: no auth log found; pass --log FILE", file=sys.stderr)
        return EXIT_FAILURE
    print(f"bastiond: following {log} with {len(ruleset.rules)} rules (dry run: decisions are reported, "
          "not enforced)", file=sys.stderr, flush=True)
    return _follow(log, LineParser(time.time()), Engine(ruleset), args.from_start)


def _follow(path: Path, parser: LineParser, engine: Engine, from_start: bool) -> int:
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stream = None
    identity: tuple[int, int] | None = None
    pending = b""
    while not stopping:
        if stream is None:
            try:
                stream = path.open("rb")
            except OSError:
                time.sleep(_POLL_SECS)
                continue
            status = os.fstat(stream.fileno())
            identity = (status.st_dev, status.st_ino)
            if not from_start:
                stream.seek(0, os.SEEK_END)
            from_start = True  # every later file (after rotation) is read from its start
        chunk = stream.read(1 << 16)
        if chunk:
            pending = _consume(pending + chunk, parser, engine, path)
            continue
        parser.advance_clock(time.time())
        try:
            current = path.stat()
            if (current.st_dev, current.st_ino) != identity or current.st_size < stream.tell():
                stream.close()  # rotated (renamed or truncated): the old file is drained, open the new one
                stream = None
                continue
        except OSError:
            pass
        time.sleep(_POLL_SECS)
    if stream is not None:
        stream.close()
    return EXIT_OK


def _consume(data: bytes, parser: LineParser, engine: Engine, path: Path) -> bytes:
    *lines, pending = data.split(b"\n")
    for raw in lines:
        result = parser.parse(decode(raw), str(path))
        if isinstance(result, Event):
            for decision in engine.feed(result):
                print(json.dumps(decision_json(decision)), flush=True)
    return pending if len(pending) <= _MAX_PENDING_BYTES else b""


if __name__ == "__main__":
    sys.exit(main())
