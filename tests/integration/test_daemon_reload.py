"""A reload re-reads bastiond.yaml: allowlist and sinks change in place, settings owned by start are named.

A real bastiond (dry-run firewall, no root) and the GELF protocol test double over TCP as the sink that a
reload adds and later removes.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from bastiond_process import BastiondProcess, failed_password
from realparts import wait_until

from doubles.gelf_double import TcpReceiver

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds; this machine is shared


def _config(daemon: BastiondProcess, extra: str) -> None:
    daemon.config.write_text(
        f"sources: [{{type: file, path: {daemon.log}}}]\nrules_dir: {daemon.rules}\nstate_dir: {daemon.root / 'state'}\n"
        f"runtime_dir: {daemon.root / 'run'}\nfirewall: {{backend: dry-run}}\n"
        "spool: {backoff_initial_secs: 0.05, backoff_max_secs: 0.5}\n" + extra
    )


def _failures(daemon: BastiondProcess, address: str, first_pid: int) -> None:
    daemon.append(failed_password("root", address, pid=first_pid + i, port=40000 + i) for i in range(6))


def _bans(daemon: BastiondProcess) -> list[str]:
    result = daemon.ctl("bans", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return sorted(ban["target"] for ban in json.loads(result.stdout))


def _reload(daemon: BastiondProcess) -> dict[str, Any]:
    result = daemon.ctl("reload", "-o", "json")
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def test_reload_applies_allowlist_and_sinks_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    receiver = TcpReceiver()
    daemon = BastiondProcess(tmp_path, config=tmp_path / "bastiond.yaml")
    _config(daemon, "metrics: {port: 0}\n")
    daemon.log.write_text("")
    try:
        daemon.start()
        assert daemon.status()["shipping"] is None

        # Add an allowlist and a sink, and change a setting only a restart applies.
        sink = f"{{type: gelf, name: graylog, transport: tcp, host: 127.0.0.1, port: {receiver.port}}}"
        _config(daemon, f"metrics: {{port: 0, address: 127.0.0.2}}\nallowlist: [203.0.113.0/24]\nsinks: [{sink}]\n")
        reply = _reload(daemon)
        assert reply["sinks"] == ["graylog"] and reply["restart_needed"] == ["metrics"]
        _failures(daemon, "203.0.113.7", 100)
        _failures(daemon, "198.51.100.7", 200)
        daemon.wait_lines(12)
        assert _bans(daemon) == ["198.51.100.7"], "the reloaded allowlist protects 203.0.113.7"
        def shipped() -> set[str]:  # GELF has no dedup: a batch in flight when a sink process stops comes again
            return {m.payload["_event_id"] for m in receiver.messages if m.payload.get("_record_kind") == "event"}

        wait_until(lambda: len(shipped()) == 12, "the 12 events at the sink added by the reload", timeout=WAIT)

        # Two reloads in quick succession, each changing the sink: the sink process is swapped twice, in order,
        # off the loop.
        for timeout in (3, 4):
            changed = sink.replace("}", f", timeout_secs: {timeout}}}")
            _config(daemon, f"metrics: {{port: 0, address: 127.0.0.2}}\nallowlist: [203.0.113.0/24]\nsinks: [{changed}]\n")
            assert daemon.ctl("reload").returncode == 0
        _failures(daemon, "198.51.100.8", 250)
        daemon.wait_lines(18)
        wait_until(lambda: len(shipped()) == 18, "6 more events after two quick reloads", timeout=WAIT)
        # The spool the reloads kept sees the deliveries: its backlog empties (a second connection opened beside
        # the running sink process used to stay stuck at the records already sent).
        wait_until(lambda: daemon.sink("graylog")["depth"] == 0, "an empty backlog after delivery", timeout=WAIT)

        # A broken file is refused and everything keeps running as it was.
        daemon.config.write_text("sinks: [{type: gelf, name: graylog, transport: carrier-pigeon}]\n")
        refused = daemon.ctl("reload")
        assert refused.returncode == 1 and "running configuration stays" in refused.stderr, refused.stderr
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)  # the same through the signal: refused, logged, still running
        assert daemon.sink("graylog")["healthy"]

        # Removing the sink stops shipping; detection goes on.
        _config(daemon, "metrics: {port: 0}\n")
        reply = _reload(daemon)
        assert reply["sinks"] == [] and reply["restart_needed"] == []
        assert daemon.status()["shipping"] is None
        _failures(daemon, "203.0.113.7", 300)
        daemon.wait_lines(24)
        assert _bans(daemon) == ["198.51.100.7", "198.51.100.8", "203.0.113.7"], "the allowlist went with the reload"
        assert len(shipped()) == 18
    finally:
        daemon.close()
        receiver.close()


def test_sighup_while_catching_up_never_blocks_the_loop(tmp_path: Path) -> None:
    """SIGHUPs while the loop is far behind (a backlog of lines: its inbox is full) are served by the loop when
    it gets to them; the handler used to put into that full inbox from the loop's own thread and wait forever."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    daemon = BastiondProcess(tmp_path, config=tmp_path / "bastiond.yaml")
    _config(daemon, "metrics: {port: 0}\n")
    backlog = 1_000_000
    with daemon.log.open("w") as out:
        out.writelines(failed_password("root", f"198.51.{n // 250 % 250}.{n % 250 + 1}", pid=1000 + n, port=40000)
                       for n in range(backlog))
    try:
        daemon.start()
        assert daemon.process is not None
        for _ in range(40):  # spread over the catch-up, while sources keep the inbox full
            daemon.process.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        daemon.wait_lines(backlog, timeout=180)
        assert daemon.ctl("status").returncode == 0
        assert "reloaded" in daemon.run_output()
    finally:
        daemon.close()
