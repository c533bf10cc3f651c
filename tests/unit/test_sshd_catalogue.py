"""Every message kind of the catalogue, from lines real systems wrote."""

from __future__ import annotations

import pytest

from bastion_guard.events import Event, Kind, Outcome
from bastion_guard.parsing import LineParser, LineStatus

P = "2026-11-28T20:02:18.053767+00:00 vm sshd[19484]: "
T = "Nov 28 20:02:18 vm sshd[19484]: "

# (line, kind, outcome, ip, port, user)
CASES = [
    (P + "Failed password for invalid user nosuchuser from 127.0.0.1 port 40452 ssh2",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "127.0.0.1", 40452, "nosuchuser"),
    (P + "Failed password for e2e_alice from 127.0.0.1 port 40462 ssh2",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "127.0.0.1", 40462, "e2e_alice"),
    (P + "Failed publickey for e2e_alice from 10.201.0.1 port 51558 ssh2: ED25519 "
     "SHA256:vziHpgH5WkF0csNqsstSInUndGylsZXdN3cEuJrxEVQ",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "10.201.0.1", 51558, "e2e_alice"),
    (T + "Failed none for invalid user admin from 2001:db8::7 port 5 ssh2",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "2001:db8::7", 5, "admin"),
    (T + "Failed keyboard-interactive/pam for invalid user jamedds from 205.186.180.77 port 33723 ssh2",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "205.186.180.77", 33723, "jamedds"),
    (P + "Invalid user nosuchuser from 127.0.0.1 port 40452",
     Kind.INVALID_USER, Outcome.FAILURE, "127.0.0.1", 40452, "nosuchuser"),
    (P + "Connection closed by invalid user nosuchuser 127.0.0.1 port 40452 [preauth]",
     Kind.PREAUTH_CLOSE, Outcome.FAILURE, "127.0.0.1", 40452, "nosuchuser"),
    (P + "Connection reset by authenticating user root 192.0.2.20 port 1558 [preauth]",
     Kind.PREAUTH_CLOSE, Outcome.FAILURE, "192.0.2.20", 1558, "root"),
    (P + "Disconnected from authenticating user root 192.0.2.6 port 33553 [preauth]",
     Kind.PREAUTH_CLOSE, Outcome.FAILURE, "192.0.2.6", 33553, "root"),
    (P + "Connection closed by 192.0.2.39 port 14282 [preauth]",
     Kind.PREAUTH_CLOSE, Outcome.FAILURE, "192.0.2.39", 14282, None),
    (P + "Received disconnect from 198.51.100.76 port 58846:11: Bye Bye [preauth]",
     Kind.PREAUTH_DISCONNECT, Outcome.FAILURE, "198.51.100.76", 58846, None),
    (P + "Received disconnect from 127.0.0.1 port 51552:11: disconnected by user",
     Kind.DISCONNECT, Outcome.INFO, "127.0.0.1", 51552, None),
    # IPv6: the address has colons of its own, the code follows the port's colon
    (P + "Received disconnect from 2a01:4f8:1:2::3 port 22:11: Bye Bye [preauth]",
     Kind.PREAUTH_DISCONNECT, Outcome.FAILURE, "2a01:4f8:1:2::3", 22, None),
    # OpenSSH before 7.x: no port, "from %s: %u: %s"
    (P + "Received disconnect from 2001:db8::7: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
     Kind.PREAUTH_DISCONNECT, Outcome.FAILURE, "2001:db8::7", None, None),
    (P + "Disconnected from user e2e_alice 127.0.0.1 port 51552",
     Kind.DISCONNECT, Outcome.INFO, "127.0.0.1", 51552, "e2e_alice"),
    (P + "error: maximum authentication attempts exceeded for invalid user xxx from 192.0.2.7 port 49941 ssh2 [preauth]",
     Kind.MAX_AUTH_EXCEEDED, Outcome.FAILURE, "192.0.2.7", 49941, "xxx"),
    (P + "Disconnecting invalid user xxx 192.0.2.7 port 49941: Too many authentication failures [preauth]",
     Kind.TOO_MANY_AUTH_FAILURES, Outcome.FAILURE, "192.0.2.7", 49941, "xxx"),
    (P + "banner exchange: Connection from 192.0.2.12 port 44105: invalid format",
     Kind.HANDSHAKE_ERROR, Outcome.FAILURE, "192.0.2.12", 44105, None),
    (P + "Unable to negotiate with 192.0.2.1 port 55419: no matching cipher found. Their offer: aes256-cbc [preauth]",
     Kind.NEGOTIATION_FAILURE, Outcome.FAILURE, "192.0.2.1", 55419, None),
    (P + "Did not receive identification string from 192.0.2.5 port 35836",
     Kind.HANDSHAKE_ERROR, Outcome.FAILURE, "192.0.2.5", 35836, None),
    (P + "fatal: Timeout before authentication for 192.0.2.14 port 55555",
     Kind.PREAUTH_TIMEOUT, Outcome.FAILURE, "192.0.2.14", 55555, None),
    (P + "drop connection #0 from [203.0.113.9]:41234 on [192.0.2.1]:22 penalty: failed authentication",
     Kind.PENALTY_DROP, Outcome.FAILURE, "203.0.113.9", 41234, None),
    (P + "User root from 46.45.128.3 not allowed because listed in DenyUsers",
     Kind.USER_NOT_ALLOWED, Outcome.FAILURE, "46.45.128.3", None, "root"),
    (P + "ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4 port 12345 [preauth]",
     Kind.ROOT_LOGIN_REFUSED, Outcome.FAILURE, "1.2.3.4", 12345, "root"),
    (P + "error: PAM: Authentication failure for test-ipv6 from 2606:2800:220:1:248:1893:25c8:1946",
     Kind.PAM_ERROR, Outcome.FAILURE, "2606:2800:220:1:248:1893:25c8:1946", None, "test-ipv6"),
    (P + "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=127.0.0.1  user=e2e_alice",
     Kind.PAM_AUTH_FAILURE, Outcome.FAILURE, "127.0.0.1", None, "e2e_alice"),
    (P + "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=183.62.140.253  user=root",
     Kind.PAM_MORE_FAILURES, Outcome.FAILURE, "183.62.140.253", None, "root"),
    (P + "Accepted password for e2e_alice from 127.0.0.1 port 51572 ssh2",
     Kind.AUTH_SUCCESS, Outcome.SUCCESS, "127.0.0.1", 51572, "e2e_alice"),
    (P + "Connection from 127.0.0.1 port 57986 on 127.0.0.1 port 42301 rdomain \"\"",
     Kind.CONNECTION, Outcome.INFO, "127.0.0.1", 57986, None),
    (P + "pam_unix(sshd:session): session opened for user e2e_alice(uid=1002) by (uid=0)",
     Kind.SESSION_OPENED, Outcome.INFO, None, None, "e2e_alice"),
    (P.replace("sshd[", "sshd-session[") + "Failed password for root from 192.0.2.1 port 56502 ssh2",
     Kind.AUTH_FAILURE, Outcome.FAILURE, "192.0.2.1", 56502, "root"),
    (P.replace("sshd[", "sshd-auth[") + "Invalid user a from 192.0.2.2 port 7",
     Kind.INVALID_USER, Outcome.FAILURE, "192.0.2.2", 7, "a"),
    ("2026-11-28T20:02:18.1+00:00 vm sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
     Kind.SUDO_COMMAND, Outcome.SUCCESS, None, None, "alice"),
    ("2026-11-28T20:02:18.1+00:00 vm sudo:    bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
     Kind.SUDO_FAILURE, Outcome.FAILURE, None, None, "bob"),
    ("Nov 28 20:02:18 vm su: FAILED SU (to root) bob on pts/1",
     Kind.SU_FAILURE, Outcome.FAILURE, None, None, "bob"),
]


