"""When key work is due, departed-login alerts, and a rotation that must not start on a broken key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bastion_guard.decisions import Verdict
from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.keys.alerts import RULE, DepartedIndex, departed_logins
from bastion_guard.keys.audit import Audit
from bastion_guard.keys.inventory import Inventory, Person, SharedKey, Target
from bastion_guard.keys.ledger import Offboarding, Rotation, locked
from bastion_guard.keys.pubkey import parse_key
from bastion_guard.keys.remote import Ssh
from bastion_guard.keys.rotate import rotate
from bastion_guard.keys.scheduler import RETRY_SECS, due_work
from bastion_guard.shipping.records import Record, RecordKind

KEY = parse_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFK2KzJzrIHZcU1AS3iVIGvFyXh3f8iDdJAcpd8PDG8 carol@laptop")
DEPARTS = 1_800_000_000.0


def _inventory(tmp_path: Path, *, rotate_every: float | None = None) -> Inventory:
    key_file = tmp_path / "shared"
    key_file.write_text("not a private key\n")
    return Inventory(
        tmp_path / "keys.yaml", tmp_path / "revoked.krl",
        people=(Person("carol", "carol", (KEY,), departs=DEPARTS), Person("bob", "bob")),
        targets=(Target("t", ("192.0.2.10",), "ai"),),
        shared_keys=(SharedKey("ai", key_file, ("t",), ("carol", "bob"), rotate_every=rotate_every),),
    )


def _event(kind: Kind, epoch: float, user: str | None, fingerprint: str | None = None) -> Event:
    outcome = Outcome.SUCCESS if kind is Kind.AUTH_SUCCESS else Outcome.FAILURE
    return Event(epoch, 0, "bastion", "sshd", 1, kind, outcome, "198.51.100.7", 40000, user,
                 fingerprint=fingerprint, source="file:/var/log/auth.log", position=123)


def test_a_past_departure_is_due_until_it_completed(tmp_path: Path) -> None:
    """Due when the time has passed (also long after: the daemon was down), not before, not once completed."""
    inventory = _inventory(tmp_path)
    with locked(tmp_path) as ledger:
        assert due_work(inventory, ledger, DEPARTS - 1) == []
        (late,) = due_work(inventory, ledger, DEPARTS + 30 * 86400)
        assert late.person is not None and late.person.name == "carol"
        ledger.offboardings["carol"] = Offboarding("carol", DEPARTS + 1, completed=DEPARTS + 5, attempts=1)
        assert due_work(inventory, ledger, DEPARTS + 10) == []


def test_a_failed_offboarding_is_retried_later_not_at_once(tmp_path: Path) -> None:
    """A run that failed somewhere waits RETRY_SECS before the next try."""
    inventory = _inventory(tmp_path)
    with locked(tmp_path) as ledger:
        ledger.offboardings["carol"] = Offboarding("carol", DEPARTS, attempts=1, last_error="t down")
        assert due_work(inventory, ledger, DEPARTS + 1) == []
        assert [d.person for d in due_work(inventory, ledger, DEPARTS + RETRY_SECS)] == [inventory.people[0]]


def test_periodic_rotation_is_due_after_rotate_every(tmp_path: Path) -> None:
    """From the last completed rotation; an unfinished one is retried after RETRY_SECS."""
    inventory = _inventory(tmp_path, rotate_every=90 * 86400)
    with locked(tmp_path) as ledger:
        ledger.last_rotated["ai"] = 1000.0
        assert due_work(inventory, ledger, 1000.0 + 89 * 86400) == []
        (due,) = due_work(inventory, ledger, 1000.0 + 90 * 86400)
        assert due.shared_key is inventory.shared_keys[0]
        ledger.rotations["ai"] = Rotation("ai", "scheduled", "SHA256:a", "SHA256:b", 5000.0)
        assert due_work(inventory, ledger, 5001.0) == []
        assert len(due_work(inventory, ledger, 5000.0 + RETRY_SECS)) == 1


def test_departed_logins_raise_alerts(tmp_path: Path) -> None:
    """Attempts by account or fingerprint after the departure are alerts; before it, or other people, not."""
    index = DepartedIndex.of(_inventory(tmp_path))
    events = [
        _event(Kind.AUTH_SUCCESS, DEPARTS - 10, "carol", KEY.fingerprint),  # before leaving: fine
        _event(Kind.KEY_REVOKED, DEPARTS + 10, "carol", KEY.fingerprint),
        _event(Kind.AUTH_SUCCESS, DEPARTS + 20, "shared-account", KEY.fingerprint),  # her key, another account
        _event(Kind.INVALID_USER, DEPARTS + 30, "carol"),
        _event(Kind.AUTH_SUCCESS, DEPARTS + 40, "bob", "SHA256:bobs"),
        _event(Kind.SESSION_CLOSED, DEPARTS + 50, "carol"),
    ]
    decisions = departed_logins(events, index)
    assert [d.epoch for d in decisions] == [DEPARTS + 10, DEPARTS + 20, DEPARTS + 30]
    assert all(d.verdict is Verdict.ALERT and d.rule == RULE and d.target == "carol" for d in decisions)
    assert "logged in as shared-account with " + KEY.fingerprint in decisions[1].reason
    assert decisions[0].evidence[0].position == 123


def test_fingerprints_beyond_the_inline_keys_are_matched(tmp_path: Path) -> None:
    """A key that was only in carol's authorized_keys (known by fingerprint) used under another account."""
    index = DepartedIndex.of(_inventory(tmp_path), {"carol": ["SHA256:fromfile"], "bob": ["SHA256:bobs"]})
    events = [_event(Kind.AUTH_SUCCESS, DEPARTS + 1, "deploy", "SHA256:fromfile"),
              _event(Kind.AUTH_SUCCESS, DEPARTS + 2, "deploy", "SHA256:bobs")]
    (decision,) = departed_logins(events, index)
    assert decision.target == "carol" and "as deploy with SHA256:fromfile" in decision.reason


