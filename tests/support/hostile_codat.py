"""A hostile fake Codat API: five healthy companies with fixed values, and one victim that gets a fault.

The healthy companies always answer the same ``dataStatus`` (fixed sync
timestamps, so a test can check the exporter's values exactly). The victim
answers the same when no fault is set; with a fault it trickles, floods, lies,
loops, resets, hangs or echoes secrets, one fault kind at a time (``FAULTS``).
Every company's ``lastSync`` moves on every listing, so the exporter reads
every company on every cycle, the victim included.

Loopback only, bounded: a streaming fault stops when the client hangs up or
the server stops, and never sends more than ``HUGE_BODY_BYTES``.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

HEALTHY_IDS: Final = tuple(f"0000000{i}-0000-4000-8000-00000000000{i}" for i in range(1, 6))
VICTIM_ID: Final = "0000000f-0000-4000-8000-00000000000f"
DATA_TYPES: Final = ("invoices", "bills", "customers")
HUGE_BODY_BYTES: Final = 200 * 1024 * 1024
FORGED_LINE: Final = "2026-01-01 00:00:00,000 CRITICAL exporter: FORGED by the API"
FORGED_ID: Final = f"forged\n{FORGED_LINE}"
"""A company id that would start a log line of its own if logged raw (listed by ``forged_company_id``)."""

FAULTS: Final = (
    "trickle",
    "trickle_headers",
    "huge_body",
    "huge_declared",
    "bad_record",
    "paging_loop",
    "rate_limit_storm",
    "server_error",
    "reset",
    "malformed_json",
    "deep_json",
    "wrong_types",
    "unknown_status",
    "forbidden",
    "not_found",
    "hang",
    "redirect",
    "overflow_date",
    "future_date",
    "many_data_types",
    "forged_log_lines",
    "forged_company_id",
    "flood_error_text",
    "secret_echo",
    "lone_surrogates",
)


def sync_time(company_index: int, type_index: int) -> datetime:
    """The fixed ``lastSuccessfulSync`` of one company's data type (distinct for every pair)."""
    return datetime(2026, 1, 1 + company_index, 1 + type_index, 0, 0, tzinfo=UTC)


def all_ids() -> tuple[str, ...]:
    """Every company the server lists: the healthy ones, then the victim."""
    return (*HEALTHY_IDS, VICTIM_ID)


