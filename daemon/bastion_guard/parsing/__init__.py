"""Auth-log parsing: pure functions from text lines to typed events, no I/O and no clock.

Entry point: :class:`LineParser`. Message catalogues live in :mod:`.sshd`, :mod:`.pam` and
:mod:`.privilege`; the syslog header in :mod:`.envelope`.
"""

from bastion_guard.parsing.parser import PROGRAMS, LineParser
from bastion_guard.parsing.status import LineStatus

__all__ = ["PROGRAMS", "LineParser", "LineStatus"]