@pytest.mark.parametrize(("line", "kind", "outcome", "ip", "port", "user"), CASES)
def test_known_message(
    parser: LineParser, line: str, kind: Kind, outcome: Outcome, ip: str | None, port: int | None,
    user: str | None,
) -> None:
    """Each catalogue entry yields the right kind, outcome, client and user."""
    event = parser.parse(line)
    assert isinstance(event, Event), event
    assert (event.kind, event.outcome, event.ip, event.port, event.user) == (kind, outcome, ip, port, user)


def test_accepted_publickey_carries_key_and_certificate(parser: LineParser) -> None:
    """Key type, fingerprint and certificate id/serial are read from an Accepted line."""
    event = parser.parse(
        P + "Accepted publickey for ai-user from 10.0.0.5 port 4242 ssh2: ED25519-CERT SHA256:"
        "LqpJ/ENfZ4LmxKmi5W7cEuXplfX8i1iXSAd0mSH21f4 ID alice@corp (serial 42) CA ED25519 SHA256:"
        "V7nervEYxRVdxJdtK8O/wq/TOTHwtpePUB0JdHqI+vw"
    )
    assert isinstance(event, Event)
    assert event.key_type == "ED25519-CERT"
    assert event.fingerprint == "SHA256:LqpJ/ENfZ4LmxKmi5W7cEuXplfX8i1iXSAd0mSH21f4"
    assert (event.cert_id, event.cert_serial) == ("alice@corp", 42)