def expected_timestamps() -> dict[tuple[str, str], float]:
    """(company id, data type) → the ``lastSuccessfulSync`` the exporter must report, as epoch seconds."""
    return {
        (company_id, data_type): sync_time(i, j).timestamp()
        for i, company_id in enumerate(all_ids())
        for j, data_type in enumerate(DATA_TYPES)
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class HostileCodat:
    """The running server: set ``fault`` (one of ``FAULTS``, or None) and read what it saw."""

    api_key: str
    url: str = ""
    fault: str | None = None
    retry_after: int = 3
    trickle_interval: float = 1.0
    requests: Counter[str] = field(default_factory=Counter)
    request_times: list[tuple[float, str]] = field(default_factory=list)
    bytes_streamed: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str | None = None) -> int:
        """Requests seen so far (of one kind: ``companies``, ``dataStatus``, ``history`` …, or all).

        ``victim`` and ``healthy`` count the ``dataStatus`` reads of the victim and of the healthy
        companies (also counted under ``dataStatus``).
        """
        with self.lock:
            if kind is None:
                return sum(n for k, n in self.requests.items() if k not in ("victim", "healthy"))
            return self.requests[kind]

    def requests_since(self, since: float) -> int:
        """Requests that arrived at or after ``since`` (``time.monotonic``)."""
        with self.lock:
            return sum(
                1 for at, kind in self.request_times if at >= since and kind not in ("victim", "healthy")
            )

    def record(self, kind: str) -> None:
        """Count one request."""
        with self.lock:
            self.requests[kind] += 1
            self.request_times.append((time.monotonic(), kind))

    def company(self, index: int, company_id: str) -> dict[str, Any]:
        """One company as listed: its ``lastSync`` is now, so every cycle reads it."""
        name = f"Healthy {index + 1}" if company_id != VICTIM_ID else "Victim"
        if company_id == VICTIM_ID and self.fault == "lone_surrogates":
            name = "Victim \ud800 unpaired"
        return {
            "id": company_id,
            "name": name,
            "lastSync": _iso(datetime.now(UTC)),
            "created": "2025-01-01T00:00:00Z",
            "dataConnections": [
                {
                    "id": f"{company_id[:8]}-conn-4000-8000-000000000000",
                    "platformName": "Xero",
                    "status": "Linked",
                    "lastSync": _iso(datetime.now(UTC)),
                }
            ],
        }

    def data_status(self, index: int) -> dict[str, Any]:
        """A company's healthy ``dataStatus`` with its fixed timestamps."""
        return {
            data_type: {
                "dataType": data_type,
                "currentStatus": "Complete",
                "lastSuccessfulSync": _iso(sync_time(index, j)),
                "latestSyncId": f"{index:08d}-0000-4000-8000-{j:012d}",
                "latestSuccessfulSyncId": f"{index:08d}-0000-4000-8000-{j:012d}",
            }
            for j, data_type in enumerate(DATA_TYPES)
        }

    def secret_error(self) -> dict[str, Any]:
        """An error body echoing the key, raw and as its Basic token, in every field."""
        import base64

        token = base64.b64encode(self.api_key.encode()).decode()
        echo = f"key {self.api_key} auth Basic {token}"
        return {
            "statusCode": 400,
            "service": f"PublicApi {echo}",
            "error": f"Bad request: {echo}",
            "correlationId": f"corr-{self.api_key}-{token}",
            "canBeRetried": f"Unknown {token}",
            "detailedErrorCode": 0,
            "validation": {"errors": [{"itemId": echo, "message": echo}], "warnings": []},
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        """Route a GET to the listing, a dataStatus or a history page."""
        self._route()

    def do_POST(self) -> None:
        """Refreshes are not part of the fault suite: refuse them plainly."""
        self._json(404, {"statusCode": 404, "error": "not here"})

    # --- plumbing ---------------------------------------------------------------------------------

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self._send(status, data, headers)

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._rate_headers()
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _rate_headers(self) -> None:
        self.send_header("X-Rate-Limit-Limit", "1000000")
        self.send_header("X-Rate-Limit-Remaining", "999999")

    def _route(self) -> None:
        hostile = self.server.hostile
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if segments == ["companies"]:
            hostile.record("companies")
            if self._account_fault():
                return
            self._listing(parse_qs(parts.query))
            return
        if len(segments) == 3 and segments[0] == "companies" and segments[2] == "dataStatus":
            hostile.record("dataStatus")
            if self._account_fault():
                return
            self._data_status(segments[1])
            return
        if len(segments) == 4 and segments[0] == "companies" and segments[2:] == ["data", "history"]:
            hostile.record("history")
            if self._account_fault():
                return
            self._json(
                200, {"results": [], "pageNumber": 1, "pageSize": 100, "totalResults": 0, "_links": {}}
            )
            return
        if len(segments) == 3 and segments[0] == "companies" and segments[2] == "syncSettings":
            hostile.record("syncSettings")
            if self._account_fault():
                return
            # Every type named: no client-wide read follows (GET /profile/syncSettings).
            settings = [{"dataType": dt, "syncSchedule": 24} for dt in DATA_TYPES]
            self._json(200, {"companyId": segments[1], "settings": settings, "overridesDefaults": True})
            return
        hostile.record("other")
        self._json(404, {"statusCode": 404, "error": "no such route"})

    def _account_fault(self) -> bool:
        """Faults that hit every request (Codat's rate limit is per account)."""
        hostile = self.server.hostile
        if hostile.fault != "rate_limit_storm":
            return False
        self._json(
            429,
            {"statusCode": 429, "service": "PublicApi", "error": "Too many requests"},
            {"Retry-After": str(hostile.retry_after)},
        )
        return True

    def _listing(self, query: dict[str, list[str]]) -> None:
        hostile = self.server.hostile
        companies = [hostile.company(i, cid) for i, cid in enumerate(all_ids())]
        if hostile.fault == "bad_record":
            companies[-1]["lastSync"] = "not-a-date"
        if hostile.fault == "forged_company_id":
            # An extra company whose id holds a newline; its dataStatus answers 404, which gets logged.
            companies.append({**hostile.company(0, FORGED_ID), "name": "Forged"})
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("pageSize", ["100"])[0])
        body: dict[str, Any] = {
            "results": companies,
            "pageNumber": page,
            "pageSize": size,
            "totalResults": len(companies),
            "_links": {"self": {"href": f"/companies?page={page}&pageSize={size}"}},
        }
        if hostile.fault == "paging_loop":
            # Every page is page 1, whose next link points at itself, and the total is huge.
            body.update(pageNumber=1, totalResults=10**6)
            body["_links"] = {
                "self": {"href": f"/companies?page=1&pageSize={size}"},
                "next": {"href": f"/companies?page=1&pageSize={size}"},
            }
        elif page > 1:
            body["results"] = []
        self._json(200, body)

    def _data_status(self, company_id: str) -> None:
        hostile = self.server.hostile
        ids = all_ids()
        if company_id not in ids:
            self._json(404, {"statusCode": 404, "error": "Company not found"})
            return
        index = ids.index(company_id)
        hostile.record("victim" if company_id == VICTIM_ID else "healthy")
        healthy = hostile.data_status(index)
        fault = hostile.fault if company_id == VICTIM_ID else None
        if fault is None or fault in ("bad_record", "paging_loop", "rate_limit_storm"):
            self._json(200, healthy)
            return
        getattr(self, f"_fault_{fault}")(healthy)

    # --- the victim's faults ----------------------------------------------------------------------

    def _fault_trickle(self, healthy: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self._dribble(json.dumps(healthy).encode())

    def _fault_trickle_headers(self, healthy: dict[str, Any]) -> None:
        self._dribble(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 10_000)

    def _dribble(self, data: bytes) -> None:
        hostile = self.server.hostile
        for byte in data:
            if hostile.stopping.wait(hostile.trickle_interval):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return

    def _fault_huge_body(self, healthy: dict[str, Any]) -> None:
        hostile = self.server.hostile
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b" " * (1024 * 1024)
        try:
            self.wfile.write(b'{"invoices": {"dataType": "invoices", "pad": "')
            sent = 0
            while sent < HUGE_BODY_BYTES and not hostile.stopping.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
                with hostile.lock:
                    hostile.bytes_streamed += len(chunk)
        except OSError:
            return

    def _fault_huge_declared(self, healthy: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(HUGE_BODY_BYTES))
        self.end_headers()
        try:
            self.wfile.write(b'{"invoices": ')
        except OSError:
            return

    def _fault_server_error(self, healthy: dict[str, Any]) -> None:
        self._json(503, {"statusCode": 503, "service": "PublicApi", "error": "Service Unavailable"})

    def _fault_reset(self, healthy: dict[str, Any]) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST instead of a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _fault_malformed_json(self, healthy: dict[str, Any]) -> None:
        self._send(200, b'{"invoices": {"dataType": "invoices", "currentStatus": ')

    def _fault_deep_json(self, healthy: dict[str, Any]) -> None:
        self._send(200, b"[" * 100_000 + b"]" * 100_000)

    def _fault_wrong_types(self, healthy: dict[str, Any]) -> None:
        self._json(
            200, {"invoices": {"dataType": "invoices", "currentStatus": ["x"], "lastSuccessfulSync": 17}}
        )

    def _fault_unknown_status(self, healthy: dict[str, Any]) -> None:
        for entry in healthy.values():
            entry["currentStatus"] = "Teleporting"
        self._json(200, healthy)

    def _fault_forbidden(self, healthy: dict[str, Any]) -> None:
        self._json(403, {"statusCode": 403, "service": "PublicApi", "error": "Forbidden"})

    def _fault_not_found(self, healthy: dict[str, Any]) -> None:
        self._json(404, {"statusCode": 404, "service": "PublicApi", "error": "Company not found"})

    def _fault_hang(self, healthy: dict[str, Any]) -> None:
        self.server.hostile.stopping.wait(120)

    def _fault_redirect(self, healthy: dict[str, Any]) -> None:
        self._send(302, b"", {"Location": "http://127.0.0.1:9/steal-the-key"})

    def _fault_overflow_date(self, healthy: dict[str, Any]) -> None:
        healthy["invoices"]["lastSuccessfulSync"] = "9999-12-31T23:59:59-01:00"
        self._json(200, healthy)

    def _fault_future_date(self, healthy: dict[str, Any]) -> None:
        healthy["invoices"]["lastSuccessfulSync"] = "9999-12-31T23:59:59Z"
        self._json(200, healthy)

    def _fault_many_data_types(self, healthy: dict[str, Any]) -> None:
        many = {
            f"dataType{i:05d}": {
                "dataType": f"dataType{i:05d}",
                "currentStatus": "Complete",
                "lastSuccessfulSync": "2026-01-01T00:00:00Z",
                "latestSyncId": f"{i:08d}-0000-4000-8000-000000000000",
                "latestSuccessfulSyncId": f"{i:08d}-0000-4000-8000-000000000000",
            }
            for i in range(10_000)
        }
        self._json(200, many)

    def _fault_forged_log_lines(self, healthy: dict[str, Any]) -> None:
        text = f"Upstream failed\n{FORGED_LINE}\r\n{FORGED_LINE}\u2028{FORGED_LINE}"
        self._json(500, {"statusCode": 500, "service": f"Public\n{FORGED_LINE}", "error": text})

    def _fault_flood_error_text(self, healthy: dict[str, Any]) -> None:
        self._json(500, {"statusCode": 500, "service": "PublicApi", "error": "x" * (1024 * 1024)})

    def _fault_secret_echo(self, healthy: dict[str, Any]) -> None:
        self._json(400, self.server.hostile.secret_error())

    def _fault_lone_surrogates(self, healthy: dict[str, Any]) -> None:
        healthy["\udfffodd"] = {"dataType": "\udfffodd", "currentStatus": "Complete\ud800"}
        # json.dumps escapes the surrogates as \\udfff, which is how they arrive from a real API.
        self._json(200, healthy)


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hostile: HostileCodat

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up on a fault is expected: stay quiet."""


@contextmanager
def running_hostile_codat(api_key: str, tls: tuple[str, str] | None = None) -> Iterator[HostileCodat]:
    """Serve a :class:`HostileCodat` on loopback for the duration of the block (HTTPS with ``tls``).

    ``tls`` is ``(certificate file, key file)``; over TLS the server keeps connections alive
    (HTTP/1.1), as Codat does.
    """
    hostile = HostileCodat(api_key=api_key)
    handler: type[_Handler] = _Handler
    if tls is not None:
        handler = _KeepAliveHandler
    server = _Server(("127.0.0.1", 0), handler)
    server.hostile = hostile
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    hostile.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        hostile.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
