"""The firewall contract every enforcement backend keeps, and the data it is given.

A backend owns a few kernel objects (an nftables table, or ipsets plus an iptables chain) holding
*ban sets*: addresses and networks that are dropped, each with a kernel timeout, so a ban ends on time
even while the daemon is down. An *allowlist* is checked first; it only exempts an address from our
bans, never from the administrator's own rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol, TypeAlias

from bastion_guard.errors import BastionError

BanListing: TypeAlias = list[tuple[str, float]]
"""``(target, seconds left)`` pairs, as :meth:`Firewall.list` returns them."""


class ActionError(BastionError):
    """A firewall could not be set up or changed: the tool is missing, or it refused the change.

    The message names the tool and quotes its error output; nothing was changed by the failed call
    (every change is one kernel transaction, see :class:`Firewall`).
    """


class BanElement(NamedTuple):
    """One ban: an address (``203.0.113.7``) or network (``2001:db8:1:2::/64``) for ``timeout_secs`` from now.

    Construction does not validate (a restore builds 100,000 of these, and a named tuple is built in
    two thirds of a frozen dataclass's time); every backend checks each target before it reaches a
    command (:mod:`~bastion_guard.actions.targets`) and rejects anything else with :class:`ActionError`.
    """

    target: str
    timeout_secs: float


class Firewall(Protocol):
    """What the daemon asks of a firewall backend. Obligations, which the integration tests check one by one:

    1. ``start(allow)`` creates the table, sets and chains if they are missing and (re)writes our rules
       and the allowlist; existing bans survive. Calling it again is harmless. A missing tool, or a tool
       that fails, raises :class:`ActionError` with a message saying which and why.
    2. ``set_allowlist(networks)`` makes the allowlist exactly ``networks`` in one transaction. Allowed
       sources leave our chain before any ban is looked at (and still meet the administrator's rules).
    3. ``restore(elements)`` makes the ban sets hold exactly ``elements`` in ONE atomic step (nft:
       flush + add in one transaction; ipset: fill a fresh set and swap it in, per address family):
       there is no moment with an empty set, and on failure the old set stays.
    4. ``ban(elements)`` adds a batch in one call. A target that is already banned gets exactly the new
       timeout, longer or shorter. (nft: a re-add with an unchanged timeout does not restart the
       expiry, and older kernels ignore re-adds altogether, so the nftables backend deletes and re-adds
       in the same transaction.) Targets that do not exist yet, or that the kernel has just expired,
       are not an error.
    5. An address and a network around it (or two nested networks) are separate bans with their own
       timeouts: a source is dropped while any ban covering it lasts.
    6. ``unban(targets)`` removes a batch of exactly these targets; absent targets are not an error.
       Unbanning an address inside a banned network leaves the network's ban in force.
    7. ``list()`` returns ``(target, seconds left)`` for each element, ``inf`` for one without a timeout
       (added by hand). Addresses are plain (``/32`` and ``/128`` dropped), networks in CIDR form.
    8. ``stop()`` releases only what the process holds: the kernel sets and rules stay, so bans outlive
       the daemon. ``remove()`` deletes everything the backend created (for uninstall).
    9. Every target is validated before anything runs: text that is not an IP address or network (a
       zone id, whitespace, a command) raises :class:`ActionError`, and nothing of the batch is applied.
       Timeouts must be positive; one above ``max_timeout_secs`` is clamped to it, with a warning.

    Calls block (the daemon runs them with ``asyncio.to_thread``) and are not thread-safe: one caller
    at a time. Data goes to the tools on stdin, never on a command line.
    """

    name: str
    max_timeout_secs: float

    def start(self, allow: Iterable[str] = ()) -> None:
        """Create our kernel objects if missing, install our rules, set the allowlist to ``allow``."""
        ...

    def set_allowlist(self, networks: Iterable[str]) -> None:
        """Replace the allowlist with exactly ``networks``, atomically."""
        ...

    def restore(self, elements: Iterable[BanElement]) -> None:
        """Make the ban sets equal to ``elements`` in one atomic transaction."""
        ...

    def ban(self, elements: Iterable[BanElement]) -> None:
        """Add or re-time a batch of bans in one transaction."""
        ...

    def unban(self, targets: Iterable[str]) -> None:
        """Remove a batch of bans; absent targets are fine."""
        ...

    def list(self) -> BanListing:
        """Every banned target with its seconds left."""
        ...

    def stop(self) -> None:
        """Let go of the backend; bans stay in the kernel."""
        ...

    def remove(self) -> None:
        """Delete every kernel object this backend created (uninstall)."""
        ...
