"""The state store's error.

:class:`StateError` belongs in the tree of :mod:`bastion_guard.errors` (``BastionError`` → ``StateError``);
it lives here until that module is free to change, and ``bastion_guard.state`` re-exports it so callers
never need to know where it is defined.
"""

from __future__ import annotations

from bastion_guard.errors import BastionError


class StateError(BastionError):
    """The state database cannot be opened, read or written; the message names the file and the cause."""
