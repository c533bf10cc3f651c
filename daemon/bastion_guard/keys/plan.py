"""What an offboarding would do, read from the inventory, the KRL, the key files and the ledger.

``bastionctl rotate-keys USER --dry-run`` prints this and changes nothing: it only reads files and runs
``ssh-keygen -Q`` / ``sshd -T``, never ssh to a target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bastion_guard.keys import authorized_keys, krl
from bastion_guard.keys.inventory import Inventory, Person, SharedKey
from bastion_guard.keys.ledger import Ledger
from bastion_guard.keys.offboard import authorized_keys_files, keys_of
from bastion_guard.keys.rotate import endpoints


@dataclass
class PlannedStep:
    """One step: what, on what, and whether it is still to do (``todo``) or already done (``done``)."""

    action: str
    subject: str
    state: str
    detail: str = ""


@dataclass
class Plan:
    """The steps of one offboarding, in the order they would run."""

    person: str
    account: str
    steps: list[PlannedStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def todo(self) -> int:
        """Steps still to do."""
        return sum(step.state == "todo" for step in self.steps)

    def as_json(self) -> dict[str, Any]:
        """The plan for ``-o json``."""
        return {"person": self.person, "account": self.account, "dry_run": True, "todo": self.todo,
                "steps": [asdict(step) for step in self.steps], "warnings": self.warnings}


def plan_offboarding(person: Person, inventory: Inventory, ledger: Ledger, *, lock_account: bool,
                     end_sessions: bool) -> Plan:
    """The plan for ``person``."""
    plan = Plan(person.name, person.account)
    keys = keys_of(person)
    if not keys:
        plan.warnings.append(f"no keys known for {person.name}")
    if not inventory.krl.exists():
        plan.warnings.append(f"KRL {inventory.krl} is missing (sshd refuses every key): it will be created")
    warning = krl.sshd_reads(inventory.krl, inventory.sshd_config)
    if warning is not None:
        plan.warnings.append(warning)
    for key in keys:
        done = krl.revoked(inventory.krl, key)
        plan.steps.append(PlannedStep("revoke", key.fingerprint, "done" if done else "todo", str(inventory.krl)))
    blobs = {key.blob for key in keys}
    for path in authorized_keys_files(inventory):
        count = sum(1 for line in authorized_keys.read_lines(path) if line.key is not None and line.key.blob in blobs)
        if count:
            plan.steps.append(PlannedStep("remove-from-authorized-keys", str(path), "todo", f"{count} line(s)"))
    if lock_account:
        plan.steps.append(PlannedStep("lock-account", person.account, "todo"))
    if end_sessions:
        plan.steps.append(PlannedStep("end-sessions", person.account, "todo"))
    for shared in inventory.shared_keys_of(person):
        plan.steps += _rotation_steps(shared, inventory, ledger)
    return plan


def _rotation_steps(shared: SharedKey, inventory: Inventory, ledger: Ledger) -> list[PlannedStep]:
    """Generate (or continue), install on every host, switch, remove the old key from every host."""
    run = ledger.open_rotation(shared.name)
    pending = str(shared.private_key) + ".next"
    steps = [PlannedStep("generate-key", pending, "todo", "new ed25519 pair") if run is None
             else PlannedStep("generate-key", pending, "done", f"continuing rotation to {run.new}")]
    hosts = [str(endpoint) for endpoint in endpoints(inventory, shared)]

    def state(host: str, step: str) -> str:
        return "done" if run is not None and run.done(host, step) else "todo"

    steps += [PlannedStep("install-new-key", f"{shared.name} on {host}", state(host, "verified")) for host in hosts]
    switched = run is not None and run.switched is not None
    steps.append(PlannedStep("switch-key-file", str(shared.private_key), "done" if switched else "todo"))
    steps += [PlannedStep("remove-old-key", f"{shared.name} on {host}", state(host, "removed")) for host in hosts]
    return steps
