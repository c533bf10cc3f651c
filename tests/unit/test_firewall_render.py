"""Firewall rendering without root: nft and ipset scripts, target validation, listings, dry-run and registry."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from bastion_guard.actions import (
    FIREWALLS,
    ActionError,
    BanElement,
    DryRunFirewall,
    ipset_script,
    make_firewall,
    nft_script,
)
from bastion_guard.actions.ipset import IpsetFirewall
from bastion_guard.actions.nft_script import Layout
from bastion_guard.actions.nftables import NftablesFirewall
from bastion_guard.actions.runner import Runner
from bastion_guard.actions.targets import normalize, parse_network, parse_target

MALFORMED = (
    "1.2.3.4; flush ruleset",
    "1.2.3.4\n",
    "1.2.3.4 ",
    " 1.2.3.4",
    "::g",
    "fe80::1%eth0",
    "fe80::1%eth0; flush ruleset",
    "",
    "1.2.3.4/33",
    "10.0.0.5/24",  # host bits set: refused, not guessed
    "01.2.3.4",
    "1.2.3.4 timeout 0",
    "1.2.3.4 }; delete table inet bastion_guard; add element inet bastion_guard ban4 { 5.6.7.8",
    "example.com",
    "0.0.0.0/0",
    "::/0",
)


class RecordingRunner(Runner):
    """A runner that records commands instead of running them (and pretends every tool exists)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[list[str], str]] = []

    def require(self, tool: str, package: str) -> None:
        """Every tool is there."""

    def run(self, argv: Sequence[str], stdin: str = "", what: str = "") -> str:
        """Record and answer with an empty nft listing."""
        self.calls.append((list(argv), stdin))
        return '{"nftables": []}'


def nft_with_recorder() -> tuple[NftablesFirewall, RecordingRunner]:
    """An nftables backend whose commands are recorded, as if started on an empty table."""
    fw = NftablesFirewall()
    recorder = RecordingRunner()
    fw.runner = recorder
    fw.start()
    recorder.calls.clear()
    return fw, recorder


# ----------------------------------------------------------------------------------------------- targets


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_targets_are_rejected(text: str) -> None:
    """Anything but a plain IP address or network is an ActionError, never script text."""
    with pytest.raises(ActionError):
        parse_target(text)


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_target_fails_the_batch_before_any_command(text: str) -> None:
    """One bad target in a batch rejects it whole: no nft command is run."""
    fw, recorder = nft_with_recorder()
    with pytest.raises(ActionError):
        fw.ban([BanElement("203.0.113.1", 60), BanElement(text, 60)])
    with pytest.raises(ActionError):
        fw.unban(["203.0.113.1", text])
    assert recorder.calls == []


@pytest.mark.parametrize("target", [None, 1234, b"1.2.3.4", ["1.2.3.4"]])
def test_non_string_targets_are_rejected(target: object) -> None:
    """A target that is not text at all is refused too."""
    with pytest.raises(ActionError):
        parse_target(target)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.7/32", "203.0.113.7/32"),
        ("2001:DB8::1", "2001:db8::1/128"),
        ("2001:db8:0:0:1::/80", "2001:db8:0:0:1::/80"),
        ("::ffff:198.51.100.9", "198.51.100.9/32"),
        ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),
    ],
)
def test_targets_are_canonical(text: str, canonical: str) -> None:
    """Targets are parsed into their canonical network (IPv4-mapped IPv6 becomes IPv4)."""
    assert parse_target(text) == ipaddress.ip_network(canonical)


def test_allowlist_may_hold_everything() -> None:
    """``/0`` is refused as a ban but accepted in an allowlist (a deliberate, if odd, configuration)."""
    assert parse_network("0.0.0.0/0").prefixlen == 0


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, True, "60", None])
def test_bad_timeouts_are_rejected(timeout: object) -> None:
    """A timeout must be a positive, finite number of seconds."""
    with pytest.raises(ActionError, match="timeout"):
        normalize([BanElement("203.0.113.1", timeout)], 3600)  # type: ignore[arg-type]


