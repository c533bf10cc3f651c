"""Client addresses as sshd logs them, reduced to one canonical spelling.

sshd writes the numeric address (``1.2.3.4``, ``2001:db8::1``, ``::ffff:1.2.3.4``) unless ``UseDNS yes``,
in which case it writes the client's reverse-DNS name: text chosen by whoever controls that DNS zone.
Names are therefore returned separately and are never resolved here or anywhere else.
"""

from __future__ import annotations

import ipaddress

_CACHE_LIMIT = 1 << 16
_cache: dict[str, str | None] = {}


def canonical_ip(text: str) -> str | None:
    """Return the canonical form of an IP literal, or ``None`` when ``text`` is not one.

    ``::ffff:a.b.c.d`` becomes ``a.b.c.d``; IPv6 is compressed and lower case; a zone id is dropped.
    Leading-zero dotted quads (``192.030.0.6``) are not addresses: sshd never prints them, so such text
    can only be a DNS name, and inet_aton would read it as octal anyway.
    """
    try:
        return _cache[text]
    except KeyError:
        pass
    result = _parse(text)
    if len(_cache) >= _CACHE_LIMIT:
        # Attack traffic repeats addresses; a full reset keeps memory bounded without LRU bookkeeping.
        _cache.clear()
    _cache[text] = result
    return result


def _parse(text: str) -> str | None:
    candidate = text
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    if "%" in candidate:
        candidate = candidate.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def split_client(text: str) -> tuple[str | None, str | None]:
    """Split sshd's client field into ``(ip, hostname)``; exactly one of them is set for non-empty text."""
    ip = canonical_ip(text)
    if ip is not None:
        return ip, None
    if not text or text in ("UNKNOWN", "unknown"):
        return None, None
    return None, text
