"""The restore's fast path against the reference: same scripts byte for byte, same refusals word for word.

Ban targets are validated with ``inet_pton``/``inet_ntop`` into canonical text (``targets.ban_target``);
the reference is the :mod:`ipaddress` path they replaced, written out here as it was: ``parse_target`` into
a network (still the package's validator for everything the fast path hands over), ``str()`` of its
address, and the unit-by-unit ``format_timeout`` loop. Hypothesis generates addresses and networks in
every spelling (IPv4, IPv6 compressed, exploded and upper case, IPv4-mapped and -compatible, prefixes
written as lengths, netmasks and hostmasks, host bits set, ``/0``), duplicates across spellings, timeouts
above the backends' maxima, and garbage; each batch is rendered by both paths for nftables (restore and
ban) and ipset (restore, ban and unban).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bastion_guard.actions import ActionError, BanElement, ipset_script, nft_script
from bastion_guard.actions.nft_script import Layout, SetKey
from bastion_guard.actions.targets import (
    BanTarget,
    Network,
    _spelled_fast,
    ban_target,
    checked_timeout,
    normalize,
    parse_target,
    parse_targets,
    render_target,
)

# ----------------------------------------------------------------------------------- the reference path


def reference_normalize(elements: Iterable[BanElement], max_timeout_secs: float) -> dict[Network, float]:
    """``normalize`` as it was: ipaddress networks, the last duplicate winning, timeouts clamped."""
    batch: dict[Network, float] = {}
    for element in elements:
        network = parse_target(element.target)
        timeout = min(checked_timeout(element), max_timeout_secs)
        batch.pop(network, None)
        batch[network] = timeout
    return batch


def reference_format_timeout(seconds: float) -> str:
    """``format_timeout`` as it was: one unit after another, rounded up to the millisecond."""
    remaining = max(1, math.ceil(seconds * 1000 - 1e-6))
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def reference_statements(verb: str, name: str, items: list[str]) -> list[str]:
    """``<verb> element`` statements of at most CHUNK items each."""
    step = nft_script.CHUNK
    return [
        f"{verb} element inet bastion_guard {name} {{ {', '.join(items[i : i + step])} }}"
        for i in range(0, len(items), step)
    ]


def reference_add_bans(bans: Mapping[Network, float]) -> list[str]:
    """The ``add element`` statements of a batch, per set in key order, elements in batch order."""
    grouped: dict[SetKey, list[str]] = {}
    for network, timeout in bans.items():
        item = f"{network.network_address} timeout {reference_format_timeout(timeout)}"
        grouped.setdefault((network.version, network.prefixlen), []).append(item)
    key_name = nft_script.set_name
    return [line for key in sorted(grouped) for line in reference_statements("add", key_name(key), grouped[key])]


def reference_nft_restore(existing: set[SetKey], bans: Mapping[Network, float]) -> str:
    """The restore script: flush every known set, create the missing ones, add everything."""
    new = {(network.version, network.prefixlen) for network in bans} - existing
    lines = [f"flush set inet bastion_guard {nft_script.set_name(key)}" for key in sorted(existing)]
    lines.extend(nft_script.render_new_sets(Layout(), new))
    lines.extend(reference_add_bans(bans))
    return "\n".join(lines) + "\n"


def reference_nft_update(known: set[SetKey], bans: Mapping[Network, float]) -> str:
    """The ban script: new sets, ensure + delete of the targets in known sets, then the adds."""
    new = {(network.version, network.prefixlen) for network in bans} - known
    lines = nft_script.render_new_sets(Layout(), new)
    doomed: dict[SetKey, list[str]] = {}
    for network in bans:
        if (network.version, network.prefixlen) in known:
            doomed.setdefault((network.version, network.prefixlen), []).append(str(network.network_address))
    for key, addresses in doomed.items():
        lines.extend(reference_statements("add", nft_script.set_name(key), [f"{a} timeout 1s" for a in addresses]))
        lines.extend(reference_statements("delete", nft_script.set_name(key), addresses))
    lines.extend(reference_add_bans(bans))
    return "\n".join(lines) + "\n"


def reference_ipset_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


def reference_ipset_restore(bans: Mapping[Network, float]) -> str:
    """Per family: fill a temporary set, swap it in, destroy the temporary one."""
    out = []
    for version, family in ((4, "inet"), (6, "inet6")):
        name = f"bastion_guard-ban{version}"
        out.append(f"create {name}-tmp hash:net family {family} maxelem 1048576 timeout 0 -exist\nflush {name}-tmp\n")
        for network, timeout in bans.items():
            if network.version == version:
                out.append(f"add {name}-tmp {render_target(network)} timeout {reference_ipset_seconds(timeout)}\n")
        out.append(f"swap {name}-tmp {name}\ndestroy {name}-tmp\n")
    return "".join(out)


def reference_ipset_ban(bans: Mapping[Network, float]) -> str:
    return "".join(
        f"add bastion_guard-ban{n.version} {render_target(n)} timeout {reference_ipset_seconds(t)} -exist\n"
        for n, t in bans.items()
    )


def reference_ipset_unban(networks: Iterable[Network]) -> str:
    return "".join(f"del bastion_guard-ban{n.version} {render_target(n)} -exist\n" for n in networks)


# ----------------------------------------------------------------------------------------- strategies

_IPV4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@st.composite
def _ipv6(draw: st.DrawFn) -> ipaddress.IPv6Address:
    """Addresses with runs of zero groups in varied places, where spellings differ most."""
    groups = draw(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001, 0xABCD]) | st.integers(0, 0xFFFF),
                           min_size=8, max_size=8))
    return ipaddress.IPv6Address(int.from_bytes(b"".join(g.to_bytes(2) for g in groups)))


def _spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    if address.version == 4:
        mapped = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
        return st.sampled_from(
            [str(address), str(mapped), mapped.exploded, f"::ffff:{address}", f"::FFFF:{address}", f"::{address}"]
        )
    return st.sampled_from([str(address), address.exploded, str(address).upper(), address.exploded.upper()])


@st.composite
def _network_text(draw: st.DrawFn) -> str:
    """A network in one of ipaddress's spellings, sometimes with host bits set or an out-of-range prefix."""
    address = draw(_IPV4 | _ipv6())
    width = address.max_prefixlen
    prefixlen = draw(st.integers(0, width + 2))
    if prefixlen <= width and draw(st.booleans()):  # clear the host bits: a valid network
        address = ipaddress.ip_network((address, prefixlen), strict=False).network_address
    text = draw(_spellings(address))
    if prefixlen > width or ("." in text and ":" in text):
        return f"{text}/{prefixlen}"
    network = ipaddress.ip_network((address, min(prefixlen, width)), strict=False)
    forms = [f"{text}/{prefixlen}", f"{text}/0{prefixlen}", f"{text}/{prefixlen} "]
    if address.version == 4:
        forms += [f"{text}/{network.netmask}", f"{text}/{network.hostmask}"]
    return draw(st.sampled_from(forms))