def test_normalize_dedupes_and_clamps(caplog: pytest.LogCaptureFixture) -> None:
    """The last duplicate wins, /32 and plain spellings are one target, oversize timeouts are clamped."""
    with caplog.at_level(logging.WARNING):
        batch = normalize(
            [BanElement("203.0.113.1", 60), BanElement("203.0.113.2", 10**9), BanElement("203.0.113.1/32", 90)],
            3600,
        )
    assert list(batch.items()) == [("203.0.113.2", 3600), ("203.0.113.1", 90)]
    assert "clamped" in caplog.text


# -------------------------------------------------------------------------------------------- nft scripts


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m"), (90, "1m30s"), (1.5, "1s500ms"), (0.0001, "1ms"), (3600 * 25 + 0.25, "1d1h250ms"), (59.9999, "1m")],
)
def test_format_timeout(seconds: float, text: str) -> None:
    """Timeouts become nft time values split into units, rounded up to the millisecond."""
    assert nft_script.format_timeout(seconds) == text


def test_setup_script() -> None:
    """start() renders the table, sets, both chains (allow before drop) and the allowlist."""
    allow = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    script = nft_script.render_setup(Layout(), [(6, 64)], allow)
    assert script.splitlines() == [
        "add table inet bastion_guard",
        "add set inet bastion_guard allow4 { type ipv4_addr; flags interval; }",
        "add set inet bastion_guard allow6 { type ipv6_addr; flags interval; }",
        "add set inet bastion_guard ban4 { type ipv4_addr; flags timeout; }",
        "add set inet bastion_guard ban6_64 { type ipv6_addr; flags timeout; }",
        "add set inet bastion_guard ban6 { type ipv6_addr; flags timeout; }",
        *(
            line
            for hook in ("input", "forward")
            for line in (
                f"add chain inet bastion_guard {hook} {{ type filter hook {hook} priority -5; policy accept; }}",
                f"flush chain inet bastion_guard {hook}",
                f"add rule inet bastion_guard {hook} ip saddr @allow4 accept",
                f"add rule inet bastion_guard {hook} ip6 saddr @allow6 accept",
                f"add rule inet bastion_guard {hook} ip saddr @ban4 counter drop",
                f"add rule inet bastion_guard {hook} ip6 saddr & ffff:ffff:ffff:ffff:: @ban6_64 counter drop",
                f"add rule inet bastion_guard {hook} ip6 saddr @ban6 counter drop",
            )
        ),
        "flush set inet bastion_guard allow4",
        "add element inet bastion_guard allow4 { 10.0.0.0/8 }",
        "flush set inet bastion_guard allow6",
        "add element inet bastion_guard allow6 { fd00::/8 }",
    ]


def test_ban_script_for_given_elements() -> None:
    """One batch: a new prefix set with its rules, ensure + delete the known ones, one add per set."""
    fw, recorder = nft_with_recorder()
    fw.ban(
        [
            BanElement("203.0.113.7", 600),
            BanElement("203.0.113.8/32", 60),
            BanElement("2001:db8::1", 3600),
            BanElement("2001:db8:1:2::/64", 1.5),
        ]
    )
    assert len(recorder.calls) == 1
    argv, script = recorder.calls[0]
    assert argv == ["nft", "-f", "-"]
    assert script.splitlines() == [
        "add set inet bastion_guard ban6_64 { type ipv6_addr; flags timeout; }",
        "add rule inet bastion_guard input ip6 saddr & ffff:ffff:ffff:ffff:: @ban6_64 counter drop",
        "add rule inet bastion_guard forward ip6 saddr & ffff:ffff:ffff:ffff:: @ban6_64 counter drop",
        "add element inet bastion_guard ban4 { 203.0.113.7 timeout 1s, 203.0.113.8 timeout 1s }",
        "delete element inet bastion_guard ban4 { 203.0.113.7, 203.0.113.8 }",
        "add element inet bastion_guard ban6 { 2001:db8::1 timeout 1s }",
        "delete element inet bastion_guard ban6 { 2001:db8::1 }",
        "add element inet bastion_guard ban4 { 203.0.113.7 timeout 10m, 203.0.113.8 timeout 1m }",
        "add element inet bastion_guard ban6_64 { 2001:db8:1:2:: timeout 1s500ms }",
        "add element inet bastion_guard ban6 { 2001:db8::1 timeout 1h }",
    ]
    fw.ban([BanElement("2001:db8:3:4::/64", 60)])  # the set exists now: no second set, no second rule
    assert recorder.calls[1][1].splitlines() == [
        "add element inet bastion_guard ban6_64 { 2001:db8:3:4:: timeout 1s }",
        "delete element inet bastion_guard ban6_64 { 2001:db8:3:4:: }",
        "add element inet bastion_guard ban6_64 { 2001:db8:3:4:: timeout 1m }",
    ]


