"""The generic HTTP server over real sockets: clients that go away, taken ports, writes, and limits."""

from __future__ import annotations

import errno
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from exporter.common.logs import build_handler
from exporter.exposition import ExpositionCache
from exporter.http.connection import coalesce
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.limits import ConnectionTable, ServerLimits, choose_victim, connection_cap
from exporter.http.messages import HEALTH_ROUTES, Request, Response
from exporter.http.server import HttpServer, ListenError, listen_failure
from exporter.webhooks.listener import webhook_server
from tests.support.snapshots import company, rich_snapshot, snapshot
from tests.support.waiting import wait_until

BIG = b"x" * (8 * 1024 * 1024)


class Collected(logging.Handler):
    """Formats records with the product's own handler and keeps the lines."""

    def __init__(self, fmt: str) -> None:
        super().__init__(logging.DEBUG)
        self.inner = build_handler(fmt)
        self.lines: list[str] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.inner.filter(record):
            return
        with self.guard:
            self.lines.append(self.inner.format(record))

    def text(self) -> str:
        with self.guard:
            return "\n".join(self.lines)


@contextmanager
def logged(fmt: str) -> Iterator[Collected]:
    handler = Collected(fmt)
    logger = logging.getLogger("exporter.http")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def reset(sock: socket.socket) -> None:
    """Close with an RST, as a client that is killed or times out does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, read from a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def big_server() -> Iterator[tuple[HttpServer, threading.Event]]:
    called = threading.Event()

    def big(_request: Request) -> Response:
        called.set()
        return Response(200, {"Content-Type": "application/octet-stream"}, parts=[BIG])

    server = HttpServer("127.0.0.1:0", {**HEALTH_ROUTES, ("GET", "/big"): big})
    with server:
        yield server, called


def assert_debug_only(collected: Collected, fmt: str, needle: str) -> None:
    text = collected.text()
    assert "Traceback" not in text
    if fmt == "json":
        records = [json.loads(line) for line in collected.lines]
        hits = [r for r in records if needle in r["message"]]
        assert hits, records
        assert all(r["level"] == "debug" for r in hits), records
        assert "exception" not in json.dumps(records)
    else:
        hits = [line for line in collected.lines if needle in line]
        assert hits, collected.lines
        assert all("DEBUG" in line for line in hits), collected.lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_kept_alive_connection_reset_by_the_client_logs_one_debug_line(
    big_server: tuple[HttpServer, threading.Event], fmt: str, capfd: pytest.CaptureFixture[str]
) -> None:
    server, _ = big_server
    with logged(fmt) as collected:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock).endswith(b"ok\n")
        reset(sock)  # while the server waits for the next request on the kept-alive connection
        wait_until(lambda: "reset by the client" in collected.text(), "the reset to be logged")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as again:
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(again).endswith(b"ok\n")  # still serving
    assert_debug_only(collected, fmt, "reset by the client")
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_client_gone_before_reading_the_response_logs_one_debug_line(
    big_server: tuple[HttpServer, threading.Event], fmt: str, capfd: pytest.CaptureFixture[str]
) -> None:
    server, called = big_server
    with logged(fmt) as collected:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        assert called.wait(10)
        reset(sock)  # 8 MB cannot fit in the socket buffers: the server is still writing
        wait_until(lambda: "went away during GET /big" in collected.text(), "the disconnect to be logged")
    assert_debug_only(collected, fmt, "went away during GET /big")
    assert "Traceback" not in capfd.readouterr().err


def taken_port() -> tuple[socket.socket, str]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, f"127.0.0.1:{taken.getsockname()[1]}"


def test_a_taken_metrics_port_names_the_address_and_the_way_out() -> None:
    taken, address = taken_port()
    with taken, pytest.raises(ListenError) as raised:
        ExporterServer(
            address, ExpositionCache(), None, ready=lambda: True, landing=lambda: LandingData(snapshot())
        )
    message = str(raised.value)
    assert message.startswith(f"cannot listen on {address}: the address is already in use")
    assert "--web.listen-address" in message
    assert "CODAT_EXPORTER_LISTEN_ADDRESS" in message
    assert "\n" not in message
    assert "Errno" not in message


def test_a_taken_webhook_port_names_its_config_key() -> None:
    taken, address = taken_port()
    with taken, pytest.raises(ListenError, match=r"webhooks\.listen_address") as raised:
        webhook_server(address, {}, max_body_bytes=100)
    assert address in str(raised.value)


def test_listen_failure_explains_other_errors() -> None:
    assert "permission denied" in listen_failure(":80", OSError(errno.EACCES, "Permission denied"), "")
    assert listen_failure("10.9.9.9:1", OSError(errno.EADDRNOTAVAIL, "x"), "hint").endswith(
        "no interface of this machine has that address; hint"
    )


def test_small_responses_are_one_write_and_large_parts_are_never_copied() -> None:
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    assert list(coalesce(head, [b"a" * 10, b"b" * 10], 100)) == [head + b"a" * 10 + b"b" * 10]
    large = b"L" * 500
    writes = list(coalesce(head, [b"s", large, b"t"], 100))
    assert writes == [head + b"s", large, b"t"]
    assert writes[1] is large
    assert list(coalesce(head, [], 100)) == [head]


def test_the_webhook_port_does_not_claim_to_serve_metrics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_server("127.0.0.1:0", {}, max_body_bytes=100):
        pass
    assert "metrics" not in caplog.text


def test_the_landing_page_substitutes_a_lone_surrogate() -> None:
    odd = snapshot(company("c-odd", {"invo\ud800ices": ("Complete", None)}, name="Bad \ud800 name"))
    cache = ExpositionCache()
    cache.update(odd)
    server = ExporterServer("127.0.0.1:0", cache, None, ready=lambda: True, landing=lambda: LandingData(odd))
    with server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"Bad ? name" in response
    assert b"invo?ices" in response


# --- limits -------------------------------------------------------------------------------


def test_connection_cap_keeps_fd_headroom_for_both_ports() -> None:
    assert connection_cap(256, 1024) == 256
    assert connection_cap(1000, 1024) == (1024 - 128) // 2
    assert connection_cap(256, 200) == 36
    assert connection_cap(256, 100) == 1
    assert connection_cap(256, -1) == 256


def test_the_victim_is_the_oldest_connection_that_never_finished_a_request() -> None:
    entries = [
        ("busy", True, 0, 1.0),
        ("idle-scraper", False, 3, 2.0),
        ("loris-new", False, 0, 9.0),
        ("loris-old", False, 0, 5.0),
    ]
    assert choose_victim(entries) == "loris-old"
    assert (
        choose_victim([("busy", True, 0, 1.0), ("idle-b", False, 1, 7.0), ("idle-a", False, 2, 3.0)])
        == "idle-a"
    )
    assert choose_victim([("busy", True, 0, 1.0)]) is None


def test_a_full_table_of_busy_connections_refuses_a_new_one() -> None:
    table = ConnectionTable(cap=2)
    a, b, c = (socket.socket() for _ in range(3))
    with a, b, c:
        assert table.admit(a)
        assert table.admit(b)
        table.busy(a)
        table.busy(b)
        assert not table.admit(c)
        table.waiting(b)
        assert table.admit(c)
        assert (len(table), table.evicted, table.refused) == (2, 1, 1)


def closed_by_server(sock: socket.socket, drip: bytes = b"", timeout: float = 10.0) -> bool:
    """Send ``drip`` a byte at a time until the server closes; True if it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.05)
    pending = drip
    while time.monotonic() < deadline:
        try:
            if pending:
                sock.send(pending[:1])
                pending = pending[1:] or drip
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue  # the receive wait is the drip's pace
        except OSError:
            return True
    return False


