"""Durable state: read positions, active bans and ban history in one SQLite file.

:meth:`StateStore.open` is the entry point; :meth:`StateStore.commit` is the one write, atomic.
"""

from bastion_guard.state.errors import StateError
from bastion_guard.state.migrations import latest_version
from bastion_guard.state.records import BanRecord, Position, Purged
from bastion_guard.state.recovery import RecoveryReport
from bastion_guard.state.store import StateStore

__all__ = ["BanRecord", "Position", "Purged", "RecoveryReport", "StateError", "StateStore", "latest_version"]
