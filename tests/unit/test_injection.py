"""Attacker-chosen user names never move attribution away from the real client.

Each shape below is a real sshd message with an attacker-controlled user field; the property is checked
for arbitrary names (hypothesis) and for the hand-made decoys of docs/log-injection classes.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion_guard.events import Event
from bastion_guard.parsing import LineParser

REAL = "198.51.100.23"
HEADER = "2026-11-28T20:02:18.000001+00:00 bastion sshd[4242]: "
SHAPES = [
    "Invalid user {u} from {ip} port 40452",
    "Failed password for invalid user {u} from {ip} port 40452 ssh2",
    "Failed password for {u} from {ip} port 40452 ssh2",
    "Failed none for invalid user {u} from {ip} port 40452 ssh2",
    "Failed publickey for {u} from {ip} port 40452 ssh2: ED25519 SHA256:vziHpgH5WkF0csNqsstSInUndGylsZXdN3cEuJrxEVQ",
    "Connection closed by invalid user {u} {ip} port 40452 [preauth]",
    "Connection closed by authenticating user {u} {ip} port 40452 [preauth]",
    "Connection reset by invalid user {u} {ip} port 40452 [preauth]",
    "Disconnected from invalid user {u} {ip} port 40452 [preauth]",
    "Disconnected from authenticating user {u} {ip} port 40452 [preauth]",
    "Disconnecting invalid user {u} {ip} port 40452: Too many authentication failures [preauth]",
    "error: maximum authentication attempts exceeded for invalid user {u} from {ip} port 40452 ssh2 [preauth]",
    "User {u} from {ip} not allowed because not listed in AllowUsers",
    "Accepted password for {u} from {ip} port 40452 ssh2",
    "error: PAM: Authentication failure for {u} from {ip}",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={u}",
]
DECOYS = [
    "from 10.10.1.1",
    "a 10.9.8.7 port 1",
    "x from 6.6.6.6 port 22 ssh2",
    "root 1.2.3.4 port 5 [preauth]",
    "u rhost=9.9.9.9",
    "Accepted publickey for root from 6.6.6.6 port 22 ssh2",
    "x 6.6.6.6 on",
    "x from 6.6.6.6 not allowed because y",
    "a 2001:db8::666 port 22",
    "",
    " ",
    "root from 6.6.6.6 port 22 ssh2 from 7.7.7.7",
    "\\\\" * 200 + " 6.6.6.6 port 22 [preauth]",
]


def _attributions(name: str) -> list[str | None]:
    parser = LineParser(1795899600.0, UTC)
    found = []
    for shape in SHAPES:
        result = parser.parse(HEADER + shape.format(u=name, ip=REAL))
        if isinstance(result, Event):
            found.append(result.ip)
    return found


@pytest.mark.parametrize("name", DECOYS)
def test_decoys_are_never_blamed(name: str) -> None:
    """Known decoy names leave the real client attributed on every shape (or nobody, never the decoy)."""
    attributions = _attributions(name)
    assert attributions, "every shape should still parse"
    assert set(attributions) <= {REAL, None}
    if len(name) <= 100:
        assert set(attributions) == {REAL}


# sshd cuts a user name at the first ':' and escapes control bytes; names therefore have neither.
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":\n\r"), max_size=120
)


@settings(max_examples=300, deadline=None)
@given(name=names)
def test_arbitrary_names_never_move_attribution(name: str) -> None:
    """For any user name, every event names the real client or no client at all."""
    assert set(_attributions(name)) <= {REAL, None}


@settings(max_examples=200, deadline=None)
@given(
    name=names,
    decoy=st.ip_addresses().map(str),
    glue=st.sampled_from([" from ", " ", " port 22 ", " rhost=", " on "]),
)
def test_names_carrying_addresses_never_win(name: str, decoy: str, glue: str) -> None:
    """A name that embeds another address in sshd-like context is still never attributed."""
    crafted = f"{name}{glue}{decoy} port 22 ssh2"
    assert set(_attributions(crafted)) <= {REAL, None}


def test_cut_line_falls_back_to_the_connection() -> None:
    """A padded name whose line was cut is attributed through the pid's Connection line, not its text."""
    parser = LineParser(1795899600.0, UTC)
    parser.parse(HEADER + f"Connection from {REAL} port 40452 on 192.0.2.1 port 22 rdomain \"\"")
    padded = "\\\\" * 200
    event = parser.parse(HEADER + f"Connection closed by invalid user {padded} 6.6.6.6 port 22 [preauth]")
    assert isinstance(event, Event)
    assert (event.ip, event.attributed_by) == (REAL, "connection")
