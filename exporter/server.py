"""The exporter's HTTP server: /metrics, /healthz, /readyz, the landing page, and extra routes.

The server only routes and copies bytes: /metrics bodies come pre-rendered from
``ExpositionCache`` and the landing page from ``exporter.landing``. Other
modules (the webhook receiver) add routes as ``(method, path) → handler``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from exporter.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, AgeTicker, ExpositionCache
from exporter.landing import LandingData, render_landing
from exporter.metrics import Telemetry

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
IDLE_TIMEOUT_SECONDS: Final = 60.0
"""How long a keep-alive connection may sit idle before its thread gives up on it."""
SHUTDOWN_POLL_SECONDS: Final = 0.1
"""How often the serving loop checks for ``stop()``: the longest ``stop()`` waits for it."""


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as extra route handlers see it; header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler answers; ``Content-Length`` is added by the server."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        """A ``text/plain`` response."""
        return cls(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())

    @classmethod
    def json(cls, status: int, payload: object) -> Response:
        """An ``application/json`` response."""
        return cls(status, {"Content-Type": "application/json"}, json.dumps(payload).encode() + b"\n")


Handler = Callable[[Request], Response]

_BUILTIN_PATHS: Final = frozenset({"/", "/metrics", "/healthz", "/readyz"})
_READ_METHODS: Final = ("GET", "HEAD")


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``:PORT`` = all interfaces, ``[::1]:PORT`` for IPv6) into host and port."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen address {address!r} is not HOST:PORT")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    return host, int(port_text)


def wants_openmetrics(accept: str) -> bool:
    """True when an ``Accept`` header asks for OpenMetrics (as Prometheus does, with q-values)."""
    for item in accept.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() != "application/openmetrics-text":
            continue
        quality = next((p.split("=", 1)[1] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            return True
    return False


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an ``Accept-Encoding`` header allows gzip (and does not refuse it with ``q=0``)."""
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding.lower() in ("gzip", "x-gzip"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    exporter: ExporterServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    """Routes one connection's requests to the owning ``ExporterServer``."""

    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its scrape connection
    server_version = "codat-exporter"
    sys_version = ""

    def version_string(self) -> str:
        """The ``Server`` header: the product name alone, no Python version, no trailing space."""
        return self.server_version

    timeout = IDLE_TIMEOUT_SECONDS
    server: _Server

    def do_GET(self) -> None:
        self.server.exporter._dispatch(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class ExporterServer:
    """Serves the exporter's endpoints on a background thread.

    ``ready`` says whether the first full poll finished (for /readyz); ``landing`` gives the
    data of the landing page; ``routes`` adds handlers such as ``("POST", "/webhooks/codat")``
    (a route may also replace a built-in path). Bodies over ``max_body_bytes`` are refused with
    413 before the handler runs, and ``on_body_too_large(path)`` is told. While /metrics is
    scraped, an ``AgeTicker`` (``age_ticker``; off with ``prebuild_ages=False``) builds each
    second's ``codat_data_seconds_since_last_successful_sync`` block ahead of the scrapes.
    """

    def __init__(
        self,
        listen_address: str,
        cache: ExpositionCache,
        telemetry: Telemetry | None,
        ready: Callable[[], bool],
        landing: Callable[[], LandingData],
        routes: Mapping[tuple[str, str], Handler] | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
        on_body_too_large: Callable[[str], None] | None = None,
        prebuild_ages: bool = True,
    ) -> None:
        """Bind the listening socket now (so a taken port fails at start-up); serve on ``start()``."""
        self.cache = cache
        self.telemetry = telemetry
        self.ready = ready
        self.landing = landing
        self.routes: dict[tuple[str, str], Handler] = {
            (m.upper(), p): h for (m, p), h in (routes or {}).items()
        }
        self.max_body_bytes = max_body_bytes
        # Told the path of each request refused with 413, which never reaches its handler (the
        # webhook receiver counts them).
        self.on_body_too_large = on_body_too_large
        self.clock = clock
        host, port = parse_listen_address(listen_address)
        server_class: type[_Server] = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), _RequestHandler)
        self._httpd.exporter = self
        self._thread: threading.Thread | None = None
        self.age_ticker = AgeTicker(cache, clock) if prebuild_ages else None

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
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve requests on a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="http-server",
            daemon=True,
        )
        self._thread.start()
        if self.age_ticker is not None:
            self.age_ticker.start()
        log.info("serving metrics on %s/metrics", self.url)

    def stop(self) -> None:
        """Stop accepting requests, close the socket, and wait for the serving and ticker threads."""
        if self.age_ticker is not None:
            self.age_ticker.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ExporterServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routing -------------------------------------------------------------------

    def _dispatch(self, handler: _RequestHandler) -> None:
        method = handler.command.upper()
        parts = urlsplit(handler.path)
        path = parts.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            if path in _BUILTIN_PATHS and (method, path) not in self.routes:
                if method not in _READ_METHODS:
                    self._send(handler, method, _not_allowed(_READ_METHODS))
                elif path == "/metrics":
                    self._send_metrics(handler, method, headers)
                else:
                    self._send(handler, method, self._builtin(path))
                return
            route = self.routes.get((method, path))
            if route is None:
                allowed = sorted(m for m, p in self.routes if p == path)
                self._send(handler, method, _not_allowed(allowed) if allowed else _not_found(headers))
                return
            body = self._read_body(handler, headers)
            if isinstance(body, Response):
                if body.status == 413 and self.on_body_too_large is not None:
                    self.on_body_too_large(path)
                self._send(handler, method, body)
                return
            request = Request(method, path, parts.query, headers, body, handler.client_address[0])
            self._send(handler, method, route(request))
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s %s", method, path)
        except Exception:
            log.exception("error while serving %s %s", method, path)
            handler.close_connection = True
            with contextlib.suppress(OSError):
                self._send(handler, method, Response.text(500, "internal server error\n"))

    def _builtin(self, path: str) -> Response:
        if path == "/healthz":
            return Response.text(200, "ok\n")
        if path == "/readyz":
            if self.ready():
                return Response.text(200, "ok\n")
            return Response.text(503, "not ready: the first poll of every company has not finished yet\n")
        html = render_landing(self.landing(), self.clock())
        return Response(
            200,
            {
                "Content-Type": "text/html; charset=utf-8",
                # The page is self-contained: forbid every external load, allow only its inline CSS.
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
            html.encode(),
        )

    def _read_body(self, handler: _RequestHandler, headers: Mapping[str, str]) -> bytes | Response:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            handler.close_connection = True
            return Response.text(411, "a Content-Length is required\n")
        length_text = headers.get("content-length", "0").strip() or "0"
        if not length_text.isdigit():
            handler.close_connection = True
            return Response.text(400, "bad Content-Length\n")
        length = int(length_text)
        if length > self.max_body_bytes:
            handler.close_connection = True  # the unread body must not be parsed as a next request
            return Response.text(413, f"body larger than {self.max_body_bytes} bytes\n")
        return handler.rfile.read(length) if length else b""

    def _send_metrics(self, handler: _RequestHandler, method: str, headers: Mapping[str, str]) -> None:
        openmetrics = wants_openmetrics(headers.get("accept", ""))
        gzip = accepts_gzip(headers.get("accept-encoding", ""))
        registry = self.telemetry.registry if self.telemetry is not None else None
        ticker = self.age_ticker
        with ticker.serving() if ticker is not None else contextlib.nullcontext():
            self._send_metrics_body(handler, method, openmetrics, gzip, registry)

    def _send_metrics_body(
        self,
        handler: _RequestHandler,
        method: str,
        openmetrics: bool,
        gzip: bool,
        registry: CollectorRegistry | None,
    ) -> None:
        now = self.clock()
        parts = self.cache.parts(openmetrics, gzip, now, registry)
        if self.age_ticker is not None:
            self.age_ticker.scraped(gzip=gzip, now=now)  # after building: never slows this scrape
        handler.send_response(200)
        handler.send_header("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)
        if gzip:
            handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Vary", "Accept, Accept-Encoding")
        handler.send_header("Content-Length", str(sum(len(p) for p in parts)))
        handler.end_headers()
        if method != "HEAD":
            for part in parts:  # sent one by one: the large parts are never copied
                handler.wfile.write(part)

    def _send(self, handler: _RequestHandler, method: str, response: Response) -> None:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.body)))
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        if method != "HEAD" and response.body:
            handler.wfile.write(response.body)


def _not_found(headers: Mapping[str, str]) -> Response:
    if "application/json" in headers.get("accept", ""):
        return Response.json(404, {"error": "not found"})
    return Response.text(404, "404 page not found; see / for the endpoints\n")


def _not_allowed(allowed: tuple[str, ...] | list[str]) -> Response:
    allow = ", ".join(allowed)
    return Response(
        405,
        {"Allow": allow, "Content-Type": "text/plain; charset=utf-8"},
        f"method not allowed; use {allow}\n".encode(),
    )


__all__ = [
    "ExporterServer",
    "Handler",
    "Request",
    "Response",
    "accepts_gzip",
    "parse_listen_address",
    "wants_openmetrics",
]
