"""Scrape benchmark: /metrics as Prometheus scrapes it, side by side with a static-file floor.

Run from the repository root (a few minutes on 2 cores)::

    .venv/bin/python -m bench.bench_scrape            # both shapes, writes bench/results-scrape.json
    .venv/bin/python -m bench.bench_scrape --quick    # small shapes and few scrapes, a smoke run

Each server runs in its own process, built from the same synthetic snapshot (same seed):

* ``ours``: ``ExpositionCache`` + ``ExporterServer`` exactly as the exporter serves /metrics, with
  ``Telemetry`` in the state a day of syncs leaves it in (the pull-operation histogram filled for
  every data type × status, API, refresh and webhook counters) and still being written to while
  scraped (Codat requests at 300/min, pull operations finishing at the fleet's daily rate);
* ``static``: the floor: a minimal HTTP/1.1 server that sends the very bytes ``ours`` serves for
  each variant, read from memory, with ``TCP_NODELAY`` and headers and body in one ``sendmsg``;
* ``naive``: prometheus_client's ``generate_latest`` over a custom collector yielding the same
  series from the snapshot on every scrape (the textbook way), served by ``start_http_server``;
* ``baseline``: ``ExporterServer`` over an empty snapshot, for the interpreter's own RSS.

This process is the client, and it scrapes the way Prometheus does: ONE kept-alive connection per
server and variant, Prometheus' own ``Accept`` header (OpenMetrics first) and
``Accept-Encoding: gzip``; wall time from the request to the last byte. Ours and the floor are
scraped in turn, so machine noise hits both alike. Variants: ``om-gzip`` (what Prometheus gets),
``text-gzip`` (a Prometheus that asks for the text format) and ``text-plain`` (``curl``).

Also measured: 10 concurrent kept-alive gzip scrapers (throughput, ours against the floor, rounds
in turn); "cold" gzip scrapes (the first after a quiet spell, the first after the age ticker's
window ended and it went idle, and the first after a new snapshot); the CPU the ticker keeps
using between scrapes; RSS
from ``/proc/<pid>/status`` (``VmRSS``) of ``ours`` after its scrapes, per series, total and above
the empty exporter.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.codat import statuses
from exporter.codat.models import Company, Connection, DataTypeStatus
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.exposition import AGE_TICKER_ACTIVE_SECONDS, MetricSpec, families

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DATA_TYPES = (
    *("accountTransactions", "balanceSheet", "bankAccounts", "bankTransactions", "billCreditNotes"),
    *("billPayments", "bills", "cashFlowStatement", "chartOfAccounts", "company", "creditNotes"),
    *("customers", "directCosts", "directIncomes", "invoices", "itemReceipts", "items", "journalEntries"),
    *("journals", "paymentMethods", "payments", "profitAndLoss", "purchaseOrders", "salesOrders"),
    *("suppliers", "taxRates", "trackingCategories", "transfers", "commerce-orders", "commerce-payments"),
    *("commerce-products", "commerce-customers", "banking-accounts", "banking-transactions"),
)
STATUS_MIX = (
    ("Complete", 85),
    ("FetchError", 4),
    ("AuthError", 2),
    ("NotSupported", 3),
    ("Processing", 2),
    (None, 2),
    ("MapError", 1),
    ("Queued", 1),
)
PLATFORMS = (
    "Xero",
    "QuickBooks Online",
    "Sage Intacct",
    "NetSuite",
    "FreeAgent",
    "Dynamics 365 Business Central",
)


# --- the synthetic snapshot ---------------------------------------------------------------


def synthetic_snapshot(companies: int, data_types: int, seed: int = 1) -> Snapshot:
    """A deterministic snapshot shaped like a real Codat client's: UUIDs, mostly fresh, some failing."""
    rng = random.Random(seed)
    weights = [w for _, w in STATUS_MIX]
    choices = [s for s, _ in STATUS_MIX]
    types = DATA_TYPES[:data_types]
    out: dict[str, CompanySnapshot] = {}
    for i in range(companies):
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        connections = tuple(
            Connection(str(uuid.UUID(int=rng.getrandbits(128), version=4)), rng.choice(PLATFORMS), "Linked")
            for _ in range(1 + (i % 5 == 0))
        )
        entries: dict[str, DataTypeStatus] = {}
        pulls: dict[tuple[str, str], int] = {}
        in_progress: dict[str, int] = {}
        refreshed: dict[str, datetime] = {}
        for dt in types:
            status = rng.choices(choices, weights)[0]
            never = status is None or status == "NotSupported" or rng.random() < 0.01
            synced = None if never else NOW - timedelta(seconds=rng.uniform(60, 3 * 86400))
            sync_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            entries[dt] = DataTypeStatus(dt, status, synced, sync_id, None if never else sync_id)
            if not never:
                pulls[(dt, "Complete")] = rng.randint(1, 500)
                if rng.random() < 0.3:
                    pulls[(dt, "FetchError")] = rng.randint(1, 20)
            if status in ("Processing", "Queued"):
                in_progress[dt] = 1
            if rng.random() < 0.05:
                refreshed[dt] = NOW - timedelta(hours=rng.uniform(0, 48))
        company = Company(
            cid,
            f"Company {i} Ltd",
            tags={
                "segment": rng.choice(("sme", "mid", "enterprise")),
                "region": rng.choice(("eu", "us", "uk")),
            },
            connections=connections,
        )
        out[cid] = CompanySnapshot(
            company,
            entries,
            pulls,
            in_progress,
            True,
            NOW - timedelta(seconds=rng.uniform(0, 300)),
            None,
            refreshed,
        )
    return Snapshot(out, NOW, True)


