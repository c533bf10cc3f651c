"""``bastiond``: follow the auth log, ban in the kernel firewall, keep state across restarts.

``bastiond --check-config`` validates configuration and rules and exits (systemd's ExecStartPre and
ExecReload run it, so a bad configuration never replaces a good one). ``bastiond --demo`` runs on
embedded defaults without root: it writes the bundled demo auth.log into a local folder line by line, as
sshd would, follows it with a dry-run firewall and shows each decision as it is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bastion_guard import __version__
from bastion_guard.cli import help_texts
from bastion_guard.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from bastion_guard.decisions import Decision
from bastion_guard.defaults import DEMO_LOG
from bastion_guard.durations import format_duration
from bastion_guard.errors import BastionError, ConfigError
from bastion_guard.keys.inventory import load_inventory
from bastion_guard.rules import load_rules
from bastion_guard.runtime.config import FIREWALL_BACKENDS, DaemonConfig, MetricsConfig, SourceConfig, load_config
from bastion_guard.runtime.daemon import Daemon, build_daemon

log = logging.getLogger("bastiond")
_DEMO_LINES_PER_SECOND = 400.0


def build_parser() -> argparse.ArgumentParser:
    """bastiond's command line."""
    parser = argparse.ArgumentParser(prog="bastiond", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"bastiond {__version__}")
    parser.add_argument("--config", type=Path, help="configuration file (default: /etc/bastion-guard/bastiond.yaml)")
    parser.add_argument("--check-config", action="store_true", help="validate configuration and rules, then exit")
    parser.add_argument("--log", type=Path, help="follow this file instead of the configured sources")
    parser.add_argument("--rules", type=Path, help="rules directory")
    parser.add_argument("--state-dir", type=Path, help="where the state database lives")
    parser.add_argument("--runtime-dir", type=Path, help="where the control socket lives")
    parser.add_argument("--firewall", choices=FIREWALL_BACKENDS, help="firewall backend")
    parser.add_argument("--netns", help="apply firewall changes inside this network namespace")
    parser.add_argument("--demo", action="store_true", help="run on the bundled demo log, no root needed")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    return help_texts.apply(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run bastiond; return its exit code (0 ok, 1 failure, 2 configuration error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _config(args)
        if args.check_config:
            ruleset = load_rules(config.rules_dir)
            load_inventory(config.keys)  # an invalid keys.yaml is reported here, before it can matter
            print(f"bastiond: {config.origin} and {len(ruleset.rules)} rules in {config.rules_dir} are valid")
            return EXIT_OK
        if args.demo:
            _prepare_demo()
        daemon = build_daemon(config, load_config=lambda: _config(args))
    except ConfigError as error:
        print(f"bastiond: invalid configuration:\n{error}", file=sys.stderr)
        return EXIT_USAGE
    except BastionError as error:
        print(f"bastiond: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return _run(daemon, demo=args.demo)


_DEMO_BASE = Path("state")


def _prepare_demo() -> None:
    """A fresh demo every time: an empty log to follow, no saved position or bans from an earlier run."""
    base = _DEMO_BASE.resolve()
    base.mkdir(parents=True, exist_ok=True)
    (base / "demo-auth.log").write_bytes(b"")
    for stale in base.glob("state.db*"):
        stale.unlink()


def _config(args: argparse.Namespace) -> DaemonConfig:
    """The configuration file (or the embedded defaults) with the command line's options on top: read at start
    and again by every reload, so it must not change anything on disk."""
    config = load_config(args.config)
    if args.demo:
        base = _DEMO_BASE.resolve()
        config = dataclasses.replace(
            config, sources=(SourceConfig("file", base / "demo-auth.log"),), state_dir=base,
            runtime_dir=base / "run", firewall="dry-run", origin="demo defaults",
            metrics=MetricsConfig(port=0),  # a demo beside a running bastiond must not fight over its port
        )
    # Command-line options win over the file; an option left out keeps the configured value.
    return dataclasses.replace(
        config,
        sources=(SourceConfig("file", args.log),) if args.log is not None else config.sources,
        rules_dir=args.rules or config.rules_dir,
        state_dir=args.state_dir or config.state_dir,
        runtime_dir=args.runtime_dir or config.runtime_dir,
        firewall=args.firewall or config.firewall,
        netns=args.netns or config.netns,
    )


def _run(daemon: Daemon, *, demo: bool) -> int:
    def stop(_signum: int, _frame: FrameType | None) -> None:
        daemon.stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        daemon.reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    if demo:
        daemon.on_decision = _show
        writer = threading.Thread(target=_write_demo, args=(daemon,), name="demo writer", daemon=True)
    try:
        daemon.start()
        if demo:
            writer.start()
        daemon.run()
    except BastionError as error:
        log.error("%s", error)
        return EXIT_FAILURE
    finally:
        daemon.close()
    return EXIT_OK


def _write_demo(daemon: Daemon) -> None:
    """Append the bundled demo log to the followed file at a readable pace, then stop the daemon."""
    source = daemon.config.sources[0].path
    assert source is not None  # noqa: S101 - the demo config always has a file source
    lines = DEMO_LOG.read_bytes().splitlines(keepends=True)
    print(f"demo: writing {len(lines)} auth.log lines to {source}; decisions appear below (Ctrl-C to stop)")
    with source.open("ab") as out:
        for index, line in enumerate(lines):
            out.write(_restamped(line))
            if index % 20 == 19:
                out.flush()
                time.sleep(20 / _DEMO_LINES_PER_SECOND)
    time.sleep(2.0)
    print("demo: done; run `bastionctl test` on your own auth.log next")
    daemon.stop()


def _restamped(line: bytes) -> bytes:
    """The demo line written *now*: bans are timed from the log's own clock, so old stamps would expire at once."""
    stamp, space, rest = line.partition(b" ")
    if not space or not stamp[:4].isdigit():
        return line
    return datetime.now(UTC).isoformat(timespec="microseconds").encode() + b" " + rest


def _show(decision: Decision) -> None:
    when = datetime.fromtimestamp(decision.epoch, UTC).strftime("%H:%M:%S")
    length = f" for {format_duration(decision.duration_secs)}" if decision.duration_secs else ""
    lines = ", ".join(str(evidence.position) for evidence in decision.evidence[:6])
    print(f"{when} {decision.verdict.value.upper():5} {decision.target:<26} {decision.rule}{length}: "
          f"{decision.reason} (offsets {lines})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
