"""keys.yaml: a valid inventory loads; every mistake is reported with file:line:column and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion_guard.errors import ConfigError
from bastion_guard.keys.inventory import load_inventory
from bastion_guard.runtime.config import load_config

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFK2KzJzrIHZcU1AS3iVIGvFyXh3f8iDdJAcpd8PDG8 alice@laptop"
VALID = f"""\
krl: /etc/ssh/revoked_keys.krl
offboarding: {{lock_account: true}}
people:
  - name: alice
    account: alice
    keys: ["{KEY}"]
    departs: 2026-12-01T17:00:00Z
  - {{name: bob, account: bob, authorized_keys: /etc/ssh/authorized_keys/bob}}
targets:
  - {{name: pytorch, hosts: [10.0.1.5, pytorch-node-2], account: ai-user}}
shared_keys:
  - name: ai-user
    private_key: /etc/bastion-guard/keys/ai-user
    owner: ai-user
    targets: [pytorch]
    users: [alice, bob]
    rotate_every: 90d
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


def test_valid_inventory(tmp_path: Path) -> None:
    """Every section is read into typed values."""
    inventory = load_inventory(_write(tmp_path, VALID))
    assert inventory is not None
    alice = inventory.person("alice")
    assert alice is not None and alice.departs == 1796144400.0
    assert alice.keys[0].comment == "alice@laptop"
    assert inventory.person("bob") is not None and inventory.person("bob") == inventory.person("bob")
    assert inventory.target("pytorch").hosts == ("10.0.1.5", "pytorch-node-2")
    (shared,) = inventory.shared_keys_of(alice)
    assert shared.rotate_every == 90 * 86400 and shared.public_key.name == "ai-user.pub"
    assert inventory.lock_account and not inventory.end_sessions


def test_absent_file_turns_the_feature_off(tmp_path: Path) -> None:
    """No file: None, not an error."""
    assert load_inventory(tmp_path / "keys.yaml") is None


@pytest.mark.parametrize(("change", "expected"), [
    (("  - {name: bob,", "  - {name: bob, colour: red,"), "keys.yaml:8:17: people[1].colour: unknown key"),
    (("AIMFK2Kz", "AIMFK2K*"), "keys.yaml:6:5: people[0].keys: ssh-ed25519 key data is not valid base64"),
    (("2026-12-01T17:00:00Z", "2026-12-01 17:00:00"), "people[0].departs: needs a time zone"),
    (("2026-12-01T17:00:00Z", "next tuesday"), "people[0].departs: 'next tuesday' is not an RFC 3339 time"),
    (("targets: [pytorch]", "targets: [tensorflow]"), "shared_keys: ai-user: unknown target 'tensorflow'"),
    (("users: [alice, bob]", "users: [alice, mallory]"), "shared_keys: ai-user: unknown person 'mallory'"),
    (("hosts: [10.0.1.5,", "hosts: [-oProxyCommand=x,"), "targets[0].hosts: '-oProxyCommand=x' is not a host"),
    (("krl: /etc/ssh/revoked_keys.krl", "krl: revoked.krl"), "keys.yaml:1:1: krl: must be an absolute path"),
    (("account: ai-user}", "account: 'ai user'}"), "targets[0].account: 'ai user' is not a valid account name"),
    (("name: bob", "name: alice"), "people: 'alice' appears twice"),
])
def test_mistakes_are_located(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    """Each mistake is named with its place in the file."""
    assert change[0] in VALID
    with pytest.raises(ConfigError) as caught:
        load_inventory(_write(tmp_path, VALID.replace(change[0], change[1], 1)))
    assert expected in str(caught.value), str(caught.value)


def test_daemon_config_names_the_inventory(tmp_path: Path) -> None:
    """``keys:`` in bastiond.yaml sets where the inventory is."""
    config = tmp_path / "bastiond.yaml"
    config.write_text(f"keys: {tmp_path / 'k.yaml'}\n")
    assert load_config(config).keys == tmp_path / "k.yaml"
