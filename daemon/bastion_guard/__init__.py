"""bastion-guard: harden and watch an SSH bastion.

Importing the package has no side effects; the entry points live in :mod:`bastion_guard.cli`.
"""

__version__ = "0.1.0"
