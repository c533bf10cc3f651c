"""Every key lifecycle step becomes a record for the sinks (and a log line), as it happens.

Records are built with :func:`~bastion_guard.shipping.records.action_record` (kind ``key``) and handed
to ``emit``, which the daemon wires to the durable spool; bastionctl passes its own. Fields are
fingerprints, accounts, endpoints and paths: never key material.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from bastion_guard.shipping.records import Record, RecordKind, action_record

log = logging.getLogger("bastion_guard.keys")
Emit = Callable[[Record], None]


class Audit:
    """Builds, logs and emits the records of one run; keeps them for the run's report."""

    def __init__(self, emit: Emit | None = None, *, bastion: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._emit = emit
        self.bastion = bastion or socket.gethostname()
        self._clock = clock
        self.records: list[Record] = []

    def step(self, action: str, outcome: str, **fields: Any) -> Record:
        """Record one step: ``action`` (e.g. ``key-revoked``), ``outcome`` (success | failure | skipped | info)."""
        record = action_record(RecordKind.KEY, self._clock(), self.bastion, action=action, outcome=outcome, **fields)
        level = logging.WARNING if outcome == "failure" else logging.INFO
        details = " ".join(f"{name}={value}" for name, value in sorted(fields.items()) if name != "message")
        message = fields.get("message")
        log.log(level, "%s %s%s%s", action, outcome, f": {message}" if message else "",
                f" ({details})" if details else "")
        self.records.append(record)
        if self._emit is not None:
            try:
                self._emit(record)
            except Exception:  # a sink problem must not stop a revocation half way
                log.exception("could not hand the %s record to the spool", action)
        return record
