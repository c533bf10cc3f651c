"""``keys.yaml``: who holds which keys, which targets sit behind the bastion, which keys are shared.

::

    krl: /etc/ssh/revoked_keys.krl          # the file sshd's RevokedKeys points to (required)
    sshd_config: /etc/ssh/sshd_config       # optional: check RevokedKeys with sshd -T -f FILE
    known_hosts: /var/lib/bastion-guard/known_hosts   # optional: host keys of the targets (trust on first use)
    offboarding: {lock_account: false, end_sessions: false}
    people:
      - name: alice
        account: alice                      # the account on the bastion
        keys: ["ssh-ed25519 AAAA... alice@laptop"]     # and/or:
        authorized_keys: /etc/ssh/authorized_keys/alice  # default: ~account/.ssh/authorized_keys
        departs: 2026-12-01T17:00:00Z       # optional, RFC 3339 with a time zone
    targets:
      - name: pytorch
        hosts: [10.0.1.5, 10.0.1.6]         # each is reached from the bastion (it is the jump host)
        account: ai-user
        port: 22
        authorized_keys: .ssh/authorized_keys   # on the target, relative to the account's home
    shared_keys:
      - name: ai-user
        private_key: /etc/bastion-guard/keys/ai-user   # on the bastion; the .pub beside it
        owner: ai-user                      # account that owns the private key file (0600)
        targets: [pytorch]
        users: [alice, bob]                 # people who may use it: a departure rotates it
        rotate_every: 90d                   # optional periodic rotation

The file is optional: without it the key lifecycle is off. Problems are collected and reported at once
with file:line:column and key, like bastiond.yaml and the rule files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.errors import ConfigError, ConfigProblem, Location
from bastion_guard.keys.errors import KeyFormatError
from bastion_guard.keys.pubkey import PublicKey, parse_key
from bastion_guard.rules.fields import Fields

T = TypeVar("T")
DEFAULT_KEYS = Path("/etc/bastion-guard/keys.yaml")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")  # shadow-utils' default NAME_REGEX, plus dots
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")  # a name or an address: no spaces, no options, no patterns
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who holds keys to the bastion."""

    name: str
    account: str
    keys: tuple[PublicKey, ...] = ()
    authorized_keys: Path | None = None  # None: the account's ~/.ssh/authorized_keys
    departs: float | None = None  # epoch seconds


@dataclass(frozen=True, slots=True)
class Target:
    """Hosts reached from the bastion with one account."""

    name: str
    hosts: tuple[str, ...]
    account: str
    port: int = 22
    authorized_keys: str = ".ssh/authorized_keys"


@dataclass(frozen=True, slots=True)
class SharedKey:
    """A bastion-held private key that several people use to reach targets."""

    name: str
    private_key: Path
    targets: tuple[str, ...]
    users: tuple[str, ...]
    owner: str = "root"
    rotate_every: float | None = None

    @property
    def public_key(self) -> Path:
        """The ``.pub`` beside the private key."""
        return self.private_key.with_name(self.private_key.name + ".pub")


@dataclass(frozen=True, slots=True)
class Inventory:
    """The validated ``keys.yaml``."""

    path: Path
    krl: Path
    people: tuple[Person, ...] = ()
    targets: tuple[Target, ...] = ()
    shared_keys: tuple[SharedKey, ...] = ()
    sshd_config: Path | None = None
    known_hosts: Path | None = None
    lock_account: bool = False
    end_sessions: bool = False

    def person(self, name_or_account: str) -> Person | None:
        """The person with this name, else the one with this account."""
        for person in self.people:
            if person.name == name_or_account:
                return person
        return next((person for person in self.people if person.account == name_or_account), None)

    def target(self, name: str) -> Target:
        """The target named ``name`` (names were checked at load)."""
        return next(target for target in self.targets if target.name == name)

    def shared_keys_of(self, person: Person) -> tuple[SharedKey, ...]:
        """The shared keys ``person`` may use: the ones to rotate when they leave."""
        return tuple(key for key in self.shared_keys if person.name in key.users)


def load_inventory(path: Path) -> Inventory | None:
    """Read ``path``; ``None`` if it does not exist (the feature is off); :class:`ConfigError` if invalid."""
    if not path.exists():
        return None
    documents = load_documents(path)
    problems: list[ConfigProblem] = []
    if len(documents) != 1:
        problems.append(ConfigProblem(Location(str(path)), "", "expected one YAML document"))
    fields = Fields(documents[0] if documents else None, "", problems, Location(str(path)))
    inventory = _inventory(fields, path) if fields.ok else None
    fields.reject_unknown()
    if problems or inventory is None:
        raise ConfigError(problems)
    return inventory


