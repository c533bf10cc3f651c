"""Enforcement: firewall backends that keep ban sets with kernel timeouts.

``FIREWALLS`` maps a configuration name to a backend class; :func:`make_firewall` builds one and, for
an unknown name, says which names exist. The contract every backend keeps is
:class:`~bastion_guard.actions.base.Firewall`.
"""

from __future__ import annotations

from typing import Any

from bastion_guard.actions.base import ActionError, BanElement, BanListing, Firewall
from bastion_guard.actions.dryrun import DryRunFirewall
from bastion_guard.actions.ipset import IpsetFirewall
from bastion_guard.actions.nftables import NftablesFirewall

FIREWALLS: dict[str, type[NftablesFirewall] | type[IpsetFirewall] | type[DryRunFirewall]] = {
    "nftables": NftablesFirewall,
    "ipset": IpsetFirewall,
    "dry-run": DryRunFirewall,
}


def make_firewall(name: str, **options: Any) -> Firewall:
    """The backend called ``name``, built with ``options`` (``netns=...``, ...); :class:`ActionError` otherwise."""
    try:
        backend = FIREWALLS[name]
    except KeyError:
        raise ActionError(f"unknown firewall {name!r}: known firewalls are {', '.join(sorted(FIREWALLS))}") from None
    try:
        return backend(**options)
    except TypeError as exc:
        raise ActionError(f"firewall {name!r}: {exc}") from None


__all__ = [
    "FIREWALLS",
    "ActionError",
    "BanElement",
    "BanListing",
    "DryRunFirewall",
    "Firewall",
    "IpsetFirewall",
    "NftablesFirewall",
    "make_firewall",
]
