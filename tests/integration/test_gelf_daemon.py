"""A real bastiond ships to Graylog (the GELF protocol test double) over TCP and HTTP through its spool, across
an outage of the receiver, a clean restart and a SIGKILL of the daemon: every line arrives, as valid GELF.

No root needed: the firewall is the dry-run backend and everything lives in a temporary directory. It needs
the spool and the ``gelf`` entry in ``shipping/factory.py`` (the shipping branch); until both are there it
skips, saying so.
"""

from __future__ import annotations

import importlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from doubles.gelf_double import HttpReceiver, TcpReceiver

REPO = Path(__file__).resolve().parents[2]


def _gelf_registered() -> bool:
    try:
        factory = importlib.import_module("bastion_guard.shipping.factory")
    except ImportError:
        return False
    return "gelf" in getattr(factory, "SINK_TYPES", {})


pytestmark = pytest.mark.skipif(not _gelf_registered(),
                                reason="bastiond has no sink registry with a gelf entry (shipping/factory.py)")


class Daemon:
    """One bastiond process with a GELF sink, and bastionctl against it."""

    def __init__(self, root: Path, sink: str) -> None:
        self.root = root
        self.log = root / "auth.log"
        self.socket = root / "run" / "bastiond.sock"
        self.config = root / "bastiond.yaml"
        self.config.write_text(
            f"sources: [{{type: file, path: {self.log}}}]\n"
            f"rules_dir: {root / 'rules'}\nstate_dir: {root / 'state'}\nruntime_dir: {root / 'run'}\n"
            "firewall: {backend: dry-run}\nmetrics: {port: 0}\n"
            "spool: {backoff_initial_secs: 0.05, backoff_max_secs: 0.5}\n"
            f"sinks: [{sink}]\n"
        )
        self.process: subprocess.Popen[str] | None = None
        self.written = 0

    def start(self) -> None:
        """Start the daemon and wait until its control socket answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        _wait(lambda: (self.socket.exists() and self.ctl("status").returncode == 0) or self._exited(), "bastiond")
        assert self.process.poll() is None, self.process.stdout.read() if self.process.stdout else ""

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, output
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all."""
        assert self.process is not None
        self.process.kill()
        self.process.communicate(timeout=10)
        self.process = None

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run bastionctl against this daemon."""
        return subprocess.run(
            [sys.executable, "-m", "bastion_guard.cli.bastionctl", *args, "--socket", str(self.socket)],
            capture_output=True, text=True, check=False, timeout=30,
        )

    def sink_status(self) -> dict[str, Any]:
        """The GELF sink's entry in ``bastionctl status -o json``."""
        result = self.ctl("status", "-o", "json")
        assert result.returncode == 0, result.stderr
        sink: dict[str, Any] = json.loads(result.stdout)["shipping"]["sinks"][0]
        return sink

    def lines(self) -> int:
        """Lines this run of the daemon processed."""
        result = self.ctl("status", "-o", "json")
        return int(json.loads(result.stdout)["sources"][0]["lines"]) if result.returncode == 0 else -1

    def write(self, count: int) -> None:
        """Append ``count`` failed logins with distinct, partly hostile user names (five addresses: bans too)."""
        with self.log.open("a") as out:
            for _ in range(count):
                number = self.written
                self.written += 1
                stamp = datetime.now(UTC).isoformat(timespec="microseconds")
                user = f"user{number}" if number % 3 else f"user{number} from 198.51.100.9 port 1"
                out.write(f"{stamp} bastion sshd[{1000 + number}]: Failed password for invalid user {user} from "
                          f"203.0.113.{number % 5 + 1} port {40000 + number} ssh2\n")


def _wait(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _events(receiver: TcpReceiver | HttpReceiver) -> list[dict[str, Any]]:
    return [m.payload for m in receiver.messages if m.payload.get("_record_kind") == "event"]


@pytest.mark.parametrize("transport", ["tcp", "http"])
def test_every_line_arrives_across_receiver_outage_restart_and_kill(tmp_path: Path, transport: str) -> None:
    """The receiver goes away while lines arrive over a clean restart and a SIGKILL of the daemon; when it is
    back on the same port every line is there (at least once: GELF receivers cannot de-duplicate, so a
    duplicate is allowed and recognisable by ``_event_id``; none is expected here, since nothing was in
    flight when the receiver went away), user names intact, bans shipped as decisions."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    receiver: TcpReceiver | HttpReceiver = TcpReceiver() if transport == "tcp" else HttpReceiver()
    port = receiver.port
    daemon = Daemon(tmp_path, f"{{type: gelf, name: graylog, transport: {transport}, host: 127.0.0.1, "
                              f"port: {port}, timeout_secs: 2}}")
    daemon.log.write_text("")
    try:
        daemon.start()
        daemon.write(15)
        _wait(lambda: len(_events(receiver)) == 15, "the first 15 events")
        first = receiver
        first.close()  # Graylog goes away; the port stays free for its return

        daemon.write(20)
        _wait(lambda: daemon.lines() == 35, "35 lines processed")
        _wait(lambda: not daemon.sink_status()["healthy"], "the sink to report the outage")
        daemon.stop()
        daemon.write(10)
        daemon.start()
        _wait(lambda: daemon.lines() == 10, "10 more lines")
        daemon.kill()
        daemon.write(5)
        daemon.start()
        _wait(lambda: daemon.lines() == 5, "5 more lines")
        assert daemon.sink_status()["depth"] >= 35

        receiver = TcpReceiver(port=port) if transport == "tcp" else HttpReceiver(port=port)
        _wait(lambda: len({e["_event_id"] for e in _events(receiver)}) == 35, "the 35 spooled events")
        _wait(lambda: daemon.sink_status()["depth"] == 0, "the spool to drain")
        events = _events(receiver)
        assert receiver.violations == []
        assert all(count == 1 for count in Counter(e["_event_id"] for e in events).values())
        offsets = sorted(e["_log_offset"] for e in events)
        assert len(offsets) == 35 and len(set(offsets)) == 35
        users = {e["_user_name"] for e in events}
        assert "user15 from 198.51.100.9 port 1" in users
        assert {e["_source_ip"] for e in events} <= {f"203.0.113.{n}" for n in range(1, 6)}
        assert {e["level"] for e in events} == {4}
        kinds = {m.payload["_record_kind"] for m in [*first.messages, *receiver.messages]}
        assert "decision" in kinds, "ban decisions are shipped too"
        daemon.stop()
    finally:
        if daemon.process is not None:
            daemon.process.kill()
            daemon.process.communicate()
        receiver.close()