def changed_companies(snapshot: Snapshot, share: float, seed: int = 2) -> Snapshot:
    """``snapshot`` with ``share`` of its companies replaced by new objects whose data synced again."""
    rng = random.Random(seed)
    ids = list(snapshot.companies)
    picked = set(rng.sample(ids, max(1, int(len(ids) * share))))
    companies = dict(snapshot.companies)
    for cid in picked:
        cs = companies[cid]
        statuses_now = {dt: replace(e, last_successful_sync=NOW) for dt, e in cs.statuses.items()}
        companies[cid] = replace(cs, statuses=statuses_now, last_poll_success=NOW)
    return Snapshot(companies, NOW, True)


# --- the naive reference ------------------------------------------------------------------


class NaiveCollector:
    """The textbook prometheus_client way: build metric families from the snapshot on every scrape."""

    def __init__(self, snapshot: Snapshot, status_set: tuple[str, ...], sparse: bool) -> None:
        self.snapshot = snapshot
        self.status_set = status_set
        self.sparse = sparse

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def gauge(spec: MetricSpec) -> GaugeMetricFamily:
            return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)

        now = time.time()
        last = gauge(families.DATA_LAST_SUCCESSFUL_SYNC)
        since = gauge(families.DATA_SECONDS_SINCE_SYNC)
        status = gauge(families.DATA_STATUS)
        pulls = CounterMetricFamily(
            families.PULL_OPERATIONS.family,
            families.PULL_OPERATIONS.help,
            labels=families.PULL_OPERATIONS.labels,
        )
        in_progress = gauge(families.PULL_OPERATIONS_IN_PROGRESS)
        info = gauge(families.COMPANY_INFO)
        connection = gauge(families.CONNECTION_STATUS)
        up = gauge(families.COMPANY_UP)
        polled = gauge(families.COMPANY_LAST_POLL_SUCCESS)
        refresh = gauge(families.REFRESH_LAST_ATTEMPT)
        states = (*statuses.CONNECTION_STATUSES, statuses.OTHER)
        for cid, cs in self.snapshot.companies.items():
            for dt, entry in cs.statuses.items():
                if entry.last_successful_sync is not None:
                    ts = entry.last_successful_sync.timestamp()
                    last.add_metric([cid, dt], ts)
                    since.add_metric([cid, dt], now - ts)
                if self.sparse:
                    active = statuses.one_hot_label(entry.current_status, self.status_set)
                    status.add_metric([cid, dt, active], 1)
                else:
                    for s, value in statuses.one_hot_series(entry.current_status, self.status_set):
                        status.add_metric([cid, dt, s], value)
                running = cs.pull_operations_in_progress.get(dt, 0)
                if running or not self.sparse:
                    in_progress.add_metric([cid, dt], running)
            for (dt, s), n in cs.pull_operations_total.items():
                pulls.add_metric([cid, dt, s], n)
            tags = ",".join(f"{k}={v}" for k, v in sorted(cs.company.tags.items()))
            info.add_metric([cid, cs.company.name, cs.company.platform, tags], 1)
            for conn in cs.company.connections:
                active = statuses.connection_status_label(conn.status)
                for s in states:
                    connection.add_metric([cid, conn.id, conn.platform_name, s], 1 if s == active else 0)
            up.add_metric([cid], 1 if cs.up else 0)
            if cs.last_poll_success is not None:
                polled.add_metric([cid], cs.last_poll_success.timestamp())
            for dt, when in cs.refresh_last_attempt.items():
                refresh.add_metric([cid, dt], when.timestamp())
        yield from (last, status, pulls, in_progress, info, connection, up, polled, refresh, since)


