"""The demo stack (docker-compose.yml) holds together, checked without a Docker engine.

Docker cannot run here, so each promise the compose file makes is checked against what can run: the file
parses, every image (and every Dockerfile base image) is pinned, every service has a health check and
waits for healthy dependencies, ports are bound to loopback, the target shares a network only with the
bastion, every mounted or copied file exists, every secret is in .env.example, Prometheus's files as the
container sees them pass ``promtool``, the bastion's configuration passes ``bastiond --check-config``
and its sinks name the profiles' services and ports, and the shell scripts parse. Grafana's queries run
against a real Prometheus in test_grafana_dashboard.py; the bastion's sinks ship to protocol test
doubles in test_demo_bastion.py.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DCLINT = shutil.which("dclint")  # npm package dclint: the Compose specification's JSON schema, and lint rules
# A tag that names a release: 3.5.0, v3.5.0, 7.0.14, 3.11.7-slim-bookworm (major.minor at least).
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$")


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


SERVICES: dict[str, dict[str, Any]] = _compose()["services"]


def _env_example() -> dict[str, str]:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts (named volumes left out)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts.append((REPO / source, target))
    return mounts


def _dockerfile(service: dict[str, Any]) -> Path:
    build = service["build"]
    return REPO / build["context"] / build["dockerfile"]


def test_compose_file_parses_and_has_the_whole_stack() -> None:
    """Every component of the demo is there."""
    expected = {"bastion", "target", "attacker", "prometheus", "grafana", "elasticsearch", "kibana", "kibana-setup",
                "mongodb", "opensearch", "graylog", "graylog-init"}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(name: str) -> None:
    """Each image names a release (never latest, never bare); a service built here pins its base images."""
    service = SERVICES[name]
    assert ("image" in service) != ("build" in service), f"{name}: either an image or a build, not both"
    if "image" in service:
        repository, _, tag = service["image"].rpartition(":")
        assert repository and PINNED_TAG.match(tag), f"{name}: {service['image']!r} is not pinned to a version"
    else:
        bases = re.findall(r"^FROM\s+(\S+)", _dockerfile(service).read_text(), re.MULTILINE)
        assert bases, f"{name}: no FROM line"
        for base in bases:
            _, _, base_tag = base.rpartition(":")
            assert PINNED_TAG.match(base_tag), f"{name}: base image {base!r} is not pinned"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_a_health_check(name: str) -> None:
    """Each service says how to tell it is healthy, with an interval and a bounded number of retries."""
    check = SERVICES[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, check
    assert check.get("disable") is not True
    assert check["interval"] and check["retries"] > 0


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_exist_and_are_awaited_healthy(name: str) -> None:
    """depends_on names real services and waits for their health check, not just their start."""
    for dependency, condition in SERVICES[name].get("depends_on", {}).items():
        assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        assert condition == {"condition": "service_healthy"}, (name, dependency, condition)
        needed = set(SERVICES[dependency].get("profiles", []))
        assert needed <= set(SERVICES[name].get("profiles", [])), f"{name} needs {dependency} from another profile"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_published_ports_are_loopback_only(name: str) -> None:
    """A demo must not open Graylog, Elasticsearch or the bastion to the network the host is on."""
    for port in SERVICES[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not bound to 127.0.0.1"


def test_target_is_reachable_only_through_the_bastion() -> None:
    """The target's one network is internal (no route out) and no other service but the bastion joins it."""
    networks = _compose()["networks"]
    assert SERVICES["target"]["networks"] == ["internal"]
    assert networks["internal"]["internal"] is True
    assert "ports" not in SERVICES["target"]
    members = {name for name, service in SERVICES.items() if "internal" in service.get("networks", [])}
    assert members == {"bastion", "target"}


