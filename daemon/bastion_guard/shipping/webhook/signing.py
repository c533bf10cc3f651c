"""Standard Webhooks 1.0 signatures (and, optionally, GitHub's ``X-Hub-Signature-256``).

The receiver recomputes ``HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")`` and compares in
constant time; the timestamp is signed so that a captured request cannot be replayed outside the
receiver's tolerance window, and ``webhook-id`` is the record id, the same on every retry, so the receiver
can drop duplicates. Secrets are ``whsec_`` + base64 of the key bytes; the key is the decoded bytes.

Key rotation without a gap: the secret may hold several ``whsec_`` keys separated by white space (one per
line in the file); every message is signed with each, as the spec's space-separated signature list
allows, so the receiver can switch to the new key before the old one is removed here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from bastion_guard.errors import BastionError

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's marker, not a secret)
MIN_KEY_BYTES = 24  # the spec's lower bound: 192 bits
MAX_KEY_BYTES = 64


class SigningKeyError(BastionError):
    """The configured secret is not a usable ``whsec_`` key (the message never contains it)."""


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; raise :class:`SigningKeyError` if malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise SigningKeyError(f"a signing secret must start with {SECRET_PREFIX} (Standard Webhooks form)")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("the signing secret after whsec_ is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise SigningKeyError(f"the signing key must be {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, not {len(key)}")
    return key


def decode_secrets(text: str) -> tuple[bytes, ...]:
    """The keys of one or more white-space separated ``whsec_`` secrets (several while rotating)."""
    secrets = text.split()
    if not secrets:
        raise SigningKeyError("the signing secret is empty")
    return tuple(decode_secret(secret) for secret in secrets)


def standard_headers(keys: tuple[bytes, ...], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64> [v1,<base64>...]``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = ("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
                  for key in keys)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def github_header(key: bytes, body: bytes) -> dict[str, str]:
    """``X-Hub-Signature-256: sha256=<hex>`` over the raw body, for receivers built for GitHub's check
    (which takes one signature: the first key's)."""
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}
