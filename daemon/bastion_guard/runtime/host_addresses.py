"""The addresses of this host, which bastion-guard never bans.

A line can carry the host's own address for harmless reasons (a health check over the public interface, a
local `ssh` to the outside name) or for hostile ones (a forged line). Banning it would cut the bastion off
from itself, so the engine treats these addresses like loopback. They are read from the namespace the
firewall guards, where sshd listens: with ``netns`` that is the named namespace, not the daemon's own.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

from bastion_guard.actions.base import ActionError
from bastion_guard.actions.runner import Runner
from bastion_guard.rules.spec import Network

log = logging.getLogger(__name__)


def host_networks(netns: str | None = None) -> tuple[Network, ...]:
    """Each interface address of the namespace as a single-address network; empty (with a warning) when
    ``ip`` cannot list them, since loopback and the allowlists still hold."""
    try:
        listing = Runner(netns=netns).run(["ip", "-j", "address", "show"], what="listing this host's addresses")
        return parse_ip_json(listing)
    except (ActionError, ValueError) as error:
        log.warning("cannot list this host's own addresses (%s); only loopback and the allowlists are exempt "
                    "from bans", error)
        return ()


def parse_ip_json(listing: str) -> tuple[Network, ...]:
    """The ``local`` addresses of ``ip -j address show`` output; :class:`ValueError` if it is not that."""
    interfaces: Any = json.loads(listing)
    if not isinstance(interfaces, list):
        raise ValueError("`ip -j address show` did not print a JSON list")
    found: dict[Network, None] = {}  # ordered and unique: one address can sit on several interfaces
    for interface in interfaces:
        for info in interface.get("addr_info", ()) if isinstance(interface, dict) else ():
            local = info.get("local") if isinstance(info, dict) else None
            if isinstance(local, str):
                address = ipaddress.ip_address(local.partition("%")[0])  # a zone id is not part of the address
                found[ipaddress.ip_network(address)] = None
    return tuple(found)