def test_allowlisted_gateways_are_the_compose_networks() -> None:
    """The bastion allowlists exactly the networks' gateways (your host's connections), never the attacker."""
    networks = _compose()["networks"]
    gateways = {f"{network['ipam']['config'][0]['gateway']}/32"
                for network in networks.values() if "ipam" in network}
    config = yaml.safe_load((REPO / "demo" / "bastion" / "bastiond.yaml").read_text())
    assert set(config["allowlist"]) == gateways
    edge = ipaddress.ip_network(networks["edge"]["ipam"]["config"][0]["subnet"])
    bastion = ipaddress.ip_address(SERVICES["bastion"]["networks"]["edge"]["ipv4_address"])
    attacker = ipaddress.ip_address(SERVICES["attacker"]["networks"]["edge"]["ipv4_address"])
    assert bastion in edge and attacker in edge
    allowed = [ipaddress.ip_network(network) for network in config["allowlist"]]
    assert not any(attacker in network for network in allowed), "the demo attacker would never be banned"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_mounted_and_copied_files_exist(name: str) -> None:
    """Every bind-mounted path and every file a Dockerfile copies is in the repository."""
    service = SERVICES[name]
    for source, _ in _bind_mounts(service):
        assert source.exists(), f"{name} mounts missing {source}"
    if "build" in service:
        for line in re.findall(r"^COPY\s+(.+)$", _dockerfile(service).read_text(), re.MULTILINE):
            *sources, _ = line.split()
            for source in sources:
                assert (REPO / service["build"]["context"] / source).exists(), f"{name} copies missing {source}"


def test_every_secret_is_in_env_example() -> None:
    """Each ${VAR:?...} the stack needs has a value in .env.example, and the Graylog hash fits its password."""
    needed = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    example = _env_example()
    assert needed and needed <= set(example), needed - set(example)
    password = example["GRAYLOG_ROOT_PASSWORD"].encode()
    assert example["GRAYLOG_ROOT_PASSWORD_SHA2"] == hashlib.sha256(password).hexdigest()
    assert len(example["GRAYLOG_PASSWORD_SECRET"]) >= 64
    assert len(example["KIBANA_ENCRYPTION_KEY"]) >= 32
    # the setup scripts put these into JSON and curl config text unescaped, as the file's comment warns
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", value) for value in example.values()), example


