"""The Codat client's HTTP transport: a total deadline on every request, and a cap on every body.

``requests``' read timeout bounds each socket read, not the request: an answer
that trickles one byte per second never times out. Here each read's timeout is
clamped to what is left of the request's total deadline (connect, headers and
body together), so a trickle ends when the deadline passes, without a watchdog
thread. Bodies are read as a stream and abandoned at a size limit, so a huge
answer costs at most that limit in memory.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.poolmanager import PoolManager

from exporter.codat import limits
from exporter.codat.answers import Answer
from exporter.codat.retry import Failure

CHUNK: Final = 64 * 1024

_local = threading.local()


class DeadlineExceededError(TimeoutError):
    """The request's total deadline passed before its response was complete."""


@contextmanager
def total_deadline(deadline: float) -> Iterator[None]:
    """Within this block, every response read on this thread ends by ``deadline`` (``time.monotonic``)."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = previous


def deadline_passed(deadline: float) -> bool:
    """Whether ``deadline`` (``time.monotonic``) is behind us."""
    return time.monotonic() >= deadline


class _DeadlineSocketIO(socket.SocketIO):
    """A socket reader whose every read waits at most until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__(sock, "rb")
        # What socket.makefile() does: the socket stays open until this reader is closed too.
        sock._io_refs += 1  # type: ignore[attr-defined]
        self._socket = sock
        self._deadline = deadline
        self._per_read = sock.gettimeout()

    def readinto(self, buffer: Any) -> int | None:
        """Read like ``SocketIO``, with the timeout clamped to what is left of the deadline."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the request's total deadline passed")
        per_read = remaining if self._per_read is None else min(self._per_read, remaining)
        self._socket.settimeout(per_read)
        return super().readinto(buffer)


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response, reading status line, headers and body under the thread's deadline."""

    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        deadline: float | None = getattr(_local, "deadline", None)
        # TLS inside a TLS proxy tunnel reads through an object that is not a socket: left as it is
        # (the deadline is then still checked between body chunks).
        if deadline is not None and isinstance(sock, socket.socket):
            self.fp.close()
            self.fp = io.BufferedReader(_DeadlineSocketIO(sock, deadline))


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: Final[Mapping[str, type[HTTPConnectionPool]]] = {
    "http": _HTTPConnectionPool,
    "https": _HTTPSConnectionPool,
}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections honour :func:`total_deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with deadline-aware connection pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        """The proxy's pool manager, deadline-aware too (SOCKS proxies keep their own pools)."""
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


@dataclass(frozen=True, slots=True)
class Body:
    """A response body read up to a limit (``truncated``: there was more, and it was not read)."""

    content: bytes
    truncated: bool


def read_body(response: requests.Response, limit: int, deadline: float) -> Body:
    """Read a streamed response's body, stopping after ``limit`` bytes or at ``deadline``.

    Raises ``DeadlineExceededError`` when the deadline passes first (also when the
    session's adapter is not a :class:`DeadlineAdapter`, checked between
    chunks). A declared ``Content-Length`` past the limit is not read at all.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return Body(b"", truncated=True)
    buffer = bytearray()
    for chunk in response.iter_content(CHUNK):
        if deadline_passed(deadline):
            raise DeadlineExceededError("the request's total deadline passed")
        buffer += chunk
        if len(buffer) > limit:
            return Body(bytes(buffer[:limit]), truncated=True)
    return Body(bytes(buffer), truncated=False)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-connect and per-read timeouts, and the total deadline of one attempt (seconds)."""

    connect: float
    read: float
    total: float


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    deadline: float,
    limit: int,
) -> Answer:
    """Send one request and read its answer, all by ``deadline``; a 2xx body up to ``limit`` bytes.

    Raises ``requests.RequestException`` or ``DeadlineExceededError`` when no
    complete answer came. Redirects are not followed: Codat's API does not
    redirect, and following one could carry the key somewhere else.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceededError("the request's total deadline passed before it was sent")
    timeout = (min(timeouts.connect, remaining), min(timeouts.read, remaining))
    with total_deadline(deadline):
        response = session.request(
            method, url, params=params, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        )
        try:
            ok = 200 <= response.status_code < 300
            body = read_body(response, limit if ok else limits.ERROR_BODY, deadline)
        finally:
            response.close()
    return Answer(response.status_code, response.headers, body.content, body.truncated)


def classify_exception(exc: BaseException) -> Failure | None:
    """Which kind of no-response failure an exception from ``requests`` is (None: not a network failure).

    Only a failure to connect proves the request was never sent; that
    distinction decides whether a refresh may be retried.
    """
    if isinstance(exc, DeadlineExceededError):
        return Failure.DEADLINE
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Failure.CONNECT
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Failure.READ_TIMEOUT
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: object = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return Failure.CONNECT
        return Failure.CONNECTION_LOST
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return Failure.CONNECTION_LOST
    return None