def _inventory(fields: Fields, path: Path) -> Inventory:
    krl = fields.get("krl", str, "", required=True)
    if krl and not krl.startswith("/"):
        fields.problem("krl", "must be an absolute path (sshd's RevokedKeys)")
    sshd_config = fields.get("sshd_config", str, "") or None
    known_hosts = fields.get("known_hosts", str, "") or None
    lock_account = end_sessions = False
    offboarding = fields.nested("offboarding")
    if offboarding is not None and offboarding.ok:
        lock_account = offboarding.get("lock_account", bool, False)
        end_sessions = offboarding.get("end_sessions", bool, False)
        offboarding.reject_unknown()
    people = _each(fields, "people", _person)
    targets = _each(fields, "targets", _target)
    shared = _each(fields, "shared_keys", _shared_key)
    _check_names(fields, "people", [p.name for p in people])
    _check_names(fields, "targets", [t.name for t in targets])
    _check_names(fields, "shared_keys", [k.name for k in shared])
    known_people, known_targets = {p.name for p in people}, {t.name for t in targets}
    for key in shared:
        for name in key.targets:
            if name not in known_targets:
                fields.problem("shared_keys", f"{key.name}: unknown target {name!r} (known: {_known(known_targets)})")
        for name in key.users:
            if name not in known_people:
                fields.problem("shared_keys", f"{key.name}: unknown person {name!r} (known: {_known(known_people)})")
    return Inventory(
        path=path, krl=Path(krl or "/"), people=people, targets=targets, shared_keys=shared,
        sshd_config=Path(sshd_config) if sshd_config else None,
        known_hosts=Path(known_hosts) if known_hosts else None,
        lock_account=lock_account, end_sessions=end_sessions,
    )


def _each(fields: Fields, key: str, convert: Callable[[Fields], T | None]) -> tuple[T, ...]:
    raw = fields.raw(key)
    if not fields.has(key):
        return ()
    if not isinstance(raw, list):
        fields.problem(key, "must be a list of mappings")
        return ()
    results = []
    for index, item in enumerate(raw):
        entry = fields.child(item, f"{key}[{index}]", fields.where(key))
        if entry.ok:
            converted = convert(entry)
            entry.reject_unknown()
            if converted is not None:
                results.append(converted)
    return tuple(results)


def _person(entry: Fields) -> Person | None:
    name = _name(entry, "name")
    account = _account(entry, "account")
    keys = []
    for text in entry.strings("keys"):
        try:
            keys.append(parse_key(text))
        except KeyFormatError as error:
            entry.problem("keys", str(error))
    authorized = entry.get("authorized_keys", str, "") or None
    if authorized is not None and not authorized.startswith("/"):
        entry.problem("authorized_keys", "must be an absolute path on the bastion")
    departs = _time(entry, "departs")
    if not name or not account:
        return None
    return Person(name, account, tuple(keys), Path(authorized) if authorized else None, departs)


def _target(entry: Fields) -> Target | None:
    name = _name(entry, "name")
    account = _account(entry, "account")
    hosts = entry.strings("hosts")
    if not hosts:
        entry.problem("hosts", "is required: the names or addresses reached from the bastion")
    for host in hosts:
        if not _HOST.match(host) or host.startswith("-"):
            entry.problem("hosts", f"{host!r} is not a host name or address (patterns cannot be reached)")
    port = entry.count("port", 22)
    if port > _MAX_PORT:
        entry.problem("port", f"must be at most {_MAX_PORT}")
    authorized = entry.get("authorized_keys", str, ".ssh/authorized_keys")
    if "\n" in authorized or not authorized:
        entry.problem("authorized_keys", "must be a path on one line")
    if not name or not account:
        return None
    return Target(name, hosts, account, port, authorized)


def _shared_key(entry: Fields) -> SharedKey | None:
    name = _name(entry, "name")
    private_key = entry.get("private_key", str, "", required=True)
    if private_key and not private_key.startswith("/"):
        entry.problem("private_key", "must be an absolute path on the bastion")
    owner = _account(entry, "owner", default="root")
    targets = entry.strings("targets")
    if not targets:
        entry.problem("targets", "is required: the targets that trust this key")
    users = entry.strings("users")
    rotate_every = entry.duration("rotate_every", 0.0) or None
    if not name or not private_key:
        return None
    return SharedKey(name, Path(private_key), targets, users, owner, rotate_every)


def _name(entry: Fields, key: str) -> str:
    value = entry.get(key, str, "", required=True)
    if value and not _NAME.match(value):
        entry.problem(key, f"{value!r}: use letters, digits and _ . @ - (at most 64)")
        return ""
    return value


def _account(entry: Fields, key: str, default: str = "") -> str:
    value = entry.get(key, str, default, required=not default)
    if value and not _ACCOUNT.match(value):
        entry.problem(key, f"{value!r} is not a valid account name")
        return ""
    return value


def _time(entry: Fields, key: str) -> float | None:
    value = entry.raw(key)
    if not entry.has(key):
        return None
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            entry.problem(key, f"{value!r} is not an RFC 3339 time (2026-12-01T17:00:00Z)")
            return None
    else:
        entry.problem(key, "must be an RFC 3339 time such as 2026-12-01T17:00:00Z")
        return None
    if moment.tzinfo is None:
        entry.problem(key, "needs a time zone (Z or +01:00): a departure must not depend on the host's zone")
        return None
    return moment.timestamp()


def _check_names(fields: Fields, key: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            fields.problem(key, f"{name!r} appears twice")
        seen.add(name)


def _known(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "none"
