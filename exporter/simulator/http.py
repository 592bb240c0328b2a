"""The simulator's HTTP server: reads requests, asks ``api.handle`` for the reply, writes it."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from exporter.simulator.api import Reply, handle
from exporter.simulator.clock import FakeClock
from exporter.simulator.control import PREFIX, handle_control, is_loopback
from exporter.simulator.wire import dumps

if TYPE_CHECKING:
    from exporter.simulator.sim import Simulator

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "codat-simulator"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    simulator: Simulator
    control: bool = False

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.control and (self.path == PREFIX or self.path.startswith(PREFIX + "/")):
            reply = self._control(method, body)
        else:
            reply = handle(self.simulator, method, self.path, dict(self.headers.items()))
        if reply.latency > 0:
            # Real latency: the client's timeouts are what is being tested.
            time.sleep(reply.latency)
        if reply.reset:
            self._reset()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    def _control(self, method: str, body: bytes) -> Reply:
        if not is_loopback(str(self.client_address[0])):
            status, document = 403, {"error": "the control API answers loopback clients only"}
        else:
            status, document = handle_control(self.simulator, method, self.path.split("?", 1)[0], body)
        return Reply(status, dumps(document), {"Content-Type": "application/json; charset=utf-8"})

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("connection from %s ended abruptly", client_address)


class SimulatorServer:
    """A running simulator on a real socket; ``url`` is the base URL to give the Codat client."""

    def __init__(
        self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0, *, control: bool = False
    ) -> None:
        """Bind now (``port=0`` picks a free port); ``start`` begins serving.

        ``control`` also serves the run-time control API (``control.py``) to loopback clients.
        """
        handler = type("BoundHandler", (_Handler,), {"simulator": simulator, "control": control})
        self.sim = simulator
        self._server = _Server((host, port), handler)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (what the exporter uses as its Codat base URL)."""
        return f"http://{self.host}:{self.port}"

    @property
    def clock(self) -> object:
        """The simulator's clock."""
        return self.sim.clock

    def start(self) -> None:
        """Serve on a background thread (and keep a real-time clock ticking)."""
        serving = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-http", daemon=True
        )
        serving.start()
        self._threads.append(serving)
        if not isinstance(self.sim.clock, FakeClock):
            ticker = threading.Thread(target=self._tick, name="sim-clock", daemon=True)
            ticker.start()
            self._threads.append(ticker)

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self.sim.tick()
            self.sim.webhooks.wake()

    def close(self) -> None:
        """Stop serving, free the port and stop the webhook sender."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.sim.close()

    def __enter__(self) -> SimulatorServer:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()
