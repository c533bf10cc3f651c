"""``bastionctl webhook test NAME``: send one test message to a configured webhook, to check the wiring.

Reads the daemon's configuration (``--config``, default ``/etc/bastion-guard/bastiond.yaml``), finds the
``sinks:`` entry ``{type: webhook, name: NAME}``, validates it as ``bastiond`` would, reads its secrets and
sends a test message now, outside rate limits and de-duplication. It prints what the receiver answered,
never the URL or the secret. Exit 0 when the receiver accepted it, 1 when not, 2 for configuration errors.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from bastion_guard.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, fail
from bastion_guard.config.yamlsrc import load_documents
from bastion_guard.errors import BastionError, ConfigError, ConfigProblem, Location
from bastion_guard.rules.fields import Fields
from bastion_guard.runtime.config import DEFAULT_CONFIG
from bastion_guard.shipping.base import Result
from bastion_guard.shipping.webhook.config import WebhookConfig, parse_config
from bastion_guard.shipping.webhook.sink import build_webhook


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``webhook test`` on the root parser."""
    parser = subparsers.add_parser("webhook", help="check configured alert webhooks",
                                   description="Check the alert webhooks configured under sinks: in bastiond.yaml.")
    commands = parser.add_subparsers(title="webhook commands", metavar="COMMAND")
    test = commands.add_parser("test", help="send a test message to the webhook NAME",
                               description="Send one test message to the webhook sink NAME (outside rate limits "
                               "and de-duplication) and report what the receiver answered. Exit 0 accepted, "
                               "1 not accepted, 2 configuration error.")
    test.add_argument("name", metavar="NAME", help="the webhook's name: in its sinks: entry")
    test.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                      help=f"daemon configuration file (default: {DEFAULT_CONFIG})")
    test.add_argument("--bastion", default=socket.gethostname(),
                      help="the bastion name shown in the message (default: this host's name)")
    test.set_defaults(run=run_test)


def run_test(args: argparse.Namespace) -> int:
    """Build the named webhook from the configuration and send a test message."""
    try:
        config = find_webhook(args.config, args.name)
        sink = build_webhook(config, args.name)
    except ConfigError as error:
        return fail(f"configuration problems:\n{error}", EXIT_USAGE)
    except BastionError as error:
        return fail(str(error), EXIT_USAGE)
    delivery = sink.send_test(args.bastion)
    if delivery.result is Result.DELIVERED:
        print(f"webhook {args.name}: test message accepted")
        return EXIT_OK
    hint = f" (retry after {delivery.retry_after_secs:g}s)" if delivery.retry_after_secs else ""
    return fail(f"webhook {args.name}: test message not accepted: {delivery.reason}{hint}", EXIT_FAILURE)


def find_webhook(path: Path, name: str) -> WebhookConfig:
    """The validated ``{type: webhook, name: NAME}`` entry of ``sinks:`` in ``path``; :class:`ConfigError`
    (with file:line:column) if the file, the entry or any of its keys is wrong, or there is no such entry."""
    documents = load_documents(path)
    problems: list[ConfigProblem] = []
    top = Fields(documents[0] if documents else None, "", problems, Location(str(path)))
    sinks = top.raw("sinks") if top.ok else None
    found: WebhookConfig | None = None
    if isinstance(sinks, list):
        for index, item in enumerate(sinks):
            entry = top.child(item, f"sinks[{index}]", top.where("sinks"))
            if entry.ok and entry.get("type", str, "") == "webhook" and entry.get("name", str, "") == name:
                found = parse_config(entry)
                break
    if found is None and not problems:
        problems.append(ConfigProblem(top.where("sinks"), "sinks", f"no webhook named {name!r}"))
    if problems or found is None:
        raise ConfigError(problems)
    return found
