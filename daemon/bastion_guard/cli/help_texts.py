"""Descriptions and examples for every ``--help`` page, applied to the finished parser tree.

Kept in one table rather than in each command module so that a command's help reads as part of one
manual, and so that modules other branches are editing need no change. :func:`apply` walks the tree;
the test suite walks it too and fails on any command without a description or examples, so a new
command must bring both.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterator

DESCRIPTIONS: dict[str, str] = {
    # Only commands whose module gives no description of its own.
    "bastionctl status": "Show what the running bastiond is doing: sources and their positions, active bans, "
    "the loaded rules.",
    "bastionctl bans": "List the active bans (the same as `bans list`).",
    "bastionctl bans list": "List the active bans with target, rule, reason and expiry.",
    "bastionctl ban": "Ban an address or network now, through the running bastiond (kept in its state and "
    "restored into the firewall after a restart).",
    "bastionctl unban": "Lift a ban. Unbanning an address that is not banned is not an error (exit 0).",
    "bastionctl explain": "Explain a ban: which rule, which log lines counted, when it expires, and earlier "
    "offences of the same address.",
    "bastionctl reload": "Re-read bastiond.yaml and the rules (like SIGHUP) and apply the rules, allowlist, spool "
    "and sinks in place. Anything with an error is refused and the running configuration stays; settings only a "
    "restart applies (sources, firewall, metrics, directories, keys) are named.",
    "bastionctl deadletter": "Records a sink refused for good (for example an Elasticsearch mapping error): "
    "list them, show one with its record, or put them back in the spool once the cause is fixed. Reads "
    "spool.db directly, so it works whether or not bastiond runs.",
    "bastionctl keys": "The key census of the key lifecycle inventory (keys.yaml, the config's `keys:`): which "
    "key is trusted where and when the bastion last saw it used.",
    "bastionctl keys list": "List every key of keys.yaml with its fingerprint, where it is trusted (bastion "
    "accounts, targets) and when it was last used to log in, from the state directory's key-use table.",
    "bastionctl deadletter list": "List dead letters: number, sink, record kind, when and why they were refused.",
    "bastionctl deadletter show": "Show one dead letter with its full record and the sink's reason.",
    "bastionctl deadletter replay": "Put dead letters back in the spool for the sink that refused them; the "
    "running bastiond delivers them again (same ids, so nothing is duplicated).",
}

EXAMPLES: dict[str, tuple[str, ...]] = {
    "bastionctl": (
        "bastionctl test /var/log/auth.log      # what would be banned, and why",
        "bastionctl status",
        "bastionctl COMMAND --help",
    ),
    "bastiond": (
        "bastiond --check-config                 # validate configuration and rules (ExecStartPre)",
        "bastiond --demo                         # demo log, dry-run firewall, no root",
        "bastiond --config /etc/bastion-guard/bastiond.yaml",
    ),
    "bastionctl parse": (
        "bastionctl parse /var/log/auth.log | head",
        "journalctl -u ssh -o short-iso | bastionctl parse -",
    ),
    "bastionctl test": (
        "bastionctl test /var/log/auth.log",
        "bastionctl test /var/log/secure --rules ./rules -o json",
    ),
    "bastionctl status": ("bastionctl status", "bastionctl status -o json"),
    "bastionctl bans": ("bastionctl bans", "bastionctl bans -o json"),
    "bastionctl bans list": ("bastionctl bans list", "bastionctl bans list -o json | jq '.[].target'"),
    "bastionctl ban": (
        "bastionctl ban 203.0.113.7 --for 4h --reason 'credential stuffing'",
        "bastionctl ban 198.51.100.0/24 --for 7d",
    ),
    "bastionctl unban": ("bastionctl unban 203.0.113.7", "bastionctl unban --all"),
    "bastionctl explain": ("bastionctl explain 203.0.113.7", "bastionctl explain 203.0.113.7 -o json"),
    "bastionctl reload": ("bastionctl reload", "systemctl reload bastiond   # checks the configuration first"),
    "bastionctl ssh-config": (
        "bastionctl ssh-config --bastion jump.example.com --target 'pytorch-node-*' --target-user ai-user "
        ">> ~/.ssh/config",
    ),
    "bastionctl audit": (
        "sudo bastionctl audit",
        "sudo bastionctl audit --fix | sudo tee /etc/ssh/sshd_config.d/00-bastion-guard.conf",
        "bastionctl audit --sshd-config ./sshd_config --no-self -o json",
    ),
    "bastionctl config-reference": (
        "bastionctl config-reference > docs/configuration.md",
        "bastionctl config-reference --format yaml > bastiond.yaml.example",
    ),
    "bastionctl deadletter": ("bastionctl deadletter", "bastionctl deadletter list --sink es -o json"),
    "bastionctl deadletter list": ("bastionctl deadletter list", "bastionctl deadletter list --sink es"),
    "bastionctl deadletter show": ("bastionctl deadletter show 3", "bastionctl deadletter show 3 -o json"),
    "bastionctl deadletter replay": ("bastionctl deadletter replay 3 4", "bastionctl deadletter replay --sink es"),
    "bastionctl webhook": ("bastionctl webhook test slack-oncall",),
    "bastionctl webhook test": (
        "bastionctl webhook test slack-oncall",
        "bastionctl webhook test am --config /etc/bastion-guard/bastiond.yaml",
    ),
    "bastionctl rotate-keys": (
        "sudo bastionctl rotate-keys alice --dry-run        # the plan, nothing changed",
        "sudo bastionctl rotate-keys alice --lock-account --end-sessions",
        "sudo bastionctl rotate-keys alice -o json          # re-run continues an interrupted one",
    ),
    "bastionctl keys": ("bastionctl keys list", "bastionctl keys list -o json"),
    "bastionctl keys list": (
        "sudo bastionctl keys list",
        "sudo bastionctl keys list --keys ./keys.yaml --state-dir /var/lib/bastion-guard -o json",
    ),
    "bastionctl completion": (
        "bastionctl completion bash | sudo tee /usr/share/bash-completion/completions/bastionctl",
        "bastionctl completion zsh > \"${fpath[1]}/_bastionctl\"",
    ),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """Wraps prose like the default formatter but keeps indented lines (the examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if any(line.startswith("  ") for line in paragraph.splitlines()):
                paragraphs.append(textwrap.indent(paragraph, indent))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


def walk(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command path, parser)`` for ``parser`` and every subcommand below it, depth first."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for child in action.choices.values():
                if id(child) not in seen:  # aliases map several names to one parser
                    seen.add(id(child))
                    yield from walk(child)


def apply(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Fill in descriptions and add an examples epilog to ``parser`` and every subcommand; return it."""
    for path, command in walk(parser):
        if command.description is None and path in DESCRIPTIONS:
            command.description = DESCRIPTIONS[path]
        examples = EXAMPLES.get(path)
        if examples:
            command.epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples)
        command.formatter_class = ExamplesFormatter
    return parser