def test_a_broken_shared_key_stops_the_rotation_before_any_target(tmp_path: Path) -> None:
    """A private key ssh-keygen cannot read: a failure record, no new pair, no ledger run, no ssh."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen missing (apt-get install openssh-client)")
    inventory = _inventory(tmp_path)
    (tmp_path / "shared").chmod(0o600)
    records: list[Record] = []
    audit = Audit(records.append, bastion="test")
    with locked(tmp_path) as ledger:
        result = rotate(inventory.shared_keys[0], inventory, ledger, Ssh(tmp_path / "known_hosts"), audit,
                        reason="test")
        assert ledger.rotations == {}
    assert result.error is not None and "not a usable private key" in result.error
    assert result.failed == 1 and not result.switched
    assert not (tmp_path / "shared.next").exists()
    (record,) = records
    assert record.kind is RecordKind.KEY and record.body["outcome"] == "failure" and record.body["key"] == "ai"
    assert (tmp_path / "shared").exists()


def test_a_run_that_stopped_right_after_the_switch_goes_on_with_the_removal(tmp_path: Path) -> None:
    """The key file already holds the new key but the ledger did not record the switch (a crash between
    the rename and the save): the run notices by fingerprint, does not install or switch again, and goes
    on to remove the old key (here the host refuses connections, so that step fails and is retried later)."""
    if shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.skip("ssh-keygen or ssh missing (apt-get install openssh-client)")
    import subprocess  # noqa: PLC0415 - only this test generates keys

    live = tmp_path / "shared"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(live)], check=True)
    new = parse_key((tmp_path / "shared.pub").read_text())
    inventory = Inventory(
        tmp_path / "keys.yaml", tmp_path / "revoked.krl",
        targets=(Target("t", ("127.0.0.1",), "nobody", port=1),),
        shared_keys=(SharedKey("ai", live, ("t",), ()),),
    )
    with locked(tmp_path) as ledger:
        ledger.rotations["ai"] = Rotation("ai", "test", "SHA256:old", new.fingerprint, 1.0,
                                          old_key=KEY.line, steps={"nobody@127.0.0.1:1": {"added": 2.0, "verified": 3.0}})
        result = rotate(inventory.shared_keys[0], inventory, ledger, Ssh(tmp_path / "known_hosts"),
                        Audit(bastion="test"), reason="test")
        assert ledger.rotations["ai"].switched is not None and ledger.rotations["ai"].completed is None
    assert result.switched and not result.completed
    assert [(e.phase, e.status) for e in result.endpoints] == [("remove", "failed")]
    assert parse_key((tmp_path / "shared.pub").read_text()) == new, "no second key was generated"
