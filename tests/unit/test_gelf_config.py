"""The ``type: gelf`` sink entry: validated with file:line:column, secrets by reference, TLS never switched off."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.errors import ConfigProblem, Location
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.gelf_chunks import LAN_CHUNK_BYTES, WAN_CHUNK_BYTES, Compression
from bastion_guard.shipping.gelf_config import GelfConfig, Transport, parse_config
from bastion_guard.shipping.gelf_sink import build
from bastion_guard.shipping.records import RecordKind
from bastion_guard.shipping.secrets import SecretError, SecretRef


def _parse(tmp_path: Path, text: str) -> tuple[GelfConfig, list[str]]:
    """Parse one sink entry the way the caller does (it consumes ``type`` and ``name``)."""
    path = tmp_path / "bastiond.yaml"
    path.write_text(text)
    problems: list[ConfigProblem] = []
    fields = Fields(load_documents(path)[0], "sinks[0]", problems, Location(str(path)))
    fields.raw("type")
    fields.raw("name")
    config = parse_config(fields)
    return config, [str(problem).replace(str(path), "F") for problem in problems]


def test_udp_defaults(tmp_path: Path) -> None:
    """UDP: port 12201, gzip, WAN chunk size, every record kind."""
    config, problems = _parse(tmp_path, "type: gelf\nname: g\ntransport: udp\nhost: graylog.example.com\n")
    assert problems == []
    assert config == GelfConfig(Transport.UDP, "graylog.example.com", 12201, None, Compression.GZIP,
                                WAN_CHUNK_BYTES, kinds=frozenset(RecordKind))


def test_full_tcp_tls_and_http_entries(tmp_path: Path) -> None:
    """TLS files, server name, LAN chunks, HTTP basic auth by file and a kinds filter are read as written."""
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config, problems = _parse(tmp_path, f"""
type: gelf
transport: tcp
host: 192.0.2.10
port: 12202
tls: {{ca_file: {ca}, server_name: graylog.example.com}}
timeout_secs: 3
kinds: [decision, ban]
""")
    assert problems == []
    assert config.tls is not None
    assert (config.tls.ca_file, config.tls.server_name) == (ca, "graylog.example.com")
    assert config.kinds == {RecordKind.DECISION, RecordKind.BAN}
    assert config.timeout_secs == 3.0
    http, problems = _parse(tmp_path, f"""
