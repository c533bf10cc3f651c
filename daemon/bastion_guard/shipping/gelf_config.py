"""The ``type: gelf`` sink's configuration: what its YAML entry may say, validated with locations::

    sinks:
      - type: gelf
        name: graylog                  # read by the caller: metrics label and spool cursor
        transport: tcp                 # required: udp (fire and forget) | tcp | http (confirmed delivery)
        host: graylog.example.com
        port: 12201
        tls:                           # tcp and http; the certificate is always verified
          ca_file: /etc/bastion-guard/graylog-ca.pem   # trust only this CA (system CAs when absent)
          server_name: graylog.example.com             # the name to verify when host is an address
          cert_file: /etc/bastion-guard/client.pem     # client certificate, if the input requires one
          key_file: /etc/bastion-guard/client.key
        compression: gzip              # udp: gzip (default) | zlib | none; http: none (default) | gzip | zlib
        chunk_size: wan                # udp: wan (1420, default) | lan (8154) | bytes per datagram
        path: /gelf                    # http
        bulk: false                    # http: many messages per request (the input's "Enable Bulk Receiving")
        max_body_bytes: 65536          # http: the input's "Max. HTTP chunk size" (longer bodies are refused)
        username: bastion              # http basic auth, with password_file or password_env; needs tls
        password_file: /etc/bastion-guard/graylog.pass
        timeout_secs: 10
        kinds: [event, decision, ban, unban, key, audit]   # default: all; others are SKIPPED

Basic auth suits a reverse proxy in front of Graylog, and Graylog's own GELF HTTP input, which checks one
authorization header of the operator's choosing: name it ``Authorization`` with the value
``Basic <base64 of username:password>``.

There is no switch that turns certificate verification off: a self-signed Graylog is trusted by naming
its CA in ``ca_file``. ``parse_config`` reads no secret and connects nowhere (``bastiond --check-config``
runs it); the password is read when the sink is built.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from bastion_guard.config.fielddoc import KeyDoc, doc, docs
from bastion_guard.errors import BastionError
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.gelf_chunks import (
    CHUNK_HEADER_BYTES,
    LAN_CHUNK_BYTES,
    MAX_DATAGRAM_BYTES,
    WAN_CHUNK_BYTES,
    Compression,
)
from bastion_guard.shipping.records import RecordKind
from bastion_guard.shipping.secrets import SecretRef, is_loopback_host, secret_ref

DEFAULT_PORT = 12201  # Graylog's GELF inputs, UDP and TCP alike
DEFAULT_MAX_BODY_BYTES = 64 * 1024  # Graylog's HTTP input max_chunk_size default: longer bodies get 413
_MIN_BODY_BYTES = 1024
_MAX_PORT = 65535
_MIN_CHUNK_BYTES = 256  # smaller would spend more on the 12-byte header than it saves
_CHUNK_SIZES = {"wan": WAN_CHUNK_BYTES, "lan": LAN_CHUNK_BYTES}


class GelfError(BastionError):
    """The GELF sink cannot be built (a secret or certificate file cannot be read); names where, never a value."""


class Transport(enum.StrEnum):
    """How payloads travel; each gives a different delivery guarantee (see ``gelf_transport``)."""

    UDP = "udp"
    TCP = "tcp"
    HTTP = "http"


# The start of every example: a minimal valid entry the documented key is added to.
_GELF = "sinks: [{type: gelf,"
_TCP = f"{_GELF} transport: tcp, host: graylog.example.com"
_UDP = f"{_GELF} transport: udp, host: graylog.example.com"
_HTTP = f"{_GELF} transport: http, host: graylog.example.com"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS for TCP and HTTP. Verification is always on; ``ca_file`` narrows trust to one CA."""

    ca_file: Path | None = field(default=None, metadata=doc(
        "sinks[].tls.ca_file", "Trust only this CA (PEM) for Graylog's certificate (a private CA); the system's "
        "CAs otherwise. Must be readable when the configuration is checked.",
        f"{_TCP}, tls: {{ca_file: /etc/bastion-guard/graylog-ca.pem}}}}]"))
    server_name: str | None = field(default=None, metadata=doc(
        "sinks[].tls.server_name", "The name to verify in Graylog's certificate when `host` is an address.",
        f"{_GELF} transport: tcp, host: 10.0.0.7, tls: {{server_name: graylog.example.com}}}}]",
        default="host"))
    cert_file: Path | None = field(default=None, metadata=doc(
        "sinks[].tls.cert_file", "Client certificate (PEM) for an input that requires one; with `key_file`.",
        f"{_TCP}, tls: {{cert_file: /etc/bastion-guard/client.pem, key_file: /etc/bastion-guard/client.key}}}}]"))
    key_file: Path | None = field(default=None, metadata=doc(
        "sinks[].tls.key_file", "The client certificate's private key (PEM); with `cert_file`.",
        f"{_TCP}, tls: {{key_file: /etc/bastion-guard/client.key, cert_file: /etc/bastion-guard/client.pem}}}}]"))


