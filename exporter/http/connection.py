"""Socket-level pieces of a connection: reads under a deadline, whole writes, and few of them.

A per-read socket timeout lets a client that sends one byte at a time hold a
connection forever; ``DeadlineReader`` bounds the total instead. Responses are
joined into as few writes as possible, so with ``TCP_NODELAY`` a small response
is one segment train and never waits for the peer's delayed ACK.
"""

from __future__ import annotations

import io
import math
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Final

CLIENT_GONE: Final = (ConnectionError, TimeoutError, ssl.SSLError)
"""What a connection raises when the client went away, timed out or failed its TLS handshake."""


def describe_disconnect(error: BaseException | None) -> str:
    """A short reason for a connection that ended early, without a traceback."""
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionResetError):
        return "reset by the client"
    if isinstance(error, BrokenPipeError):
        return "closed by the client before reading the response"
    return type(error).__name__ if error is not None else "closed"


class DeadlineReader(io.RawIOBase):
    """Socket reads that fail once ``deadline`` (monotonic) passes, however slowly bytes trickle in."""

    def __init__(self, sock: socket.socket) -> None:
        """Read from ``sock``; no deadline until one is set."""
        self.sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Receive into ``buffer`` within what is left of the deadline; ``TimeoutError`` after it."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("read deadline passed")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class SocketWriter(io.BufferedIOBase):
    """Whole writes: ``sendall`` (a plain ``makefile`` may send only part of a TLS write)."""

    def __init__(self, sock: socket.socket) -> None:
        """Write to ``sock``."""
        self.sock = sock

    def writable(self) -> bool:
        """Always: this is a writer."""
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        """Send all of ``data``."""
        self.sock.sendall(data)
        return len(data)


IOV_MAX: Final = 1024
"""Buffers one ``sendmsg`` may take (Linux ``IOV_MAX``)."""


def send_buffers(sock: socket.socket, buffers: Sequence[bytes]) -> None:
    """Send ``buffers`` in order with as few ``sendmsg`` calls as the socket allows, copying none.

    One system call per response (or per socket buffer's worth) instead of one per piece:
    every call gives the GIL back and must win it again, which is what concurrent scrapes
    of many pieces wait on. Partial sends resume where the kernel stopped.
    """
    views: list[bytes | memoryview] = list(buffers)
    start = 0
    while start < len(views):
        sent = sock.sendmsg(views[start : start + IOV_MAX])
        while start < len(views) and sent >= len(views[start]):
            sent -= len(views[start])
            start += 1
        if sent:  # the kernel stopped inside this buffer: resume there, without copying it
            views[start] = memoryview(views[start])[sent:]


def coalesce(head: bytes, chunks: Iterable[bytes], limit: int) -> Iterable[bytes]:
    """The writes for ``head`` then ``chunks``: small pieces joined up to ``limit``, large ones as they are.

    A small response is one write (one TCP segment train): headers and body never wait
    for the peer's delayed ACK between them.
    """
    pending = [head]
    size = len(head)
    for chunk in chunks:
        if not chunk:
            continue
        if size + len(chunk) <= limit:
            pending.append(chunk)
            size += len(chunk)
            continue
        yield b"".join(pending)
        if len(chunk) > limit:
            yield chunk  # a large part is sent as it is, never copied
            pending, size = [], 0
        else:
            pending, size = [chunk], len(chunk)
    if pending:
        yield b"".join(pending)