transport: http
host: graylog.example.com
tls: true
path: /gelf
compression: gzip
username: bastion
password_file: {ca}
""")
    assert problems == []
    assert http.password == SecretRef(ca)
    assert http.compression is Compression.GZIP
    lan, _ = _parse(tmp_path, "transport: udp\nhost: h\nchunk_size: lan\n")
    assert lan.chunk_bytes == LAN_CHUNK_BYTES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host: h\n", "F:1:1: sinks[0].transport: is required: udp (fire and forget), tcp or http"),
        ("transport: smtp\nhost: h\n", "F:1:1: sinks[0].transport: must be one of udp, tcp, http, not 'smtp'"),
        ("transport: udp\n", "F:1:1: sinks[0].host: is required"),
        ("transport: tcp\nhost: tcp://graylog:12201\n", "F:2:1: sinks[0].host: 'tcp://graylog:12201' is not a host"),
        ("transport: udp\nhost: h\ntls: {}\n", "F:3:1: sinks[0].tls: GELF over UDP has no TLS"),
        ("transport: tcp\nhost: h\ncompression: gzip\n", "F:3:1: sinks[0].compression: GELF over TCP is never compr"),
        ("transport: tcp\nhost: h\nchunk_size: lan\n", "F:3:1: sinks[0].chunk_size: applies to transport udp only"),
        ("transport: udp\nhost: h\nchunk_size: 100\n", "F:3:1: sinks[0].chunk_size: must be wan (1420), lan (8154)"),
        ("transport: tcp\nhost: h\ntls: {verify: false}\n",
         "F:3:7: sinks[0].tls.verify: verification cannot be turned off: trust a private CA with ca_file"),
        ("transport: tcp\nhost: h\ntls: {ca_file: /nonexistent/ca.pem}\n",
         "F:3:7: sinks[0].tls.ca_file: /nonexistent/ca.pem is not a readable file"),
        ("transport: http\nhost: h\npassword: hunter2\nusername: u\n",
         "F:3:1: sinks[0].password: secrets are not written inline: use password_file or password_env"),
        ("transport: http\nhost: graylog.example.com\nusername: u\npassword_env: GL_PASS\n",
         "F:3:1: sinks[0].username: basic auth over plain HTTP would send the password in clear text: add tls"),
        ("transport: tcp\nhost: h\nusername: u\npassword_env: P\n",
         "F:3:1: sinks[0].username: basic auth applies to transport http only"),
        ("transport: http\nhost: h\npath: gelf\n", "F:3:1: sinks[0].path: must start with /"),
        ("transport: udp\nhost: h\nkinds: [event, alerts]\n", "F:3:1: sinks[0].kinds: 'alerts' is not one of event"),
        ("transport: udp\nhost: h\nport: 70000\n", "F:3:1: sinks[0].port: must be at most 65535"),
        ("transport: udp\nhost: h\nhots: x\n", "F:3:1: sinks[0].hots: unknown key"),
    ],
    ids=["no-transport", "bad-transport", "no-host", "url-host", "udp-tls", "tcp-gzip", "tcp-chunks", "tiny-chunks",
         "verify-off", "missing-ca", "inline-password", "auth-in-clear", "auth-on-tcp", "relative-path", "bad-kind",
         "big-port", "typo"],
)
def test_problems_are_located(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake is reported with file:line:column and the key path."""
    _, problems = _parse(tmp_path, text)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_basic_auth_to_loopback_without_tls_is_allowed(tmp_path: Path) -> None:
    """A Graylog on this host (127.0.0.1) may take basic auth over plain HTTP: nothing crosses a network."""
    _, problems = _parse(tmp_path, "transport: http\nhost: 127.0.0.1\nusername: u\npassword_env: P\n")
    assert problems == []


def test_password_is_read_at_build_time_and_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``build`` reads the secret; the config holds only where it is, and no repr or error shows the value."""
    secret = "s3cret-value-not-to-leak"  # noqa: S105 (a test value that must not leak)
    monkeypatch.setenv("GELF_TEST_PASSWORD", secret)
    config, _ = _parse(tmp_path, "transport: http\nhost: 127.0.0.1\nusername: u\npassword_env: GELF_TEST_PASSWORD\n")
    sink = build(config, "g")
    assert secret not in repr(config)
    assert secret not in repr(sink) + repr(vars(sink))
    monkeypatch.setenv("GELF_TEST_PASSWORD", "")
    with pytest.raises(SecretError, match="environment variable GELF_TEST_PASSWORD is empty"):
        build(config, "g")


def test_unreadable_password_file_names_the_file(tmp_path: Path) -> None:
    """A missing secret file is a clear build error naming the file."""
    missing = tmp_path / "nope"
    with pytest.raises(SecretError, match=f"cannot read secret file {missing}"):
        SecretRef(missing).load()
    secret_file = tmp_path / "pass"
    secret_file.write_text("  line-one\n")
    secret_file.chmod(0o600)
    assert SecretRef(secret_file).load().reveal() == "line-one"


def test_bulk_and_body_limit_are_http_options(tmp_path: Path) -> None:
    """``bulk`` and ``max_body_bytes`` are read for HTTP and refused, located, for the other transports."""
    config, problems = _parse(tmp_path, "transport: http\nhost: h\nbulk: true\nmax_body_bytes: 1048576\n")
    assert problems == []
    assert (config.bulk, config.max_body_bytes) == (True, 1048576)
    _, problems = _parse(tmp_path, "transport: tcp\nhost: h\nbulk: true\nmax_body_bytes: 100\n")
    assert problems == [
        "F:4:1: sinks[0].max_body_bytes: must be at least 1024",
        "F:3:1: sinks[0].bulk: applies to transport http only",
        "F:4:1: sinks[0].max_body_bytes: applies to transport http only",
    ]