@dataclass(frozen=True, slots=True)
class GelfConfig:
    """A validated ``type: gelf`` entry."""

    transport: Transport = field(metadata=doc(
        "sinks[].transport", "`udp` (chunked, fire and forget: nothing confirms delivery), `tcp` (null-framed; "
        "delivered once Graylog's host acknowledged every byte) or `http` (confirmed by each answer).", f"{_UDP}}}]",
        default="required"))
    host: str = field(metadata=doc(
        "sinks[].host", "The Graylog input's host name or address (no scheme, no path).",
        f"{_GELF} transport: tcp, host: 10.0.0.7}}]", default="required"))
    port: int = field(default=DEFAULT_PORT, metadata=doc(
        "sinks[].port", "The input's port.", f"{_GELF} port: 12202, transport: tcp, host: graylog.example.com}}]"))
    tls: TlsConfig | None = field(default=None, metadata=doc(
        "sinks[].tls", "TLS for `tcp` and `http`: `true` verifies against the system's CAs, a mapping "
        "(`sinks[].tls.*`) narrows it. Verification cannot be turned off.", f"{_TCP}, tls: true}}]",
        default="none (plain)"))
    compression: Compression = field(default=Compression.NONE, metadata=doc(
        "sinks[].compression", "`gzip`, `zlib` or `none`: for `udp` (default `gzip`) and `http` (default "
        "`none`); `tcp` is never compressed.", f"{_UDP}, compression: zlib}}]", default="gzip (udp), none"))
    chunk_bytes: int = field(default=WAN_CHUNK_BYTES, metadata=doc(
        "sinks[].chunk_size", f"`udp`: bytes per datagram, `wan` ({WAN_CHUNK_BYTES}), `lan` ({LAN_CHUNK_BYTES}) or "
        f"a number from {_MIN_CHUNK_BYTES} to {MAX_DATAGRAM_BYTES}; longer messages are chunked.",
        f"{_UDP}, chunk_size: lan}}]", default="wan"))
    path: str = field(default="/gelf", metadata=doc(
        "sinks[].path", "`http`: the input's path.", f"{_HTTP}, path: /ingest/gelf}}]"))
    bulk: bool = field(default=False, metadata=doc(
        "sinks[].bulk", "`http`: many messages per request (the input's \"Enable Bulk Receiving\").",
        f"{_HTTP}, bulk: true}}]"))
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata=doc(
        "sinks[].max_body_bytes", "`http`: the input's \"Max. HTTP chunk size\"; a longer body would be refused.",
        f"{_HTTP}, max_body_bytes: 1048576}}]"))
    username: str | None = field(default=None, metadata=doc(
        "sinks[].username", "`http` basic authentication (a proxy, or the input's authorization header), with "
        "`password_file` or `password_env`; needs `tls` unless the host is this machine.",
        f"{_HTTP}, tls: true, username: bastion, password_env: GRAYLOG_PASSWORD}}]"))
    password: SecretRef | None = field(default=None, metadata=docs(
        KeyDoc("sinks[].password_file", "A file whose first line is the basic authentication password; read "
               "when the sink is built.",
               f"{_HTTP}, tls: true, username: bastion, password_file: /etc/bastion-guard/graylog.pass}}]"),
        KeyDoc("sinks[].password_env", "The environment variable holding the basic authentication password.",
               f"{_HTTP}, tls: true, username: bastion, password_env: GRAYLOG_PASSWORD}}]"),
    ))
    timeout_secs: float = field(default=10.0, metadata=doc(
        "sinks[].timeout_secs", "Seconds to connect, send, or wait for an answer before the batch is retried.",
        f"{_TCP}, timeout_secs: 30}}]"))
    kinds: frozenset[RecordKind] = field(default_factory=lambda: frozenset(RecordKind), metadata=doc(
        "sinks[].kinds", f"Which records go to Graylog: any of {', '.join(RecordKind)}; the others are skipped.",
        f"{_TCP}, kinds: [decision, ban, unban]}}]", default="all"))


def parse_config(section: Fields) -> GelfConfig:
    """Validate a ``gelf`` sink entry (``type`` and ``name`` are read by the caller), reporting every
    problem through ``section`` with its file, line, column and key."""
    if not section.has("transport"):
        section.problem("transport", "is required: udp (fire and forget), tcp or http (confirmed delivery)")
    transport = Transport(section.choice("transport", tuple(Transport), Transport.TCP.value))
    host = section.get("host", str, "", required=True)
    if "://" in host or "/" in host or not host.strip(" []"):
        if host:
            section.problem("host", f"{host!r} is not a host name or address (no scheme, no path)")
        host = host or "localhost"
    host = host.strip("[]")  # [2001:db8::1] as written in URLs
    port = section.count("port", DEFAULT_PORT)
    if port > _MAX_PORT:
        section.problem("port", f"must be at most {_MAX_PORT}")
        port = DEFAULT_PORT
    tls = _tls(section, transport)
    compression = _compression(section, transport)
    chunk_bytes = _chunk_size(section, transport)
    path = _only_for(section, "path", transport, Transport.HTTP, "/gelf")
    if not path.startswith("/"):
        section.problem("path", "must start with /")
        path = "/gelf"
    bulk = section.get("bulk", bool, False)
    max_body = section.count("max_body_bytes", DEFAULT_MAX_BODY_BYTES, minimum=_MIN_BODY_BYTES)
    for key in ("bulk", "max_body_bytes"):
        if section.has(key) and transport is not Transport.HTTP:
            section.problem(key, "applies to transport http only")
    username, password = _basic_auth(section, transport, host, tls)
    timeout = section.number("timeout_secs", 10.0, minimum=0.1)
    kinds = _kinds(section)
    section.reject_unknown()
    return GelfConfig(transport, host, port, tls, compression, chunk_bytes, path, bulk, max_body, username, password,
                      timeout, kinds)