def test_unban_script_skips_sets_that_do_not_exist() -> None:
    """Unban ensures then deletes, and has nothing to do for a prefix length that has no set."""
    fw, recorder = nft_with_recorder()
    fw.unban(["10.1.0.0/16"])
    assert recorder.calls == []
    fw.unban(["203.0.113.7", "203.0.113.7"])
    assert recorder.calls[0][1].splitlines() == [
        "add element inet bastion_guard ban4 { 203.0.113.7 timeout 1s }",
        "delete element inet bastion_guard ban4 { 203.0.113.7 }",
    ]


def test_restore_is_one_script_with_chunked_statements() -> None:
    """restore() flushes every ban set and adds in statements of at most CHUNK elements, in one nft call."""
    fw, recorder = nft_with_recorder()
    count = nft_script.CHUNK * 2 + 1
    fw.restore([BanElement(str(ipaddress.IPv4Address(0x0A000000 + i)), 60) for i in range(count)])
    assert len(recorder.calls) == 1
    lines = recorder.calls[0][1].splitlines()
    assert lines[:2] == ["flush set inet bastion_guard ban4", "flush set inet bastion_guard ban6"]
    adds = [line for line in lines if line.startswith("add element inet bastion_guard ban4 {")]
    assert [line.count(" timeout ") for line in adds] == [nft_script.CHUNK, nft_script.CHUNK, 1]


def test_layout_names_are_validated() -> None:
    """Table names, hooks, priorities and namespace names cannot smuggle text into a command."""
    for bad in ({"table": "t; flush ruleset"}, {"hooks": ["output"]}, {"priority": -300}, {"netns": "-n"}):
        with pytest.raises(ActionError):
            NftablesFirewall(**bad)
    with pytest.raises(ActionError):
        IpsetFirewall(prefix="x y")


def test_parse_listing() -> None:
    """``nft -j list table`` output becomes (target, seconds left); other tables' sets are ignored."""
    payload = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "bastion_guard"}},
            {"set": {"family": "inet", "table": "bastion_guard", "name": "ban4", "elem": [
                {"elem": {"val": "203.0.113.7", "timeout": 600, "expires": 599}}, "192.0.2.1",
            ]}},
            {"set": {"family": "inet", "table": "bastion_guard", "name": "ban6_64", "elem": [
                {"elem": {"val": "2001:db8:1:2::", "timeout": 60, "expires": 59}},
            ]}},
            {"set": {"family": "inet", "table": "bastion_guard", "name": "allow4", "elem": ["10.0.0.0/8"]}},
            {"set": {"family": "inet", "table": "f2b-table", "name": "ban4", "elem": ["198.51.100.1"]}},
        ]
    }
    found = nft_script.parse_sets(json.dumps(payload), "bastion_guard")
    assert found == {
        (4, 32): [(ipaddress.ip_network("203.0.113.7/32"), 599.0), (ipaddress.ip_network("192.0.2.1/32"), math.inf)],
        (6, 64): [(ipaddress.ip_network("2001:db8:1:2::/64"), 59.0)],
    }
    with pytest.raises(ActionError):
        nft_script.parse_sets("not json", "bastion_guard")


def test_missing_tool_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nft (or ipset) on PATH, start() says which tool and package are missing."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ActionError, match="'nft' not found on PATH: install the nftables package"):
        NftablesFirewall().start()
    with pytest.raises(ActionError, match="'ipset' not found"):
        IpsetFirewall().start()


