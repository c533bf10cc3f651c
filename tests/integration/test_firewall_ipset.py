"""The ipset + iptables backend against a real kernel, inside a network namespace this module creates and deletes.

ipsets and iptables rules are per network namespace, so nothing here touches the host. Skips with the
reason when ipset/iptables are missing (CI installs them: ``apt-get install -y ipset iptables``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from test_firewall_nftables import (  # shared namespace and traffic helpers
    apply_traffic_bans,
    expected_traffic,
    many_elements,
    missing,
    netns,
    run,
    traffic_lab,
    wait_for,
)

from bastion_guard.actions import ActionError, BanElement, IpsetFirewall

pytestmark = pytest.mark.root

TOOLS = ("ipset", "iptables", "ip6tables", "iptables-restore", "ip6tables-restore")


def in_ns(ns: str, *argv: str) -> str:
    """Run ``argv`` inside namespace ``ns``; its stdout."""
    return run("ip", "netns", "exec", ns, *argv).stdout


@pytest.fixture(scope="module")
def bastion_ns() -> Iterator[str]:
    """A namespace for this module, where ipset works (the kernel may lack ip_set)."""
    reason = missing(TOOLS)
    if reason:
        pytest.skip(f"ipset namespace tests: {reason} (apt-get install -y ipset iptables)")
    with netns("bgfw") as name:
        probe = run("ip", "netns", "exec", name, "ipset", "create", "bgfw-probe", "hash:net", check=False)
        if probe.returncode != 0:
            pytest.skip(f"ipset does not work in a namespace here: {probe.stderr.strip()}")
        run("ip", "netns", "exec", name, "ipset", "destroy", "bgfw-probe")
        yield name


@pytest.fixture
def fw(bastion_ns: str) -> IpsetFirewall:
    """The backend, started in the module's namespace with no allowlist and no bans."""
    firewall = IpsetFirewall(netns=bastion_ns)
    firewall.start()
    firewall.restore([])
    return firewall


def ban_map(fw: IpsetFirewall) -> dict[str, float]:
    """``list()`` as a dict."""
    return dict(fw.list())


def test_start_is_idempotent(fw: IpsetFirewall, bastion_ns: str) -> None:
    """A second start() keeps bans, jumps to our chain once per hook and family, allow before drop."""
    fw.ban([BanElement("198.51.100.7", 600)])
    IpsetFirewall(netns=bastion_ns).start()
    for tool, version in (("iptables", 4), ("ip6tables", 6)):
        rules = in_ns(bastion_ns, tool, "-S")
        assert rules.count("-A INPUT -j BASTION_GUARD") == 1
        assert rules.count("-A FORWARD -j BASTION_GUARD") == 1
        ours = [line for line in rules.splitlines() if line.startswith("-A BASTION_GUARD")]
        assert ours == [
            f"-A BASTION_GUARD -m set --match-set bastion_guard-allow{version} src -j RETURN",
            f"-A BASTION_GUARD -m set --match-set bastion_guard-ban{version} src -j DROP",
        ]
    assert set(ban_map(fw)) == {"198.51.100.7"}


def test_ban_shows_in_kernel_with_timeouts(fw: IpsetFirewall, bastion_ns: str) -> None:
    """IPv4 and IPv6 addresses and a /64 land in the hash:net sets with their timeouts (seconds, rounded up)."""
    fw.ban(
        [
            BanElement("203.0.113.7", 600),
            BanElement("2001:db8::1", 3600),
            BanElement("2001:db8:1:2::/64", 1.5),
        ]
    )
    v4 = in_ns(bastion_ns, "ipset", "list", "bastion_guard-ban4")
    v6 = in_ns(bastion_ns, "ipset", "list", "bastion_guard-ban6")
    assert re.search(r"^203\.0\.113\.7 timeout (59\d|600)$", v4, re.M)
    assert re.search(r"^2001:db8::1 timeout 3[56]\d\d$", v6, re.M)
    assert re.search(r"^2001:db8:1:2::/64 timeout [12]$", v6, re.M)
    assert set(ban_map(fw)) == {"203.0.113.7", "2001:db8::1", "2001:db8:1:2::/64"}