# --- a registry in the state a day of syncs leaves it in ---------------------------------------

TERMINAL = ("Complete", "FetchError", "AuthError", "Cancelled")
ENDPOINT_CODES = (("companies", "200"), ("dataStatus", "200"), ("dataStatus", "429"), ("history", "200"))


def day_of_syncs(telemetry: Any, data_types: int, seed: int = 3) -> None:
    """Fill ``telemetry`` as a day of polling and syncs would (every label set it would have)."""
    rng = random.Random(seed)
    types = DATA_TYPES[:data_types]
    telemetry.know_data_types(types)
    for dt in types:
        for status in TERMINAL:
            for _ in range(3):
                telemetry.observe_pull_operation(dt, status, rng.uniform(5, 9000))
        telemetry.count_refresh(dt, "queued")
    for endpoint, code in (*ENDPOINT_CODES, ("history", "500"), ("companies", "error")):
        for _ in range(5):
            telemetry.on_request(endpoint, code, rng.uniform(0.05, 2))
    for _ in range(1440):
        telemetry.observe_poll_cycle(rng.uniform(1, 60))
    for _ in range(50):
        telemetry.observe_webhook_latency(rng.uniform(0.01, 3))
        telemetry.count_webhook("read.completed", "processed")
    telemetry.count_poll_error("server_error")
    telemetry.set_listing_ok(time.time())


def keep_writing(telemetry: Any, companies: int, data_types: int, stop: threading.Event) -> None:
    """While scraped: Codat requests at 300/min, pull operations finishing at the fleet's daily rate."""
    rng = random.Random(4)
    types = DATA_TYPES[:data_types]
    per_tick = companies * data_types / 86_400 * 0.2
    owed = 0.0
    while not stop.wait(0.2):
        telemetry.on_request("dataStatus", "200", rng.uniform(0.05, 0.5))
        owed += per_tick
        while owed >= 1:
            owed -= 1
            telemetry.observe_pull_operation(rng.choice(types), "Complete", rng.uniform(5, 9000))


