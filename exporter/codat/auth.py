"""The Codat API key: how it is sent, and how it is kept out of text.

Codat expects ``Authorization: Basic <base64 of the raw key>``: the key alone,
with no ``user:`` prefix or trailing colon (this is not RFC 7617 user:password).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from exporter.common.redaction import REDACTED, redact

__all__ = [
    "REDACTED",
    "authorization_header",
    "redact",
    "redact_json",
]


def authorization_header(api_key: str) -> str:
    """The ``Authorization`` header value for a raw Codat API key."""
    return "Basic " + base64.b64encode(api_key.encode("utf-8")).decode("ascii")


def redact_json(value: object, secrets: Iterable[str]) -> object:
    """A decoded JSON value with every secret redacted from every string in it, keys included.

    Codat may echo the request in any field of an error body (``service``,
    ``correlationId``, ``validation`` …), so no field is trusted to be clean.
    """
    secrets = tuple(s for s in secrets if s)
    return _redact_value(value, secrets)


def _redact_value(value: object, secrets: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, secrets) for v in value]
    return value