def test_headers_that_trickle_in_are_cut_at_the_header_deadline() -> None:
    limits = ServerLimits(header_timeout=0.5)
    with (
        HttpServer("127.0.0.1:0", HEALTH_ROUTES, limits=limits) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        # One byte each 50 ms never lets a per-read timeout fire; the total deadline does.
        assert closed_by_server(sock, drip=b"X-Slow: aaaaaaaa\r\n", timeout=5)


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() -> None:
    limits = ServerLimits(idle_timeout=0.3)
    with (
        HttpServer("127.0.0.1:0", HEALTH_ROUTES, limits=limits) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock).endswith(b"ok\n")
        assert closed_by_server(sock, timeout=5)


def metrics_server(limits: ServerLimits) -> ExporterServer:
    cache = ExpositionCache()
    cache.update(rich_snapshot())
    return ExporterServer(
        "127.0.0.1:0",
        cache,
        None,
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        limits=limits,
    )


def webhook_port(limits: ServerLimits) -> HttpServer:
    return webhook_server("127.0.0.1:0", {}, max_body_bytes=1000, limits=limits)


@pytest.mark.parametrize(("build", "path"), [(metrics_server, b"/metrics"), (webhook_port, b"/healthz")])
def test_slowloris_cannot_lock_out_a_scraper(
    build: Callable[[ServerLimits], ExporterServer | HttpServer], path: bytes
) -> None:
    # Long timeouts: what keeps the scraper served is the connection cap's eviction, not a timeout.
    limits = ServerLimits(header_timeout=60, idle_timeout=60, max_connections=16)
    server = build(limits)
    held = 0
    answered = 0
    with server, ExitStack() as stack:
        http = server.http if isinstance(server, ExporterServer) else server
        scraper = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        for round_ in range(5):
            for _ in range(16):  # 80 half-open connections in all, five times the cap
                loris = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
                loris.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nX-Never: ")
                held += 1
            # A kept-alive scraper and a scraper on a fresh connection both get answers.
            scraper.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(scraper).startswith(b"HTTP/1.1 200 "), round_
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as fresh:
                fresh.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert read_response(fresh).startswith(b"HTTP/1.1 200 "), round_
            answered += 2
            assert len(http.connections) <= limits.max_connections
    assert (held, answered) == (80, 10)
    assert http.connections.evicted >= 80 - limits.max_connections
