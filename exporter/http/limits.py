"""What one client may hold on a listener: timeouts, a connection cap, and which connection yields.

A connection is either *waiting* (for its first request, for the rest of its headers,
or idle between kept-alive requests) or *busy* (a request is being answered). When
the cap is reached, a new connection takes the place of the longest-waiting one
that never completed a request, else of the longest-idle kept-alive one: a client
that opens connections and never finishes its headers (slowloris) cannot lock a
scraper out, since the scraper's fresh connection always finds a place and its
request is answered within milliseconds. Only when every connection is busy is a
new one refused.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS: Final = 256
FD_HEADROOM: Final = 128
"""File descriptors kept free for everything else: the Codat client's pool, logs, config reads."""
LISTENERS_PER_PROCESS: Final = 2
"""The metrics port and the webhook port share the process's descriptors."""
LISTEN_BACKLOG: Final = 128
"""Connections the kernel queues before ``accept`` (``socketserver``'s default of 5 drops SYNs)."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Timeouts (seconds) and the connection cap of one listener."""

    header_timeout: float = 10.0
    """From a connection's first byte (or its accept, for a first request) to the end of its headers."""
    idle_timeout: float = 60.0
    """A kept-alive connection waiting for its next request."""
    body_timeout: float = 30.0
    """Reading one request body."""
    write_timeout: float = 60.0
    """Sending one response (a client that stops reading is dropped after it)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def connection_cap(configured: int, soft_fd_limit: int, headroom: int = FD_HEADROOM) -> int:
    """The connections one listener may hold: ``configured``, lowered to fit the fd limit.

    Both listeners together stay ``headroom`` descriptors below the soft ``RLIMIT_NOFILE``.
    """
    if soft_fd_limit <= 0:  # RLIM_INFINITY or unknown
        return configured
    fitting = (soft_fd_limit - headroom) // LISTENERS_PER_PROCESS
    return max(1, min(configured, fitting))


def soft_fd_limit() -> int:
    """The process's soft limit on open files (-1 if unlimited or unknown)."""
    try:
        import resource  # POSIX only
    except ImportError:  # pragma: no cover - not POSIX
        return -1
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return -1 if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(slots=True)
class _Entry:
    since: float
    busy: bool = False
    served: int = 0
    close: Callable[[], None] | None = None


def choose_victim(entries: Iterable[tuple[object, bool, int, float]]) -> object | None:
    """Which connection yields its place: ``(key, busy, served, since)`` → key, or None if all are busy.

    Connections that never completed a request go first, then idle kept-alive ones; the
    oldest first within each.
    """
    waiting = [
        (served > 0, since, i, key) for i, (key, busy, served, since) in enumerate(entries) if not busy
    ]
    return min(waiting)[3] if waiting else None


class ConnectionTable:
    """The open connections of one listener and their state; thread-safe."""

    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Hold at most ``cap`` connections."""
        self.cap = cap
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[object, _Entry] = {}
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        """How many connections are open."""
        with self._lock:
            return len(self._entries)

    def admit(self, key: socket.socket) -> bool:
        """Make room for a new connection; False when every held connection is busy."""
        with self._lock:
            victim_close: Callable[[], None] | None = None
            if len(self._entries) >= self.cap:
                victim = choose_victim((k, e.busy, e.served, e.since) for k, e in self._entries.items())
                if victim is None:
                    self.refused += 1
                    return False
                entry = self._entries.pop(victim)
                self.evicted += 1
                victim_close = entry.close or _shutdown_closer(victim)
            self._entries[key] = _Entry(self._clock(), close=_shutdown_closer(key))
        if victim_close is not None:
            victim_close()
        return True

    def use_socket(self, key: object, sock: socket.socket) -> None:
        """Evict through ``sock`` from now on (the TLS socket that replaced the accepted one)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.close = _shutdown_closer(sock)

    def busy(self, key: object) -> None:
        """A request of this connection is being answered: it cannot be evicted."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.busy = True

    def waiting(self, key: object) -> None:
        """The connection answered a request and waits for the next one."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.busy = False
                entry.served += 1
                entry.since = self._clock()

    def release(self, key: object) -> None:
        """The connection is closed."""
        with self._lock:
            self._entries.pop(key, None)


def _shutdown_closer(sock: object) -> Callable[[], None]:
    def close() -> None:
        # shutdown (not close) from this thread: the connection's own thread is blocked in a
        # read, returns at once with end-of-file, and closes the socket itself. The base class
        # method also works on a TLS socket without touching its TLS state.
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # type: ignore[arg-type]
        except OSError as error:
            log.debug("evicting a connection: %s", error)

    return close
