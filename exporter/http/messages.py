"""Requests and responses as route handlers see them, and the server's own error answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

TEXT_PLAIN: Final = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as route handlers see it; header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers; ``Content-Length`` is added by the server.

    A large body may come as ``parts`` (sent one after the other, never joined into a
    copy); ``body`` is then ignored.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    parts: Sequence[bytes] | None = None

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        """A ``text/plain`` response."""
        return cls(status, {"Content-Type": TEXT_PLAIN}, text.encode())

    @classmethod
    def json(cls, status: int, payload: object) -> Response:
        """An ``application/json`` response."""
        return cls(status, {"Content-Type": "application/json"}, json.dumps(payload).encode() + b"\n")

    @property
    def chunks(self) -> Sequence[bytes]:
        """The body as the pieces to send."""
        return self.parts if self.parts is not None else (self.body,)

    @property
    def length(self) -> int:
        """The body's length in bytes (the ``Content-Length``)."""
        return sum(len(chunk) for chunk in self.chunks)


Handler = Callable[[Request], Response]
Routes = Mapping[tuple[str, str], Handler]
"""``(METHOD, path) → handler``; a ``GET`` route answers ``HEAD`` too, without the body."""

DEFAULT_NOT_FOUND_TEXT: Final = "404 page not found; see / for the endpoints\n"


def not_found(headers: Mapping[str, str], text: str = DEFAULT_NOT_FOUND_TEXT) -> Response:
    """404 as JSON for a client that asks for JSON, else as text."""
    if "application/json" in headers.get("accept", ""):
        return Response.json(404, {"error": "not found"})
    return Response.text(404, text)


def not_allowed(allowed: Sequence[str]) -> Response:
    """405 naming the methods the path does answer."""
    allow = ", ".join(allowed)
    return Response(
        405, {"Allow": allow, "Content-Type": TEXT_PLAIN}, f"method not allowed; use {allow}\n".encode()
    )


def health(_request: Request) -> Response:
    """``/healthz``: the process is alive and serving."""
    return Response.text(200, "ok\n")


HEALTH_ROUTES: Final[Routes] = {("GET", "/healthz"): health}
