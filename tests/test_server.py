"""The HTTP server over real sockets: negotiation, gzip, HEAD, health, readiness, routing."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from exporter.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.messages import Request, Response
from exporter.http.negotiation import accepts_gzip, wants_openmetrics
from tests.support.snapshots import T0, company, rich_snapshot, snapshot

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@dataclass
class Running:
    server: ExporterServer
    cache: ExpositionCache
    ready: threading.Event
    received: list[Request]
    too_large: list[str]

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()


@pytest.fixture
def running() -> Iterator[Running]:
    cache = ExpositionCache("default")
    cache.update(rich_snapshot())
    ready = threading.Event()
    received: list[Request] = []
    too_large: list[str] = []

    def echo(request: Request) -> Response:
        received.append(request)
        return Response.json(202, {"got": len(request.body)})

    def boom(request: Request) -> Response:
        raise RuntimeError("handler bug")

    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        Telemetry(),
        ready=ready.is_set,
        landing=lambda: LandingData(rich_snapshot(), ready=ready.is_set()),
        routes={("POST", "/webhooks/codat"): echo, ("post", "/boom"): boom},
        max_body_bytes=1000,
        on_body_too_large=too_large.append,
        clock=lambda: T0.timestamp() + 42,
    )
    server.start()
    try:
        yield Running(server, cache, ready, received, too_large)
    finally:
        server.stop()


def test_metrics_defaults_to_the_text_format(running: Running) -> None:
    resp, body = running.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == TEXT_CONTENT_TYPE
    assert resp.getheader("Content-Encoding") is None
    assert int(resp.getheader("Content-Length", "-1")) == len(body)
    assert body == running.cache.body(False, False, T0.timestamp() + 42, running.server.telemetry.registry)  # type: ignore[union-attr]
    assert b"codat_exporter_build_info{" in body


def test_metrics_serves_openmetrics_to_prometheus_accept_header(running: Running) -> None:
    resp, body = running.request("GET", "/metrics", {"Accept": PROMETHEUS_ACCEPT})
    assert resp.getheader("Content-Type") == OPENMETRICS_CONTENT_TYPE
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE codat_pull_operations counter\n" in body


def test_metrics_gzip_is_multi_member_and_decodes(running: Running) -> None:
    resp, body = running.request("GET", "/metrics", {"Accept-Encoding": "gzip, deflate"})
    assert resp.getheader("Content-Encoding") == "gzip"
    assert int(resp.getheader("Content-Length", "-1")) == len(body)
    plain = gzip.decompress(body)
    assert plain.startswith(b"# HELP codat_data_last_successful_sync_timestamp_seconds ")
    assert (
        b'codat_data_seconds_since_last_successful_sync{company_id="c-acme",data_type="invoices"} 10842\n'
        in plain
    )
    first = zlib.decompressobj(31)
    first.decompress(body)
    assert first.unused_data, "expected more than one gzip member"


def test_gzip_refused_with_q_zero_is_plain(running: Running) -> None:
    resp, body = running.request("GET", "/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
    assert resp.getheader("Content-Encoding") is None
    assert body.startswith(b"# HELP ")


def test_head_sends_headers_and_no_body(running: Running) -> None:
    get_resp, get_body = running.request("GET", "/metrics", {"Accept-Encoding": "gzip"})
    head_resp, head_body = running.request("HEAD", "/metrics", {"Accept-Encoding": "gzip"})
    assert head_resp.status == 200
    assert head_body == b""
    assert head_resp.getheader("Content-Length") == str(len(get_body))
    assert head_resp.getheader("Content-Encoding") == "gzip"
    assert get_resp.getheader("Content-Type") == head_resp.getheader("Content-Type")


def test_metrics_follow_the_latest_snapshot(running: Running) -> None:
    running.cache.update(snapshot(company("c-new", {"invoices": ("Complete", T0)})))
    _, body = running.request("GET", "/metrics")
    assert b'company_id="c-new"' in body
    assert b'company_id="c-acme"' not in body


def test_healthz_is_ok_while_alive(running: Running) -> None:
    resp, body = running.request("GET", "/healthz")
    assert (resp.status, body) == (200, b"ok\n")
    assert resp.getheader("Server") == "codat-exporter"  # no Python version, no trailing space


def test_readyz_is_503_until_the_first_full_poll(running: Running) -> None:
    resp, body = running.request("GET", "/readyz")
    assert resp.status == 503
    assert b"first poll" in body
    running.ready.set()
    resp, body = running.request("GET", "/readyz")
    assert (resp.status, body) == (200, b"ok\n")


def test_unknown_path_is_404_as_text_or_json(running: Running) -> None:
    resp, body = running.request("GET", "/nope")
    assert resp.status == 404
    assert resp.getheader("Content-Type", "").startswith("text/plain")
    resp, body = running.request("GET", "/nope", {"Accept": "application/json"})
    assert resp.status == 404
    assert json.loads(body) == {"error": "not found"}


def test_wrong_method_is_405_with_allow_header(running: Running) -> None:
    resp, _ = running.request("POST", "/metrics", body=b"x")
    assert resp.status == 405
    assert resp.getheader("Allow") == "GET, HEAD"
    resp, _ = running.request("GET", "/webhooks/codat")
    assert resp.status == 405
    assert resp.getheader("Allow") == "POST"


def test_extra_route_receives_body_headers_and_query(running: Running) -> None:
    resp, body = running.request(
        "POST",
        "/webhooks/codat?x=1",
        {"Webhook-Id": "msg_1", "Content-Type": "application/json"},
        b'{"a": 1}',
    )
    assert resp.status == 202
    assert json.loads(body) == {"got": 8}
    (request,) = running.received
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/webhooks/codat",
        "x=1",
        b'{"a": 1}',
    )
    assert request.headers["webhook-id"] == "msg_1"
    assert request.client == "127.0.0.1"


def test_oversized_body_is_refused_with_413_before_the_handler(running: Running) -> None:
    resp, _ = running.request("POST", "/webhooks/codat", body=b"x" * 1001)
    assert resp.status == 413
    assert running.received == []
    assert running.too_large == ["/webhooks/codat"]


def test_handler_error_is_500_and_server_keeps_serving(running: Running) -> None:
    resp, body = running.request("POST", "/boom", body=b"")
    assert resp.status == 500
    assert b"handler bug" not in body
    resp, _ = running.request("GET", "/healthz")
    assert resp.status == 200


def test_landing_page_is_self_contained_html(running: Running) -> None:
    resp, body = running.request("GET", "/")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "default-src 'none'" in resp.getheader("Content-Security-Policy", "")
    page = body.decode()
    assert 'href="metrics"' in page
    assert "Acme &quot;Widgets&quot; \\ Ltd\nUK &amp; &lt;Co&gt; 100%" in page
    assert "<Co>" not in page


def test_keep_alive_connection_serves_several_scrapes(running: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running.server.port, timeout=10)
    try:
        sizes = []
        for _ in range(3):
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            sizes.append(len(gzip.decompress(resp.read())))
        assert len(set(sizes)) == 1
        assert conn.sock is not None  # the same socket stayed open
    finally:
        conn.close()


def test_stop_closes_the_listening_socket() -> None:
    cache = ExpositionCache("default")
    server = ExporterServer(
        "127.0.0.1:0", cache, None, ready=lambda: True, landing=lambda: LandingData(rich_snapshot())
    )
    server.start()
    port = server.port
    assert server.url == f"http://127.0.0.1:{port}"
    server.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_port_in_use_fails_at_construction() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            ExporterServer(
                f"127.0.0.1:{port}",
                ExpositionCache(),
                None,
                ready=lambda: True,
                landing=lambda: LandingData(rich_snapshot()),
            )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("Application/OpenMetrics-Text; version=1.0.0", True),
        ("application/openmetrics-text;q=0", False),
        ("text/plain;version=0.0.4", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_wants_openmetrics(accept: str, expected: bool) -> None:
    assert wants_openmetrics(accept) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("br", False),
        ("", False),
    ],
)
def test_accepts_gzip(value: str, expected: bool) -> None:
    assert accepts_gzip(value) is expected


def test_a_route_can_replace_a_builtin_path() -> None:
    hidden = Response.text(404, "not on this listener\n")
    server = ExporterServer(
        "127.0.0.1:0",
        ExpositionCache(),
        None,
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        routes={("GET", "/metrics"): lambda _request: hidden},
    )
    with server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (404, b"not on this listener\n")
        conn.close()
