"""``bastionctl status | bans | ban | unban | explain | reload``: talk to the running bastiond.

Each command is one request over the control socket; the daemon does the work. Human output on stdout,
``-o json`` for scripts (always valid JSON), diagnostics on stderr; exit 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

from bastion_guard.cli.common import EXIT_OK, EXIT_USAGE, fail
from bastion_guard.defaults import SOCKET
from bastion_guard.durations import format_duration, parse_duration
from bastion_guard.runtime.control import ControlError, request


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the daemon commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", type=Path, default=SOCKET, help=f"control socket (default {SOCKET})")
    common.add_argument("-o", "--output", choices=("human", "json"), default="human", help="output format")

    status = subparsers.add_parser("status", parents=[common], help="what the daemon is doing")
    status.set_defaults(run=_status)

    bans = subparsers.add_parser("bans", parents=[common], help="list active bans")
    bans_sub = bans.add_subparsers(title="bans commands", metavar="COMMAND")
    listing = bans_sub.add_parser("list", parents=[common], help="list active bans")
    listing.set_defaults(run=_bans)
    bans.set_defaults(run=_bans)

    ban = subparsers.add_parser("ban", parents=[common], help="ban an address or network now")
    ban.add_argument("target", help="IP address or CIDR network")
    ban.add_argument("--for", dest="duration", default="1h", help="how long (90s, 10m, 4h, 7d; default 1h)")
    ban.add_argument("--reason", default="", help="why (shown in bans list and explain)")
    ban.set_defaults(run=_ban)

    unban = subparsers.add_parser("unban", parents=[common], help="lift a ban (idempotent)")
    group = unban.add_mutually_exclusive_group(required=True)
    group.add_argument("target", nargs="?", help="IP address or CIDR network")
    group.add_argument("--all", action="store_true", help="lift every ban")
    unban.set_defaults(run=_unban)

    explain = subparsers.add_parser("explain", parents=[common], help="why an address is (or was) banned")
    explain.add_argument("target", help="IP address or CIDR network")
    explain.set_defaults(run=_explain)

    reload = subparsers.add_parser("reload", parents=[common], help="reload configuration and rules")
    reload.set_defaults(run=_reload)


def _call(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any] | int:
    try:
        return request(args.socket, payload)
    except ControlError as error:
        return fail(str(error))


def _emit(args: argparse.Namespace, data: Any, human: str) -> int:
    if args.output == "json":
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(human)
    return EXIT_OK


def _valid_target(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _status(args: argparse.Namespace) -> int:
    reply = _call(args, {"command": "status"})
    if isinstance(reply, int):
        return reply
    lines = [
        f"bastiond up {format_duration(reply['uptime_secs'])}, {reply['config']}",
        f"rules: {len(reply['rules'])} from {reply['rules_dir']}",
        f"firewall: {reply['firewall']}; active bans: {reply['active_bans']}; tracked keys: {reply['tracked_keys']}",
        f"state: {reply['state']}{' (unsaved changes, retrying)' if reply['unsaved'] else ''}",
    ]
    for source in reply["sources"]:
        error = f"  ERROR: {source['error']}" if source["error"] else ""
        lines.append(
            f"source {source['name']}: {source['lines']} lines, {source['events']} events, "
            f"{source['unmatched']} unrecognised, {source['skipped_long']} too long; at {source['position']}{error}"
        )
    lines += shipping_lines(reply.get("shipping"))
    return _emit(args, reply, "\n".join(lines))


def shipping_lines(shipping: dict[str, Any] | None) -> list[str]:
    """The spool and its sinks, as ``bastionctl status`` shows them."""
    if shipping is None:
        return ["shipping: no sinks configured"]
    if shipping.get("error"):
        return [f"spool {shipping['spool']}: ERROR: {shipping['error']}"]
    lines = [f"spool {shipping['spool']}: {shipping['records']} records, {shipping['bytes']} bytes, "
             f"{shipping['dead_letters']} dead letters"]
    for sink in shipping["sinks"]:
        age = "" if sink["oldest_age_secs"] is None else f", oldest {format_duration(sink['oldest_age_secs'])}"
        state = "ok" if sink["healthy"] else "FAILING"
        lines.append(f"sink {sink['name']}: {state} ({sink['health']}); {sink['depth']} waiting{age}, "
                     f"{sink['delivered']} delivered this run")
    return lines


def _bans(args: argparse.Namespace) -> int:
    reply = _call(args, {"command": "bans"})
    if isinstance(reply, int):
        return reply
    bans = reply["bans"]
    rows = [f"{'TARGET':<28} {'RULE':<24} {'LEFT':>8}  REASON"]
    rows += [
        f"{ban['target']:<28} {ban['rule']:<24} {format_duration(ban['remaining_secs']):>8}  {ban['reason']}"
        for ban in bans
    ]
    return _emit(args, bans, "\n".join(rows) if bans else "no active bans")


def _ban(args: argparse.Namespace) -> int:
    if not _valid_target(args.target):
        return fail(f"{args.target!r} is not an IP address or CIDR network", EXIT_USAGE)
    try:
        parse_duration(args.duration)
    except ValueError as error:
        return fail(str(error), EXIT_USAGE)
    reply = _call(args, {"command": "ban", "target": args.target, "duration": args.duration, "reason": args.reason})
    if isinstance(reply, int):
        return reply
    ban = reply["ban"]
    return _emit(args, ban, f"banned {ban['target']} for {format_duration(ban['remaining_secs'])}")


def _unban(args: argparse.Namespace) -> int:
    if args.target is not None and not _valid_target(args.target):
        return fail(f"{args.target!r} is not an IP address or CIDR network", EXIT_USAGE)
    reply = _call(args, {"command": "unban", "target": args.target, "all": args.all})
    if isinstance(reply, int):
        return reply
    done = ", ".join(reply["unbanned"]) or "nothing"
    notice = f" ({', '.join(reply['absent'])} was not banned)" if reply["absent"] and not args.all else ""
    return _emit(args, reply, f"unbanned {done}{notice}")


def _explain(args: argparse.Namespace) -> int:
    reply = _call(args, {"command": "explain", "target": args.target})
    if isinstance(reply, int):
        return reply
    ban = reply["ban"]
    if ban is None:
        lines = [f"{args.target} is not banned"]
    else:
        expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ban["expires"]))
        lines = [
            f"{ban['target']} banned by rule {ban['rule']} ({ban['origin']}): {ban['reason']}",
            f"offence {ban['offence']}; expires {expires} ({format_duration(ban['remaining_secs'])} left)",
            "lines that counted:",
        ]
        lines += [f"  {item['source']} at {item['position']}" for item in ban["evidence"]] or ["  (manual ban)"]
    for entry in reply["history"]:
        lines.append(f"history: rule {entry['rule']}: {entry['offences']} bans, last at {entry['last']:.0f}")
    return _emit(args, reply, "\n".join(lines))


def _reload(args: argparse.Namespace) -> int:
    reply = _call(args, {"command": "reload"})
    if isinstance(reply, int):
        return reply
    human = f"reloaded {len(reply['rules'])} rules and {len(reply.get('sinks', ()))} sinks"
    if reply.get("restart_needed"):
        human += f"; changed, but applied only at the next restart: {', '.join(reply['restart_needed'])}"
    return _emit(args, reply, human)
