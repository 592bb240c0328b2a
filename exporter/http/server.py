"""A small HTTP/1.1 server: routing, body limits, 404/405, keep-alive, TLS and basic auth, error handling.

It knows nothing about metrics: callers give it ``(METHOD, path) → handler`` routes
(``exporter.http.endpoints`` for the exporter, the webhook receiver for its own
port). One thread per connection; what a client may hold is bounded by
``exporter.http.limits``. Each response goes out in as few writes as possible with
``TCP_NODELAY`` set, so a kept-alive client never waits on Nagle's algorithm.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import urlsplit

from exporter.common.listen import parse_listen_address
from exporter.http.connection import (
    CLIENT_GONE,
    DeadlineReader,
    SocketWriter,
    coalesce,
    describe_disconnect,
    send_buffers,
)
from exporter.http.limits import LISTEN_BACKLOG, ConnectionTable, ServerLimits, connection_cap, soft_fd_limit
from exporter.http.messages import (
    DEFAULT_NOT_FOUND_TEXT,
    Handler,
    Request,
    Response,
    Routes,
    not_allowed,
    not_found,
)
from exporter.http.webconfig import WebConfig

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
SHUTDOWN_POLL_SECONDS: Final = 0.1
"""How often the serving loop checks for ``stop()``: the longest ``stop()`` waits for it."""
COALESCE_BYTES: Final = 64 * 1024
"""Pieces of a response up to this size are joined into one write; larger parts go as they are."""
SERVER_NAME: Final = "codat-exporter"


class ListenError(OSError):
    """The listen address cannot be bound; the message names it and how to choose another."""

    def __str__(self) -> str:
        """The one-line message alone, without ``[Errno N]``."""
        return str(self.strerror)


class HttpServer:
    """Serves ``routes`` on a background thread.

    Bodies over ``max_body_bytes`` are refused with 413 before the handler runs, and
    ``on_body_too_large(path)`` is told. ``web`` adds TLS, basic auth and extra headers
    (the exporter-toolkit web configuration); ``move_hint`` says how an operator picks
    another address when this one is taken.
    """

    def __init__(
        self,
        listen_address: str,
        routes: Routes,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        on_body_too_large: Callable[[str], None] | None = None,
        not_found_text: str = DEFAULT_NOT_FOUND_TEXT,
        limits: ServerLimits | None = None,
        web: WebConfig | None = None,
        move_hint: str = "",
        name: str = "http-server",
    ) -> None:
        """Bind the listening socket now (so a taken port fails at start-up); serve on ``start()``."""
        self.routes: dict[tuple[str, str], Handler] = {(m.upper(), p): h for (m, p), h in routes.items()}
        self.max_body_bytes = max_body_bytes
        # Told the path of each request refused with 413, which never reaches its handler (the
        # webhook receiver counts them).
        self.on_body_too_large = on_body_too_large
        self.not_found_text = not_found_text
        self.limits = limits or ServerLimits()
        self.web = web or WebConfig()
        self.name = name
        self.connections = ConnectionTable(connection_cap(self.limits.max_connections, soft_fd_limit()))
        host, port = parse_listen_address(listen_address)
        server_class: type[_Server] = _Server6 if ":" in host else _Server
        try:
            self._httpd = server_class((host, port), _RequestHandler)
        except OSError as error:
            raise ListenError(error.errno, listen_failure(listen_address, error, move_hint)) from None
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for clients on this machine, e.g. ``http://127.0.0.1:8329``."""
        host = str(self._httpd.server_address[0])
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.web.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Serve requests on a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=self.name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests, close the socket, and wait for the serving thread."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HttpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def route(self, method: str, path: str) -> Handler | None:
        """The handler for ``method`` on ``path`` (``HEAD`` falls back on ``GET``)."""
        handler = self.routes.get((method, path))
        if handler is None and method == "HEAD":
            handler = self.routes.get(("GET", path))
        return handler

    def allowed(self, path: str) -> list[str]:
        """The methods ``path`` answers, for a 405's ``Allow``."""
        methods = {m for m, p in self.routes if p == path}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


