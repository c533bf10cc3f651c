"""Addresses that are never banned: the allowlists of the rule set plus loopback, always."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from bastion_guard.rules.spec import Network

# Never ban the host itself: a parser bug or a forged local line must not lock out the machine's own
# services. bastiond adds the host's own addresses at start (runtime/host_addresses.py).
ALWAYS_ALLOWED: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_CACHE_LIMIT = 1 << 16


class NetworkSet:
    """Fast membership of addresses (and networks) in a fixed set of networks, cached per address."""

    __slots__ = ("_cache", "_v4", "_v6")

    def __init__(self, networks: Iterable[Network]) -> None:
        self._v4 = tuple(n for n in networks if isinstance(n, ipaddress.IPv4Network))
        self._v6 = tuple(n for n in networks if isinstance(n, ipaddress.IPv6Network))
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)

    def contains(self, address: str) -> bool:
        """Whether ``address`` (an IP, or a CIDR network) lies within (or overlaps) one of the networks."""
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        result = self._lookup(address)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[address] = result
        return result

    def _lookup(self, address: str) -> bool:
        try:
            network = ipaddress.ip_network(address, strict=False)
        except ValueError:
            return False
        candidates = self._v4 if isinstance(network, ipaddress.IPv4Network) else self._v6
        return any(network.overlaps(allowed) for allowed in candidates)