# --- server processes ---------------------------------------------------------------------

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TEXT_ACCEPT = "text/plain;version=0.0.4"
VARIANTS: dict[str, tuple[dict[str, str], str, bool, bool]] = {
    # name: (request headers, the floor's path, openmetrics, gzip)
    "om-gzip": ({"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}, "/om.gz", True, True),
    "text-gzip": ({"Accept": TEXT_ACCEPT, "Accept-Encoding": "gzip"}, "/text.gz", False, True),
    "text-plain": ({"Accept": TEXT_ACCEPT}, "/text", False, False),
}
QUIET_SECONDS = 4.0
"""A quiet spell without scrapes before a "cold" one: well inside the age ticker's window (an hour),
which is what a scrape after 5 quiet minutes meets as well."""
SHORT_WINDOW_SECONDS = 2.0
"""The ticker's window ``ours`` is switched to for the scrapes after the window ended (an hour in
the exporter): short, so they can be measured in seconds, not hours."""
CONCURRENT_ROUNDS = 3
"""Rounds of the 10-scraper measurement, ours and the floor in turn; medians are reported."""


def _announce(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)


def _ours_cache(companies: int, data_types: int, mode: str) -> tuple[Any, Any, Snapshot, dict[str, Any]]:
    from exporter.exposition import ExpositionCache, Telemetry

    telemetry = Telemetry()
    day_of_syncs(telemetry, data_types)
    cache = ExpositionCache(mode, telemetry.registry)
    snapshot = synthetic_snapshot(companies, data_types)
    started = time.perf_counter()
    cache.update(snapshot)
    info: dict[str, Any] = {"series": cache.rendered.series, "render_seconds": time.perf_counter() - started}
    changed = changed_companies(snapshot, 0.01)
    started = time.perf_counter()
    cache.update(changed)
    info["rerender_1pct_seconds"] = time.perf_counter() - started
    info["rerendered_companies"] = cache.rendered.rendered_companies
    return telemetry, cache, changed, info


def serve_ours(companies: int, data_types: int, mode: str) -> None:
    """The exporter's own server; stdin commands: ``update`` publishes a snapshot with 0.1 % changed."""
    from exporter.http.exporter import ExporterServer
    from exporter.http.landing import LandingData

    telemetry, cache, snapshot, info = _ours_cache(companies, data_types, mode)
    server = ExporterServer("127.0.0.1:0", cache, telemetry, lambda: True, lambda: LandingData(snapshot))
    assert server.age_ticker is not None
    server.start()
    stop = threading.Event()
    threading.Thread(target=keep_writing, args=(telemetry, companies, data_types, stop), daemon=True).start()
    _announce({"port": server.port, "rss_before_scrapes": _own_rss(), **info})
    for seed, line in enumerate(sys.stdin, start=10):
        if line.startswith("window "):
            server.age_ticker.active_seconds = float(line.split()[1])
            _announce({"window": server.age_ticker.active_seconds})
        elif line.strip() == "update":
            snapshot = changed_companies(snapshot, 0.001, seed=seed)
            started = time.perf_counter()
            cache.update(snapshot)
            _announce({"update_seconds": time.perf_counter() - started})
    stop.set()
    server.stop()


def _own_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def serve_static(companies: int, data_types: int, mode: str) -> None:
    """The floor: the bytes ``ours`` serves per variant, sent whole from memory over kept-alive HTTP/1.1."""
    from exporter.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE

    _, cache, _, _ = _ours_cache(companies, data_types, mode)
    now = time.time()
    files: dict[str, tuple[bytes, bytes]] = {}
    for _name, (_, path, openmetrics, gzip) in VARIANTS.items():
        body = cache.body(openmetrics, gzip, now)
        kind = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        encoding = "Content-Encoding: gzip\r\n" if gzip else ""
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n{encoding}Content-Length: {len(body)}\r\n\r\n"
        files[path] = (head.encode(), body)
    del cache
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    threading.Thread(target=_accept_loop, args=(listener, files), daemon=True).start()
    _announce({"port": listener.getsockname()[1]})
    sys.stdin.read()


def _accept_loop(listener: socket.socket, files: dict[str, tuple[bytes, bytes]]) -> None:
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_connection, args=(conn, files), daemon=True).start()


def _serve_connection(conn: socket.socket, files: dict[str, tuple[bytes, bytes]]) -> None:
    buffer = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            request, _, buffer = buffer.partition(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            head, body = files[path]
            view = memoryview(body)
            sent = conn.sendmsg([head, view])
            if sent < len(head):
                conn.sendall(head[sent:])
                sent = len(head)
            conn.sendall(view[sent - len(head) :])


def serve_naive(companies: int, data_types: int, mode: str) -> None:
    """prometheus_client's own server over a collector that builds every series per scrape."""
    from prometheus_client import CollectorRegistry, start_http_server

    from exporter.exposition import status_set

    registry = CollectorRegistry(auto_describe=False)
    snapshot = synthetic_snapshot(companies, data_types)
    registry.register(NaiveCollector(snapshot, status_set(mode), mode == "sparse"))
    wsgi, _thread = start_http_server(0, "127.0.0.1", registry)
    _announce({"port": wsgi.server_address[1]})
    sys.stdin.read()


def serve_baseline(mode: str) -> None:
    """``ExporterServer`` over an empty snapshot: the interpreter's and libraries' own RSS."""
    from exporter.exposition import ExpositionCache, Telemetry
    from exporter.http.exporter import ExporterServer
    from exporter.http.landing import LandingData

    telemetry = Telemetry()
    server = ExporterServer(
        "127.0.0.1:0",
        ExpositionCache(mode, telemetry.registry),
        telemetry,
        lambda: True,
        lambda: LandingData(Snapshot()),
    )
    server.start()
    _announce({"port": server.port})
    sys.stdin.read()


@dataclass
class ServerProcess:
    """A benchmark server running in a child process."""

    process: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def command(self, line: str) -> dict[str, Any]:
        """Send a stdin command and wait for its answer line."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def rss(self) -> int:
        """``VmRSS`` of the process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(kind: str, companies: int, data_types: int, mode: str) -> ServerProcess:
    """Start a ``serve`` child process and wait for its announcement line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_scrape", "serve", kind, str(companies), str(data_types), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{kind} server exited with {process.wait()}")
    return ServerProcess(process, json.loads(line))


# --- the client -----------------------------------------------------------------------------


class KeptAlive:
    """One kept-alive HTTP/1.1 connection, scraped again and again (as Prometheus does)."""

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.path = path
        self.headers = headers
        self.content_type = ""

    def scrape(self) -> tuple[float, int]:
        """(seconds from the request to the last byte, body length)."""
        started = time.perf_counter()
        self.conn.request("GET", self.path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        seconds = time.perf_counter() - started
        assert resp.status == 200, resp.status
        self.content_type = resp.getheader("Content-Type", "")
        return seconds, len(body)

    def close(self) -> None:
        self.conn.close()


@dataclass
class Latency:
    """Scrape timings of one server and variant."""

    scrapes: int
    p50_ms: float
    p99_ms: float
    body_bytes: int


def _latency(samples: list[float], size: int) -> Latency:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return Latency(len(ordered), statistics.median(ordered) * 1000, p99 * 1000, size)


def side_by_side(ours: ServerProcess, static: ServerProcess, variant: str, count: int) -> dict[str, Latency]:
    """Ours and the floor over one kept-alive connection each, scraped in turn ``count`` times."""
    headers, static_path, openmetrics, _ = VARIANTS[variant]
    clients = {
        "ours": KeptAlive(ours.port, "/metrics", headers),
        "static": KeptAlive(static.port, static_path, {}),
    }
    times: dict[str, list[float]] = {name: [] for name in clients}
    sizes: dict[str, int] = {}
    try:
        for round_number in range(3 + count):
            for name, client in clients.items():
                seconds, sizes[name] = client.scrape()
                if round_number >= 3:
                    times[name].append(seconds)
        assert ("openmetrics" in clients["ours"].content_type) == openmetrics, clients["ours"].content_type
    finally:
        for client in clients.values():
            client.close()
    return {name: _latency(samples, sizes[name]) for name, samples in times.items()}


def concurrent_throughput(port: int, path: str, headers: dict[str, str], scrapers: int, each: int) -> float:
    """Scrapes per second of ``scrapers`` kept-alive connections scraping ``each`` times at once."""
    clients = [KeptAlive(port, path, headers) for _ in range(scrapers)]
    for client in clients:
        client.scrape()

    def run(client: KeptAlive) -> None:
        for _ in range(each):
            client.scrape()

    started = time.perf_counter()
    with ThreadPoolExecutor(scrapers) as pool:
        list(pool.map(run, clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return scrapers * each / elapsed


def cold_scrapes(ours: ServerProcess, static: ServerProcess, rounds: int) -> dict[str, Latency]:
    """Om-gzip scrapes after nothing was scraped for a while: after a quiet spell (inside the age
    ticker's window), after the ticker's window ended (it went idle), and the first after a new
    snapshot (0.1 % of the companies changed) landed; the floor beside them."""
    headers, static_path, _, _ = VARIANTS["om-gzip"]
    ours_client = KeptAlive(ours.port, "/metrics", headers)
    static_client = KeptAlive(static.port, static_path, {})
    times: dict[str, list[float]] = {"quiet": [], "after_window": [], "after_update": [], "static": []}
    sizes: dict[str, int] = {}

    def scrape(name: str, client: KeptAlive) -> None:
        seconds, sizes[name] = client.scrape()
        times[name].append(seconds)

    try:
        for _ in range(rounds):
            time.sleep(QUIET_SECONDS)
            scrape("quiet", ours_client)
            scrape("static", static_client)
            ours.command("update")
            scrape("after_update", ours_client)
        ours.command(f"window {SHORT_WINDOW_SECONDS}")
        for _ in range(rounds):
            time.sleep(SHORT_WINDOW_SECONDS + 1.5)  # longer than the ticker's window: it goes idle
            scrape("after_window", ours_client)
            scrape("static", static_client)
        ours.command(f"window {AGE_TICKER_ACTIVE_SECONDS}")
    finally:
        ours_client.close()
        static_client.close()
    return {name: _latency(samples, sizes[name]) for name, samples in times.items()}


@dataclass
class ShapeResult:
    """Everything measured for one snapshot shape."""

    companies: int
    data_types: int
    status_mode: str
    series: int
    info: dict[str, float]
    latency: dict[str, dict[str, Latency]]
    """variant -> server -> timings."""
    cold: dict[str, Latency]
    throughput: dict[str, float]
    """10 concurrent kept-alive om-gzip scrapers: scrapes per second, ours and static (medians)."""
    throughput_rounds: dict[str, list[float]]
    """The same, every round (ours and the floor in turn)."""
    naive_om_gzip: Latency | None
    rss: dict[str, int]
    idle_cpu_share: float
    """Share of a core ``ours`` used per second between scrapes (ticker active, telemetry written)."""


def run_shape(companies: int, data_types: int, mode: str, scrapes: int, naive_scrapes: int) -> ShapeResult:
    """Start the servers for one shape, scrape them, collect the numbers."""
    print(f"shape: {companies:,} companies × {data_types} data types, status mode {mode}", flush=True)
    baseline = start_server("baseline", companies, data_types, mode)
    rss = {"baseline": baseline.rss()}
    baseline.stop()
    ours = start_server("ours", companies, data_types, mode)
    static = start_server("static", companies, data_types, mode)
    try:
        latency = {v: side_by_side(ours, static, v, scrapes) for v in VARIANTS}
        for variant, lat in latency.items():
            print(f"  {variant:10} ours {_fmt(lat['ours'])}   static {_fmt(lat['static'])}", flush=True)
        headers, static_path, _, _ = VARIANTS["om-gzip"]
        each = max(3, scrapes // 4)
        rounds: dict[str, list[float]] = {"ours": [], "static": []}
        for _ in range(CONCURRENT_ROUNDS):
            rounds["ours"].append(concurrent_throughput(ours.port, "/metrics", headers, 10, each))
            rounds["static"].append(concurrent_throughput(static.port, static_path, {}, 10, each))
        throughput = {name: statistics.median(values) for name, values in rounds.items()}
        print(f"  10 concurrent om-gzip: {rounds}", flush=True)
        KeptAlive(ours.port, "/metrics", headers).scrape()
        cpu_before, wall_before = ours.cpu_seconds(), time.monotonic()
        time.sleep(QUIET_SECONDS)
        idle_cpu = (ours.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        cold = cold_scrapes(ours, static, rounds=5)
        print(f"  cold: { {k: round(v.p50_ms, 1) for k, v in cold.items()} }", flush=True)
        rss["ours"] = ours.rss()
    finally:
        ours.stop()
        static.stop()
    naive_lat = None
    if naive_scrapes:
        naive = start_server("naive", companies, data_types, mode)
        try:
            client = KeptAlive(naive.port, "/metrics", headers)
            samples = [client.scrape() for _ in range(naive_scrapes)]
            naive_lat = _latency([s for s, _ in samples], samples[-1][1])
            client.close()
        finally:
            naive.stop()
        print(f"  naive om-gzip {_fmt(naive_lat)}", flush=True)
    info = {k: float(v) for k, v in ours.info.items() if k != "port"}
    return ShapeResult(
        companies,
        data_types,
        mode,
        int(info["series"]),
        info,
        latency,
        cold,
        throughput,
        rounds,
        naive_lat,
        rss,
        idle_cpu,
    )


def _fmt(lat: Latency) -> str:
    return f"p50 {lat.p50_ms:8.2f} ms  p99 {lat.p99_ms:8.2f} ms  {lat.body_bytes / 1e6:7.2f} MB"


def machine() -> dict[str, str]:
    """A short description of the machine the numbers come from."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "python": platform.python_version(),
        "prometheus_client": _version("prometheus-client"),
        "isal": _version("isal"),
        "kernel": platform.release(),
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def summary(results: list[ShapeResult]) -> str:
    """The markdown tables for RESULTS.md."""
    lines = [
        "| shape | series | variant | ours p50 / p99 | static p50 / p99 | ours / static (p50) | body |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        shape = f"{r.companies:,} × {r.data_types}, {r.status_mode}"
        for variant, lat in r.latency.items():
            o, s = lat["ours"], lat["static"]
            lines.append(
                f"| {shape} | {r.series:,} | {variant} | {o.p50_ms:.1f} / {o.p99_ms:.1f} ms | "
                f"{s.p50_ms:.1f} / {s.p99_ms:.1f} ms | {o.p50_ms / s.p50_ms:.2f}× | "
                f"{o.body_bytes / 1e6:.1f} MB |"
            )
    lines += [
        "",
        "| shape | cold: quiet spell | cold: after the window | cold: new snapshot | static | "
        "warm ticker CPU | 10 scrapers ours / static | "
        "naive om-gzip p50 | ours vs naive | RSS ours before / after scrapes | RSS empty | "
        "RSS/series before / after | (RSS − empty)/series before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, t = r.cold, r.throughput
        floor = c["static"].p50_ms
        naive = f"{r.naive_om_gzip.p50_ms:,.0f} ms" if r.naive_om_gzip else "not run"
        faster = (
            f"{r.naive_om_gzip.p50_ms / r.latency['om-gzip']['ours'].p50_ms:,.0f}×"
            if r.naive_om_gzip
            else "–"
        )
        ours, base, first = r.rss["ours"], r.rss["baseline"], int(r.info["rss_before_scrapes"])
        lines.append(
            f"| {r.companies:,} × {r.data_types}, {r.status_mode} | {c['quiet'].p50_ms:.1f} ms "
            f"({c['quiet'].p50_ms / floor:.1f}×) | {c['after_window'].p50_ms:.1f} ms "
            f"({c['after_window'].p50_ms / floor:.1f}×) | {c['after_update'].p50_ms:.1f} ms "
            f"({c['after_update'].p50_ms / floor:.1f}×) | {floor:.1f} ms | "
            f"{100 * r.idle_cpu_share:.1f} % of a core | "
            f"{t['ours']:.0f} / {t['static']:.0f} per s ({t['ours'] / t['static']:.2f}×) | "
            f"{naive} | {faster} | "
            f"{first / 2**20:.0f} / {ours / 2**20:.0f} MiB | {base / 2**20:.0f} MiB | "
            f"{first / r.series:.0f} / {ours / r.series:.0f} B | "
            f"{(first - base) / r.series:.0f} / {(ours - base) / r.series:.0f} B |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with ``serve``, one server process of it)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "serve":
        kind, companies, data_types, mode = args[1], int(args[2]), int(args[3]), args[4]
        servers: dict[str, Callable[[], None]] = {
            "ours": lambda: serve_ours(companies, data_types, mode),
            "static": lambda: serve_static(companies, data_types, mode),
            "naive": lambda: serve_naive(companies, data_types, mode),
            "baseline": lambda: serve_baseline(mode),
        }
        servers[kind]()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small shapes and few scrapes (smoke run)")
    parser.add_argument("--shape", choices=("1000", "10000", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path("bench/results-scrape.json"))
    opts = parser.parse_args(args)
    if opts.quick:
        shapes = [(100, 30, "default", 10, 1)]
    else:
        shapes = [
            s
            for s in ((1000, 30, "default", 40, 2), (10_000, 30, "sparse", 30, 0))
            if opts.shape in ("both", str(s[0]))
        ]
    load_before = list(os.getloadavg())
    results = [run_shape(*shape) for shape in shapes]
    table = summary(results)
    print()
    print(table)
    opts.out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "load_average_before_after": [load_before, list(os.getloadavg())],
                "results": [asdict(r) for r in results],
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {opts.out}")


if __name__ == "__main__":
    main()
