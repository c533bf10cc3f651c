"""``bastionctl ssh-config``: the real ssh client reads the generated blocks as intended."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = [
    "ssh-config", "--bastion", "jump.example.com", "--bastion-user", "alice", "--bastion-port", "2222",
    "--target", "pytorch-node-*", "--target-domain", "gpu.internal", "--target-user", "ai-user",
]


def _bastionctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion_guard.cli.bastionctl", *args], capture_output=True, text=True, check=False
    )


def _effective(config: Path, host: str) -> dict[str, str]:
    """``ssh -G``: the client's effective settings for ``host`` (connects nowhere)."""
    result = subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True)
    settings: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, value)
    return settings


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the OpenSSH client is not installed")
def test_targets_go_through_the_bastion(tmp_path: Path) -> None:
    """A target resolves to its internal name with ProxyJump to the bastion and its own key; the bastion has its own."""
    result = _bastionctl(*ARGS)
    assert result.returncode == 0, result.stderr
    config = tmp_path / "config"
    config.write_text(result.stdout)
    target = _effective(config, "pytorch-node-01")
    assert target["hostname"] == "pytorch-node-01.gpu.internal"
    assert target["user"] == "ai-user"
    assert target["proxyjump"] == "bastion"
    assert target["identityfile"].endswith("id_ed25519_targets")
    assert target["forwardagent"] == "no"
    jump = _effective(config, "bastion")
    assert (jump["hostname"], jump["port"], jump["user"]) == ("jump.example.com", "2222", "alice")
    assert jump["identityfile"].endswith("id_ed25519_bastion")
    assert jump["stricthostkeychecking"] == "true"


def test_values_that_could_inject_directives_are_refused() -> None:
    """A value with spaces or newlines cannot smuggle another directive into the config."""
    for bad in ("jump.example.com\n  ProxyCommand sh", "a b"):
        result = _bastionctl("ssh-config", "--bastion", bad, "--target", "x-*")
        assert result.returncode == 2
        assert "must not have" in result.stderr
