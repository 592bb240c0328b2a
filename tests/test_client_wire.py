"""What the Codat client puts on the wire, seen by a small recording HTTP server over real sockets.

These are the properties the simulator cannot show (it does not record raw
headers or raw query strings): the exact Authorization and User-Agent headers,
the URL encoding of queries, redaction of a key Codat echoes back, and the
concurrency cap under load.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from exporter import __version__
from exporter.codat.auth import REDACTED
from exporter.codat.client import CodatClient
from exporter.codat.errors import BadRequestError, CodatConnectionError, CodatError
from tests.support.waiting import wait_until

KEY = "s3cret-key-0123456789"

Responder = Callable[[str, str], tuple[int, dict[str, str], bytes]]


@dataclass
class Recorder:
    """Requests seen by the server, and how many were in flight at most."""

    targets: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)
    block: bool = False


Wire = tuple[str, Recorder, list[Responder]]


def _ok_page(_: str, __: str) -> tuple[int, dict[str, str], bytes]:
    body = {"results": [], "pageNumber": 1, "pageSize": 100, "totalResults": 0, "_links": {}}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture
def wire() -> Iterator[tuple[str, Recorder, list[Responder]]]:
    recorder = Recorder()
    responder: list[Responder] = [_ok_page]

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            with recorder.lock:
                recorder.targets.append(self.path)
                recorder.headers.append(dict(self.headers.items()))
                recorder.in_flight += 1
                recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
            try:
                if recorder.block:
                    recorder.release.wait(timeout=30)
                status, headers, body = responder[0](self.command, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with recorder.lock:
                    recorder.in_flight -= 1

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder, responder
    finally:
        recorder.release.set()
        server.shutdown()
        server.server_close()


def _client(url: str, **kwargs: object) -> CodatClient:
    return CodatClient(KEY, url, sleep=lambda _s: None, **kwargs)  # type: ignore[arg-type]


def test_sends_basic_auth_of_the_raw_key_and_a_user_agent(
    wire: Wire,
) -> None:
    url, recorder, _ = wire
    with _client(url) as client:
        client.list_companies()
    headers = recorder.headers[0]
    assert headers["Authorization"] == "Basic " + base64.b64encode(KEY.encode()).decode()
    assert headers["User-Agent"] == f"codat-exporter/{__version__}"
    assert headers["Accept"] == "application/json"


def test_query_operators_are_percent_encoded_as_one_value(
    wire: Wire,
) -> None:
    url, recorder, _ = wire
    query = "{status=Complete||status=FetchError}&&dataType!=bills&&requested>=2024-01-01"
    with _client(url) as client:
        client.list_pull_operations("c1", query=query, order_by="-requested", page_size=50)
    target = recorder.targets[0]
    raw_query = urlsplit(target).query
    for raw in ("&&", "||", "{", "}", "!=", ">="):
        assert raw not in raw_query
    assert parse_qs(raw_query) == {
        "page": ["1"],
        "pageSize": ["50"],
        "query": [query],
        "orderBy": ["-requested"],
    }


def test_ids_cannot_change_the_request_path(wire: Wire) -> None:
    url, recorder, responder = wire
    responder[0] = lambda _m, _p: (200, {"Content-Type": "application/json"}, b"{}")
    with _client(url) as client:
        client.get_data_status("../profile?x=1")
    assert urlsplit(recorder.targets[0]).path == "/companies/..%2Fprofile%3Fx%3D1/dataStatus"


def test_a_key_echoed_in_an_error_never_leaves_the_client(
    wire: Wire,
) -> None:
    url, _, responder = wire
    encoded = base64.b64encode(KEY.encode()).decode()
    body = {"statusCode": 400, "service": "PublicApi", "error": f"bad key {KEY} / Basic {encoded}"}
    responder[0] = lambda _m, _p: (400, {"Content-Type": "application/json"}, json.dumps(body).encode())
    with _client(url) as client, pytest.raises(BadRequestError) as caught:
        client.list_companies()
    for text in (str(caught.value), repr(caught.value), caught.value.error):
        assert KEY not in text
        assert encoded not in text


def test_repr_of_the_client_hides_the_key(wire: Wire) -> None:
    url, _, _ = wire
    with _client(url) as client:
        text = repr(client)
    assert KEY not in text
    assert base64.b64encode(KEY.encode()).decode() not in text
    assert REDACTED in text


def test_no_more_than_max_concurrency_requests_are_in_flight(
    wire: Wire,
) -> None:
    url, recorder, _ = wire
    recorder.block = True
    client = _client(url, max_concurrency=2, requests_per_minute=6000)
    threads = [threading.Thread(target=client.list_companies) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: recorder.in_flight == 2 and client.concurrency.waiting == 4)
        assert client.concurrency.in_flight == 2
    finally:
        recorder.release.set()
        for thread in threads:
            thread.join(timeout=30)
        client.close()
    assert len(recorder.targets) == 6
    assert recorder.max_in_flight == 2


def test_connection_refused_counts_as_a_connect_failure_and_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slept: list[float] = []
    client = CodatClient(
        KEY, f"http://127.0.0.1:{port}", max_retries=2, sleep=slept.append, jitter=lambda: 0.0
    )
    with client, pytest.raises(CodatConnectionError, match="could not connect") as caught:
        # A refresh, too, may be retried when nothing reached the server.
        client.refresh_data_type("c1", "invoices")
    assert slept == [0.25, 0.5]
    assert caught.value.endpoint == "refreshDataType"


def test_a_key_spelled_with_json_escapes_in_any_field_is_redacted_once_decoded(wire: Wire) -> None:
    url, _, responder = wire
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)
    body = f'{{"statusCode": 500, "service": "svc {escaped}", "correlationId": "{escaped}", "error": "x"}}'
    responder[0] = lambda _m, _p: (500, {"Content-Type": "application/json"}, body.encode())
    with _client(url, max_retries=0) as client, pytest.raises(CodatError) as caught:
        client.list_companies()
    assert caught.value.service == f"svc {REDACTED}"
    assert caught.value.correlation_id == REDACTED
    assert KEY not in str(caught.value)