_GARBAGE = st.text(alphabet="0123456789abcdefABCDEF:./%x ;\n{}", max_size=52) | st.text(max_size=20)
TARGET_TEXT = (
    _IPV4.flatmap(_spellings) | _ipv6().flatmap(_spellings) | _network_text() | _GARBAGE
)
WELL_FORMED = _IPV4.flatmap(_spellings) | _ipv6().flatmap(_spellings)
TIMEOUT = st.floats(min_value=1e-4, max_value=2e8, allow_nan=False) | st.integers(1, 10**9)


@st.composite
def _batches(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> list[BanElement]:
    """Elements drawn from a small pool of targets, so the same target comes back in other spellings."""
    pool = draw(st.lists(texts, min_size=1, max_size=12))
    picks = draw(st.lists(st.sampled_from(pool) | texts, min_size=1, max_size=40))
    return [BanElement(text, draw(TIMEOUT)) for text in picks]


def _may_spell_dotted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether inet_ntop may write an IPv4 tail: IPv4-mapped (``::ffff:a.b.c.d``) and IPv4-compatible
    (``::a.b.c.d``, the seventh group not 0) addresses; the fast path hands those to the reference."""
    packed = address.packed
    return address.version == 6 and packed[:10] == bytes(10) and (
        packed[10:12] == b"\xff\xff" or (packed[10:12] == bytes(2) and packed[12:14] != bytes(2))
    )


def _outcome(render: object, *args: object) -> str:
    """What a call gave: its text, or the refusal it raised."""
    try:
        return str(render(*args))  # type: ignore[operator]
    except ActionError as error:
        return f"ActionError: {error}"


def _as_targets(bans: Mapping[Network, float]) -> dict[BanTarget, float]:
    return {BanTarget(render_target(network)): timeout for network, timeout in bans.items()}


# ------------------------------------------------------------------------------------------------ tests


@settings(max_examples=2000, deadline=None)
@given(TARGET_TEXT)
@example("::1.2.3.4")  # inet_ntop writes a dotted tail; ipaddress writes ::102:304
@example("::ffff:1.2.3.0/120")
@example("10.0.0.0/255.0.0.0")
@example("fe80::1%eth0")
def test_each_target_is_spelled_or_refused_as_the_reference_does(text: str) -> None:
    """ban_target gives the reference's canonical spelling, or the reference's refusal, for any text."""
    assert _outcome(ban_target, text) == _outcome(lambda t: render_target(parse_target(t)), text)


@pytest.mark.parametrize("target", [None, 1234, b"1.2.3.4", ["1.2.3.4"], 1.5])
def test_non_text_is_refused_as_the_reference_does(target: object) -> None:
    """Whatever is not a string gets the reference's refusal, not a TypeError."""
    assert _outcome(ban_target, target).startswith("ActionError: not an IP address or network")
    assert _outcome(ban_target, target) == _outcome(parse_target, target)


@settings(max_examples=500, deadline=None)
@given(WELL_FORMED)
def test_plain_addresses_take_the_fast_path(text: str) -> None:
    """Every address written the usual way is read by the C parser (no ipaddress object), except an IPv6
    address inet_ntop spells with a dotted tail; the speed of a restore depends on it."""
    spelled = _spelled_fast(text)
    if spelled is None:
        assert _may_spell_dotted(ipaddress.ip_address(text))
    else:
        assert spelled == render_target(parse_target(text))


@settings(max_examples=300, deadline=None)
@given(_IPV4 | _ipv6(), st.data())
def test_valid_networks_take_the_fast_path(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    """A network written as ipaddress writes it (host bits clear, a plain length) is read by the fast path too."""
    prefixlen = data.draw(st.integers(1, address.max_prefixlen))
    network = ipaddress.ip_network((address, prefixlen), strict=False)
    spelled = _spelled_fast(str(network))
    if spelled is None:
        assert _may_spell_dotted(network.network_address)
    else:
        assert spelled == render_target(parse_target(str(network)))


@settings(max_examples=400, deadline=None)
@given(_batches(TARGET_TEXT), st.sets(st.sampled_from([(4, 24), (6, 64), (6, 48)])))
def test_nft_restore_scripts_are_byte_identical(elements: list[BanElement], prefix_sets: set[SetKey]) -> None:
    """restore's script from the fast path equals the reference's, byte for byte (or both refuse the batch,
    with the same message)."""
    existing = {*nft_script.HOST_KEYS, *prefix_sets}
    cap = nft_script.MAX_TIMEOUT_SECS / 2  # some timeouts above it: clamped by both

    def fast() -> str:
        bans = normalize(elements, cap)
        new = {nft_script.set_key(target) for target in bans} - existing
        return nft_script.render_restore(Layout(), existing, new, bans)

    assert _outcome(fast) == _outcome(lambda: reference_nft_restore(existing, reference_normalize(elements, cap)))


@settings(max_examples=300, deadline=None)
@given(_batches(TARGET_TEXT), st.sets(st.sampled_from([(4, 24), (6, 64)])))
def test_nft_ban_scripts_are_byte_identical(elements: list[BanElement], prefix_sets: set[SetKey]) -> None:
    """ban()'s script (ensure, delete, add) from the fast path equals the reference's."""
    known = {*nft_script.HOST_KEYS, *prefix_sets}

    def fast() -> str:
        bans = normalize(elements, nft_script.MAX_TIMEOUT_SECS)
        new = {nft_script.set_key(target) for target in bans} - known
        doomed = [target for target in bans if nft_script.set_key(target) in known]
        return nft_script.render_update(Layout(), new, doomed, bans)

    reference = _outcome(lambda: reference_nft_update(known, reference_normalize(elements, nft_script.MAX_TIMEOUT_SECS)))
    assert _outcome(fast) == reference


@settings(max_examples=300, deadline=None)
@given(_batches(TARGET_TEXT))
def test_ipset_streams_are_byte_identical(elements: list[BanElement]) -> None:
    """The ipset backend's restore, ban and unban streams equal the reference's (timeouts clamped at its
    smaller maximum)."""
    layout = ipset_script.IpsetLayout()
    cap = ipset_script.MAX_TIMEOUT_SECS

    def fast() -> str:
        bans = normalize(elements, cap)
        return (ipset_script.render_replace_bans(layout, bans) + ipset_script.render_ban(layout, bans)
                + ipset_script.render_unban(layout, parse_targets(e.target for e in elements)))

    def reference() -> str:
        bans = reference_normalize(elements, cap)
        unbans = list(dict.fromkeys(parse_target(e.target) for e in elements))
        return reference_ipset_restore(bans) + reference_ipset_ban(bans) + reference_ipset_unban(unbans)

    assert _outcome(fast) == _outcome(reference)


@settings(max_examples=200, deadline=None)
@given(_batches(WELL_FORMED))
def test_batches_keep_the_reference_order_and_values(elements: list[BanElement]) -> None:
    """normalize keeps what the reference keeps: one entry per target, in order of last mention, same timeouts."""
    assert normalize(elements, 3600.0) == _as_targets(reference_normalize(elements, 3600.0))
    assert list(normalize(elements, 3600.0)) == list(_as_targets(reference_normalize(elements, 3600.0)))


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=1e-9, max_value=nft_script.MAX_TIMEOUT_SECS, allow_nan=False) | st.integers(1, 10**8))
@example(59.9999)
@example(0.0001)
@example(86_400.0)
def test_format_timeout_matches_the_unit_loop(seconds: float) -> None:
    """The unrolled format_timeout writes what the loop wrote."""
    assert nft_script.format_timeout(seconds) == reference_format_timeout(seconds)


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan, math.inf, -math.inf, True, "60", None])
def test_bad_timeouts_are_refused_as_the_reference_does(timeout: object) -> None:
    """The inline float check hands every other timeout to checked_timeout, which refuses it."""
    elements = [BanElement("203.0.113.1", 60.0), BanElement("203.0.113.2", timeout)]  # type: ignore[arg-type]
    fast = _outcome(normalize, elements, 3600.0)
    assert fast.startswith("ActionError: ban of '203.0.113.2': timeout must be")
    assert fast == _outcome(reference_normalize, elements, 3600.0)
