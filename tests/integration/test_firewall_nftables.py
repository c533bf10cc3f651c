"""The nftables backend against a real kernel, inside a network namespace this module creates and deletes.

Nothing touches the host's ruleset: every nft command runs as ``ip netns exec bgfw-<random> nft ...``.
The traffic test adds a second namespace joined by a veth pair (10.231.0.0/24 and fd31:231:1::/48, both
private to the namespaces) and checks real TCP connects against a listener in the bastion namespace.

The namespace and traffic helpers below are also used by ``test_firewall_ipset.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from netns import wait_until as wait_for

from bastion_guard.actions import ActionError, BanElement, Firewall, NftablesFirewall

pytestmark = pytest.mark.root

LISTEN_PORT = 2222  # inside our own namespace, so it cannot collide with anything
CONNECT_TIMEOUT = 1.5  # seconds a client waits for a SYN-ACK; a dropped SYN is a timeout
BASTION_V4, BASTION_V6 = "10.231.0.1", "fd31:231:1::1"
CLIENTS_V4 = ("10.231.0.2", "10.231.0.3", "10.231.0.5", "10.231.0.9")
CLIENTS_V6 = ("fd31:231:1:a::2", "fd31:231:1:b::2")

# ------------------------------------------------------------------------------- helpers (shared with ipset)


def missing(tools: Sequence[str]) -> str | None:
    """Why namespace firewall tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, firewall changes inside a namespace)"
    absent = [tool for tool in ("ip", *tools) if shutil.which(tool) is None]
    if absent:
        return f"missing tools: {', '.join(absent)}"
    return None


