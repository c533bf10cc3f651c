"""Weak algorithm names per sshd_config keyword, and the lists to fall back on.

The weak patterns follow ssh-audit's failures and warnings for OpenSSH (``jtesta/ssh-audit``), matched as
shell globs against the names ``sshd -T`` prints. The fallback lists are ssh-audit's Debian 12 hardening
guide (conventions.md section 6.4), restricted to names OpenSSH 9.2 knows; they are offered only when
every algorithm configured is weak, since otherwise dropping the weak names is the smaller change.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

_RSA_SHA1 = ("ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "ssh-dss", "ssh-dss-cert-v01@openssh.com")
_KEY_FALLBACK = (
    "sk-ssh-ed25519-cert-v01@openssh.com,ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,"
    "rsa-sha2-256-cert-v01@openssh.com,sk-ssh-ed25519@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256"
)


@dataclass(frozen=True, slots=True)
class AlgorithmPolicy:
    """What is weak for one keyword, why, and a modern list to use if nothing configured survives."""

    check_id: str
    keyword: str
    weak: tuple[str, ...]
    fallback: str
    reason: str

    def weak_in(self, offered: list[str]) -> list[str]:
        """The names in ``offered`` that match a weak pattern, in the order sshd offers them."""
        return [name for name in offered if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.weak)]


POLICIES = (
    AlgorithmPolicy(
        "kex-algorithms", "KexAlgorithms",
        ("diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1"),
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
        "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
        "SHA-1 key exchanges and the 1024-bit group1 are below today's margins (Logjam); ssh-audit fails them",
    ),
    AlgorithmPolicy(
        "ciphers", "Ciphers",
        ("*-cbc", "*-cbc@*", "arcfour*"),
        "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-gcm@openssh.com,"
        "aes128-ctr",
        "CBC modes allow plaintext recovery in SSH (CVE-2008-5161) and arcfour (RC4) is broken",
    ),
    AlgorithmPolicy(
        "macs", "MACs",
        ("hmac-md5*", "hmac-sha1", "hmac-sha1-*", "umac-64*"),
        "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com",
        "MD5 and SHA-1 MACs and 64-bit UMAC tags are weak; encrypt-then-MAC SHA-2 (-etm) is the modern choice",
    ),
    AlgorithmPolicy(
        "host-key-algorithms", "HostKeyAlgorithms", _RSA_SHA1, _KEY_FALLBACK,
        "ssh-rsa signs with SHA-1, which chosen-prefix collisions broke; OpenSSH 8.8 disabled it by default",
    ),
    AlgorithmPolicy(
        "pubkey-accepted-algorithms", "PubkeyAcceptedAlgorithms", _RSA_SHA1, _KEY_FALLBACK,
        "user keys signing with ssh-rsa (SHA-1) can be forged by chosen-prefix collisions; rsa-sha2-* is safe",
    ),
    AlgorithmPolicy(
        "ca-signature-algorithms", "CASignatureAlgorithms", _RSA_SHA1,
        "sk-ssh-ed25519@openssh.com,ssh-ed25519,rsa-sha2-512,rsa-sha2-256",
        "a CA signing certificates with ssh-rsa (SHA-1) lets a collision forge a user certificate",
    ),
)