def test_reban_sets_the_new_timeout_exactly(fw: IpsetFirewall) -> None:
    """Re-banning extends or shortens an existing ban (``add -exist`` replaces the timeout)."""
    fw.ban([BanElement("203.0.113.20", 30)])
    fw.ban([BanElement("203.0.113.20", 3600)])
    assert ban_map(fw)["203.0.113.20"] >= 3590
    fw.ban([BanElement("203.0.113.20", 60)])
    assert 55 <= ban_map(fw)["203.0.113.20"] <= 60


def test_unban_absent_is_fine(fw: IpsetFirewall) -> None:
    """Unbanning never-banned targets is not an error; nested bans stay independent."""
    fw.ban([BanElement("203.0.113.30", 600), BanElement("2001:db8:5::/64", 600), BanElement("2001:db8:5::9", 60)])
    fw.unban(["203.0.113.31", "2001:db8:99::1", "203.0.113.30", "2001:db8:5::9"])
    assert set(ban_map(fw)) == {"2001:db8:5::/64"}


def test_ban_expires_in_the_kernel(fw: IpsetFirewall, bastion_ns: str) -> None:
    """A 2 s ban disappears from the kernel set by itself, within 5 s."""
    fw.ban([BanElement("203.0.113.40", 2)])
    started = time.monotonic()

    def gone() -> bool:
        return "203.0.113.40" not in in_ns(bastion_ns, "ipset", "list", "bastion_guard-ban4")

    assert not gone()
    assert wait_for(gone, timeout=5.0, step=0.05)
    print(f"\nipset: 2 s ban expired after {time.monotonic() - started:.2f} s")


def test_bad_target_rejects_the_whole_batch(fw: IpsetFirewall) -> None:
    """A malformed target raises ActionError before anything runs."""
    for bad in ("203.0.113.50 timeout 0", "203.0.113.50\nflush", "::g", "0.0.0.0/0"):
        with pytest.raises(ActionError):
            fw.ban([BanElement("203.0.113.51", 600), BanElement(bad, 600)])
    assert ban_map(fw) == {}


def test_restore_replaces_everything(fw: IpsetFirewall) -> None:
    """restore() of 100,000 elements completes (temporary set + swap) and a second restore replaces them."""
    elements = many_elements(100_000)
    started = time.perf_counter()
    fw.restore(elements)
    took = time.perf_counter() - started
    print(f"\nipset: restore of {len(elements):,} bans took {took:.2f} s (fill + swap per family)")
    listed = ban_map(fw)
    assert len(listed) == len(elements)
    fw.restore([BanElement("203.0.113.60", 60)])
    assert set(ban_map(fw)) == {"203.0.113.60"}


def test_real_traffic(fw: IpsetFirewall, bastion_ns: str) -> None:
    """Banned sources (address, v4 network, v6 /64) time out; others and an allowlisted banned one connect."""
    with traffic_lab(bastion_ns) as lab:
        assert set(lab.connect_all().values()) == {"ok"}
        apply_traffic_bans(fw)
        assert lab.connect_all() == expected_traffic()
        fw.unban(["10.231.0.3", "10.231.0.8/29", "fd31:231:1:b::/64"])
        assert set(lab.connect_all().values()) == {"ok"}
    fw.set_allowlist([])


def test_remove_deletes_everything(bastion_ns: str) -> None:
    """remove() deletes jumps, chain and sets; a second remove() is fine."""
    fw = IpsetFirewall(netns=bastion_ns, prefix="bg_rm", chain="BG_RM")
    fw.start(allow=["10.0.0.0/8"])
    fw.ban([BanElement("203.0.113.70", 600)])
    fw.stop()
    assert [t for t, _ in IpsetFirewall(netns=bastion_ns, prefix="bg_rm", chain="BG_RM").list()] == ["203.0.113.70"]
    fw.remove()
    fw.remove()
    assert "bg_rm" not in in_ns(bastion_ns, "ipset", "list", "-n")
    assert "BG_RM" not in in_ns(bastion_ns, "iptables", "-S") + in_ns(bastion_ns, "ip6tables", "-S")
