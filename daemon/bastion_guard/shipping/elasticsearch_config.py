"""The ``type: elasticsearch`` sink's configuration: what its YAML entry may say, validated with locations.

Kept apart from the sink so that ``bastiond --check-config`` and ``bastionctl`` validate configuration
without importing the Elasticsearch client::

    sinks:
      - type: elasticsearch
        name: es                                  # metrics label and spool cursor; unique
        hosts: [https://es1.example.com:9200]
        namespace: default                        # data streams logs-bastion.auth-<ns>, logs-bastion.audit-<ns>
        ca_file: /etc/bastion-guard/es-ca.pem     # verify the cluster against this CA (system CAs otherwise)
        api_key_file: /etc/bastion-guard/es.key   # or api_key_env; or username + password_file/password_env
        timeout_secs: 10
        setup: true                               # install the index templates and ILM policy on first use
        retention_days: 90                        # ILM delete phase; 0 keeps data for ever
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bastion_guard.config.fielddoc import KeyDoc, doc, docs
from bastion_guard.rules.fields import Fields
from bastion_guard.shipping.secrets import SecretRef, secret_ref

# Data stream name parts: lower case, no '-' (it separates type-dataset-namespace), at most 100 characters.
_NAMESPACE = re.compile(r"^[a-z0-9_.]{1,100}$")


# The start of every example: a minimal valid entry the documented key is added to.
_ES = "sinks: [{type: elasticsearch,"
_ES_HOSTS = f"{_ES} hosts: [https://es.example.com:9200]"


@dataclass(frozen=True, slots=True)
class ElasticsearchConfig:
    """A validated ``type: elasticsearch`` entry. Secrets are references, read when the sink is built."""

    hosts: tuple[str, ...] = field(metadata=doc(
        "sinks[].hosts", "The cluster's nodes: `http://` or `https://` URLs, without credentials in them.",
        f"{_ES} hosts: [https://es1.example.com:9200, https://es2.example.com:9200]}}]", default="required"))
    namespace: str = field(default="default", metadata=doc(
        "sinks[].namespace", "The data streams' namespace: records go to `logs-bastion.auth-<namespace>` and "
        "`logs-bastion.audit-<namespace>` (lower case, no `-`).", f"{_ES_HOSTS}, namespace: prod}}]"))
    ca_file: Path | None = field(default=None, metadata=doc(
        "sinks[].ca_file", "Verify the cluster's certificate against this CA file (PEM) instead of the system's "
        "CAs; it must exist when the configuration is checked.",
        f"{_ES_HOSTS}, ca_file: /etc/bastion-guard/es-ca.pem}}]"))
    verify_certs: bool = field(default=True, metadata=doc(
        "sinks[].verify_certs", "`false` turns certificate verification off (a test cluster only: prefer "
        "`ca_file`).", f"{_ES_HOSTS}, verify_certs: false}}]"))
    api_key: SecretRef | None = field(default=None, metadata=docs(
        KeyDoc("sinks[].api_key_file", "A file holding the API key (mode 0600; read when the sink is "
               "built). Not together with `username`.",
               f"{_ES_HOSTS}, api_key_file: /etc/bastion-guard/es.key}}]"),
        KeyDoc("sinks[].api_key_env", "The environment variable holding the API key (a systemd "
               "`LoadCredential=`/`Environment=` drop-in, for example).", f"{_ES_HOSTS}, api_key_env: ES_API_KEY}}]"),
    ))
    username: str | None = field(default=None, metadata=doc(
        "sinks[].username", "Basic authentication user, with `password_file` or `password_env`.",
        f"{_ES_HOSTS}, username: bastion, password_env: ES_PASSWORD}}]"))
    password: SecretRef | None = field(default=None, metadata=docs(
        KeyDoc("sinks[].password_file", "A file holding the password of `username`.",
               f"{_ES_HOSTS}, username: bastion, password_file: /etc/bastion-guard/es.pass}}]"),
        KeyDoc("sinks[].password_env", "The environment variable holding the password of `username`.",
               f"{_ES_HOSTS}, username: bastion, password_env: ES_PASSWORD}}]"),
    ))
    timeout_secs: float = field(default=10.0, metadata=doc(
        "sinks[].timeout_secs", "Seconds one bulk request may take before it counts as failed (and is retried).",
        f"{_ES_HOSTS}, timeout_secs: 30}}]"))
    setup: bool = field(default=True, metadata=doc(
        "sinks[].setup", "Install the index templates and the ILM policy on first use; `false` when the cluster "
        "is managed elsewhere (the API key then needs only write rights).", f"{_ES_HOSTS}, setup: false}}]"))
    retention_days: int = field(default=90, metadata=doc(
        "sinks[].retention_days", "The ILM policy deletes data older than this; `0` keeps it for ever.",
        f"{_ES_HOSTS}, retention_days: 365}}]"))


def parse_elasticsearch(section: Fields) -> ElasticsearchConfig:
    """Validate an ``elasticsearch`` sink entry (``type`` and ``name`` are read by the caller)."""
    hosts = section.strings("hosts")
    if not section.has("hosts"):
        section.problem("hosts", "is required (e.g. [https://es.example.com:9200])")
    for host in hosts:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            section.problem("hosts", f"{host!r} is not an http:// or https:// URL")
        elif parts.username or parts.password:
            section.problem("hosts", "credentials do not belong in the URL: use api_key_file or password_file")
    namespace = section.get("namespace", str, "default")
    if not _NAMESPACE.match(namespace):
        section.problem("namespace", "must be lower case letters, digits, '_' or '.', without '-' (at most 100)")
        namespace = "default"
    ca_file = section.get("ca_file", str, "")
    if ca_file and not Path(ca_file).is_file():
        section.problem("ca_file", f"{ca_file} is not a readable file")
    verify = section.get("verify_certs", bool, True)
    api_key = secret_ref(section, "api_key")
    username = section.get("username", str, "") or None
    password = secret_ref(section, "password", required=username is not None)
    if password is not None and username is None:
        section.problem("username", "is required with a password")
    if api_key is not None and username is not None:
        section.problem("api_key_file", "give an API key or a username and password, not both")
    timeout = section.number("timeout_secs", 10.0, minimum=0.1)
    setup = section.get("setup", bool, True)
    retention = section.count("retention_days", 90, minimum=0)
    section.reject_unknown()
    return ElasticsearchConfig(
        hosts=hosts, namespace=namespace, ca_file=Path(ca_file) if ca_file else None, verify_certs=verify,
        api_key=api_key, username=username, password=password, timeout_secs=timeout, setup=setup,
        retention_days=retention,
    )
