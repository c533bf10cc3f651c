"""The demo bastion's own files work with the real programs: sshd accepts its profile and passes the audit,
and rsyslogd's GELF forwarding delivers frames a GELF TCP input accepts.

The sshd check reuses the audit test's bench (host key, KRL, private /run), and puts them before the demo
profile: sshd keeps the first value of a keyword, so the container's paths are overridden and the rest of
the profile is audited as written. The rsyslog check runs a real rsyslogd with the demo's forwarding
stanza pointed at a GELF TCP protocol test double (NUL-framed JSON, checked against GELF 1.1).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from realparts import stop_process, wait_until
from test_audit_real_sshd import Bench, audit, bench

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "bastion"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"

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


class GelfTcpDouble:
    """A GELF TCP input as Graylog runs it: NUL-terminated JSON frames, GELF 1.1 fields enforced."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(0.2)
        self.port: int = self.server.getsockname()[1]
        self.messages: list[dict[str, object]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(0.2)
                buffer = b""
                while not self.stop.is_set():
                    try:
                        chunk = connection.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    buffer += chunk
                    *frames, buffer = buffer.split(b"\0")
                    for frame in frames:
                        self._accept(frame)

    def _accept(self, frame: bytes) -> None:
        try:
            message = json.loads(frame)
        except ValueError as error:
            self.errors.append(f"not JSON: {frame[:200]!r} ({error})")
            return
        problems = [f"missing {key}" for key in ("version", "host", "short_message") if key not in message]
        if message.get("version") != "1.1":
            problems.append("version must be 1.1")
        if not isinstance(message.get("timestamp"), (int, float)) or not isinstance(message.get("level"), int):
            problems.append("timestamp and level must be numbers")
        extra = [key for key in message if key not in {"version", "host", "short_message", "full_message",
                                                        "timestamp", "level"}]
        problems += [f"additional field {key!r} must start with _ and not be _id" for key in extra
                     if not key.startswith("_") or key == "_id"]
        if problems:
            self.errors.append(f"{message}: {problems}")
        else:
            self.messages.append(message)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def gelf() -> Iterator[GelfTcpDouble]:
    double = GelfTcpDouble()
    yield double
    double.close()


@pytest.mark.rsyslog
@pytest.mark.skipif(not Path(RSYSLOGD).exists(), reason="rsyslogd is not installed (apt-get install rsyslog)")
def test_rsyslog_forwards_auth_lines_as_gelf(gelf: GelfTcpDouble, tmp_path: Path) -> None:
    """The demo's forwarding stanza, in a real rsyslogd, turns auth lines (hostile ones too) into valid GELF."""
    stanza = (DEMO / "rsyslog-gelf.conf").read_text()
    assert 'target="graylog" port="12201"' in stanza
    stanza = stanza.replace('target="graylog" port="12201"', f'target="127.0.0.1" port="{gelf.port}"')
    sock = tmp_path / "log.sock"
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{tmp_path / "work"}")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0")\n' + stanza
    )
    checked = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True, check=False,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with (tmp_path / "rsyslogd.log").open("wb") as log:
        process = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: sock.exists() or process.poll() is not None, "rsyslogd socket")
        hostile = 'Invalid user a"b\\c\x01{"level":0} from 198.51.100.7 port 4242'
        stamp = time.strftime("%b %e %H:%M:%S")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            for text in (hostile, "Accepted publickey for demo from 198.51.100.8 port 22 ssh2"):
                client.sendto(f"<38>{stamp} sshd[{os.getpid()}]: {text}".encode(), str(sock))
            client.sendto(f"<14>{stamp} cron[1]: not auth".encode(), str(sock))  # user facility: not forwarded
        wait_until(lambda: len(gelf.messages) + len(gelf.errors) >= 2, "two GELF frames", timeout=20)
    finally:
        stop_process(process)
    assert not gelf.errors, gelf.errors
    first, second = gelf.messages[:2]
    assert first["_program"] == "sshd" and first["_facility"] == "auth" and first["level"] == 6
    assert "198.51.100.7 port 4242" in str(first["short_message"]) and '"level":0' in str(first["short_message"])
    assert str(second["short_message"]).startswith("Accepted publickey for demo")
    assert all("cron" not in str(message["short_message"]) for message in gelf.messages)
