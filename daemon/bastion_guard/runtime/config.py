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
    spool: {max_bytes: 256MiB, policy: drop_oldest}   # shipping/config.py
    sinks: [{type: elasticsearch, name: es, hosts: [...]}]   # none: no spool, nothing shipped
    keys: /etc/bastion-guard/keys.yaml      # key lifecycle inventory; an absent file turns it off

Problems are reported all at once with file, line, column and key, as for rule files.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from pathlib import Path

from bastion_guard.config.fielddoc import doc
from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.defaults import default_rules_dir
from bastion_guard.errors import ConfigError, ConfigProblem, Location
from bastion_guard.keys.inventory import DEFAULT_KEYS
from bastion_guard.rules.fields import Fields
from bastion_guard.rules.spec import Network
from bastion_guard.shipping.config import SinkConfig, SpoolConfig, parse_sinks, parse_spool

DEFAULT_CONFIG = Path("/etc/bastion-guard/bastiond.yaml")
AUTO_FILES = (Path("/var/log/auth.log"), Path("/var/log/secure"))
FIREWALL_BACKENDS = ("nftables", "ipset", "dry-run")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One log source: a file, or the systemd journal."""

    type: str = field(metadata=doc(
        "sources[].type", "`file` follows a log file across rotation; `journal` reads the systemd journal "
        "(matched on the trusted `_COMM` field, cursor saved).",
        "sources: [{type: journal}, {type: file, path: /var/log/secure}]", default="file"))
    path: Path | None = field(default=None, metadata=doc(
        "sources[].path", "The file to follow (required for `type: file`).",
        "sources: [{type: file, path: /var/log/secure}]"))
    from_end: bool = field(default=False, metadata=doc(
        "sources[].from_end", "With no saved position, start at the end of the file instead of the beginning "
        "(an old log is not replayed on first start).",
        "sources: [{type: file, path: /var/log/auth.log, from_end: true}]"))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where bastiond serves Prometheus metrics: loopback unless the operator says otherwise; port 0 = off."""

    address: str = field(default="127.0.0.1", metadata=doc(
        "metrics.address", "IP address the `/metrics` endpoint listens on. A bastion faces the internet: widen "
        "it only to an internal interface, and widen the unit's `IPAddressAllow=` with it.",
        "metrics: {address: 10.0.0.5}"))
    port: int = field(default=9474, metadata=doc(
        "metrics.port", "TCP port of the `/metrics` endpoint; `0` turns metrics off.", "metrics: {port: 0}"))


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """The validated daemon configuration."""

    sources: tuple[SourceConfig, ...] = field(metadata=doc(
        "sources", "The logs to follow: a list of sources (see `sources[].*`), or `auto`.",
        "sources: [{type: file, path: /var/log/auth.log}, {type: journal}]",
        default="auto: /var/log/auth.log if present, else /var/log/secure, else the journal"))
    rules_dir: Path = field(metadata=doc(
        "rules_dir", "Directory of rule files (`*.yaml`); a file with any error is rejected whole.",
        "rules_dir: /srv/bastion-guard/rules",
        default="$BASTION_GUARD_RULES, else /etc/bastion-guard/rules if present, else the bundled rules"))
    state_dir: Path = field(metadata=doc(
        "state_dir", "Where `state.db` lives (positions, bans, ban history; SQLite, mode 0600).",
        "state_dir: /srv/bastion-guard/state", default="/var/lib/bastion-guard"))
    runtime_dir: Path = field(metadata=doc(
        "runtime_dir", "Where the control socket `bastiond.sock` (mode 0600) is created.",
        "runtime_dir: /run/bastion-guard", default="/run/bastiond"))
    firewall: str = field(metadata=doc(
        "firewall.backend", "How bans are enforced: `nftables` (own `inet` table, kernel-side expiry), `ipset`, "
        "or `dry-run` (log only, changes nothing).", "firewall: {backend: dry-run}", default="nftables"))
    netns: str | None = field(metadata=doc(
        "firewall.netns", "Apply firewall changes inside this named network namespace (`ip netns`).",
        "firewall: {netns: bastion}", default="none: the daemon's own namespace"))
    allowlist: tuple[Network, ...] = field(default=(), metadata=doc(
        "allowlist", "Addresses or CIDR networks never banned, in addition to the rules' allowlists and loopback.",
        "allowlist: [192.0.2.0/24, 2001:db8::/32]"))
    origin: str = "embedded defaults"  # where the configuration came from (a file name), for messages only
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)  # see shipping/config.py
    sinks: tuple[SinkConfig, ...] = field(default=(), metadata=doc(
        "sinks", "Where records (events, decisions, bans, key steps) are shipped: a list of sinks, each with its "
        "`type`'s keys (sections below). With none there is no spool and nothing is shipped.",
        "sinks: [{type: elasticsearch, hosts: [https://es.example.com:9200]}]", default="none"))
    keys: Path = field(default=DEFAULT_KEYS, metadata=doc(
        "keys", "The key lifecycle inventory (people, targets, shared keys, the KRL): departures and periodic "
        "rotations run from bastiond, `bastionctl rotate-keys` reads it too. An absent file turns the feature off.",
        "keys: /etc/bastion-guard/keys-test.yaml"))

    @property
    def socket_path(self) -> Path:
        """The control socket."""
        return self.runtime_dir / "bastiond.sock"

    @property
    def state_path(self) -> Path:
        """The SQLite state database."""
        return self.state_dir / "state.db"

    @property
    def spool_path(self) -> Path:
        """The outbound spool (its own SQLite file: sink threads never contend with the ban path)."""
        return self.state_dir / "spool.db"


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
    if not documents:  # empty or all comments (the installed default file): every key is optional
        return replace(default_config(), origin=str(path))
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
        metrics=_metrics(fields, defaults.metrics), spool=parse_spool(fields), sinks=parse_sinks(fields),
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
