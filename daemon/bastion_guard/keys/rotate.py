"""Rotation of one shared key, make-before-break, resumable from the ledger.

The order keeps everyone who stays connected at every moment:

1. a new ed25519 pair waits beside the live key as ``<key>.next`` (0600, the key's owner);
2. on every host of every target: log in with the *old* key, add the new public key, then log in with
   the *new* key to prove the target accepts it;
3. only when every host accepts the new key is the bastion's key file switched to it (one rename), so
   whoever uses the key file reaches every target before and after the switch;
4. on every host: log in with the *new* key and remove the old one.

Removing the old key from a host before the switch (host by host) would cut off the people who stay
until the switch; switching before every host has the new key would cut them off from the rest. A host
that fails in step 2 stops the run before the switch: the old key still works everywhere, the ledger
keeps what was done, and the next run continues from there with the same new key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from bastion_guard.keys.audit import Audit
from bastion_guard.keys.errors import KeyLifecycleError, RemoteError
from bastion_guard.keys.inventory import Inventory, SharedKey
from bastion_guard.keys.keypair import KeyPair, generate_next, load_pair, next_path, switch_to_next
from bastion_guard.keys.ledger import Ledger, Rotation
from bastion_guard.keys.pubkey import parse_key
from bastion_guard.keys.remote import Endpoint, Ssh

Progress = Callable[[str], None]


class _Context(NamedTuple):
    """What every host step needs: where to record, how to reach, whom to tell, what time it is."""

    ledger: Ledger
    ssh: Ssh
    audit: Audit
    clock: Callable[[], float]


@dataclass
class EndpointResult:
    """What happened on one host in one phase: ``done``, ``already`` (ledger), or ``failed``."""

    endpoint: str
    phase: str  # "install" (add + verify) or "remove"
    status: str
    detail: str = ""


@dataclass
class RotationResult:
    """The outcome of one rotation run."""

    key: str
    old: str | None = None
    new: str | None = None
    endpoints: list[EndpointResult] = field(default_factory=list)
    switched: bool = False
    completed: bool = False
    error: str | None = None

    @property
    def failed(self) -> int:
        """Hosts that failed a step, plus one for an error that stopped the run before any host."""
        return sum(e.status == "failed" for e in self.endpoints) + (1 if self.error else 0)

    @property
    def rotated(self) -> int:
        """Hosts where the old key is gone and the new one works."""
        return sum(e.phase == "remove" and e.status != "failed" for e in self.endpoints)


def endpoints(inventory: Inventory, key: SharedKey) -> list[Endpoint]:
    """Every host that trusts ``key``, in inventory order."""
    found = []
    for name in key.targets:
        target = inventory.target(name)
        found += [Endpoint(host, target.port, target.account, target.authorized_keys) for host in target.hosts]
    return found


def rotate(
    key: SharedKey, inventory: Inventory, ledger: Ledger, ssh: Ssh, audit: Audit, *, reason: str,
    progress: Progress | None = None, clock: Callable[[], float] = time.time,
) -> RotationResult:
    """Rotate ``key`` (or continue its unfinished rotation); never raises for a host's failure."""
    result = RotationResult(key.name)
    try:
        run, old, new = _prepare(key, ledger, audit, reason, clock)
    except KeyLifecycleError as error:
        result.error = str(error)
        audit.step("shared-key-rotation", "failure", key=key.name, message=str(error))
        return result
    result.old, result.new = run.old, run.new
    hosts = endpoints(inventory, key)
    ctx = _Context(ledger, ssh, audit, clock)
    if run.switched is None:
        for endpoint in hosts:
            result.endpoints.append(_install(endpoint, run, ctx, old, new))
            _tick(progress, f"{key.name}: new key on {endpoint}")
        if any(e.status == "failed" for e in result.endpoints):
            audit.step("shared-key-switch", "skipped", key=key.name, old=run.old, new=run.new,
                       message="not every host accepts the new key yet: the old key stays in use everywhere")
            return result
        try:
            switch_to_next(key.private_key)
        except KeyLifecycleError as error:
            result.error = str(error)
            audit.step("shared-key-switch", "failure", key=key.name, old=run.old, new=run.new, message=str(error))
            return result
        run.switched = clock()
        ledger.save()
        audit.step("shared-key-switch", "success", key=key.name, path=str(key.private_key), old=run.old, new=run.new)
    result.switched = True
    for endpoint in hosts:
        result.endpoints.append(_remove(endpoint, run, ctx, key, old))
        _tick(progress, f"{key.name}: old key off {endpoint}")
    if all(e.status != "failed" for e in result.endpoints):
        run.completed = clock()
        ledger.last_rotated[key.name] = run.completed
        ledger.save()
        result.completed = True
        audit.step("shared-key-rotation", "success", key=key.name, old=run.old, new=run.new, reason=run.reason,
                   hosts=len(hosts))
    return result


