"""A real Prometheus scrapes bastiond's metrics and evaluates the shipped alert rules; promtool checks them.

The exporter is a small Python process that builds :class:`~bastion_guard.metrics.Metrics`, serves it on a
free port of 127.0.0.1 and keeps counting. Prometheus (Debian package ``prometheus``) scrapes it every
second with ``prometheus/bastion-guard.rules.yml`` loaded. Its first sample appears 5-6 s after start
(``testing-real-parts.md`` section 8), so the whole module takes about ten seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from realparts import free_port, stop_process, wait_until

from bastion_guard import __version__
from bastion_guard import metrics as metrics_module

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "prometheus"
RULES = PROM_DIR / "bastion-guard.rules.yml"
RULE_TESTS = PROM_DIR / "bastion-guard.rules.test.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
FIRST_SAMPLE_SECS = 20.0

needs_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="prometheus is not installed (Debian package prometheus)"
)
needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="promtool is not installed (Debian package prometheus)"
)

# Sets every metric, then keeps two counters moving so rate() and increase() have something to see.
EXPORTER = textwrap.dedent("""
    import sys, time
    from collections import Counter
    from bastion_guard.events import Kind, Outcome
    from bastion_guard.metrics import Metrics

    source = "file:/var/log/auth.log"
    metrics = Metrics(sources=[source, "journal"], rules=[("sshd-bruteforce", "ban"), ("user-enumeration", "alert")])
    server = metrics.serve("127.0.0.1", 0)
    metrics.observe_batch(source, lines=40, events=Counter({(Kind.AUTH_FAILURE, Outcome.FAILURE): 12}),
                          unmatched=2, skipped_long=1, seconds=0.003)
    metrics.decision("sshd-bruteforce", "ban")
    metrics.ban_action("ban", 1)
    metrics.set_active_bans(1)
    metrics.set_tracked_keys(3)
    metrics.set_position_lag(source, 0)
    metrics.source_error("journal")
    metrics.commit_error()
    metrics.add_output("es")
    metrics.output_events("es", "sent", 5)
    metrics.set_output_queue("es", 3, 1.5)
    metrics.observe_send("es", 0.01)
    metrics.set_output_up("es", True)
    metrics.mark_up()
    print(server.server_address[1], flush=True)
    while True:
        time.sleep(0.5)
        metrics.observe_batch(source, lines=1, seconds=0.001)
        metrics.firewall_error()
