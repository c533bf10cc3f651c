"""What a reload (SIGHUP, ``bastionctl reload``) can change in a running bastiond, and what needs a restart.

A reload re-reads ``bastiond.yaml`` and the rules. Rules, allowlists and the shipping settings are applied in
place: the engine and the kernel's allow sets are rebuilt, and the sink process is restarted on the same spool
(on every reload, so rotated secret files are read again), so nothing waiting in it is lost. Settings that own a
thread, a socket or a file opened at start (sources, state, firewall, metrics listener, keys inventory) keep
their running values until a restart, and the reload says which ones changed, so an operator is never left
believing a change took effect.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bastion_guard.runtime.config import DaemonConfig

# Applied by a reload; every other DaemonConfig field needs a restart.
LIVE_SETTINGS = frozenset({"rules_dir", "allowlist", "spool", "sinks", "origin"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The configuration to run with after a reload and what it changed."""

    config: DaemonConfig  # the new file's values for the live settings, the running values for the rest
    restart_needed: tuple[str, ...]  # settings changed in the file that only a restart applies


def plan_reload(running: DaemonConfig, loaded: DaemonConfig) -> ReloadPlan:
    """Merge a freshly ``loaded`` configuration into the ``running`` one, setting by setting."""
    kept: dict[str, Any] = {}
    for setting in dataclasses.fields(DaemonConfig):
        name = setting.name
        if name not in LIVE_SETTINGS and getattr(loaded, name) != getattr(running, name):
            kept[name] = getattr(running, name)
    return ReloadPlan(dataclasses.replace(loaded, **kept), tuple(sorted(kept)))
