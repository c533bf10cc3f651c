"""The demo bastion's own files work with the real programs: sshd accepts its profile and passes the audit,
and a real bastiond runs the demo's bastiond.yaml and ships what it sees to both of the demo's sinks.

The sshd check reuses the audit test's bench (host key, KRL, private /run), and puts them before the demo
profile: sshd keeps the first value of a keyword, so the container's paths are overridden and the rest of
the profile is audited as written.

The shipping check runs bastiond (dry-run firewall, no root) on a copy of demo/bastion/bastiond.yaml in
which only what names the container changes: the followed log, the state, runtime and rules directories,
the firewall, metrics, and the two sinks' addresses, which point at local protocol test doubles of
Elasticsearch and of Graylog's GELF TCP input (tests/doubles; neither can run here). The spool bounds, the
back-off, the sink names, the namespace, the user, the password variable and the transport are the demo's.
It plays the README's walk-through: Elasticsearch is down while the attack happens (as when the "elastic"
profile is not running), Graylog gets the records at once, then Elasticsearch comes up and the backlog
drains into it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from bastiond_process import BastiondProcess, failed_password
from realparts import wait_until
from test_audit_real_sshd import Bench, audit, bench

from doubles.es_double import ElasticsearchDouble
from doubles.gelf_double import TcpReceiver

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "bastion"
DEMO_CONFIG = DEMO / "bastiond.yaml"
ATTACKER = "198.51.100.23"  # a documentation address, only text in a log
ELASTIC_PASSWORD = "demo-test-elastic-pw"  # noqa: S105 - the Elasticsearch double's password
SHIP_TIMEOUT = 60.0  # seconds; the demo caps retry delays at 10 s (backoff_max_secs), this machine is shared

__all__ = ["bench"]  # the fixture, imported so pytest finds it here


@pytest.mark.root
@pytest.mark.sshd
def test_demo_sshd_profile_passes_the_audit(bench: Bench) -> None:
    """The profile baked into the bastion image passes every check of ``bastionctl audit`` under real sshd -T."""
    profile = DEMO / "sshd_config"
    config = bench.root / "demo-bastion.conf"
    config.write_text(f"HostKey {bench.hostkey}\nRevokedKeys {bench.krl}\n" + profile.read_text())
    code, document, stderr = audit(bench, config)
    problems = [item for item in document["findings"] if item["severity"] != "ok"]
    assert code == 0, (stderr, problems)


def _local_copy(root: Path, es_url: str, gelf_port: int) -> Path:
    """The demo configuration with the container's paths and the compose services' addresses replaced by this
    test's; every other key (spool, sink names, namespace, credentials, transport) stays as the demo has it."""
    config: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    config.update({
        "sources": [{"type": "file", "path": str(root / "auth.log")}], "rules_dir": str(REPO / "rules"),
        "state_dir": str(root / "state"), "runtime_dir": str(root / "run"), "firewall": {"backend": "dry-run"},
        "metrics": {"port": 0},
    })
    sinks = {sink["type"]: sink for sink in config["sinks"]}
    assert sorted(sinks) == ["elasticsearch", "gelf"], "the demo ships to Elasticsearch and Graylog"
    sinks["elasticsearch"]["hosts"] = [es_url]
    sinks["gelf"].update(host="127.0.0.1", port=gelf_port)
    path = root / "bastiond.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check_config(config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastiond", "--check-config", "--config", str(config),
         "--rules", str(REPO / "rules")],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _attack(daemon: BastiondProcess) -> list[str]:
    """Failed logins from one address as sshd logs them, enough for sshd-bruteforce to ban; one user name
    tries to blame another address. Returns the user names."""
    users = ["admin", "oracle", "ubuntu", "test", "evil from 203.0.113.9 port 22", "postgres"]
    daemon.append(failed_password(user, ATTACKER, pid=3000 + serial, port=50000 + serial, invalid=True)
                  for serial, user in enumerate(users))
    return users


