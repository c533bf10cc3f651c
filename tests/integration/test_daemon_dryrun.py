"""bastiond as a process: follows a file, bans (dry run), answers bastionctl, survives restarts exactly once.

No root needed: the firewall is the dry-run backend and everything lives in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bastiond_process import BastiondProcess, failed_password

REPO = Path(__file__).resolve().parents[2]


def _line(ip: str, pid: int, user: str = "root") -> str:
    return failed_password(user, ip, pid=pid, port=40000 + pid % 1000)


def _bans(daemon: BastiondProcess) -> list[str]:
    """Active ban targets."""
    result = daemon.ctl("bans", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return sorted(ban["target"] for ban in json.loads(result.stdout))


@pytest.fixture
def bastiond(tmp_path: Path) -> Iterator[BastiondProcess]:
    """A daemon layout with the shipped rules; the process is stopped at the end if still running."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    daemon = BastiondProcess(tmp_path)
    daemon.log.write_text("")
    yield daemon
    daemon.close()


def test_bans_restart_exactly_once_and_control(bastiond: BastiondProcess) -> None:
    """Lines written while stopped are processed once after restart; bans outlive the restart; control works."""
    bastiond.start()
    bastiond.append([_line("203.0.113.5", 100 + i) for i in range(5)])
    bastiond.wait_lines(5)
    assert _bans(bastiond) == ["203.0.113.5"]
    assert bastiond.ctl("ban", "198.51.100.9", "--for", "10m", "--reason", "test").returncode == 0
    bastiond.stop()

    # Written while the daemon is down: must be read exactly once after the restart.
    bastiond.append([_line("203.0.113.6", 200 + i) for i in range(5)])
    bastiond.start()
    bastiond.wait_lines(5)
    time.sleep(0.3)
    assert bastiond.lines_read() == 5, "lines before the saved position were read again"
    assert _bans(bastiond) == ["198.51.100.9", "203.0.113.5", "203.0.113.6"]

    explain = bastiond.ctl("explain", "203.0.113.6")
    assert explain.returncode == 0 and "sshd-bruteforce" in explain.stdout
    assert bastiond.ctl("unban", "203.0.113.6").returncode == 0
    assert bastiond.ctl("unban", "203.0.113.6").returncode == 0, "unban is idempotent"
    assert _bans(bastiond) == ["198.51.100.9", "203.0.113.5"]
    assert bastiond.ctl("ban", "not-an-address").returncode == 2
    assert oct(bastiond.socket.stat().st_mode & 0o777) == "0o600"


def test_bad_rules_never_replace_good_ones(bastiond: BastiondProcess) -> None:
    """A reload with a broken rule file fails and the running rules stay; SIGHUP does the same safely."""
    bastiond.start()
    (bastiond.rules / "broken.yaml").write_text("kind: rule\nname: x\nthreshold: {count: nope}\n")
    result = bastiond.ctl("reload")
    assert result.returncode == 1
    assert "broken.yaml:3" in result.stderr
    assert bastiond.process is not None
    bastiond.process.send_signal(signal.SIGHUP)
    status = bastiond.status()
    rules = status["rules"]
    assert isinstance(rules, list) and "sshd-bruteforce" in rules
    (bastiond.rules / "broken.yaml").unlink()
    assert bastiond.ctl("reload").returncode == 0


def test_check_config_reports_location(tmp_path: Path) -> None:
    """``bastiond --check-config`` names file, line and key of a broken configuration and exits 2."""
    config = tmp_path / "bastiond.yaml"
    config.write_text("sources: auto\nfirewall: {backend: iptables}\n")
    result = subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(config), "--check-config"],
        capture_output=True, text=True, check=False, env={**os.environ, "BASTION_GUARD_RULES": str(REPO / "rules")},
    )
    assert result.returncode == 2
    assert "bastiond.yaml:2:12: firewall.backend: must be one of nftables, ipset, dry-run" in result.stderr


def test_systemd_notification(bastiond: BastiondProcess) -> None:
    """Under systemd (NOTIFY_SOCKET set) bastiond says READY=1 once up and pings the watchdog."""
    notify_path = bastiond.root / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify_path))
        listener.settimeout(15)
        env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"}
        bastiond.start(env=env, wait=False)
        messages = [listener.recv(4096).decode() for _ in range(3)]
    assert "READY=1" in messages[0]
    assert any("WATCHDOG=1" in message for message in messages[1:])
    output = bastiond.stop()
    assert "ready" in output