""")


@dataclass
class Stack:
    """The exporter and the Prometheus scraping it."""

    exporter_port: int
    prometheus_port: int
    workdir: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path> and return the decoded JSON (errors come back as JSON too)."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http to 127.0.0.1 only
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:  # 400/422 carry {"status": "error", ...}; 503 while starting
            body = error.read()
            if not body.startswith(b"{"):
                raise
            answer = json.loads(body)
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query."""
        return self.api("query", query=expr)

    def result(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query that must succeed."""
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def diagnostics(self) -> str:
        """The processes' logs, for assertion messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )


def _start_exporter(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with (workdir / "exporter.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", EXPORTER], stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    with proc.stdout:
        line = proc.stdout.readline()  # the port, or EOF if the exporter died
    if not line.strip().isdigit():
        stop_process(proc)
        pytest.fail(f"exporter did not start: {(workdir / 'exporter.log').read_text(errors='replace')}")
    return proc, int(line)


def _prometheus_config(workdir: Path, exporter_port: int) -> Path:
    config = workdir / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files:
          - {RULES}
        scrape_configs:
          - job_name: bastion-guard
            static_configs:
              - targets: ['127.0.0.1:{exporter_port}']
    """))
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Exporter plus a real Prometheus on free loopback ports, until the first samples are in; both killed after."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus")
    exporter, exporter_port = _start_exporter(workdir)
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        with (workdir / "prometheus.log").open("wb") as log:
            prometheus = subprocess.Popen(
                [PROMETHEUS, f"--config.file={_prometheus_config(workdir, exporter_port)}",
                 f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        running = Stack(exporter_port, port, workdir)

        def scraped() -> bool:
            assert prometheus is not None and prometheus.poll() is None, running.diagnostics()
            try:
                return bool(running.result("bastion_build_info"))
            except OSError:  # not listening, or not ready, yet
                return False

        try:
            wait_until(scraped, "Prometheus's first scrape of the exporter", timeout=FIRST_SAMPLE_SECS)
        except TimeoutError as error:
            pytest.fail(f"{error}\n{running.diagnostics()}")
        yield running
    finally:
        stop_process(prometheus)
        stop_process(exporter)


def _documented_names() -> list[str]:
    """Metric names from the table in metrics.py's docstring (the unit tests hold it to the exposition)."""
    names = []
    for line in (metrics_module.__doc__ or "").splitlines():
        word = line.split(" ", 1)[0]
        if word.startswith("bastion_"):
            names.append(word + "_count" if " histogram " in line else word)
    return names


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_prometheus
def test_every_documented_metric_is_scraped(stack: Stack) -> None:
    """Each metric of metrics.py's table can be queried and has data in Prometheus."""
    names = _documented_names()
    assert len(names) == 22
    missing = [name for name in names if not stack.result(name)]
    assert not missing, f"no data in Prometheus for {missing}"


@needs_prometheus
def test_scraped_values_and_labels(stack: Stack) -> None:
    """up, build_info and a labelled counter arrive with the job, instance and values the exporter set."""
    [up] = stack.result('up{job="bastion-guard"}')
    assert (up["metric"]["instance"], up["value"][1]) == (f"127.0.0.1:{stack.exporter_port}", "1")
    [info] = stack.result("bastion_build_info")
    assert (info["metric"]["version"], info["value"][1]) == (__version__, "1")
    [failures] = stack.result('bastion_auth_events_total{kind="auth_failure"}')
    assert (failures["metric"]["outcome"], failures["value"][1]) == ("failure", "12")
    zeros = stack.result('bastion_auth_events_total{kind="auth_success", outcome="success"}')
    assert [zero["value"][1] for zero in zeros] == ["0"]  # pre-initialised series are scraped too


@needs_prometheus
def test_every_alert_expression_executes(stack: Stack) -> None:
    """Each alert rule's expression runs as an instant query without error (an empty result is fine)."""
    rules = _alert_rules()
    assert len(rules) == 10
    for rule in rules:
        answer = stack.query(rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)


@needs_prometheus
def test_rules_are_loaded_healthy_and_fire(stack: Stack) -> None:
    """Prometheus loaded all alert rules, evaluates them without error, and fires on a firewall error."""

    def evaluated() -> bool:
        rules = [rule for group in stack.api("rules")["data"]["groups"] for rule in group["rules"]]
        return len(rules) == len(_alert_rules()) and all(rule["health"] == "ok" for rule in rules)

    def firing(name: str) -> bool:
        return any(alert["labels"]["alertname"] == name and alert["state"] == "firing"
                   for alert in stack.api("alerts")["data"]["alerts"])

    wait_until(evaluated, "every rule evaluated healthily", timeout=10)
    wait_until(lambda: firing("BastionGuardFirewallErrors"), "BastionGuardFirewallErrors to fire", timeout=15)
    assert not firing("BastionGuardDown")


@needs_promtool
def test_promtool_check_rules() -> None:
    """``promtool check rules`` accepts the shipped rules file."""
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    """``promtool test rules`` passes: each alert fires where it should and stays quiet where it should."""
    result = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                            check=False, timeout=60, cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {rule["alert"] for rule in _alert_rules()}
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    assert tested == {check["alertname"] for case in cases for check in case["alert_rule_test"]}
    for alert in tested:  # a firing and a quiet evaluation for every alert
        checks = [check for case in cases for check in case["alert_rule_test"] if check["alertname"] == alert]
        assert any(check["exp_alerts"] for check in checks), alert
        assert any(not check["exp_alerts"] for check in checks), alert


@needs_promtool
def test_promtool_check_example_config() -> None:
    """``promtool check config`` accepts the example prometheus.yml (and the rules it loads)."""
    result = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], capture_output=True, text=True,
                            check=False, timeout=60, cwd=PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