# ------------------------------------------------------------------------------------------- ipset scripts


def test_ipset_ban_and_unban_scripts() -> None:
    """ipset batches: ``add -exist`` with whole seconds rounded up, ``del -exist`` for unbans."""
    layout = ipset_script.IpsetLayout()
    bans = normalize([BanElement("203.0.113.7", 600), BanElement("2001:db8:1:2::/64", 1.2)], 10**6)
    assert ipset_script.render_ban(layout, bans).splitlines() == [
        "add bastion_guard-ban4 203.0.113.7 timeout 600 -exist",
        "add bastion_guard-ban6 2001:db8:1:2::/64 timeout 2 -exist",
    ]
    assert ipset_script.render_unban(layout, list(bans)).splitlines() == [
        "del bastion_guard-ban4 203.0.113.7 -exist",
        "del bastion_guard-ban6 2001:db8:1:2::/64 -exist",
    ]
    assert ipset_script.ipset_seconds(0.001) == 1  # never 0: that would mean "for ever"


def test_ipset_restore_swaps_in_a_filled_set() -> None:
    """restore() fills a temporary set per family and swaps it in."""
    bans = normalize([BanElement("203.0.113.7", 60)], 10**6)
    script = ipset_script.render_replace_bans(ipset_script.IpsetLayout(), bans)
    assert script.splitlines()[:5] == [
        "create bastion_guard-ban4-tmp hash:net family inet maxelem 1048576 timeout 0 -exist",
        "flush bastion_guard-ban4-tmp",
        "add bastion_guard-ban4-tmp 203.0.113.7 timeout 60",
        "swap bastion_guard-ban4-tmp bastion_guard-ban4",
        "destroy bastion_guard-ban4-tmp",
    ]


def test_ipset_parse_save() -> None:
    """``ipset save`` lines become (network, seconds left); timeout 0 means for ever."""
    payload = (
        "create bastion_guard-ban4 hash:net family inet hashsize 1024 maxelem 1048576 timeout 0\n"
        "add bastion_guard-ban4 203.0.113.7 timeout 599\n"
        "add bastion_guard-ban4 10.0.0.0/24 timeout 0\n"
        "add other-set 192.0.2.1 timeout 5\n"
    )
    assert ipset_script.parse_save(payload, "bastion_guard-ban4") == [
        (ipaddress.ip_network("203.0.113.7/32"), 599.0),
        (ipaddress.ip_network("10.0.0.0/24"), math.inf),
    ]


# ------------------------------------------------------------------------------------- dry-run and registry


def test_dry_run_model() -> None:
    """The dry-run backend keeps bans with deadlines, expires them on its clock and unbans quietly."""
    now = [1000.0]
    fw = DryRunFirewall(clock=lambda: now[0])
    fw.start(allow=["10.0.0.0/8"])
    fw.ban([BanElement("203.0.113.7", 60), BanElement("2001:db8:1:2::/64", 600)])
    fw.ban([BanElement("203.0.113.7", 120)])
    assert sorted(fw.list()) == [("2001:db8:1:2::/64", 600.0), ("203.0.113.7", 120.0)]
    now[0] += 121
    assert fw.list() == [("2001:db8:1:2::/64", 479.0)]
    fw.unban(["2001:db8:1:2::/64", "198.51.100.1"])
    assert fw.list() == []
    with pytest.raises(ActionError):
        fw.ban([BanElement("1.2.3.4; flush ruleset", 60)])


def test_registry() -> None:
    """make_firewall builds by name and names the known backends when asked for an unknown one."""
    assert set(FIREWALLS) == {"nftables", "ipset", "dry-run"}
    assert isinstance(make_firewall("dry-run", netns=None), DryRunFirewall)
    assert isinstance(make_firewall("nftables", netns="bgfw-x"), NftablesFirewall)
    with pytest.raises(ActionError, match="known firewalls are dry-run, ipset, nftables"):
        make_firewall("iptables")
    with pytest.raises(ActionError, match="firewall 'nftables'"):
        make_firewall("nftables", colour="blue")
