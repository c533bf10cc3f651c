"""The outage test: Elasticsearch (the protocol test double) is down while events flow through a real bastiond,
which is restarted cleanly once and killed with SIGKILL once; when it comes back every event is there exactly once.

No root needed: the firewall is the dry-run backend and everything lives in a temporary directory. The daemon's
back-off is configured short so the outage costs seconds of real time (the worker's long-outage behaviour
in simulated hours is tested in test_elasticsearch_sink.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from doubles.es_double import ElasticsearchDouble

REPO = Path(__file__).resolve().parents[2]
AUTH = "logs-bastion.auth-default"


class ShippingBastiond:
    """One bastiond process shipping to ``es_url``, and bastionctl against it."""

    def __init__(self, root: Path, es_url: str) -> None:
        self.root = root
        self.log = root / "auth.log"
        self.socket = root / "run" / "bastiond.sock"
        self.config = root / "bastiond.yaml"
        self.config.write_text(
            f"sources: [{{type: file, path: {self.log}}}]\n"
            f"rules_dir: {root / 'rules'}\nstate_dir: {root / 'state'}\nruntime_dir: {root / 'run'}\n"
            "firewall: {backend: dry-run}\nmetrics: {port: 0}\n"
            "spool: {backoff_initial_secs: 0.05, backoff_max_secs: 0.5}\n"
            f"sinks: [{{type: elasticsearch, name: es, hosts: [{es_url}], timeout_secs: 2}}]\n"
        )
        self.process: subprocess.Popen[str] | None = None
        self.written = 0

    def start(self) -> None:
        """Start the daemon and wait until its control socket answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.socket.exists() and self.ctl("status").returncode == 0:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"bastiond exited: {self.process.stdout.read() if self.process.stdout else ''}")
            time.sleep(0.05)
        raise AssertionError("bastiond did not come up")

    def stop(self) -> str:
        """SIGTERM and wait; return what it logged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, output
        self.process = None
        return output

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

    def status(self) -> dict[str, Any]:
        """``bastionctl status -o json``."""
        result = self.ctl("status", "-o", "json")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def write(self, count: int) -> None:
        """Append ``count`` distinct failed-login lines (five addresses, so some bans happen too)."""
        with self.log.open("a") as out:
            for _ in range(count):
                number = self.written
                self.written += 1
                stamp = datetime.now(UTC).isoformat(timespec="microseconds")
                out.write(f"{stamp} bastion sshd[{1000 + number}]: Failed password for user{number} from "
                          f"203.0.113.{number % 5 + 1} port {40000 + number} ssh2\n")

    def wait_spooled(self, lines_this_run: int) -> None:
        """Wait until this run of the daemon processed ``lines_this_run`` lines (so they are in the spool)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.status()["sources"][0]["lines"] >= lines_this_run:
                return
            time.sleep(0.05)
        raise AssertionError(f"processed {self.status()['sources'][0]['lines']} lines, expected {lines_this_run}")


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ShippingBastiond, ElasticsearchDouble]]:
    """The double and a daemon layout with the shipped rules; both stopped at the end."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    double = ElasticsearchDouble().start()
    daemon = ShippingBastiond(tmp_path, double.url)
    daemon.log.write_text("")
    yield daemon, double
    if daemon.process is not None:
        daemon.process.kill()
        daemon.process.communicate()
    double.stop()


def test_every_event_arrives_exactly_once_across_outage_restart_and_kill(
    setup: tuple[ShippingBastiond, ElasticsearchDouble],
) -> None:
    """Down while 100 lines arrive over a clean restart and a SIGKILL: afterwards each line is one document."""
    daemon, double = setup
    daemon.start()
    daemon.write(20)
    wait_for(lambda: len(double.ids(AUTH)) == 20, "the first 20 events")

    double.go_down()
    daemon.write(30)
    daemon.wait_spooled(50)
    wait_for(lambda: not daemon.status()["shipping"]["sinks"][0]["healthy"], "the sink to report the outage")
    shipping = daemon.status()["shipping"]
    assert shipping["sinks"][0]["depth"] >= 30
    human = daemon.ctl("status").stdout
    assert "sink es: FAILING" in human and "waiting" in human
    daemon.stop()

    daemon.write(30)  # written while the daemon is stopped
    daemon.start()
    daemon.wait_spooled(30)
    daemon.write(20)
    daemon.wait_spooled(50)
    daemon.kill()  # SIGKILL: whatever was spooled must survive

    daemon.write(20)
    daemon.start()
    daemon.wait_spooled(20)
    assert daemon.status()["shipping"]["sinks"][0]["depth"] >= 100, "the outage backlog is all still spooled"
    assert len(double.ids(AUTH)) == 20, "nothing was delivered while it was down"

    double.come_up()
    wait_for(lambda: len(double.ids(AUTH)) == daemon.written, f"all {daemon.written} events")
    wait_for(lambda: daemon.status()["shipping"]["sinks"][0]["depth"] == 0, "the spool to drain")
    docs = list(double.documents[AUTH].values())
    offsets = Counter(doc["log"]["offset"] for doc in docs)
    assert len(docs) == daemon.written == 120
    assert set(offsets.values()) == {1}, "no line was stored twice"
    users = {doc["user"]["name"] for doc in docs}
    assert users == {f"user{n}" for n in range(daemon.written)}, "no line was lost"
    # The status comes from the sink process (within a tenth of a second), the depth from the spool itself.
    wait_for(lambda: daemon.status()["shipping"]["sinks"][0]["healthy"], "the sink to report healthy again")
    audit = double.documents.get("logs-bastion.audit-default", {})
    assert any(doc["event"]["action"] == "ip-banned" for doc in audit.values()), "ban decisions are shipped too"
    daemon.stop()
