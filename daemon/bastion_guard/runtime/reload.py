"""What a reload (SIGHUP, ``bastionctl reload``) can change in a running bastiond, and what needs a restart.

A reload re-reads ``bastiond.yaml`` and the rules. Rules, allowlists and the shipping settings are applied in
place: the engine and the kernel's allow sets are rebuilt, and the sink process is restarted on the same spool
when the sinks, the spool settings or a file a sink reads (secrets, CA, client certificates: rotated on disk)
changed, so nothing waiting in it is lost. Settings that own a
thread, a socket or a file opened at start (sources, state, firewall, metrics listener, keys inventory) keep
their running values until a restart, and the reload says which ones changed, so an operator is never left
believing a change took effect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion_guard.runtime.config import DaemonConfig
from bastion_guard.shipping.secrets import SecretRef

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


def sink_files(config: DaemonConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Each file the sinks read when they are built (secret, CA, client certificate and key files) with its
    inode, size and modification time (nothing, if it cannot be read): what a rotation on disk changes while
    the configuration that names the file stays the same."""
    found: list[tuple[str, tuple[int, ...]]] = []
    for path in sorted({path for sink in config.sinks for path in _paths(sink.options)}):
        try:
            status = path.stat()
        except OSError:
            found.append((str(path), ()))
            continue
        found.append((str(path), (status.st_ino, status.st_size, status.st_mtime_ns)))
    return tuple(found)


def _paths(options: object) -> Iterator[Path]:
    """The file paths in a sink type's options (a dataclass), secret references' files included."""
    if not dataclasses.is_dataclass(options):
        return
    for setting in dataclasses.fields(options):
        value = getattr(options, setting.name)
        if isinstance(value, Path):
            yield value
        elif isinstance(value, SecretRef) and value.file is not None:
            yield value.file
