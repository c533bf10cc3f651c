"""Ban targets as the firewall sees them: validated networks and checked, clamped timeouts.

Everything that reaches an nft script or an ``ipset restore`` stream is produced here from an
:mod:`ipaddress` object, so only ``[0-9a-f.:/]`` can appear where a target goes: whatever text a log
line carried, it cannot become a command.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
from collections.abc import Iterable

from bastion_guard.actions.base import ActionError, BanElement

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

# Checked before ipaddress sees the text: ipaddress accepts an IPv6 zone id ("fe80::1%eth0") whose
# characters are not restricted at all, and a target has no business being longer than an IPv6 CIDR.
_TARGET_TEXT = re.compile(r"[0-9A-Fa-f.:/]{2,49}")
_RENDERED = re.compile(r"[0-9a-f.:/]+")


def parse_network(text: str) -> Network:
    """The network ``text`` names (an address is a /32 or /128), or :class:`ActionError`.

    Host bits set (``10.0.0.5/24``) are refused rather than guessed; ``::ffff:a.b.c.d`` becomes the IPv4
    address the kernel will see on the wire.
    """
    if not isinstance(text, str) or not _TARGET_TEXT.fullmatch(text):
        raise ActionError(f"not an IP address or network: {text!r}")
    if "/" not in text:
        # A plain address, the common case (100k of them on a restore): the C parser validates it strictly
        # and the network is built from its bytes, three times faster than parsing the text in Python.
        family = socket.AF_INET6 if ":" in text else socket.AF_INET
        try:
            packed = socket.inet_pton(family, text)
        except OSError:
            raise ActionError(f"not an IP address or network: {text!r}") from None
        if family == socket.AF_INET:
            return ipaddress.IPv4Network(packed)
        host = ipaddress.IPv6Network(packed)
        mapped = host.network_address.ipv4_mapped
        return host if mapped is None else ipaddress.IPv4Network(mapped)
    try:
        network: Network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ActionError(f"not an IP address or network: {text!r} ({exc})") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network(mapped)
    return network


def parse_target(text: str) -> Network:
    """A ban target: :func:`parse_network`, but ``/0`` is refused because it would drop every client."""
    network = parse_network(text)
    if network.prefixlen == 0:
        raise ActionError(f"refusing to ban {text!r}: it matches every address")
    return network


def render_target(network: Network) -> str:
    """The spelling used in listings and ipset streams: plain address for a single host, CIDR otherwise."""
    text = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
    return _guarded(text)


def render_address(network: Network) -> str:
    """The network's first address, as it goes into a set matched by a prefix mask."""
    return _guarded(str(network.network_address))


def _guarded(text: str) -> str:
    if not _RENDERED.fullmatch(text):  # cannot happen for ipaddress objects; the guard is the point
        raise ActionError(f"refusing to render target {text!r}")
    return text


def checked_timeout(element: BanElement) -> float:
    """``element.timeout_secs`` if it is a positive, finite number of seconds, else :class:`ActionError`."""
    value = element.timeout_secs
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ActionError(f"ban of {element.target!r}: timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def normalize(elements: Iterable[BanElement], max_timeout_secs: float) -> dict[Network, float]:
    """Validate a batch into ``{network: timeout}``, the last duplicate winning, timeouts clamped.

    The whole batch is checked before the caller runs anything, so one bad target rejects all of it.
    """
    batch: dict[Network, float] = {}
    clamped = 0
    for element in elements:
        network = parse_target(element.target)
        timeout = checked_timeout(element)
        if timeout > max_timeout_secs:
            timeout = max_timeout_secs
            clamped += 1
        batch.pop(network, None)  # re-insert, so the order is that of the last mention
        batch[network] = timeout
    if clamped:
        log.warning("%d ban timeout(s) above the backend maximum were clamped to %.0f s", clamped, max_timeout_secs)
    return batch


def parse_targets(texts: Iterable[str]) -> list[Network]:
    """Validate a batch of targets (for unban), duplicates removed, order kept."""
    return list(dict.fromkeys(parse_target(text) for text in texts))


def collapse(networks: Iterable[Network]) -> list[Network]:
    """The smallest list of networks covering the same addresses (for allowlists, which carry no timeouts)."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for network in networks:
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
