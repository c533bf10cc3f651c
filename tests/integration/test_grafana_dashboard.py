"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real bastiond.

bastiond runs as a process (dry-run firewall, so no root) following a temporary auth.log that a feeder
thread keeps writing attack lines into, with metrics on a free loopback port and a GELF TCP sink that
ships every record through the spool to a local GELF protocol test double (tests/doubles/gelf_double.py;
Graylog cannot run here), so the ``bastion_output_*`` panels show a real delivery path. Prometheus runs with the
demo stack's own prometheus.yml and alert rules, pointed at that port and scraping every second. Then
each panel query of demo/grafana/dashboards/bastion-guard.json is run as Grafana would run it, with
``$__rate_interval`` replaced the way Grafana does (here: a window holding several scrapes).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from bastiond_process import BastiondProcess
from promserver import Prometheus, missing, running_prometheus
from realparts import free_port, wait_until

from bastion_guard import metrics as metrics_module
from doubles.gelf_double import TcpReceiver

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "demo" / "grafana" / "dashboards" / "bastion-guard.json"
DEMO_PROMETHEUS = REPO / "demo" / "prometheus" / "prometheus.yml"
RULES = REPO / "prometheus" / "bastion-guard.rules.yml"
RATE_INTERVAL = "20s"  # Grafana: max(4 x scrape interval, step); 1 s scrapes here
ATTACKERS = [f"203.0.113.{host}" for host in range(10, 16)]  # documentation addresses, only text in a log
SINK = "graylog"

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def _queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in _panels(dashboard["panels"])
            for target in panel.get("targets", [])]


def _documented_metrics() -> set[str]:
    names = set()
    for line in (metrics_module.__doc__ or "").splitlines():
        word = line.split(" ", 1)[0]
        if word.startswith("bastion_"):
            names.add(word)
    return names


def _attack_line(address: str, serial: int) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    pid = 20000 + serial
    if serial % 3 == 0:
        return f"{stamp} bastion sshd[{pid}]: Invalid user guest{serial} from {address} port {40000 + serial}\n"
    return f"{stamp} bastion sshd[{pid}]: Failed password for root from {address} port {40000 + serial} ssh2\n"


class Feeder:
    """Writes attack lines into the followed log until stopped: a live daemon, not a snapshot."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="auth.log feeder", daemon=True)

    def _run(self) -> None:
        serial = 0
        while not self.stop.wait(0.05):
            with self.log.open("a") as out:
                out.write(_attack_line(ATTACKERS[serial % len(ATTACKERS)], serial))
            serial += 1
            if serial > 20_000:  # bounded, whatever happens to the test
                return


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


@pytest.fixture(scope="module")
def graylog() -> Iterator[TcpReceiver]:
    """The GELF TCP input bastiond ships to (validates every frame; counts, does not keep, the messages)."""
    receiver = TcpReceiver(keep=False)
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, graylog: TcpReceiver) -> Iterator[Prometheus]:
    """A real bastiond banning from a live log, and a real Prometheus scraping it with the demo's config."""
    root = tmp_path_factory.mktemp("dashboard")
    metrics_port = free_port()
    daemon = BastiondProcess(root, rules_dir=REPO / "rules", settings=yaml.safe_dump({
        "metrics": {"address": "127.0.0.1", "port": metrics_port},
        "sinks": [{"type": "gelf", "name": SINK, "transport": "tcp", "host": "127.0.0.1", "port": graylog.port}],
    }))
    daemon.log.write_text("")
    feeder = Feeder(daemon.log)
    try:
        daemon.start()

        def banned() -> bool:
            assert daemon.running(), daemon.output()
            try:
                return re.search(r"^bastion_banned_addresses [1-9]", _metrics_text(metrics_port), re.MULTILINE) is not None
            except OSError:
                return False

        feeder.thread.start()
        wait_until(banned, "bastiond to ban from the fed log", timeout=30)
        wait_until(lambda: graylog.count > 0, "bastiond to ship records to the GELF double", timeout=30)
        demo = yaml.safe_load(DEMO_PROMETHEUS.read_text())
        demo["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        demo["rule_files"] = [str(RULES)]
        demo["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
        with running_prometheus(root, yaml.safe_dump(demo)) as server:
            # several scrapes inside one rate window, so rate() and increase() have two samples or more
            server.wait_for(f"count_over_time(bastion_up[{RATE_INTERVAL}]) >= 4", "four scrapes of bastiond")
            yield server
    finally:
        feeder.stop.set()
        daemon.close()


def test_dashboard_uses_only_metrics_bastiond_exposes() -> None:
    """Every bastion_* name in a query is in metrics.py's table (histograms with their _bucket/_sum/_count)."""
    documented = _documented_metrics()
    used = {name for _, expr in _queries() for name in re.findall(r"\bbastion_[a-z_]+", expr)}
    assert used
    unknown = {name for name in used if re.sub(r"_(bucket|sum|count)$", "", name) not in documented
               and name not in documented}
    assert not unknown, unknown


def test_dashboard_shows_every_metric() -> None:
    """Each metric of the table has a panel: a metric added to metrics.py needs a panel here too."""
    used = {re.sub(r"_(bucket|sum|count)$", "", name) for _, expr in _queries()
            for name in re.findall(r"\bbastion_[a-z_]+", expr)}
    missing = _documented_metrics() - used
    assert not missing, f"no panel in {DASHBOARD.name} for {sorted(missing)}"


QUERIES = _queries()


@pytest.mark.parametrize(("title", "expr"), QUERIES, ids=[f"{title}: {expr[:60]}" for title, expr in QUERIES])
def test_panel_query_returns_data(prometheus: Prometheus, title: str, expr: str) -> None:
    """The query runs without error and returns at least one series from the scraped bastiond."""
    result = prometheus.result(expr.replace("$__rate_interval", RATE_INTERVAL))
    assert result, f"panel {title!r}: no data for {expr}"


def test_panels_show_the_attack(prometheus: Prometheus) -> None:
    """The numbers are the daemon's, not zeros: bans are active and the brute-force rule decided them."""
    [bans] = prometheus.result("sum(bastion_banned_addresses)")
    assert float(bans["value"][1]) >= 1
    decisions = prometheus.result('sum by (rule, verdict) (bastion_decisions_total{verdict="ban"}) > 0')
    assert "sshd-bruteforce" in {series["metric"]["rule"] for series in decisions}
    events = prometheus.result(f"sum by (kind) (rate(bastion_auth_events_total[{RATE_INTERVAL}])) > 0")
    assert {"auth_failure", "invalid_user"} <= {series["metric"]["kind"] for series in events}


def test_output_panels_show_the_shipping(prometheus: Prometheus, graylog: TcpReceiver) -> None:
    """The shipping numbers are the sink's: records were sent to the GELF double, which found no violation."""
    sent = prometheus.result(f'sum(bastion_output_events_total{{output="{SINK}", result="sent"}}) > 0')
    assert sent, "no record counted as sent"
    [up] = prometheus.result(f'bastion_output_up{{output="{SINK}"}}')
    assert up["value"][1] == "1"
    assert graylog.count > 0
    assert graylog.violations == []
