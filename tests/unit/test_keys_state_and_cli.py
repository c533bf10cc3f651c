"""Key last-use in the state store (saved with positions), and bastionctl's answers to bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion_guard.cli.bastionctl import main
from bastion_guard.state.records import KeyUse, Position
from bastion_guard.state.store import StateStore


def test_key_use_is_saved_with_the_position_and_never_goes_back(tmp_path: Path) -> None:
    """The latest use wins; replaying older lines after a crash does not move it back."""
    with StateStore.open(tmp_path / "state.db") as store:
        position = Position("file:/var/log/auth.log", "id", 100, None)
        store.commit([position], key_uses=[KeyUse("SHA256:a", 200.0, "bob", "192.0.2.1")])
        store.commit(key_uses=[KeyUse("SHA256:a", 150.0, "bob", "192.0.2.9")])
        assert store.key_uses() == {"SHA256:a": KeyUse("SHA256:a", 200.0, "bob", "192.0.2.1")}
        store.commit(key_uses=[KeyUse("SHA256:a", 300.0, "bob", "192.0.2.2")])
        assert store.key_uses()["SHA256:a"].ip == "192.0.2.2"
        assert store.positions()["file:/var/log/auth.log"].offset == 100


def _config(tmp_path: Path, keys: str | None) -> Path:
    path = tmp_path / "bastiond.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\nkeys: {tmp_path / 'keys.yaml'}\n")
    if keys is not None:
        (tmp_path / "keys.yaml").write_text(keys)
    return path


def test_rotate_keys_without_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No keys.yaml: exit 2 and where it was looked for."""
    assert main(["rotate-keys", "alice", "--config", str(_config(tmp_path, None))]) == 2
    assert f"no key inventory at {tmp_path / 'keys.yaml'}" in capsys.readouterr().err


def test_rotate_keys_with_an_invalid_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistake in keys.yaml: exit 2, located, before anything is read or changed."""
    config = _config(tmp_path, "krl: /etc/ssh/revoked.krl\npeople:\n  - {name: alice, acount: alice}\n")
    assert main(["rotate-keys", "alice", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "keys.yaml:3:19: people[0].acount: unknown key" in err
    assert "people[0].account: is required" in err
    assert not (tmp_path / "state").exists()


def test_unknown_person(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A name that is neither a person nor an account: exit 2, the known names listed."""
    config = _config(tmp_path, "krl: /etc/ssh/revoked.krl\npeople:\n  - {name: alice, account: al}\n")
    assert main(["rotate-keys", "mallory", "--config", str(config), "--dry-run"]) == 2
    assert "unknown person 'mallory'" in capsys.readouterr().err and not (tmp_path / "state").exists()


def test_bastiond_check_config_reports_a_bad_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bastiond --check-config`` (ExecStartPre) refuses an invalid keys.yaml with its location."""
    from bastion_guard.cli.bastiond import main as bastiond_main  # noqa: PLC0415

    config = _config(tmp_path, "krl: /etc/ssh/revoked.krl\npeople:\n  - {name: alice, account: al, departs: soon}\n")
    assert bastiond_main(["--check-config", "--config", str(config)]) == 2
    assert "keys.yaml:3:32: people[0].departs: 'soon' is not an RFC 3339 time" in capsys.readouterr().err
