"""HTTP basic auth against bcrypt hashes, as the exporter-toolkit web configuration defines it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

import bcrypt

from exporter.http.messages import Response

CACHE_SIZE: Final = 256
"""Checked credentials remembered, so a scrape every 15 s does not pay bcrypt's cost each time."""

UNAUTHORIZED: Final = Response(
    401,
    {"Content-Type": "text/plain; charset=utf-8", "WWW-Authenticate": "Basic"},
    b"Unauthorized\n",
)


def is_bcrypt_hash(value: str) -> bool:
    """True when ``value`` is a bcrypt hash that ``bcrypt.checkpw`` accepts."""
    try:
        bcrypt.checkpw(b"", value.encode())
    except ValueError:
        return False
    return True


def credentials(authorization: str) -> tuple[str, str] | None:
    """The user and password of a ``Basic`` ``Authorization`` header; None if it is not one."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuth:
    """Checks ``Authorization`` headers against ``users`` (user → bcrypt hash); thread-safe.

    As exporter-toolkit does, the outcome of each (user, password) pair is remembered, right
    or wrong, and bcrypt runs for one request at a time: a flood of wrong passwords costs one
    core at most, and a scraper whose password was verified once never waits for bcrypt again.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        """Remember the users; hashes must already be validated with ``is_bcrypt_hash``."""
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._outcomes: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        # Compared against when the user is unknown, so an unknown user costs as much as a
        # wrong password and the answer time does not tell which users exist.
        self._decoy = next(iter(self._users.values()))

    def authorize(self, headers: Mapping[str, str]) -> Response | None:
        """None when the request carries a valid user and password, else the 401 to answer."""
        given = credentials(headers.get("authorization", ""))
        if given is None:
            return UNAUTHORIZED
        user, password = given
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password.encode()))).digest()
        ok = self._remembered(key)
        if ok is None:
            with self._bcrypt:
                ok = bcrypt.checkpw(password.encode(), hashed or self._decoy) and hashed is not None
            self._remember(key, ok)
        return None if ok else UNAUTHORIZED

    def _remembered(self, key: bytes) -> bool | None:
        with self._lock:
            ok = self._outcomes.get(key)
            if ok is not None:
                self._outcomes.move_to_end(key)
            return ok

    def _remember(self, key: bytes, ok: bool) -> None:
        with self._lock:
            self._outcomes[key] = ok
            while len(self._outcomes) > CACHE_SIZE:
                self._outcomes.popitem(last=False)
