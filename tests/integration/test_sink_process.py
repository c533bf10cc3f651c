"""The sink process: the workers deliver from a spawned child, their metrics and status come back to the
daemon's side, a stop ends the child, and a child whose daemon died (``kill -9``) ends by itself.

The far end is the Elasticsearch protocol test double (tests/doubles/es_double.py), in this process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig
from bastion_guard.shipping.process import ProcessPlan, SinkPlan, WorkerProcess
from bastion_guard.shipping.records import Record, RecordKind, action_record
from bastion_guard.shipping.spool import Bounds, Spool
from bastion_guard.shipping.worker import Backoff
from doubles.es_double import ElasticsearchDouble

AUDIT_INDEX = "logs-bastion.audit-default"


class CountingMetrics:
    """What the daemon's Metrics would have received (the DeliveryMetrics protocol)."""

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()
        self.sends = 0
        self.up: dict[str, bool] = {}

    def output_events(self, output: str, result: str, count: int) -> None:
        """Count."""
        self.events[output, result] += count

    def observe_send(self, output: str, seconds: float) -> None:
        """Count."""
        del output, seconds
        self.sends += 1

    def set_output_up(self, output: str, up: bool) -> None:
        """Remember."""
        self.up[output] = up


def records(count: int) -> list[Record]:
    """``count`` distinct audit records."""
    return [action_record(RecordKind.AUDIT, 1000.0 + n, "bastion1", action="step", number=n) for n in range(count)]


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def double() -> Iterator[ElasticsearchDouble]:
    """A running double without auth."""
    server = ElasticsearchDouble().start()
    yield server
    server.stop()


def plan_for(tmp_path: Path, url: str) -> ProcessPlan:
    """One Elasticsearch sink on ``url``, the spool in ``tmp_path``."""
    config = ElasticsearchConfig(hosts=(url,), timeout_secs=2.0)
    return ProcessPlan(tmp_path / "spool.db", Bounds(), (SinkPlan("elasticsearch", "es", config),),
                       Backoff(0.05, 0.2), logging.INFO)


def test_the_child_delivers_and_reports_back(tmp_path: Path, double: ElasticsearchDouble) -> None:
    """Records appended on this side arrive in the double; counts, health and status come back; stop ends it."""
    plan = plan_for(tmp_path, double.url)
    spool = Spool.open(plan.spool_path, ["es"])
    metrics = CountingMetrics()
    workers = WorkerProcess(plan, metrics)
    workers.start()
    try:
        spool.append(records(25))
        workers.notify()
        wait_for(lambda: len(double.ids(AUDIT_INDEX)) == 25, "25 documents in the double")
        wait_for(lambda: metrics.events["es", "sent"] == 25, "25 sent reported")
        wait_for(lambda: workers.statuses["es"].delivered == 25, "the status to show 25 delivered")
        assert workers.statuses["es"].health.ok
        assert metrics.up == {"es": True} and metrics.sends >= 1
        wait_for(lambda: spool.size() == (0, 0), "the spool to empty")
    finally:
        workers.stop()
        spool.close()
    assert not workers.alive


_ORPHAN = """
import logging, sys, time
from pathlib import Path
from bastion_guard.shipping.elasticsearch_config import ElasticsearchConfig
from bastion_guard.shipping.process import ProcessPlan, SinkPlan, WorkerProcess
from bastion_guard.shipping.spool import Bounds, Spool
from bastion_guard.shipping.worker import Backoff

class Quiet:
    def output_events(self, *args): pass
    def observe_send(self, *args): pass
    def set_output_up(self, *args): pass

if __name__ == "__main__":
    config = ElasticsearchConfig(hosts=(sys.argv[2],), timeout_secs=2.0)
    plan = ProcessPlan(Path(sys.argv[1]), Bounds(), (SinkPlan("elasticsearch", "es", config),),
                       Backoff(0.05, 0.2), logging.INFO)
    Spool.open(plan.spool_path, ["es"]).close()
    workers = WorkerProcess(plan, Quiet())
    workers.start()
    print(workers._process.pid, flush=True)
    time.sleep(600)
"""


def test_a_child_whose_daemon_was_killed_ends_by_itself(tmp_path: Path, double: ElasticsearchDouble) -> None:
    """``kill -9`` of the daemon leaves no workers behind to deliver beside the next daemon's."""
    script = tmp_path / "daemon_stand_in.py"
    script.write_text(_ORPHAN, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, str(script), str(tmp_path / "spool.db"), double.url],
                          stdout=subprocess.PIPE, text=True, env=env) as stand_in:
        try:
            assert stand_in.stdout is not None
            child = int(stand_in.stdout.readline())
            assert _running(child)
            os.kill(stand_in.pid, signal.SIGKILL)
            stand_in.wait(timeout=10)
            wait_for(lambda: not _running(child), f"the sink process {child} to end", timeout=15)
        finally:
            if stand_in.poll() is None:
                stand_in.kill()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as ended: it waits only for its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
