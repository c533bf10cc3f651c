"""The outage test: Elasticsearch (the protocol test double) is down while events flow through a real bastiond,
which is restarted cleanly once and killed with SIGKILL once; when it comes back every event is there exactly once.

No root needed: the firewall is the dry-run backend and everything lives in a temporary directory. The daemon's
back-off is configured short so the outage costs seconds of real time (the worker's long-outage behaviour
in simulated hours is tested in test_elasticsearch_sink.py).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from bastiond_process import BastiondProcess, failed_password
from realparts import wait_until

from doubles.es_double import ElasticsearchDouble

REPO = Path(__file__).resolve().parents[2]
AUTH = "logs-bastion.auth-default"
WAIT = 30.0  # seconds for deliveries and status changes; this machine is shared
SETTINGS = "metrics: {port: 0}\nspool: {backoff_initial_secs: 0.05, backoff_max_secs: 0.5}\n"


def write(daemon: BastiondProcess, count: int) -> None:
    """Append ``count`` distinct failed-login lines (five addresses, so some bans happen too)."""
    first = daemon.appended
    daemon.append(failed_password(f"user{number}", f"203.0.113.{number % 5 + 1}", pid=1000 + number,
                                  port=40000 + number) for number in range(first, first + count))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[BastiondProcess, ElasticsearchDouble]]:
    """The double and a daemon layout with the shipped rules; both stopped at the end."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    double = ElasticsearchDouble().start()
    sink = f"sinks: [{{type: elasticsearch, name: es, hosts: [{double.url}], timeout_secs: 2}}]\n"
    daemon = BastiondProcess(tmp_path, settings=SETTINGS + sink)
    daemon.log.write_text("")
    yield daemon, double
    daemon.close()
    double.stop()


def test_every_event_arrives_exactly_once_across_outage_restart_and_kill(
    setup: tuple[BastiondProcess, ElasticsearchDouble],
) -> None:
    """Down while 100 lines arrive over a clean restart and a SIGKILL: afterwards each line is one document."""
    daemon, double = setup
    daemon.start()
    write(daemon, 20)
    wait_until(lambda: len(double.ids(AUTH)) == 20, "the first 20 events", timeout=WAIT)

    double.go_down()
    write(daemon, 30)
    daemon.wait_lines(50)
    wait_until(lambda: not daemon.sink("es")["healthy"], "the sink to report the outage", timeout=WAIT)
    shipping = daemon.status()["shipping"]
    assert shipping["sinks"][0]["depth"] >= 30
    human = daemon.ctl("status").stdout
    assert "sink es: FAILING" in human and "waiting" in human
    daemon.stop()

    write(daemon, 30)  # written while the daemon is stopped
    daemon.start()
    daemon.wait_lines(30)
    write(daemon, 20)
    daemon.wait_lines(50)
    daemon.kill()  # SIGKILL: whatever was spooled must survive

    write(daemon, 20)
    daemon.start()
    daemon.wait_lines(20)
    assert daemon.sink("es")["depth"] >= 100, "the outage backlog is all still spooled"
    assert len(double.ids(AUTH)) == 20, "nothing was delivered while it was down"

    double.come_up()
    wait_until(lambda: len(double.ids(AUTH)) == daemon.appended, f"all {daemon.appended} events", timeout=WAIT)
    wait_until(lambda: daemon.sink("es")["depth"] == 0, "the spool to drain", timeout=WAIT)
    docs = list(double.documents[AUTH].values())
    offsets = Counter(doc["log"]["offset"] for doc in docs)
    assert len(docs) == daemon.appended == 120
    assert set(offsets.values()) == {1}, "no line was stored twice"
    users = {doc["user"]["name"] for doc in docs}
    assert users == {f"user{n}" for n in range(daemon.appended)}, "no line was lost"
    # The status comes from the sink process (within a tenth of a second), the depth from the spool itself.
    wait_until(lambda: daemon.sink("es")["healthy"], "the sink to report healthy again", timeout=WAIT)
    audit = double.documents.get("logs-bastion.audit-default", {})
    assert any(doc["event"]["action"] == "ip-banned" for doc in audit.values()), "ban decisions are shipped too"
    daemon.stop()
