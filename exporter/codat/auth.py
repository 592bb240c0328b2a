"""The Codat API key: where it comes from, how it is sent, and how it is kept out of text.

Codat expects ``Authorization: Basic <base64 of the raw key>``: the key alone,
with no ``user:`` prefix or trailing colon (this is not RFC 7617 user:password).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from exporter.common.redaction import REDACTED, redact

__all__ = [
    "REDACTED",
    "ApiKeyError",
    "authorization_header",
    "load_api_key",
    "read_key_file",
    "redact",
    "redact_json",
]

API_KEY_ENV: Final = "CODAT_API_KEY"
API_KEY_FILE_ENV: Final = "CODAT_API_KEY_FILE"


class ApiKeyError(Exception):
    """No usable API key was configured; the message says where one is expected."""


def authorization_header(api_key: str) -> str:
    """The ``Authorization`` header value for a raw Codat API key."""
    return "Basic " + base64.b64encode(api_key.encode("utf-8")).decode("ascii")


def read_key_file(path: Path) -> str:
    """Read an API key from a file, stripping surrounding whitespace (a trailing newline, say)."""
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ApiKeyError(f"cannot read the API key file {path}: {exc.strerror or exc}") from exc
    if not key:
        raise ApiKeyError(f"the API key file {path} is empty")
    return key


def load_api_key(env: Mapping[str, str] | None = None, key_file: Path | None = None) -> str:
    """The API key: ``key_file`` if given, else ``CODAT_API_KEY``, else the file in ``CODAT_API_KEY_FILE``.

    Raises :class:`ApiKeyError` with a message an operator can act on if none is set.
    """
    environ = os.environ if env is None else env
    if key_file is not None:
        return read_key_file(key_file)
    key = environ.get(API_KEY_ENV, "").strip()
    if key:
        return key
    file_name = environ.get(API_KEY_FILE_ENV, "").strip()
    if file_name:
        return read_key_file(Path(file_name))
    raise ApiKeyError(f"no Codat API key: set {API_KEY_ENV}, or {API_KEY_FILE_ENV} to a file that holds it")


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