def run(*argv: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (argv, no shell) with a 30 s bound; raise with its stderr when ``check`` and it fails."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@contextlib.contextmanager
def netns(prefix: str) -> Iterator[str]:
    """A fresh network namespace ``<prefix>-<random>``; its processes are killed and it is deleted afterwards."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    made = run("ip", "netns", "add", name, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        run("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        pids = run("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:  # only processes inside our own, uniquely named namespace
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "del", name, check=False)


SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello\\n")
    c.close()
"""

CLIENT = """
import json, socket, sys, threading
port, timeout, dst4, dst6, sources = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
results = {}
def attempt(src):
    six = ":" in src
    s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect((dst6 if six else dst4, port))
        results[src] = "ok" if s.recv(16) == b"hello\\n" else "bad reply"
    except socket.timeout:
        results[src] = "timeout"
    except OSError as exc:
        results[src] = f"error: {exc}"
    finally:
        s.close()
threads = [threading.Thread(target=attempt, args=(src,)) for src in sources]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
"""


@dataclass
class Lab:
    """A client namespace wired to the bastion namespace, with a TCP listener in the bastion."""

    bastion: str
    client: str

    def connect_all(self) -> dict[str, str]:
        """Connect from every client address at once; ``{source: "ok" | "timeout" | "error: ..."}``."""
        done = run(
            "ip", "netns", "exec", self.client, sys.executable, "-c", CLIENT, str(LISTEN_PORT),
            str(CONNECT_TIMEOUT), BASTION_V4, BASTION_V6, *CLIENTS_V4, *CLIENTS_V6,
        )
        results: dict[str, str] = json.loads(done.stdout)
        return results


@contextlib.contextmanager
def traffic_lab(bastion: str) -> Iterator[Lab]:
    """Client namespace + veth pair + listener on port 2222 in ``bastion``; all removed afterwards."""
    with netns("bgfc") as client:
        tag = secrets.token_hex(3)
        near, far = f"bgb{tag}", f"bgc{tag}"  # veth names must stay within 15 characters
        run("ip", "link", "add", far, "netns", client, "type", "veth", "peer", "name", near, "netns", bastion)
        run("ip", "-n", bastion, "addr", "add", f"{BASTION_V4}/24", "dev", near)
        run("ip", "-n", bastion, "addr", "add", f"{BASTION_V6}/48", "dev", near, "nodad")
        for address in CLIENTS_V4:
            run("ip", "-n", client, "addr", "add", f"{address}/24", "dev", far)
        for address in CLIENTS_V6:
            run("ip", "-n", client, "addr", "add", f"{address}/48", "dev", far, "nodad")
        run("ip", "-n", bastion, "link", "set", near, "up")
        run("ip", "-n", client, "link", "set", far, "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", bastion, sys.executable, "-c", SERVER, str(LISTEN_PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], 10)
            assert ready and server.stdout.readline().strip() == "ready", "listener did not start"
            yield Lab(bastion=bastion, client=client)
        finally:
            server.kill()
            server.wait(timeout=10)
            if server.stdout is not None:
                server.stdout.close()


def expected_traffic() -> dict[str, str]:
    """What the traffic tests expect after :func:`apply_traffic_bans`."""
    return {
        "10.231.0.2": "ok",  # never banned
        "10.231.0.3": "timeout",  # banned address
        "10.231.0.5": "ok",  # banned, but allowlisted
        "10.231.0.9": "timeout",  # inside the banned 10.231.0.8/29
        "fd31:231:1:a::2": "ok",  # its /64 is not banned
        "fd31:231:1:b::2": "timeout",  # inside the banned fd31:231:1:b::/64
    }


def apply_traffic_bans(fw: Firewall) -> None:
    """Allowlist 10.231.0.5 and ban .3, .5, 10.231.0.8/29 and fd31:231:1:b::/64 through ``fw``."""
    fw.set_allowlist(["10.231.0.5"])
    fw.ban(
        [
            BanElement("10.231.0.3", 60),
            BanElement("10.231.0.5", 60),
            BanElement("10.231.0.8/29", 60),
            BanElement("fd31:231:1:b::/64", 60),
        ]
    )


def many_elements(count: int) -> list[BanElement]:
    """``count`` distinct bans, 80% IPv4 addresses and 20% IPv6 /64 networks, with varied timeouts."""
    out = []
    for i in range(count):
        if i % 5 == 4:
            out.append(BanElement(f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64", 600 + i % 600))
        else:
            out.append(BanElement(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 600 + i % 600))
    return out


# ------------------------------------------------------------------------------------------------ fixtures


def nft(ns: str, *args: str) -> str:
    """``nft ARGS`` inside namespace ``ns``; its stdout."""
    return run("ip", "netns", "exec", ns, "nft", *args).stdout


@pytest.fixture(scope="module")
def bastion_ns() -> Iterator[str]:
    """A namespace for this module; afterwards the root namespace has no table of ours it did not have before."""
    reason = missing(["nft"])
    if reason:
        pytest.skip(f"nftables namespace tests: {reason}")
    ours = re.compile(r"^table inet (bastion_guard|bg_lifecycle)$", re.M)
    before = set(ours.findall(run("nft", "list", "tables").stdout))
    with netns("bgfw") as name:
        yield name
    assert set(ours.findall(run("nft", "list", "tables").stdout)) <= before, "a table appeared in the root namespace"


@pytest.fixture
def fw(bastion_ns: str) -> NftablesFirewall:
    """The backend, started in the module's namespace with no allowlist and no bans."""
    firewall = NftablesFirewall(netns=bastion_ns)
    firewall.start()
    firewall.restore([])
    return firewall


def ban_map(fw: NftablesFirewall) -> dict[str, float]:
    """``list()`` as a dict."""
    return dict(fw.list())


# ---------------------------------------------------------------------------------------------------- tests


def test_start_is_idempotent(fw: NftablesFirewall, bastion_ns: str) -> None:
    """A second start() keeps bans and does not duplicate rules; both hooks sit at priority -5."""
    fw.ban([BanElement("198.51.100.7", 600), BanElement("2001:db8:7::/64", 600)])
    NftablesFirewall(netns=bastion_ns).start()
    table = nft(bastion_ns, "list", "table", "inet", "bastion_guard")
    assert table.count("type filter hook input priority filter - 5; policy accept;") == 1
    assert table.count("type filter hook forward priority filter - 5; policy accept;") == 1
    assert table.count("ip saddr @allow4 accept") == 2  # once per chain
    assert table.count("ip6 saddr & ffff:ffff:ffff:ffff:: == @ban6_64 counter") == 2
    assert set(ban_map(fw)) == {"198.51.100.7", "2001:db8:7::/64"}


def test_ban_shows_in_kernel_with_timeouts(fw: NftablesFirewall, bastion_ns: str) -> None:
    """IPv4 and IPv6 addresses and a /64 land in their sets with the requested kernel timeouts."""
    fw.ban(
        [
            BanElement("203.0.113.7", 600),
            BanElement("203.0.113.8/32", 90),
            BanElement("2001:db8::1", 3600),
            BanElement("2001:db8:1:2::/64", 1.5),
        ]
    )
    table = nft(bastion_ns, "list", "table", "inet", "bastion_guard")
    assert re.search(r"203\.0\.113\.7 timeout 10m expires", table)
    assert re.search(r"203\.0\.113\.8 timeout 1m30s expires", table)
    assert re.search(r"2001:db8::1 timeout 1h expires", table)
    assert re.search(r"2001:db8:1:2:: timeout 1s500ms expires", table)
    bans = ban_map(fw)
    assert set(bans) == {"203.0.113.7", "203.0.113.8", "2001:db8::1", "2001:db8:1:2::/64"}
    assert 595 <= bans["203.0.113.7"] <= 600


def test_reban_sets_the_new_timeout_exactly(fw: NftablesFirewall) -> None:
    """Re-banning extends (and can shorten) an existing ban; an equal timeout restarts the clock."""
    fw.ban([BanElement("203.0.113.20", 30)])
    fw.ban([BanElement("203.0.113.20", 3600)])
    assert ban_map(fw)["203.0.113.20"] >= 3590
    fw.ban([BanElement("203.0.113.20", 60)])
    assert 55 <= ban_map(fw)["203.0.113.20"] <= 60
    fw.ban([BanElement("203.0.113.21", 5)])
    time.sleep(1.2)
    fw.ban([BanElement("203.0.113.21", 5)])  # a plain nft re-add with the same timeout would not reset it
    assert ban_map(fw)["203.0.113.21"] >= 4


def test_nested_bans_are_independent(fw: NftablesFirewall) -> None:
    """An address inside a banned network is its own element; unbanning it leaves the network banned."""
    fw.ban([BanElement("2001:db8:5::/64", 600), BanElement("2001:db8:5::9", 60), BanElement("192.0.2.0/24", 60)])
    fw.ban([BanElement("192.0.2.77", 900)])
    fw.unban(["2001:db8:5::9", "192.0.2.77"])
    assert set(ban_map(fw)) == {"2001:db8:5::/64", "192.0.2.0/24"}


def test_unban_absent_is_fine(fw: NftablesFirewall) -> None:
    """Unbanning targets that were never banned, or in a prefix set never created, is not an error."""
    fw.ban([BanElement("203.0.113.30", 600)])
    fw.unban(["203.0.113.31", "2001:db8:99::1", "10.99.0.0/17", "203.0.113.30", "203.0.113.30"])
    fw.unban([])
    assert ban_map(fw) == {}


def test_ban_expires_in_the_kernel(fw: NftablesFirewall, bastion_ns: str) -> None:
    """A 2 s ban disappears from the kernel set by itself, within 5 s."""
    fw.ban([BanElement("203.0.113.40", 2), BanElement("2001:db8:40::/64", 2)])
    assert "203.0.113.40" in nft(bastion_ns, "list", "set", "inet", "bastion_guard", "ban4")
    started = time.monotonic()

    def gone() -> bool:
        return "elements" not in nft(bastion_ns, "list", "set", "inet", "bastion_guard", "ban4") + nft(
            bastion_ns, "list", "set", "inet", "bastion_guard", "ban6_64"
        )

    assert wait_for(gone, timeout=5.0, step=0.05)
    print(f"\nnftables: 2 s bans expired after {time.monotonic() - started:.2f} s")


def test_bad_target_rejects_the_whole_batch(fw: NftablesFirewall) -> None:
    """A malformed target raises ActionError before anything runs: the good targets are not banned."""
    for bad in ("203.0.113.50; flush ruleset", "203.0.113.50\n", "::g", "fe80::1%eth0", "10.0.0.5/24"):
        with pytest.raises(ActionError):
            fw.ban([BanElement("203.0.113.51", 600), BanElement(bad, 600)])
    assert ban_map(fw) == {}


def test_restore_replaces_everything_in_one_go(fw: NftablesFirewall) -> None:
    """restore() of 100,000 elements completes and leaves exactly them; a second restore replaces them."""
    elements = many_elements(100_000)
    started = time.perf_counter()
    fw.restore(elements)
    took = time.perf_counter() - started
    listed = ban_map(fw)
    print(f"\nnftables: restore of {len(elements):,} bans took {took:.2f} s (one nft transaction)")
    assert len(listed) == len(elements)
    assert {elements[0].target, elements[-1].target} <= set(listed)
    fw.restore([BanElement("203.0.113.60", 60), BanElement("2001:db8:60::/64", 60)])
    assert set(ban_map(fw)) == {"203.0.113.60", "2001:db8:60::/64"}


def test_stop_leaves_bans_and_remove_deletes_the_table(bastion_ns: str) -> None:
    """stop() keeps the table and its bans for the next process; remove() deletes it, twice is fine."""
    first = NftablesFirewall(netns=bastion_ns, table="bg_lifecycle")
    first.start(allow=["10.0.0.0/8"])
    first.ban([BanElement("203.0.113.70", 600)])
    first.stop()
    second = NftablesFirewall(netns=bastion_ns, table="bg_lifecycle")
    assert [t for t, _ in second.list()] == ["203.0.113.70"]
    second.ban([BanElement("2001:db8:70::/64", 60)])  # learns the existing sets without start()
    second.remove()
    second.remove()
    assert "bg_lifecycle" not in nft(bastion_ns, "list", "tables")
    with pytest.raises(ActionError, match="does not exist"):
        second.ban([BanElement("203.0.113.71", 60)])


def test_real_traffic(fw: NftablesFirewall, bastion_ns: str) -> None:
    """Banned sources (address, v4 network, v6 /64) time out; others and an allowlisted banned one connect."""
    with traffic_lab(bastion_ns) as lab:
        before = lab.connect_all()
        assert set(before.values()) == {"ok"}, before
        apply_traffic_bans(fw)
        assert lab.connect_all() == expected_traffic()
        counters = nft(bastion_ns, "list", "chain", "inet", "bastion_guard", "input")
        dropped = re.search(r"ip saddr @ban4 counter packets (\d+)", counters)
        assert dropped and int(dropped[1]) > 0
        fw.unban(["10.231.0.3", "10.231.0.8/29", "fd31:231:1:b::/64"])
        assert set(lab.connect_all().values()) == {"ok"}
    fw.set_allowlist([])