def _gelf(receiver: TcpReceiver, kind: str) -> list[dict[str, Any]]:
    """The payloads of one record kind (``_record_kind``) the GELF double accepted."""
    return [message.payload for message in list(receiver.messages) if message.payload.get("_record_kind") == kind]


def test_demo_configuration_ships_to_elasticsearch_and_graylog(tmp_path: Path) -> None:
    """bastiond on the demo's configuration sends every event, and the ban, to Graylog as valid GELF at once,
    keeps them in the spool while Elasticsearch is down, and delivers them as ECS documents into the demo's
    data streams (basic auth, the password from the environment) once it is up."""
    elasticsearch = ElasticsearchDouble(basic=("elastic", ELASTIC_PASSWORD)).start()
    elasticsearch.go_down()  # the "elastic" profile is not running yet; the double keeps its port for later
    graylog = TcpReceiver()
    config = _local_copy(tmp_path, elasticsearch.url, graylog.port)
    _check_config(DEMO_CONFIG)  # as the image build runs it
    _check_config(config)
    daemon = BastiondProcess(tmp_path, config=config)
    daemon.log.write_text("")
    try:
        daemon.start(env={"ELASTIC_PASSWORD": ELASTIC_PASSWORD})
        users = _attack(daemon)

        # Graylog: every event and the ban, at once, as valid GELF.
        wait_until(lambda: len(_gelf(graylog, "event")) == len(users) and bool(_gelf(graylog, "decision")),
                   "the events and the ban in Graylog", timeout=SHIP_TIMEOUT)
        assert graylog.violations == []
        events = _gelf(graylog, "event")
        assert {event["_source_ip"] for event in events} == {ATTACKER}
        assert {event["_user_name"] for event in events} == set(users)
        [ban] = _gelf(graylog, "decision")
        assert (ban["_decision_verdict"], ban["_rule_name"], ban["_decision_target"]) == (
            "ban", "sshd-bruteforce", ATTACKER)

        # Elasticsearch down: the records wait in the spool, and bastionctl status says so.
        wait_until(lambda: not daemon.sink("elasticsearch")["healthy"], "the sink to report the outage",
                   timeout=SHIP_TIMEOUT)
        assert daemon.sink("elasticsearch")["depth"] >= len(users) + 1
        assert daemon.sink("graylog")["depth"] == 0

        elasticsearch.come_up()
        wait_until(lambda: daemon.sink("elasticsearch")["depth"] == 0, "the backlog to drain",
                   timeout=SHIP_TIMEOUT)
        with elasticsearch.lock:
            auth = list(elasticsearch.documents.get("logs-bastion.auth-demo", {}).values())
            audit_stream = list(elasticsearch.documents.get("logs-bastion.audit-demo", {}).values())
            templates = set(elasticsearch.templates)
        assert len(auth) == len(users), sorted(elasticsearch.documents)
        assert {doc["event"]["id"] for doc in auth} == {event["_event_id"] for event in events}
        for doc in auth:
            assert doc["data_stream"] == {"type": "logs", "dataset": "bastion.auth", "namespace": "demo"}
            assert doc["source"]["ip"] == ATTACKER and doc["user"]["name"] in users
            assert "authentication" in doc["event"]["category"] and doc["event"]["outcome"] == "failure"
        bans = [doc for doc in audit_stream if doc["event"]["action"] == "ip-banned"]
        assert bans and {doc["source"]["ip"] for doc in bans} == {ATTACKER}
        assert {doc["rule"]["name"] for doc in bans} == {"sshd-bruteforce"}
        assert {"logs-bastion.auth", "logs-bastion.audit"} <= templates  # what the data view logs-bastion.* reads

        assert ELASTIC_PASSWORD not in daemon.stop()
    finally:
        daemon.close()
        graylog.close()
        elasticsearch.stop()