def listen_failure(address: str, error: OSError, move_hint: str) -> str:
    """One line for an address that cannot be bound: which address, why, and the way out."""
    reason = error.strerror or str(error)
    if error.errno == errno.EADDRINUSE:
        reason = "the address is already in use (another process listens there)"
    elif error.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    elif error.errno == errno.EADDRNOTAVAIL:
        reason = "no interface of this machine has that address"
    hint = f"; {move_hint}" if move_hint else ""
    return f"cannot listen on {address}: {reason}{hint}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    owner: HttpServer

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        if not self.owner.connections.admit(request):
            log.debug("refused a connection from %s: every connection is busy", client_address[0])
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        self.owner.connections.release(request)
        super().shutdown_request(request)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, CLIENT_GONE):
            # A client that goes away (reset, closed before reading, failed TLS handshake) is normal.
            log.debug("connection from %s ended: %s", client_address[0], describe_disconnect(error))
            return
        log.error("unexpected error on a connection from %s", client_address[0], exc_info=error)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    """One connection: reads requests under deadlines and hands them to the owning ``HttpServer``."""

    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its scrape connection
    server_version = SERVER_NAME
    sys_version = ""
    server: _Server

    def version_string(self) -> str:
        """The ``Server`` header: the product name alone, no Python version, no trailing space."""
        return self.server_version

    def setup(self) -> None:
        owner = self.server.owner
        self._key = self.request
        sock: socket.socket = self.request
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if owner.web.tls is not None:
            sock = owner.web.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            owner.connections.use_socket(self._key, sock)
            try:
                sock.settimeout(owner.limits.header_timeout)
                sock.do_handshake()
            except BaseException:
                sock.close()
                raise
            self.request = sock
        self.connection = sock
        self._reader = DeadlineReader(sock)
        self._buffered = io.BufferedReader(self._reader)
        self.rfile = self._buffered
        self.wfile = SocketWriter(sock)
        self._requests = 0

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.close()
        self.rfile.close()
        if self.request is not self._key:
            self.request.close()  # the TLS socket; socketserver closes only the accepted one

    def handle_one_request(self) -> None:
        limits = self.server.owner.limits
        first_wait = limits.idle_timeout if self._requests else limits.header_timeout
        self._reader.deadline = time.monotonic() + first_wait
        try:
            if not self._buffered.peek(1):
                self.close_connection = True
                return
        except TimeoutError:
            self.close_connection = True
            return
        self._reader.deadline = time.monotonic() + limits.header_timeout
        self._requests += 1
        super().handle_one_request()

    def do_GET(self) -> None:
        self.server.owner.connections.busy(self._key)
        try:
            _dispatch(self.server.owner, self)
        finally:
            self.server.owner.connections.waiting(self._key)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _dispatch(owner: HttpServer, handler: _RequestHandler) -> None:
    method = handler.command.upper()
    parts = urlsplit(handler.path)
    path = parts.path
    headers = {k.lower(): v for k, v in handler.headers.items()}
    try:
        denied = owner.web.authorize(headers)
        route = owner.route(method, path) if denied is None else None
        if route is None:
            if _has_body(headers):
                handler.close_connection = True  # the unread body must not be parsed as a next request
            allowed = owner.allowed(path)
            if denied is not None:
                response = denied
            elif allowed:
                response = not_allowed(allowed)
            else:
                response = not_found(headers, owner.not_found_text)
            _send(owner, handler, method, response)
            return
        handler._reader.deadline = time.monotonic() + owner.limits.body_timeout
        body = _read_body(owner, handler, headers)
        if isinstance(body, Response):
            if body.status == 413 and owner.on_body_too_large is not None:
                owner.on_body_too_large(path)
            _send(owner, handler, method, body)
            return
        request = Request(method, path, parts.query, headers, body, handler.client_address[0])
        _send(owner, handler, method, route(request))
    except CLIENT_GONE as error:
        handler.close_connection = True
        log.debug("client went away during %s %s: %s", method, path, describe_disconnect(error))
    except Exception:
        log.exception("error while serving %s %s", method, path)
        handler.close_connection = True
        with contextlib.suppress(OSError):
            _send(owner, handler, method, Response.text(500, "internal server error\n"))


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length", "0").strip()
    return "transfer-encoding" in headers or length not in ("", "0")


def _read_body(owner: HttpServer, handler: _RequestHandler, headers: Mapping[str, str]) -> bytes | Response:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        handler.close_connection = True
        return Response.text(411, "a Content-Length is required\n")
    length_text = headers.get("content-length", "0").strip() or "0"
    if not length_text.isdigit():
        handler.close_connection = True
        return Response.text(400, "bad Content-Length\n")
    length = int(length_text)
    if length > owner.max_body_bytes:
        handler.close_connection = True  # the unread body must not be parsed as a next request
        return Response.text(413, f"body larger than {owner.max_body_bytes} bytes\n")
    return handler.rfile.read(length) if length else b""


def _head(owner: HttpServer, handler: _RequestHandler, response: Response, length: int) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Server: {SERVER_NAME}",
        f"Date: {formatdate(usegmt=True)}",
    ]
    own = {name.lower() for name in response.headers}
    lines += [f"{name}: {value}" for name, value in owner.web.headers.items() if name.lower() not in own]
    lines += [f"{n}: {v}" for n, v in response.headers.items() if n.lower() != "content-length"]
    lines.append(f"Content-Length: {length}")
    if handler.close_connection:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _send(owner: HttpServer, handler: _RequestHandler, method: str, response: Response) -> None:
    length = response.length  # summed once: a /metrics body has a hundred or more parts
    handler.log_request(response.status, length)
    handler.connection.settimeout(owner.limits.write_timeout)
    chunks: Iterable[bytes] = response.chunks if method != "HEAD" else ()
    head = _head(owner, handler, response, length)
    if type(handler.connection) is socket.socket:
        send_buffers(handler.connection, [head, *chunks])
        return
    # TLS has no scatter-gather send: join small pieces, send large ones as they are.
    for piece in coalesce(head, chunks, COALESCE_BYTES):
        handler.wfile.write(piece)
