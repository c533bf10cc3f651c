"""Public key lines: parsing with options, validation of the blob, fingerprints as ssh-keygen prints them."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bastion_guard.keys.errors import KeyFormatError
from bastion_guard.keys.pubkey import parse_key

# A real ed25519 public key (generated once for these tests; public keys are not secret).
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFK2KzJzrIHZcU1AS3iVIGvFyXh3f8iDdJAcpd8PDG8 alice@laptop"


def test_plain_line_and_comment() -> None:
    """Type, blob and the whole comment (with spaces) are kept."""
    key = parse_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFK2KzJzrIHZcU1AS3iVIGvFyXh3f8iDdJAcpd8PDG8 alice at work")
    assert key.type == "ssh-ed25519"
    assert key.comment == "alice at work"
    assert key.line.endswith("alice at work")


def test_options_with_quoted_blanks_are_skipped() -> None:
    """``from="a, b"`` and ``command="x y"`` hold blanks inside quotes: the key after them is found."""
    key = parse_key(f'restrict,from="10.0.0.0/8, 192.0.2.1",command="echo hi there" {ED25519}')
    assert key == parse_key(ED25519)


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    """SHA256 fingerprints equal what ``ssh-keygen -l`` (and sshd's log) print."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen missing (apt-get install openssh-client)")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True,
                            check=True).stdout.split()[1]
    assert parse_key((tmp_path / "k.pub").read_text()).fingerprint == listed


@pytest.mark.parametrize(("line", "message"), [
    ("", "no known key type"),
    ("# a comment", "no known key type"),
    ("ssh-ed25519", "no key data"),
    ("ssh-ed25519 not*base64", "not valid base64"),
    ("ssh-ed25519 AAAA", "too short"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMFK2KzJzrIHZcU1AS3iVIGvFyXh3f8iDdJAcpd8PDG8", "the line says ssh-rsa"),
])
def test_malformed_lines_are_refused_with_the_reason(line: str, message: str) -> None:
    """Each kind of damage gets its own message."""
    with pytest.raises(KeyFormatError, match=message):
        parse_key(line)


def test_repr_names_the_fingerprint_not_the_key() -> None:
    """Logs and reprs carry fingerprints only."""
    key = parse_key(ED25519)
    assert key.fingerprint in repr(key) and key.blob not in repr(key)


def test_blob_type_must_be_the_declared_type() -> None:
    """A blob whose inner type string is another type is refused even when it decodes."""
    inner = b"ssh-dss"
    blob = base64.b64encode(struct.pack(">I", len(inner)) + inner + b"\0" * 8).decode()
    with pytest.raises(KeyFormatError, match="the line says ssh-ed25519"):
        parse_key(f"ssh-ed25519 {blob}")