def _prepare(key: SharedKey, ledger: Ledger, audit: Audit, reason: str,
             clock: Callable[[], float]) -> tuple[Rotation, KeyPair | None, KeyPair | None]:
    """The run to do (the unfinished one, or a new one with a fresh pair), the old pair and the new pair.

    After the switch the old private key is gone (``old`` None) and the live key is the new one.
    """
    run = ledger.open_rotation(key.name)
    if run is not None:
        live = load_pair(key.private_key)
        if run.switched is None and live.public.fingerprint == run.new:
            run.switched = clock()  # the key file was renamed, then the run stopped before it could say so
            ledger.save()
        if run.switched is not None:
            return run, None, live
        pending = load_pair(next_path(key.private_key))
        if pending.public.fingerprint != run.new:
            raise KeyLifecycleError(
                f"{next_path(key.private_key)} is {pending.public.fingerprint}, but the unfinished rotation "
                f"installed {run.new}: restore it, or remove the rotation of {key.name} from the ledger"
            )
        audit.step("shared-key-rotation", "info", key=key.name, message="continuing the unfinished rotation",
                   old=run.old, new=run.new, started=run.started)
        return run, live, pending
    current = load_pair(key.private_key)  # a missing or malformed key stops here, before any target is touched
    pending = generate_next(key.private_key, key.owner, f"{key.name}@bastion-guard")
    run = Rotation(key.name, reason, current.public.fingerprint, pending.public.fingerprint, clock(),
                   old_key=current.public.line)
    ledger.rotations[key.name] = run
    ledger.save()
    audit.step("shared-key-generated", "success", key=key.name, path=str(next_path(key.private_key)),
               old=run.old, new=run.new, reason=reason)
    return run, current, pending


def _install(endpoint: Endpoint, run: Rotation, ctx: _Context, old: KeyPair | None,
             new: KeyPair | None) -> EndpointResult:
    ledger, ssh, audit, clock = ctx
    name = str(endpoint)
    if run.done(name, "verified"):
        return EndpointResult(name, "install", "already")
    assert old is not None and new is not None  # noqa: S101 - before the switch both pairs exist
    try:
        try:
            said = ssh.add_key(endpoint, old.private, new.public)
        except RemoteError:
            works, _ = ssh.can_log_in(endpoint, new.private)
            if not works:  # the old key cannot get in and the new one is not there: nothing we can do
                raise
            said = "present"
        ledger.mark(run, name, "added", clock())
        works, why = ssh.can_log_in(endpoint, new.private)
        if not works:
            raise RemoteError(f"{name}: the target refuses the new key after it was added ({why}); "
                              "check the target's AuthorizedKeysFile and the inventory's authorized_keys")
        ledger.mark(run, name, "verified", clock())
    except RemoteError as error:
        audit.step("shared-key-install", "failure", key=run.key, endpoint=name, new=run.new, message=str(error))
        return EndpointResult(name, "install", "failed", str(error))
    audit.step("shared-key-install", "success", key=run.key, endpoint=name, new=run.new, detail=said)
    return EndpointResult(name, "install", "done", said)


def _remove(endpoint: Endpoint, run: Rotation, ctx: _Context, key: SharedKey, old: KeyPair | None) -> EndpointResult:
    ledger, ssh, audit, clock = ctx
    name = str(endpoint)
    if run.done(name, "removed"):
        return EndpointResult(name, "remove", "already")
    old_public = old.public if old is not None else parse_key(run.old_key)
    try:
        said = ssh.remove_key(endpoint, key.private_key, old_public)
        ledger.mark(run, name, "removed", clock())
    except RemoteError as error:
        audit.step("shared-key-remove-old", "failure", key=run.key, endpoint=name, old=run.old, message=str(error))
        return EndpointResult(name, "remove", "failed", str(error))
    audit.step("shared-key-remove-old", "success", key=run.key, endpoint=name, old=run.old, detail=said)
    return EndpointResult(name, "remove", "done", said)


def _tick(progress: Progress | None, label: str) -> None:
    if progress is not None:
        progress(label)
