"""Ban targets as the firewall sees them: validated, canonical text and checked, clamped timeouts.

Everything that reaches an nft script or an ``ipset restore`` stream is produced here from validated
bytes (``socket.inet_pton`` and ``inet_ntop``) or from an :mod:`ipaddress` object, so only ``[0-9a-f.:/]``
can appear where a target goes: whatever text a log line carried, it cannot become a command.

Two forms, for two jobs. A ban target is a :data:`BanTarget`: its canonical spelling (``203.0.113.7``,
``2001:db8:1:2::/64``), a plain string, cheap to hash and render, because a restore handles 100,000 of
them at start and building an ``ipaddress`` network for each took most of that time. Allowlists, which
must be merged (:func:`collapse`), and listings read back from the kernel stay :data:`Network` objects.
:func:`parse_target` is the reference validation: :func:`ban_target` takes a fast path only for the
spellings it fully understands and hands every other text to it, so what is refused, and with which
message, is the reference's (``tests/unit/test_target_fast_path.py`` holds the two to the same answers).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Iterable
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import NewType

from bastion_guard.actions.base import ActionError, BanElement

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
BanTarget = NewType("BanTarget", str)
"""A validated ban target in canonical spelling: the address alone for a host (``/32``, ``/128``), CIDR
for a network; IPv4-mapped IPv6 is IPv4. Made only by this module, so it holds only ``[0-9a-f.:/]``."""

log = logging.getLogger(__name__)

# Checked before ipaddress sees the text: ipaddress accepts an IPv6 zone id ("fe80::1%eth0") whose
# characters are not restricted at all, and a target has no business being longer than an IPv6 CIDR.
_TARGET_TEXT = re.compile(r"[0-9A-Fa-f.:/]{2,49}")
_RENDERED = re.compile(r"[0-9a-f.:/]+")
_V4_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, which the kernel sees as IPv4 on the wire
_PREFIX_TEXT = re.compile(r"[1-9][0-9]{0,2}")  # a prefix length as ipaddress would print it, never /0


def parse_network(text: str) -> Network:
    """The network ``text`` names (an address is a /32 or /128), or :class:`ActionError`.

    Host bits set (``10.0.0.5/24``) are refused rather than guessed; ``::ffff:a.b.c.d`` becomes the IPv4
    address the kernel will see on the wire.
    """
    if not isinstance(text, str) or not _TARGET_TEXT.fullmatch(text):
        raise ActionError(f"not an IP address or network: {text!r}")
    if "/" not in text:
        # A plain address: the C parser validates it strictly and the network is built from its bytes,
        # three times faster than parsing the text in Python.
        family = AF_INET6 if ":" in text else AF_INET
        try:
            packed = inet_pton(family, text)
        except OSError:
            raise ActionError(f"not an IP address or network: {text!r}") from None
        if family == AF_INET:
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


def _guarded(text: str) -> str:
    if not _RENDERED.fullmatch(text):  # cannot happen for ipaddress objects; the guard is the point
        raise ActionError(f"refusing to render target {text!r}")
    return text


def ban_target(text: str) -> BanTarget:
    """The canonical :data:`BanTarget` of ``text``; exactly what :func:`parse_target` accepts or refuses.

    Most targets take the fast path (:func:`_spelled_fast`); every text it does not fully understand goes
    through :func:`parse_target`, which refuses it with the reference message or names the same network.
    """
    try:
        spelled = _spelled_fast(text)
    except (OSError, TypeError, ValueError, AttributeError):
        spelled = None  # not text, or not an address the C parser reads: the reference decides
    return BanTarget(render_target(parse_target(text)) if spelled is None else spelled)


def _spelled_fast(text: str) -> str | None:
    """The canonical spelling of an address or network written the usual way, or None to ask the reference.

    The C parser validates (``inet_pton``: four decimal parts without leading zeros, or at most eight groups
    of at most four hex digits; what passes holds only ``[0-9A-Fa-f.:]``, at most 45 characters) and
    ``inet_ntop`` spells the bytes. A prefix length must be written as ipaddress writes it, and not be
    ``/0``; host bits must be clear. An IPv6 spelling with a dotted tail (``::1.2.3.4``, which ipaddress
    writes ``::102:304``) goes to the reference too, as does anything that raises here.
    """
    if "/" not in text:  # a host: by far the most common target, so it goes first and straight through
        if ":" not in text:
            return inet_ntop(AF_INET, inet_pton(AF_INET, text))
        return _spelled_ipv6(inet_pton(AF_INET6, text), 128)
    address, _, length = text.partition("/")
    if not _PREFIX_TEXT.fullmatch(length):
        return None
    prefixlen = int(length)
    if ":" in address:
        packed, width = inet_pton(AF_INET6, address), 128
    else:
        packed, width = inet_pton(AF_INET, address), 32
    if prefixlen > width or int.from_bytes(packed) & ((1 << (width - prefixlen)) - 1):
        return None
    spelled = inet_ntop(AF_INET, packed) if width == 32 else _spelled_ipv6(packed, prefixlen)
    if spelled is None or prefixlen == width:
        return spelled  # a host (a mapped /128 is spelled as its IPv4 address), or None
    return f"{spelled}/{prefixlen}"


def _spelled_ipv6(packed: bytes, prefixlen: int) -> str | None:
    """An IPv6 network address as ipaddress spells it (a mapped /128 as its IPv4 address), or None."""
    if prefixlen == 128 and packed[:12] == _V4_MAPPED:
        return inet_ntop(AF_INET, packed[12:])
    spelled = inet_ntop(AF_INET6, packed)
    if "." in spelled or not _RENDERED.fullmatch(spelled):
        return None
    return spelled


def target_version(target: BanTarget) -> int:
    """4 or 6."""
    return 6 if ":" in target else 4


def split_target(target: BanTarget) -> tuple[int, int, str]:
    """``(IP version, prefix length, network address)`` of a target."""
    address, slash, length = target.partition("/")
    version = 6 if ":" in address else 4
    return version, int(length) if slash else 32 if version == 4 else 128, address


def checked_timeout(element: BanElement) -> float:
    """``element.timeout_secs`` if it is a positive, finite number of seconds, else :class:`ActionError`."""
    value = element.timeout_secs
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ActionError(f"ban of {element.target!r}: timeout must be a positive number of seconds, not {value!r}")
    return float(value)


def normalize(elements: Iterable[BanElement], max_timeout_secs: float) -> dict[BanTarget, float]:
    """Validate a batch into ``{target: timeout}``, the last duplicate winning, timeouts clamped.

    The whole batch is checked before the caller runs anything, so one bad target rejects all of it.
    A restore runs this over every active ban, so the common case (a float timeout) is checked inline.
    """
    batch: dict[BanTarget, float] = {}
    clamped = 0
    for element in elements:
        target = ban_target(element.target)
        timeout = element.timeout_secs
        if type(timeout) is not float or not 0.0 < timeout < math.inf:  # NaN fails the comparison too
            timeout = checked_timeout(element)
        if timeout > max_timeout_secs:
            timeout = max_timeout_secs
            clamped += 1
        batch.pop(target, None)  # re-inserted below, so the order is that of the last mention
        batch[target] = timeout
    if clamped:
        log.warning("%d ban timeout(s) above the backend maximum were clamped to %.0f s", clamped, max_timeout_secs)
    return batch


def parse_targets(texts: Iterable[str]) -> list[BanTarget]:
    """Validate a batch of targets (for unban), duplicates removed, order kept."""
    return list(dict.fromkeys(ban_target(text) for text in texts))


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