def test_no_secret_is_written_into_the_compose_file() -> None:
    """Passwords come from .env only: no literal value for a *PASSWORD* or *SECRET* variable."""
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ENCRYPTIONKEY", key) and key != "ELASTICSEARCH_USERNAME":
                assert str(value).startswith("${"), f"{name}: {key} has a literal value"


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed (Debian package prometheus)")
def test_prometheus_files_as_mounted_pass_promtool(tmp_path: Path) -> None:
    """The files mounted into the Prometheus container, laid out at their container paths, pass promtool."""
    root = tmp_path / "container"
    for source, target in _bind_mounts(SERVICES["prometheus"]):
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, destination)
    config_flag = next(arg for arg in SERVICES["prometheus"]["command"] if arg.startswith("--config.file="))
    config = root / config_flag.split("=", 1)[1].lstrip("/")
    checked = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True,
                             check=False, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = next(path for path in config.parent.glob("*.rules.yml"))
    shipped = sum(len(group["rules"]) for group in yaml.safe_load(rules.read_text())["groups"])
    assert shipped > 0 and f"SUCCESS: {shipped} rules found" in checked.stdout + checked.stderr
    checked = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True,
                             check=False, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_scrapes_the_bastion_as_the_alert_rules_expect() -> None:
    """The demo job is the one BastionGuardDown selects, and it targets the bastion's metrics port."""
    config = yaml.safe_load((REPO / "demo" / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "bastion-guard"
    assert 'up{job="bastion-guard"}' in (REPO / "prometheus" / "bastion-guard.rules.yml").read_text()
    bastion = yaml.safe_load((REPO / "demo" / "bastion" / "bastiond.yaml").read_text())
    assert job["static_configs"][0]["targets"] == [f"bastion:{bastion['metrics']['port']}"]


def test_grafana_provisioning_matches_the_dashboard() -> None:
    """The provisioned datasource uid is the one every panel uses; the provider reads the mounted dashboards."""
    provisioning = REPO / "demo" / "grafana" / "provisioning"
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "bastion-guard.yml").read_text())["providers"]
    mounts = {target: source for source, target in _bind_mounts(SERVICES["grafana"])}
    dashboards = mounts[provider["options"]["path"]]
    [dashboard_file] = dashboards.glob("*.json")
    dashboard = json.loads(dashboard_file.read_text())
    uids = {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert uids == {datasource["uid"]}
    assert datasource["url"] == "http://prometheus:9090"


def test_bastion_configuration_is_valid() -> None:
    """The demo bastiond.yaml passes ``bastiond --check-config`` (as the image build runs it)."""
    result = subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastiond", "--check-config",
         "--config", str(REPO / "demo" / "bastion" / "bastiond.yaml"), "--rules", str(REPO / "rules")],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bastion_sinks_reach_the_profiles_services() -> None:
    """bastiond's sinks name compose services the bastion shares a network with, on the ports they serve:
    Elasticsearch's HTTP port, and the GELF TCP input graylog-init creates (null-delimited, no TLS); the
    Elasticsearch password is the variable the bastion service gets from .env. (test_demo_bastion.py runs
    this configuration against protocol test doubles.)"""
    config = yaml.safe_load((REPO / "demo" / "bastion" / "bastiond.yaml").read_text())
    sinks = {sink["type"]: sink for sink in config["sinks"]}
    bastion_networks = set(SERVICES["bastion"]["networks"])

    [host] = sinks["elasticsearch"]["hosts"]
    url = urlsplit(host)
    assert url.hostname == "elasticsearch" and url.port == 9200
    assert any(str(port).endswith(f":{url.port}") for port in SERVICES["elasticsearch"]["ports"])
    assert bastion_networks & set(SERVICES["elasticsearch"]["networks"])
    # plain http matches the cluster: TLS off on the private compose network (demo only)
    assert SERVICES["elasticsearch"]["environment"]["xpack.security.http.ssl.enabled"] == "false"
    assert url.scheme == "http"
    assert sinks["elasticsearch"]["username"] == "elastic"
    variable = sinks["elasticsearch"]["password_env"]
    from_env = re.compile(r"\$\{([A-Z_]+):\?.*\}")  # ${NAME:?message}: from .env, required
    passed = from_env.fullmatch(SERVICES["bastion"]["environment"][variable])
    elastic = from_env.fullmatch(SERVICES["elasticsearch"]["environment"]["ELASTIC_PASSWORD"])
    assert passed and elastic and passed.group(1) == elastic.group(1)

    gelf = sinks["gelf"]
    script = (REPO / "demo" / "graylog" / "gelf-input.sh").read_text()
    assert gelf["host"] == "graylog" and bastion_networks & set(SERVICES["graylog"]["networks"])
    assert gelf["transport"] == "tcp" and "tls" not in gelf
    assert "create_input \"$tcp_title\" org.graylog2.inputs.gelf.tcp.GELFTCPInput" in script
    assert f'\\"port\\":{gelf["port"]},' in script
    assert '\\"use_null_delimiter\\":true' in script and '\\"tls_enable\\":false' in script


@pytest.mark.parametrize("script", sorted(str(path.relative_to(REPO)) for path in (REPO / "demo").rglob("*.sh")))
def test_shell_scripts_parse(script: str) -> None:
    """Each demo script is valid POSIX sh (dash, as in the Debian-based images; busybox ash in curl's)."""
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    result = subprocess.run([sh, "-n", str(REPO / script)], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(DCLINT is None, reason="dclint is not installed (npm install -g dclint; .ci/run does)")
def test_compose_file_passes_the_compose_schema() -> None:
    """dclint validates the file against the Compose specification schema and reports no error."""
    assert DCLINT is not None
    result = subprocess.run([DCLINT, "--quiet", "--color=false", str(COMPOSE)], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
