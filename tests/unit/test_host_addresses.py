"""The host's own addresses, read from ``ip -j address show``: never banned."""

from __future__ import annotations

import ipaddress
import json
import shutil

import pytest

from bastion_guard.runtime.host_addresses import host_networks, parse_ip_json

# Shaped like iproute2 6.1's output: an interface without addresses, a link-local address with a zone id
# (newer iproute2 prints none, but a zone is not part of the address either way) and one address on two
# interfaces.
_LISTING = json.dumps([
    {"ifindex": 1, "ifname": "lo", "addr_info": [
        {"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
        {"family": "inet6", "local": "::1", "prefixlen": 128}]},
    {"ifindex": 2, "ifname": "dummy0"},
    {"ifindex": 3, "ifname": "eth0", "addr_info": [
        {"family": "inet", "local": "198.51.100.7", "prefixlen": 24},
        {"family": "inet6", "local": "fe80::1%eth0", "prefixlen": 64},
        {"family": "inet6", "local": "2001:db8::7", "prefixlen": 64}]},
    {"ifindex": 4, "ifname": "eth1", "addr_info": [{"family": "inet", "local": "198.51.100.7", "prefixlen": 32}]},
])


def test_every_local_address_once_as_a_single_address_network() -> None:
    assert [str(network) for network in parse_ip_json(_LISTING)] == [
        "127.0.0.1/32", "::1/128", "198.51.100.7/32", "fe80::1/128", "2001:db8::7/128",
    ]


@pytest.mark.parametrize("listing", ["{}", "not json", '[{"addr_info": [{"local": "not-an-address"}]}]'])
def test_output_that_is_not_an_address_listing_is_an_error(listing: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_json(listing)


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs `ip` (iproute2)")
def test_this_host_lists_its_loopback_address() -> None:
    assert ipaddress.ip_network("127.0.0.1/32") in host_networks()


def test_a_missing_ip_tool_leaves_loopback_and_the_allowlists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert host_networks() == ()
