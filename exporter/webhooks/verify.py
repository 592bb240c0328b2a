"""Webhook signature verification as Codat signs deliveries (Svix / Standard Webhooks scheme).

Codat signs every delivery with the endpoint's signing secret (``whsec_<base64>``):

* headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
  ``webhook-signature`` — or the same three under ``svix-*`` names;
* signature = base64(HMAC-SHA256(key, ``"{id}.{timestamp}.{raw body}"``)), where
  key is the base64-decoded secret after ``whsec_``;
* ``webhook-signature`` is a space-separated list of ``<version>,<signature>``
  entries; any ``v1`` entry that matches passes, other versions are ignored.

Everything here is pure (``now`` is an argument), and every malformed input is a
``VerificationError`` — never another exception — so a hostile request can only
ever earn a 401. The ``standardwebhooks`` library implements the same scheme, but
it reads the wall clock, fixes the tolerance at five minutes and lets malformed
headers escape as ``ValueError``/``binascii.Error``/``UnicodeDecodeError``; the
test suite uses it as an independent oracle instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
MAX_ID_LENGTH: Final = 256
"""Longer ids are refused: the id is kept in the duplicate filter, so its size is bounded."""

_ID_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")
_HEADER_SETS: Final = (
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ("svix-id", "svix-timestamp", "svix-signature"),
)


class Failure(StrEnum):
    """Why a delivery failed verification (logged; never sent back to the caller)."""

    MISSING_HEADERS = "missing_headers"
    MALFORMED_HEADERS = "malformed_headers"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_TOO_NEW = "timestamp_too_new"
    NO_MATCHING_SIGNATURE = "no_matching_signature"


class VerificationError(Exception):
    """A delivery is not provably from Codat; ``reason`` says why."""

    def __init__(self, reason: Failure) -> None:
        """Wrap ``reason``."""
        super().__init__(f"webhook verification failed: {reason.value}")
        self.reason = reason


class SecretError(ValueError):
    """The configured signing secret is not ``whsec_`` followed by base64 (the secret is not echoed)."""


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """The decoded HMAC key of a webhook endpoint; its repr never shows the key."""

    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        """Say what this is without the key."""
        return "SigningSecret(****)"

    @classmethod
    def parse(cls, text: str) -> SigningSecret:
        """Decode ``whsec_<base64>`` (the prefix is optional); raise ``SecretError`` if it is not that."""
        raw = text.strip().removeprefix(SECRET_PREFIX)
        try:
            # Secrets are sometimes copied without their base64 padding.
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(
                "the webhook signing secret must be 'whsec_' followed by base64 "
                "(copy it from the Codat portal: Monitor → Webhooks → your endpoint)"
            ) from None
        if not key:
            raise SecretError("the webhook signing secret is empty")
        return cls(key)


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The three signature headers of one delivery, whichever naming it used."""

    message_id: str
    timestamp: str
    signature: str


def extract_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Pick the ``webhook-*`` headers, else the ``svix-*`` ones (names case-insensitive; never mixed)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for id_name, ts_name, sig_name in _HEADER_SETS:
        values = (lowered.get(id_name), lowered.get(ts_name), lowered.get(sig_name))
        if all(values):
            message_id, timestamp, signature = (v.strip() for v in values if v is not None)
            return SignedHeaders(message_id, timestamp, signature)
    raise VerificationError(Failure.MISSING_HEADERS)


def compute_signature(secret: SigningSecret, message_id: str, timestamp: str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 digest Codat sends (base64-encoded) for this id, timestamp and body."""
    signed = message_id.encode("ascii") + b"." + timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.key, signed, hashlib.sha256).digest()


def sign(secret: SigningSecret, message_id: str, timestamp: int, body: bytes) -> str:
    """A ``webhook-signature`` header value (``v1,<base64>``), as Codat would send it."""
    digest = compute_signature(secret, message_id, str(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def _v1_signatures(header: str) -> list[bytes]:
    """Decoded ``v1`` signatures of a header value; entries of other versions or bad base64 are skipped."""
    found = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(
    secret: SigningSecret,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> SignedHeaders:
    """Check that ``body`` was signed with ``secret`` within ``tolerance`` seconds of ``now``.

    Returns the signature headers (their ``message_id`` is the idempotency key)
    or raises ``VerificationError``. The body must be the raw bytes received.
    """
    signed = extract_headers(headers)
    if not _ID_RE.fullmatch(signed.message_id) or not _TIMESTAMP_RE.fullmatch(signed.timestamp):
        raise VerificationError(Failure.MALFORMED_HEADERS)
    sent_at = int(signed.timestamp)
    if sent_at < now - tolerance:
        raise VerificationError(Failure.TIMESTAMP_TOO_OLD)
    if sent_at > now + tolerance:
        raise VerificationError(Failure.TIMESTAMP_TOO_NEW)
    expected = compute_signature(secret, signed.message_id, signed.timestamp, body)
    # Compare against every entry (no early exit) so timing says nothing about which one matched.
    matched = False
    for candidate in _v1_signatures(signed.signature):
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise VerificationError(Failure.NO_MATCHING_SIGNATURE)
    return signed
