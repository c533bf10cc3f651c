"""OpenSSH public key lines: parsing, validation and fingerprints, without calling ssh-keygen.

A line is ``[options] type base64-blob [comment]`` (``sshd(8)`` AUTHORIZED_KEYS FILE FORMAT). The blob
starts with the key type as an SSH string, so a pasted key whose type and blob disagree, or whose base64
is cut, is caught here. The fingerprint is ``SHA256:`` + unpadded base64 of the SHA-256 of the blob,
exactly what ``ssh-keygen -l`` and sshd's ``Accepted publickey ... SHA256:...`` print.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from bastion_guard.keys.errors import KeyFormatError

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
})


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One public key. ``blob`` is the base64 text as written; equality of keys is equality of blobs."""

    type: str
    blob: str
    comment: str = ""

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as sshd logs it."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def line(self) -> str:
        """The key as one ``type blob comment`` line (no options), for KRLs and authorized_keys."""
        return f"{self.type} {self.blob} {self.comment}".rstrip()

    def __repr__(self) -> str:
        # Public keys are not secret, but logs and reprs name keys by fingerprint only: short and greppable.
        return f"PublicKey({self.type} {self.fingerprint})"


def parse_key(line: str) -> PublicKey:
    """The key on one line, options allowed before it; :class:`KeyFormatError` says what is wrong."""
    fields = _split_options(line.strip())
    for index, field in enumerate(fields):
        if field in KEY_TYPES:
            if index + 1 >= len(fields):
                raise KeyFormatError(f"key type {field} has no key data after it")
            comment = " ".join(fields[index + 2:])
            return _checked(field, fields[index + 1], comment)
    shown = fields[0][:40] if fields else ""
    raise KeyFormatError(f"no known key type on the line (starts with {shown!r})")


def _checked(key_type: str, blob: str, comment: str) -> PublicKey:
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{key_type} key data is not valid base64") from None
    if len(raw) < 4:
        raise KeyFormatError(f"{key_type} key data is too short")
    (length,) = struct.unpack(">I", raw[:4])
    inner = raw[4:4 + length]
    if inner != key_type.encode("ascii"):
        raise KeyFormatError(f"key data says {inner[:40].decode('ascii', 'replace')!r}, the line says {key_type}")
    return PublicKey(key_type, blob, comment)


def _split_options(text: str) -> list[str]:
    """Split on blanks outside double quotes (``from="a, b"`` stays one field)."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char in " \t" and not quoted:
            if current:
                fields.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        fields.append("".join(current))
    return fields


def is_key_line(line: str) -> bool:
    """Whether an authorized_keys line holds a key at all (not blank, not a comment)."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")