def test_missing_nft_is_a_clear_error_at_start(bastiond: BastiondProcess) -> None:
    """With the nftables backend and no ``nft`` on PATH, bastiond refuses to start and says what to install."""
    bastiond.config.write_text(bastiond.config.read_text().replace("dry-run", "nftables"))
    empty = bastiond.root / "empty-path"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastiond", "--config", str(bastiond.config)],
        capture_output=True, text=True, check=False, timeout=30, env={**os.environ, "PATH": str(empty)},
    )
    assert result.returncode == 1
    assert "'nft' not found on PATH: install the nftables package" in result.stderr


def test_loopback_is_never_banned_by_hand(bastiond: BastiondProcess) -> None:
    """A manual ban of an address the kernel's allow sets would let through anyway is refused, with why."""
    bastiond.start()
    refused = bastiond.ctl("ban", "127.0.0.1")
    assert refused.returncode != 0 and "never banned" in refused.stderr, refused.stderr
    assert _bans(bastiond) == []


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and `ip` (network namespace)")
def test_the_hosts_own_addresses_are_never_banned(tmp_path: Path) -> None:
    """bastiond in a namespace of its own, which holds 198.51.100.77 and 2001:db8:77::7: failures
    from those addresses count for nothing and a manual ban of them is refused; a stranger is banned."""
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    name = f"bgho-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    daemon = BastiondProcess(tmp_path, wrap=lambda argv: (["ip", "netns", "exec", name, *argv], dict(os.environ)))
    try:
        # On the namespace's loopback device: no kernel module needed, and an address there is the host's all the same.
        for argv in (["addr", "add", "198.51.100.77/32", "dev", "lo"], ["addr", "add", "2001:db8:77::7/128", "dev", "lo"],
                     ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        daemon.log.write_text("")
        daemon.start()
        own = [_line(address, 300 + i) for address in ("198.51.100.77", "2001:db8:77::7") for i in range(8)]
        daemon.append([*own, *(_line("203.0.113.9", 400 + i) for i in range(8))])
        daemon.wait_lines(24)
        assert _bans(daemon) == ["203.0.113.9"]
        refused = daemon.ctl("ban", "198.51.100.77")
        assert refused.returncode != 0 and "never banned" in refused.stderr, refused.stderr
        assert "never banning this host's own" in daemon.output(), daemon.output()
    finally:
        daemon.close()
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_counts_in_progress_survive_a_clean_restart_and_a_reload(bastiond: BastiondProcess) -> None:
    """Four failures (the limit is five), a restart, one more: banned, on the evidence of all five lines. Then
    four from another address, a reload, one more: banned too. Saved counts are forgotten once a position
    moves past them, so after a later SIGKILL they are not reused: the lines count once, on top of nothing."""
    bastiond.start()
    bastiond.append([_line("203.0.113.21", 500 + i) for i in range(4)])
    bastiond.wait_lines(4)
    bastiond.stop()
    bastiond.start()
    assert "resumed the counts in progress of" in bastiond.run_output()
    bastiond.append([_line("203.0.113.21", 504)])
    bastiond.wait_lines(1)
    assert _bans(bastiond) == ["203.0.113.21"]
    explain = json.loads(bastiond.ctl("explain", "203.0.113.21", "-o", "json").stdout)
    assert len(explain["ban"]["evidence"]) == 5

    bastiond.append([_line("203.0.113.22", 600 + i) for i in range(4)])
    bastiond.wait_lines(5)
    assert bastiond.ctl("reload").returncode == 0
    bastiond.append([_line("203.0.113.22", 604)])
    bastiond.wait_lines(6)
    assert _bans(bastiond) == ["203.0.113.21", "203.0.113.22"]

    bastiond.append([_line("203.0.113.23", 700 + i) for i in range(3)])
    bastiond.wait_lines(9)
    bastiond.stop()
    bastiond.start()  # resumes 3 for .23 ...
    assert "resumed the counts in progress of" in bastiond.run_output()
    bastiond.append([_line("203.0.113.24", 800)])  # ... and moves a position past the saved counts
    bastiond.wait_lines(1)
    assert bastiond.process is not None
    bastiond.process.kill()  # dies without saving counts again
    bastiond.process.wait()
    bastiond.start()
    assert "resumed the counts" not in bastiond.run_output()
    bastiond.append([_line("203.0.113.23", 703 + i) for i in range(2)])
    bastiond.wait_lines(2)
    assert _bans(bastiond) == ["203.0.113.21", "203.0.113.22"], "3 + 2 would have banned: counted from nothing"