def test_revoked_key_is_attributed_through_the_connection(parser: LineParser) -> None:
    """A revoked-key line names no client; the same sshd pid's Connection line does."""
    parser.parse(P + "Connection from 10.201.0.1 port 55924 on 10.201.0.2 port 22 rdomain \"\"")
    event = parser.parse(
        P + "error: Authentication key ED25519 SHA256:wYkpp2sZQpOPWMeBw9tA+dDlUubW7IHo959RAsth9z8 "
        "revoked by file /etc/ssh/revoked.krl"
    )
    assert isinstance(event, Event)
    assert (event.kind, event.ip, event.attributed_by) == (Kind.KEY_REVOKED, "10.201.0.1", "connection")
    assert event.fingerprint == "SHA256:wYkpp2sZQpOPWMeBw9tA+dDlUubW7IHo959RAsth9z8"


def test_kex_error_without_context_has_no_address(parser: LineParser) -> None:
    """Without an earlier line of the same pid, an addressless line is an event with no ip."""
    event = parser.parse(P + "error: kex_exchange_identification: Connection closed by remote host")
    assert isinstance(event, Event)
    assert (event.kind, event.ip) == (Kind.HANDSHAKE_ERROR, None)


def test_dns_names_are_never_addresses(parser: LineParser) -> None:
    """A reverse-DNS name (UseDNS yes) stays a name, even one shaped like a dotted quad."""
    for name in ("evil.example.com", "192.030.0.6"):
        event = parser.parse(P + f"error: PAM: Authentication failure for root from {name}")
        assert isinstance(event, Event)
        assert (event.ip, event.client_host) == (None, name)


def test_repeated_message_counts_its_repeats(parser: LineParser) -> None:
    """rsyslog's "message repeated N times" becomes one event standing for N attempts."""
    event = parser.parse(
        T + "message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]"
    )
    assert isinstance(event, Event)
    assert (event.kind, event.ip, event.repeat) == (Kind.AUTH_FAILURE, "5.36.59.76", 5)


def test_statuses(parser: LineParser) -> None:
    """Other programs, known noise and unknown sshd text are told apart."""
    assert parser.parse("Nov 28 20:02:18 vm CRON[5]: pam_unix(cron:session): session opened") is (
        LineStatus.OTHER_PROGRAM
    )
    assert parser.parse(T + "Server listening on 0.0.0.0 port 22.") is LineStatus.NOISE
    assert parser.parse(T + "Something sshd never said before") is LineStatus.UNMATCHED


def test_audit_records_plain_and_enriched(parser: LineParser) -> None:
    """sshd's failed USER_AUTH audit record gives a failure for its addr=, also in auditd's enriched format."""
    record = (
        "type=USER_AUTH msg=audit(1668381071.000:373474): pid=173582 uid=0 auid=4294967295 ses=4294967295 "
        "subj=system_u:system_r:sshd_t:s0-s0:c0.c1023 msg='op=PAM:authentication grantors=? acct=\"root\" "
        "exe=\"/usr/sbin/sshd\" hostname=192.0.2.111 addr=192.0.2.111 terminal=ssh res=failed'"
    )
    for line in (record, record + '\x1dUID="root" AUID="unset"'):
        event = parser.parse(line)
        assert isinstance(event, Event)
        assert (event.kind, event.ip, event.user, event.epoch) == (Kind.AUTH_FAILURE, "192.0.2.111", "root", 1668381071.0)
