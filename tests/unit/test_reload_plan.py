"""What a reload applies in place and what it leaves for a restart."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from bastion_guard.runtime.config import DaemonConfig, MetricsConfig, SourceConfig, load_config
from bastion_guard.runtime.reload import LIVE_SETTINGS, plan_reload, sink_files
from bastion_guard.shipping.config import SpoolConfig


def _running() -> DaemonConfig:
    return load_config(None)


def test_an_unchanged_file_changes_nothing() -> None:
    plan = plan_reload(_running(), _running())
    assert plan.config == _running()
    assert plan.restart_needed == ()


def test_rules_allowlist_and_shipping_are_applied_in_place() -> None:
    running = _running()
    loaded = dataclasses.replace(
        running, rules_dir=Path("/etc/other-rules"), allowlist=(ipaddress.ip_network("192.0.2.0/24"),),
        spool=SpoolConfig(max_records=10),
    )
    plan = plan_reload(running, loaded)
    assert plan.config == loaded
    assert plan.restart_needed == ()


def test_settings_owned_by_start_keep_their_running_values_and_are_named() -> None:
    running = _running()
    loaded = dataclasses.replace(
        running, sources=(SourceConfig("file", Path("/var/log/secure")),), metrics=MetricsConfig(port=9999),
        firewall="ipset", allowlist=(ipaddress.ip_network("198.51.100.0/24"),),
    )
    plan = plan_reload(running, loaded)
    assert plan.restart_needed == ("firewall", "metrics", "sources")
    assert plan.config == dataclasses.replace(running, allowlist=loaded.allowlist)


def test_every_live_setting_is_a_real_setting() -> None:
    assert {field.name for field in dataclasses.fields(DaemonConfig)} >= LIVE_SETTINGS


def test_a_secret_file_rotated_on_disk_is_seen_though_the_configuration_is_the_same(tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    key.write_text("whsec_" + "A" * 32 + "\n")
    key.chmod(0o600)
    config_file = tmp_path / "bastiond.yaml"
    config_file.write_text(
        "sinks: [{type: webhook, name: hook, format: generic, url: https://hooks.example.com/x, "
        f"secret_file: {key}}}]\n"
    )
    config = load_config(config_file)
    before = sink_files(config)
    assert [path for path, _ in before] == [str(key)]
    assert sink_files(load_config(config_file)) == before, "nothing changed: no restart of the sink process"
    replacement = tmp_path / "hook.key.new"
    replacement.write_text("whsec_" + "B" * 40 + "\n")
    replacement.chmod(0o600)
    replacement.replace(key)  # how a rotation lands: a new file renamed over the old one
    assert sink_files(load_config(config_file)) != before
