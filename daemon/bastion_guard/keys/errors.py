"""Errors of the key lifecycle (``bastionctl rotate-keys``, ``keys list``, the schedules in bastiond).

::

    BastionError
     └── KeyLifecycleError      a step could not be done; the message says which and why
          ├── KeyFormatError    a public key (inline or in a file) is not a valid OpenSSH key line
          └── RemoteError       a target could not be reached or refused a step

Messages never contain key material: keys are named by fingerprint, files by path and line.
"""

from __future__ import annotations

from bastion_guard.errors import BastionError


class KeyLifecycleError(BastionError):
    """A key lifecycle step failed; nothing that locks anyone out was left behind."""


class KeyFormatError(KeyLifecycleError):
    """A line is not a valid OpenSSH public key."""


class RemoteError(KeyLifecycleError):
    """A target was unreachable or refused a step (``ssh`` exit status and its last words)."""
