"""``bastionctl audit``: check the effective sshd configuration and bastion-guard's own setup.

What Lynis' SSH-7408 does for sshd options, but bastion-aware (``ssh -J`` needs local TCP forwarding,
limited by ``PermitOpen``), and reading ``sshd -T`` so drop-ins, defaults and first-value-wins are
already resolved. Exit 0 when all is ok, 1 when the worst is a warning, 2 on any failure, and also 2
when ``sshd -T`` cannot run (nothing was checked, so nothing can be vouched for). ``--fix`` prints an
sshd_config.d drop-in and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bastion_guard.cli.common import fail
from bastion_guard.hardening.findings import EXIT_FAIL, Severity, exit_code, summarize
from bastion_guard.hardening.report import DROPIN_PATH, as_json, render_dropin, render_human
from bastion_guard.hardening.self_audit import audit_self, daemon_config
from bastion_guard.hardening.sshd_audit import audit_sshd
from bastion_guard.hardening.sshd_config import SshdConfigError, default_sshd, read_effective, sshd_argv


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit`` on the root parser."""
    parser = subparsers.add_parser(
        "audit",
        help="check sshd and bastion-guard against the bastion baseline",
        description="Read the effective sshd configuration (sshd -T, as root) and check it against a bastion "
        "baseline: keys only, VERBOSE logging, ProxyJump allowed but narrowed, no agent/X11/tunnels, modern "
        "algorithms, a KRL. Also checks bastion-guard's nft table and state permissions. "
        "Exit 0 all ok, 1 warnings, 2 failures or sshd -T failed.",
    )
    parser.add_argument("--sshd-config", type=Path, metavar="FILE",
                        help="audit this file instead of sshd's own (sshd -T -f FILE)")
    parser.add_argument("--sshd", type=Path, metavar="PATH",
                        help="the sshd binary (default: /usr/sbin/sshd, else sshd on PATH)")
    parser.add_argument("-o", "--output", choices=("human", "json"), default="human", help="output format")
    parser.add_argument("--fix", action="store_true",
                        help=f"print a drop-in for {DROPIN_PATH} with every fix line (writes nothing)")
    parser.add_argument("--no-self", action="store_true",
                        help="skip bastion-guard's own checks (nft table, state directory permissions)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Audit, print the report (or the drop-in) and return 0, 1 or 2."""
    sshd = args.sshd or default_sshd()
    source = " ".join(sshd_argv(sshd, args.sshd_config))
    try:
        config = read_effective(sshd, args.sshd_config)
    except SshdConfigError as error:
        if args.output == "json":
            _print_json({"error": str(error), **as_json([])})
        return fail(str(error), EXIT_FAIL)
    findings = audit_sshd(config)
    if not args.no_self:
        findings += audit_self(daemon_config())
    dropin = render_dropin(findings, source) if args.fix else None
    if args.output == "json":
        _print_json(as_json(findings, dropin))
    elif dropin is not None:
        # stdout holds the drop-in alone, so `bastionctl audit --fix > file` gives a clean file.
        sys.stdout.write(dropin)
        counts = summarize(findings)
        print(f"bastionctl: {counts['fail']} fail, {counts['warn']} warn, {counts['ok']} ok; drop-in on stdout, "
              "nothing written", file=sys.stderr)
        for finding in findings:
            if finding.severity is not Severity.OK and finding.command and not finding.fix:
                print(f"bastionctl: also ({finding.id}): {finding.command}", file=sys.stderr)
    else:
        sys.stdout.write(render_human(findings, source))
    return exit_code(findings)


def _print_json(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
