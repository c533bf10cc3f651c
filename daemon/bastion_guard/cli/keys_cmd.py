"""``bastionctl rotate-keys USER`` and ``bastionctl keys list``: offboarding on demand, and the key census.

Both read bastiond.yaml (``--config``) for the inventory path (``keys:``) and the state directory (the
ledger and the key-use table live there). ``rotate-keys`` runs here, as root, outside the sandboxed
daemon; it takes the ledger lock, so it never interleaves with a scheduled run in bastiond. Exit 0 when
everything succeeded (or, with ``--dry-run``, when the plan was made), 1 when a step failed, 2 for bad
input (unknown person, invalid inventory).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bastion_guard.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from bastion_guard.errors import BastionError, ConfigError
from bastion_guard.keys import ledger as ledgers
from bastion_guard.keys.audit import Audit
from bastion_guard.keys.inventory import Inventory, load_inventory
from bastion_guard.keys.offboard import OffboardResult, offboard
from bastion_guard.keys.plan import Plan, plan_offboarding
from bastion_guard.keys.remote import Ssh
from bastion_guard.keys.rotate import endpoints
from bastion_guard.keys.scheduler import known_hosts
from bastion_guard.keys.usage import KeyRow, key_rows
from bastion_guard.runtime.config import DaemonConfig, load_config
from bastion_guard.state.store import StateStore


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``rotate-keys`` and ``keys``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="bastiond.yaml (default /etc/bastion-guard/bastiond.yaml)")
    common.add_argument("--keys", type=Path, help="keys.yaml (default: the config's keys:)")
    common.add_argument("--state-dir", type=Path, help="state directory (default: the config's state_dir)")
    common.add_argument("-o", "--output", choices=("human", "json"), default="human", help="output format")
    common.add_argument("-v", "--verbose", action="store_true", help="log every step on stderr")

    rotate = subparsers.add_parser(
        "rotate-keys", parents=[common], help="offboard USER: revoke their keys, rotate the shared keys they used",
        description="Revoke every key of USER on the bastion (KRL + authorized_keys), then rotate each shared key "
        "USER could use, make-before-break, on every target. Resumes an interrupted run from the ledger.",
    )
    rotate.add_argument("user", help="person name or bastion account from keys.yaml")
    rotate.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    rotate.add_argument("--lock-account", action="store_true", help="also expire and lock the account")
    rotate.add_argument("--end-sessions", action="store_true", help="also end the account's live sessions")
    rotate.set_defaults(run=_rotate_keys)

    keys = subparsers.add_parser("keys", help="key inventory commands")
    keys_sub = keys.add_subparsers(title="keys commands", metavar="COMMAND")
    listing = keys_sub.add_parser("list", parents=[common], help="which key is trusted where, and when last used")
    listing.set_defaults(run=_keys_list)


def _load(args: argparse.Namespace) -> tuple[Inventory, Path] | int:
    try:
        config: DaemonConfig = load_config(args.config)
        path = args.keys or config.keys
        inventory = load_inventory(path)
    except ConfigError as error:
        return fail(f"invalid configuration:\n{error}", EXIT_USAGE)
    if inventory is None:
        return fail(f"no key inventory at {path}: write one (see bastion_guard/keys/inventory.py)", EXIT_USAGE)
    return inventory, args.state_dir or config.state_dir


def _rotate_keys(args: argparse.Namespace) -> int:
    # Failures and warnings are in the report printed at the end; -v shows every step as it happens.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr,
                        format="bastionctl: %(message)s")
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    inventory, state_dir = loaded
    person = inventory.person(args.user)
    if person is None:
        known = ", ".join(p.name for p in inventory.people) or "none"
        return fail(f"unknown person {args.user!r} in {inventory.path} (known: {known})", EXIT_USAGE)
    lock = args.lock_account or inventory.lock_account
    end = args.end_sessions or inventory.end_sessions
    try:
        if args.dry_run:
            plan = plan_offboarding(person, inventory, ledgers.read(state_dir), lock_account=lock, end_sessions=end)
            return _print_plan(args, plan)
        total = 1 + sum(2 * len(endpoints(inventory, key)) for key in inventory.shared_keys_of(person))
        bar = _ProgressBar(total) if args.output == "human" and sys.stderr.isatty() else None
        audit = Audit()
        with ledgers.locked(state_dir, wait=False) as ledger:
            result = offboard(person, inventory, ledger, Ssh(known_hosts(inventory, state_dir)), audit,
                              state_dir=state_dir, lock_account=lock, end_sessions=end,
                              progress=bar.tick if bar else None)
        if bar is not None:
            bar.close()
    except BastionError as error:
        return fail(str(error))
    _print_result(args, result, [record.body | {"id": record.id, "epoch": record.epoch} for record in audit.records])
    return EXIT_OK if result.failed == 0 else EXIT_FAILURE


def _print_plan(args: argparse.Namespace, plan: Plan) -> int:
    if args.output == "json":
        _json(plan.as_json())
        return EXIT_OK
    print(f"plan for {plan.person} ({plan.account}), nothing changed (--dry-run):")
    for step in plan.steps:
        mark = "[done]" if step.state == "done" else "[todo]"
        print(f"  {mark} {step.action:<28} {step.subject}{f'  ({step.detail})' if step.detail else ''}")
    for warning in plan.warnings:
        print(f"  WARNING: {warning}")
    print(f"{plan.todo} step(s) to do")
    return EXIT_OK


def _print_result(args: argparse.Namespace, result: OffboardResult, records: list[dict[str, Any]]) -> None:
    if args.output == "json":
        _json({
            "person": result.person, "account": result.account, "summary": result.summary(),
            "keys_revoked": result.revoked, "newly_revoked": result.newly_revoked,
            "removed_from": result.removed_from, "failed": result.failed, "targets_rotated": result.rotated,
            "rotations": [
                {"key": r.key, "old": r.old, "new": r.new, "switched": r.switched, "completed": r.completed,
                 "error": r.error, "endpoints": [vars(e) for e in r.endpoints]}
                for r in result.rotations
            ],
            "warnings": result.warnings, "errors": result.errors, "records": records,
        })
        return
    for warning in result.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    for error in result.errors:
        print(f"FAILED: {error}", file=sys.stderr)
    for rotation in result.rotations:
        state = "completed" if rotation.completed else ("switched, old key not yet removed everywhere"
                                                        if rotation.switched else "NOT switched: old key still in use")
        print(f"shared key {rotation.key}: {rotation.old} -> {rotation.new}: {state}")
        if rotation.error:
            print(f"  FAILED: {rotation.error}")
        for endpoint in rotation.endpoints:
            if endpoint.status == "failed":
                print(f"  FAILED {endpoint.phase} on {endpoint.endpoint}: {endpoint.detail}")
    print(result.summary())


def _keys_list(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    inventory, state_dir = loaded
    uses = {}
    state_path = state_dir / "state.db"
    try:
        if state_path.exists():
            with StateStore.open(state_path) as store:
                uses = store.key_uses()
        rows = key_rows(inventory, ledgers.read(state_dir), uses, time.time())
    except BastionError as error:
        return fail(str(error))
    if args.output == "json":
        _json([row.as_json() for row in rows])
        return EXIT_OK
    print(f"{'OWNER':<16} {'KIND':<9} {'STATE':<9} {'LAST USED':<20} {'FINGERPRINT':<51} TRUSTED ON")
    for row in rows:
        print(f"{row.owner:<16} {row.kind:<9} {row.state:<9} {_when(row):<20} {row.fingerprint:<51} "
              f"{', '.join(row.trusted)}")
    return EXIT_OK


def _when(row: KeyRow) -> str:
    if row.last_used is None:
        return "never (stale)" if row.stale else "never"
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.last_used))
    return f"{stamp}{' !' if row.stale else ''}"


def _json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


class _ProgressBar:
    """``[#####.....] 5/10 label`` on stderr, redrawn in place (only when stderr is a terminal)."""

    WIDTH = 30

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0

    def tick(self, label: str) -> None:
        """One more step done; ``label`` says which."""
        self.done = min(self.done + 1, self.total)
        filled = self.WIDTH * self.done // self.total
        sys.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} {label[:60]}")
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line."""
        sys.stderr.write("\n")
