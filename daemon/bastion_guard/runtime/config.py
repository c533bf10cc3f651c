"""``bastiond.yaml``: what the daemon follows, where it keeps state, how it enforces.

Every key is optional; with no file at all the daemon runs on embedded defaults::

    sources:                         # default: auto (auth.log, else secure, else the journal)
      - {type: file, path: /var/log/auth.log}
      - {type: journal}
    rules_dir: /etc/bastion-guard/rules     # default: installed, else bundled rules
    state_dir: /var/lib/bastion-guard
    runtime_dir: /run/bastiond
    firewall: {backend: nftables, netns: null}   # nftables | ipset | dry-run
    allowlist: [192.0.2.0/24]        # never banned, in addition to the rules' allowlists and loopback
    metrics: {address: 127.0.0.1, port: 9474}   # Prometheus /metrics; port 0 turns it off
    keys: /etc/bastion-guard/keys.yaml      # key lifecycle inventory; an absent file turns it off

Problems are reported all at once with file, line, column and key, as for rule files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.defaults import default_rules_dir
from bastion_guard.errors import ConfigError, ConfigProblem, Location
from bastion_guard.keys.inventory import DEFAULT_KEYS
from bastion_guard.rules.fields import Fields
from bastion_guard.rules.spec import Network

DEFAULT_CONFIG = Path("/etc/bastion-guard/bastiond.yaml")
AUTO_FILES = (Path("/var/log/auth.log"), Path("/var/log/secure"))
FIREWALL_BACKENDS = ("nftables", "ipset", "dry-run")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One log source: a file, or the systemd journal."""

    type: str  # "file" | "journal"
    path: Path | None = None
    from_end: bool = False  # with no saved position: start at the end instead of the beginning


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where bastiond serves Prometheus metrics: loopback unless the operator says otherwise; port 0 = off."""

    address: str = "127.0.0.1"
    port: int = 9474


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The validated daemon configuration."""

    sources: tuple[SourceConfig, ...]
    rules_dir: Path
    state_dir: Path
    runtime_dir: Path
    firewall: str
    netns: str | None
    allowlist: tuple[Network, ...] = field(default=())
    origin: str = "embedded defaults"
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    keys: Path = DEFAULT_KEYS

    @property
    def socket_path(self) -> Path:
        """The control socket."""
        return self.runtime_dir / "bastiond.sock"

    @property
    def state_path(self) -> Path:
        """The SQLite state database."""
        return self.state_dir / "state.db"


def auto_sources() -> tuple[SourceConfig, ...]:
    """auth.log if present, else secure, else the journal (Debian 12 ships without rsyslog)."""
    for candidate in AUTO_FILES:
        if candidate.exists():
            return (SourceConfig("file", candidate),)
    return (SourceConfig("journal"),)


def default_config() -> DaemonConfig:
    """The embedded defaults."""
    return DaemonConfig(
        sources=auto_sources(), rules_dir=default_rules_dir(), state_dir=Path("/var/lib/bastion-guard"),
        runtime_dir=Path("/run/bastiond"), firewall="nftables", netns=None,
    )


def load_config(path: Path | None) -> DaemonConfig:
    """Read ``path`` (or the default file if it exists; else embedded defaults); raise :class:`ConfigError`."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return default_config()
        path = DEFAULT_CONFIG
    documents = load_documents(path)
    problems: list[ConfigProblem] = []
    if len(documents) > 1:
        problems.append(ConfigProblem(Location(str(path)), "", "expected one YAML document"))
    fields = Fields(documents[0] if documents else None, "", problems, Location(str(path)))
    config = _from_fields(fields, default_config(), str(path)) if fields.ok else None
    fields.reject_unknown()
    if problems or config is None:
        raise ConfigError(problems)
    return config


def _from_fields(fields: Fields, defaults: DaemonConfig, origin: str) -> DaemonConfig:
    sources = _sources(fields) or defaults.sources
    firewall = fields.nested("firewall")
    backend, netns = defaults.firewall, None
    if firewall is not None and firewall.ok:
        backend = firewall.choice("backend", FIREWALL_BACKENDS, defaults.firewall)
        netns = firewall.get("netns", str, "") or None
        firewall.reject_unknown()
    allowlist: list[Network] = []
    for text in fields.strings("allowlist"):
        try:
            allowlist.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            fields.problem("allowlist", f"{text!r} is not an address or CIDR network")
    return DaemonConfig(
        sources=sources,
        rules_dir=Path(fields.get("rules_dir", str, str(defaults.rules_dir))),
        state_dir=Path(fields.get("state_dir", str, str(defaults.state_dir))),
        runtime_dir=Path(fields.get("runtime_dir", str, str(defaults.runtime_dir))),
        firewall=backend, netns=netns, allowlist=tuple(allowlist), origin=origin,
        metrics=_metrics(fields, defaults.metrics),
        keys=Path(fields.get("keys", str, str(defaults.keys))),
    )


def _metrics(fields: Fields, defaults: MetricsConfig) -> MetricsConfig:
    section = fields.nested("metrics")
    if section is None or not section.ok:
        return defaults
    address = section.get("address", str, defaults.address)
    try:
        ipaddress.ip_address(address)
    except ValueError:  # a name could resolve to a public address; say which interface, by number
        section.problem("address", f"{address!r} is not an IP address (127.0.0.1 keeps metrics on this host)")
        address = defaults.address
    port = section.count("port", defaults.port, minimum=0)
    if port > _MAX_PORT:
        section.problem("port", f"must be at most {_MAX_PORT} (0 turns metrics off)")
        port = defaults.port
    section.reject_unknown()
    return MetricsConfig(address, port)


def _sources(fields: Fields) -> tuple[SourceConfig, ...]:
    raw = fields.raw("sources")
    if not isinstance(raw, list):
        if fields.has("sources") and raw != "auto":
            fields.problem("sources", "must be a list of {type: file, path: ...} / {type: journal}, or auto")
        return ()
    sources = []
    for index, item in enumerate(raw):
        entry = fields.child(item, f"sources[{index}]", fields.where("sources"))
        if not entry.ok:
            continue
        kind = entry.choice("type", ("file", "journal"), "file")
        path = entry.get("path", str, "", required=kind == "file")
        from_end = entry.get("from_end", bool, False)
        entry.reject_unknown()
        sources.append(SourceConfig(kind, Path(path) if path else None, from_end))
    return tuple(sources)
