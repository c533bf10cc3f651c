"""A real bastiond ships to Graylog (the GELF protocol test double) over TCP and HTTP through its spool, across
an outage of the receiver, a clean restart and a SIGKILL of the daemon: every line arrives, as valid GELF.

No root needed: the firewall is the dry-run backend and everything lives in a temporary directory. It needs
the spool and the ``gelf`` entry in ``shipping/factory.py`` (the shipping branch); until both are there it
skips, saying so.
"""

from __future__ import annotations

import importlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bastiond_process import BastiondProcess, failed_password
from realparts import wait_until

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

SETTINGS = "metrics: {port: 0}\nspool: {backoff_initial_secs: 0.05, backoff_max_secs: 0.5}\n"
WAIT = 30.0  # seconds for deliveries and status changes; this machine is shared


def _write(daemon: BastiondProcess, count: int) -> None:
    """Append ``count`` failed logins with distinct, partly hostile user names (five addresses: bans too)."""
    first = daemon.appended
    daemon.append(
        failed_password(f"user{number}" if number % 3 else f"user{number} from 198.51.100.9 port 1",
                        f"203.0.113.{number % 5 + 1}", pid=1000 + number, port=40000 + number, invalid=True)
        for number in range(first, first + count)
    )


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
    sink = f"{{type: gelf, name: graylog, transport: {transport}, host: 127.0.0.1, port: {port}, timeout_secs: 2}}"
    daemon = BastiondProcess(tmp_path, settings=f"{SETTINGS}sinks: [{sink}]\n")
    daemon.log.write_text("")
    try:
        daemon.start()
        _write(daemon, 15)
        wait_until(lambda: len(_events(receiver)) == 15, "the first 15 events", timeout=WAIT)
        first = receiver
        first.close()  # Graylog goes away; the port stays free for its return

        _write(daemon, 20)
        wait_until(lambda: daemon.lines_read() == 35, "35 lines processed", timeout=WAIT)
        wait_until(lambda: not daemon.sink("graylog")["healthy"], "the sink to report the outage", timeout=WAIT)
        daemon.stop()
        _write(daemon, 10)
        daemon.start()
        wait_until(lambda: daemon.lines_read() == 10, "10 more lines", timeout=WAIT)
        daemon.kill()
        _write(daemon, 5)
        daemon.start()
        wait_until(lambda: daemon.lines_read() == 5, "5 more lines", timeout=WAIT)
        assert daemon.sink("graylog")["depth"] >= 35

        receiver = TcpReceiver(port=port) if transport == "tcp" else HttpReceiver(port=port)
        wait_until(lambda: len({e["_event_id"] for e in _events(receiver)}) == 35, "the 35 spooled events", timeout=WAIT)
        wait_until(lambda: daemon.sink("graylog")["depth"] == 0, "the spool to drain", timeout=WAIT)
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
        daemon.close()
        receiver.close()