def _only_for(section: Fields, key: str, transport: Transport, wanted: Transport, default: str) -> str:
    value = section.get(key, str, default)
    if section.has(key) and transport is not wanted:
        section.problem(key, f"applies to transport {wanted.value} only")
    return value


def _tls(section: Fields, transport: Transport) -> TlsConfig | None:
    if not section.has("tls"):
        return None
    if section.raw("tls") is True:  # `tls: true`: verify against the system's CAs
        tls_config = TlsConfig()
    elif section.raw("tls") is False:
        return None
    else:
        tls = section.nested("tls")
        if tls is None or not tls.ok:
            return None
        ca_file = _readable(tls, "ca_file")
        server_name = tls.get("server_name", str, "") or None
        cert_file = _readable(tls, "cert_file")
        key_file = _readable(tls, "key_file")
        if tls.has("cert_file") != tls.has("key_file"):
            tls.problem("key_file" if tls.has("cert_file") else "cert_file", "cert_file and key_file go together")
        for refused in ("verify", "verify_certs", "insecure"):
            if tls.has(refused):
                tls.raw(refused)
                tls.problem(refused, "verification cannot be turned off: trust a private CA with ca_file")
        tls.reject_unknown()
        tls_config = TlsConfig(ca_file, server_name, cert_file, key_file)
    if transport is Transport.UDP:
        section.problem("tls", "GELF over UDP has no TLS: use transport tcp or http")
        return None
    return tls_config


def _readable(section: Fields, key: str) -> Path | None:
    text = section.get(key, str, "")
    if not text:
        return None
    path = Path(text)
    if not path.is_file() or not os.access(path, os.R_OK):
        section.problem(key, f"{text} is not a readable file")
    return path


def _compression(section: Fields, transport: Transport) -> Compression:
    default = Compression.GZIP if transport is Transport.UDP else Compression.NONE
    value = Compression(section.choice("compression", tuple(Compression), default.value))
    if transport is Transport.TCP and value is not Compression.NONE:
        section.problem("compression", "GELF over TCP is never compressed (frames end at a null byte)")
        return Compression.NONE
    return value


def _chunk_size(section: Fields, transport: Transport) -> int:
    if not section.has("chunk_size"):
        return WAN_CHUNK_BYTES
    raw = section.raw("chunk_size")
    if transport is not Transport.UDP:
        section.problem("chunk_size", "applies to transport udp only")
    if isinstance(raw, str) and raw in _CHUNK_SIZES:
        return _CHUNK_SIZES[raw]
    if isinstance(raw, int) and not isinstance(raw, bool) and _MIN_CHUNK_BYTES <= raw <= MAX_DATAGRAM_BYTES:
        return raw
    section.problem("chunk_size", f"must be wan ({WAN_CHUNK_BYTES}), lan ({LAN_CHUNK_BYTES}) or a number of "
                                  f"bytes from {_MIN_CHUNK_BYTES} to {MAX_DATAGRAM_BYTES} (the {CHUNK_HEADER_BYTES}-"
                                  "byte chunk header included)")
    return WAN_CHUNK_BYTES


def _basic_auth(
    section: Fields, transport: Transport, host: str, tls: TlsConfig | None
) -> tuple[str | None, SecretRef | None]:
    username = section.get("username", str, "") or None
    password = secret_ref(section, "password")
    if username is None and password is None:
        return None, None
    if transport is not Transport.HTTP:
        section.problem("username" if username else "password_file", "basic auth applies to transport http only")
    elif username is None:
        section.problem("username", "is required with a password")
    elif password is None:
        section.problem("password_file", "is required with a username (or password_env)")
    elif tls is None and not is_loopback_host(host):
        section.problem("username", "basic auth over plain HTTP would send the password in clear text: add tls")
    return username, password


def _kinds(section: Fields) -> frozenset[RecordKind]:
    if not section.has("kinds"):
        return frozenset(RecordKind)
    kinds = set()
    for name in section.strings("kinds"):
        try:
            kinds.add(RecordKind(name))
        except ValueError:
            section.problem("kinds", f"{name!r} is not one of {', '.join(RecordKind)}")
    if not kinds:
        section.problem("kinds", "must name at least one record kind")
    return frozenset(kinds)


__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "GelfConfig", "GelfError", "TlsConfig", "Transport",
    "parse_config",
]
