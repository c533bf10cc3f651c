"""Key lifecycle end to end: a real bastion sshd, two real targets behind it, real accounts and keys.

``bastionctl rotate-keys`` and ``bastiond`` run on the bastion (its namespace); people log in from the
client namespace, which reaches the targets only with ``ssh -J`` through the bastion (see ``keylab``).
The tests run in file order and build on each other's state, as an operator's day would.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keylab
import netns
import pytest
from bastiond_process import BastiondProcess

pytestmark = [pytest.mark.root, pytest.mark.sshd, pytest.mark.rsyslog]
WAIT = 30.0


@pytest.fixture(scope="module")
def lab() -> Iterator[keylab.Lab]:
    """The namespaces, sshds, accounts and keys for the module; all removed afterwards."""
    try:
        with keylab.running_lab() as running:
            yield running
    except netns.UnavailableError as exc:
        pytest.skip(f"key lifecycle end-to-end test: {exc}")


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.stdout, f"no output (exit {done.returncode}): {done.stderr}"
    return json.loads(done.stdout)


def _revoked(lab: keylab.Lab, public: Path) -> bool:
    done = subprocess.run(["ssh-keygen", "-Q", "-f", str(lab.krl), str(public)], capture_output=True, text=True,
                          check=False)
    return done.returncode == 1


def _snapshot(lab: keylab.Lab) -> dict[str, bytes]:
    paths = [lab.krl, lab.shared_key, Path(f"{lab.shared_key}.pub"), lab.users["alice"].home / ".ssh/authorized_keys"]
    paths += [lab.users["tgt"].home / name for name in keylab.TARGET_FILES.values()]
    return {str(path): path.read_bytes() for path in paths}


def test_unknown_user_is_a_clear_error(lab: keylab.Lab) -> None:
    """A person who is not in keys.yaml: exit 2, the known names listed, nothing written."""
    before = _snapshot(lab)
    done = lab.bastionctl("rotate-keys", "nobody-here")
    assert done.returncode == 2, done
    assert "unknown person 'nobody-here'" in done.stderr and "alice" in done.stderr
    assert _snapshot(lab) == before


def test_dry_run_prints_the_plan_and_changes_nothing(lab: keylab.Lab) -> None:
    """--dry-run lists revocation, install, switch and removal steps; no file, key or ledger changes."""
    before = _snapshot(lab)
    plan = _json(lab.bastionctl("rotate-keys", "alice", "--dry-run", "-o", "json"))
    actions = [(step["action"], step["state"]) for step in plan["steps"]]
    assert ("revoke", "todo") in actions
    assert ("remove-from-authorized-keys", "todo") in actions
    assert actions.count(("install-new-key", "todo")) == 2
    assert ("switch-key-file", "todo") in actions
    assert actions.count(("remove-old-key", "todo")) == 2
    assert plan["warnings"] == [], plan["warnings"]  # sshd -T confirms RevokedKeys is our KRL
    assert _snapshot(lab) == before
    assert not (lab.state_dir / "keys" / "ledger.json").exists()
    assert not Path(f"{lab.shared_key}.next").exists()
    assert lab.login_bastion("alice").returncode == 0


def test_offboarding_with_a_target_down_finishes_on_rerun(lab: keylab.Lab) -> None:
    """Alice leaves while t2 is unreachable: her key is refused at once, nobody loses access, the shared key
    is not switched; with t2 back, the re-run continues where it stopped and completes the rotation."""
    old_key = keylab.copy_private(lab.shared_key, lab.workdir / "old-shared-key")
    old_blob = keylab.public_blob(old_key)
    alice_public = Path(f"{lab.users['alice'].key}.pub")
    assert lab.jump("bob", lab.shared_key, keylab.T1).returncode == 0

    netns.run("ip", "-n", lab.bastion, "link", "set", lab.veth_to[keylab.T2], "down")
    try:
        first = lab.bastionctl("rotate-keys", "alice", "-o", "json")
    finally:
        netns.run("ip", "-n", lab.bastion, "link", "set", lab.veth_to[keylab.T2], "up")
    assert first.returncode == 1, first.stderr
    report = _json(first)
    assert report["keys_revoked"] == [lab.users["alice"].fingerprint]
    (rotation,) = report["rotations"]
    assert not rotation["switched"] and not rotation["completed"]
    states = {(e["endpoint"].split("@")[1].split(":")[0], e["phase"]): e["status"] for e in rotation["endpoints"]}
    assert states == {(keylab.T1, "install"): "done", (keylab.T2, "install"): "failed"}
    assert report["summary"].endswith("0 targets rotated, 1 failed")
    assert {record["action"] for record in report["records"]} >= {"key-revoked", "shared-key-install", "offboarding"}

    # Alice is out already: the KRL refuses her key, and sshd says why.
    assert _revoked(lab, alice_public)
    assert lab.login_bastion("alice").returncode != 0
    lab.rsyslog.flush()
    assert f"{lab.users['alice'].fingerprint} revoked by file {lab.krl}" in lab.rsyslog.auth_log.read_text()
    assert lab.users["alice"].fingerprint not in (lab.users["alice"].home / ".ssh/authorized_keys").read_text()
    # Nobody who stays lost anything: the key file is the old one and reaches both targets.
    assert keylab.fingerprint(lab.shared_key) == keylab.fingerprint(old_key)
    for target in (keylab.T1, keylab.T2):
        assert lab.jump("bob", lab.shared_key, target).returncode == 0, target
    assert Path(f"{lab.shared_key}.next").exists()

    started = time.monotonic()
    second = lab.bastionctl("rotate-keys", "alice", "-o", "json")
    print(f"\nkeys e2e: re-run (1 install + verify, switch, 2 removals) took {time.monotonic() - started:.2f} s")
    assert second.returncode == 0, second.stdout + second.stderr
    (rotation,) = _json(second)["rotations"]
    states = {(e["endpoint"].split("@")[1].split(":")[0], e["phase"]): e["status"] for e in rotation["endpoints"]}
    assert states == {
        (keylab.T1, "install"): "already", (keylab.T2, "install"): "done",
        (keylab.T1, "remove"): "done", (keylab.T2, "remove"): "done",
    }
    assert rotation["switched"] and rotation["completed"]
    assert rotation["new"] == keylab.fingerprint(lab.shared_key) != keylab.fingerprint(old_key)
    assert keylab.uid_gid_mode(lab.shared_key) == (lab.account("bob"), 0o600)
    assert not Path(f"{lab.shared_key}.next").exists()
    new_blob = keylab.public_blob(lab.shared_key)
    for target in (keylab.T1, keylab.T2):
        installed = lab.target_keys(target)
        assert new_blob in installed and old_blob not in installed, target
        assert lab.jump("bob", lab.shared_key, target).returncode == 0, target
        refused = lab.jump("bob", old_key, target)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr, target


def test_rerun_after_completion_changes_nothing(lab: keylab.Lab) -> None:
    """A third run finds everything done: no new revocation, no new rotation, exit 0."""
    before = _snapshot(lab)
    done = lab.bastionctl("rotate-keys", "alice", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = _json(done)
    assert report["newly_revoked"] == [] and report["rotations"] == [] and report["removed_from"] == {}
    assert _snapshot(lab) == before


def test_a_target_refusing_the_new_key_stops_before_the_switch(lab: keylab.Lab) -> None:
    """The inventory says keys go to a file t1's sshd does not read: the new key is refused after it was
    added, so the run stops with a clear error and the old key stays the one in use, still accepted."""
    batch = keylab.make_keypair(lab.workdir / "bastion-keys" / "batch")
    real_file = lab.users["tgt"].home / keylab.TARGET_FILES[keylab.T1]
    real_file.write_text(real_file.read_text() + Path(f"{batch}.pub").read_text())
    original = lab.keys_yaml.read_text()
    lab.keys_yaml.write_text(keylab.keys_yaml(
        lab, ("alice", "bob", "erin", "gina"),
        targets=[f"{{name: t1-wrong-file, hosts: [{keylab.T1}], account: {lab.account('tgt')}, "
                 "authorized_keys: .ssh/not_read_by_sshd}"],
        shared=[f"{{name: batch, private_key: {batch}, targets: [t1-wrong-file], users: [erin]}}"],
    ))
    try:
        done = lab.bastionctl("rotate-keys", "erin", "-o", "json")
    finally:
        lab.keys_yaml.write_text(original)
    assert done.returncode == 1
    (rotation,) = _json(done)["rotations"]
    (endpoint,) = rotation["endpoints"]
    assert endpoint["status"] == "failed" and "refuses the new key" in endpoint["detail"], endpoint
    assert not rotation["switched"]
    assert keylab.fingerprint(batch) == rotation["old"]
    assert lab.jump("bob", batch, keylab.T1).returncode == 0


def _processes_of(account: str) -> list[str]:
    return netns.run("pgrep", "-u", account, check=False).stdout.split()


def test_a_missing_krl_is_recreated_and_unlocks_everyone(lab: keylab.Lab) -> None:
    """With the KRL gone sshd refuses every key (bob too); offboarding gina creates it again, atomically:
    bob gets in again, gina does not. Her live session is ended and her account locked and expired."""
    session = subprocess.Popen(
        ["ip", "netns", "exec", lab.client, "ssh", "-F", str(lab.ssh_config("gina")), "bastion", "sleep 300"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert netns.wait_until(lambda: bool(_processes_of(lab.account("gina"))), WAIT), "gina's session never started"
        aside = lab.krl.with_name("moved-away.krl")
        lab.krl.rename(aside)
        try:
            assert lab.login_bastion("bob").returncode != 0, "sshd should refuse every key without its KRL"
            done = lab.bastionctl("rotate-keys", "gina", "--lock-account", "--end-sessions", "-o", "json")
        finally:
            if not lab.krl.exists():
                aside.rename(lab.krl)
        assert done.returncode == 0, done.stdout + done.stderr
        assert session.wait(timeout=WAIT) != 0, "the live session must end"
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)
    report = _json(done)
    assert any("was missing" in warning for warning in report["warnings"]), report["warnings"]
    actions = {(record["action"], record["outcome"]) for record in report["records"]}
    assert {("account-locked", "success"), ("sessions-ended", "success")} <= actions
    # Killed processes linger until sshd's monitor (root) reaps them: wait for that, bounded.
    assert netns.wait_until(lambda: _processes_of(lab.account("gina")) == [], WAIT)
    shadow = netns.run("getent", "shadow", lab.account("gina")).stdout.split(":")
    assert shadow[1].startswith("!") and shadow[7] == "1", shadow
    assert lab.login_bastion("bob").returncode == 0
    assert lab.login_bastion("gina").returncode != 0
    assert keylab.uid_gid_mode(lab.krl) == ("root", 0o644)
    assert _revoked(lab, Path(f"{lab.users['gina'].key}.pub"))
    assert not _revoked(lab, Path(f"{lab.users['alice'].key}.pub")), "the recreated KRL starts empty"


def _bastiond(lab: keylab.Lab) -> BastiondProcess:
    """bastiond on the bastion (``-v``: the schedule's checks are logged too)."""
    return BastiondProcess(lab.workdir, config=lab.config, log=lab.rsyslog.auth_log, arguments=["-v"],
                           wrap=lab.on_bastion)


def _logs(daemon: BastiondProcess, needle: str, *, this_run: bool = False) -> bool:
    """Wait until ``needle`` appears in the daemon's output (of the latest run only, with ``this_run``)."""
    return netns.wait_until(lambda: needle in (daemon.run_output() if this_run else daemon.output()), WAIT,
                            step=0.1)


def _ledger(lab: keylab.Lab) -> dict[str, Any]:
    path = lab.state_dir / "keys" / "ledger.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _offboarded(lab: keylab.Lab, role: str) -> bool:
    entry = _ledger(lab).get("offboardings", {}).get(role)
    return entry is not None and entry["completed"] is not None


def test_scheduled_departures_fire_from_bastiond(lab: keylab.Lab) -> None:
    """Carol left while bastiond was down: it offboards her at start (late, once). Dave leaves a few seconds
    after start: it offboards him on time. The shared key, last written two hours ago with rotate_every 1h,
    is rotated on both targets. Dave's next attempt raises the departed-user alert; bob's login shows up in
    keys list; a restart fires nothing again."""
    now = datetime.now(UTC)
    dave_departs = (now + timedelta(seconds=4)).timestamp()
    departs = {"carol": (now - timedelta(hours=1)).isoformat(), "dave": (now + timedelta(seconds=4)).isoformat()}
    lab.keys_yaml.write_text(keylab.keys_yaml(lab, ("alice", "bob", "erin", "gina", "carol", "dave"),
                                              departs=departs, rotate_every="1h"))
    two_hours_ago = time.time() - 7200
    with (lab.state_dir / "keys").joinpath("ledger.json").open() as ledger_file:
        ledger = json.load(ledger_file)
    ledger["last_rotated"]["ai-user"] = two_hours_ago  # as if the rotation of the first test was long ago
    (lab.state_dir / "keys" / "ledger.json").write_text(json.dumps(ledger))
    before = keylab.fingerprint(lab.shared_key)
    daemon = _bastiond(lab)
    try:
        daemon.start(timeout=WAIT)
        assert _logs(daemon, "ready:"), daemon.output()
        assert netns.wait_until(lambda: _offboarded(lab, "carol"), WAIT, step=0.1), daemon.output()
        assert netns.wait_until(lambda: _ledger(lab)["last_rotated"]["ai-user"] > two_hours_ago, WAIT, step=0.1), \
            daemon.output()
        assert keylab.fingerprint(lab.shared_key) != before
        for target in (keylab.T1, keylab.T2):
            assert lab.jump("bob", lab.shared_key, target).returncode == 0, target
        assert _revoked(lab, Path(f"{lab.users['carol'].key}.pub"))
        assert netns.wait_until(lambda: _offboarded(lab, "dave"), WAIT, step=0.1), daemon.output()
        # Fired at its time, not before (how long after depends on the machine's load: not asserted).
        assert _ledger(lab)["offboardings"]["dave"]["started"] >= dave_departs
        assert _revoked(lab, Path(f"{lab.users['dave'].key}.pub"))
        assert lab.login_bastion("dave").returncode != 0
        assert _logs(daemon, f"alert departed-user-login: {lab.account('dave')}"), daemon.output()

        assert lab.login_bastion("bob").returncode == 0
        bob_fp = lab.users["bob"].fingerprint

        def bob_seen() -> bool:
            rows = _json(lab.bastionctl("keys", "list", "-o", "json"))
            return any(row["fingerprint"] == bob_fp and row["last_used"] is not None for row in rows)

        assert netns.wait_until(bob_seen, WAIT, step=0.2)
        daemon.stop(timeout=60)
        assert daemon.output().count("departure of carol is due") == 1

        daemon.start(timeout=WAIT)
        assert _logs(daemon, "key schedule checked: 0 due", this_run=True), daemon.run_output()
        assert "departure of" not in daemon.run_output()
        daemon.stop(timeout=60)
    finally:
        daemon.close()
    rows = {row["owner"]: row for row in _json(lab.bastionctl("keys", "list", "-o", "json"))
            if row["kind"] == "personal"}
    assert rows["carol"]["state"] == rows["dave"]["state"] == rows["alice"]["state"] == "revoked"
    assert rows["bob"]["state"] == "active" and rows["bob"]["last_user"] == lab.account("bob")
