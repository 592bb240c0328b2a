"""Scrape benchmark: our pre-rendered /metrics against prometheus_client and a static-file server.

Run from the repository root (takes a few minutes on 2 cores)::

    .venv/bin/python -m bench.bench_scrape            # both shapes, writes bench/results-scrape.json
    .venv/bin/python -m bench.bench_scrape --quick    # smaller shapes and fewer scrapes, for a smoke run

Each server runs in its own process, built from the same synthetic snapshot (same seed):

* ``ours``: ``ExpositionCache`` + ``ExporterServer``, exactly as the exporter serves /metrics (the
  age ticker builds each second's ``seconds since last sync`` block ahead of the scrapes);
* ``cold``: the same, but its clock moves one second per scrape and the age ticker is off, so every
  scrape builds that block itself: the first scrape after a quiet spell, or a ticker that fell behind;
* ``naive``: a prometheus_client custom collector yielding ``GaugeMetricFamily``/``CounterMetricFamily``
  from the snapshot on every scrape, served by ``prometheus_client.start_http_server``;
* ``static``: ``http.server`` serving the bytes of one of our bodies from a file: the floor for moving
  that many bytes over loopback HTTP from Python;
* ``baseline``: ``ExporterServer`` over an empty snapshot, for the interpreter's own RSS.

This process is the client: one new connection per scrape, the whole body read, wall time measured
from the request to the last byte. RSS is read from ``/proc/<pid>/status`` of each server process
after its scrapes (``VmRSS``, and ``VmHWM`` for the peak); the age ticker's CPU from
``/proc/<pid>/stat`` of ``ours`` over a few seconds without scrapes (the ticker keeps building while
the last scrape is recent).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from exporter import metrics
from exporter.codat import statuses
from exporter.codat.models import Company, Connection, DataTypeStatus
from exporter.collector.snapshot import CompanySnapshot, Snapshot

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

        def gauge(spec: metrics.MetricSpec) -> GaugeMetricFamily:
            return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)

        now = time.time()
        last = gauge(metrics.DATA_LAST_SUCCESSFUL_SYNC)
        since = gauge(metrics.DATA_SECONDS_SINCE_SYNC)
        status = gauge(metrics.DATA_STATUS)
        pulls = CounterMetricFamily(
            metrics.PULL_OPERATIONS.family,
            metrics.PULL_OPERATIONS.help,
            labels=metrics.PULL_OPERATIONS.labels,
        )
        in_progress = gauge(metrics.PULL_OPERATIONS_IN_PROGRESS)
        info = gauge(metrics.COMPANY_INFO)
        connection = gauge(metrics.CONNECTION_STATUS)
        up = gauge(metrics.COMPANY_UP)
        polled = gauge(metrics.COMPANY_LAST_POLL_SUCCESS)
        refresh = gauge(metrics.REFRESH_LAST_ATTEMPT)
        states = (*statuses.CONNECTION_STATUSES, statuses.OTHER)
        for cid, cs in self.snapshot.companies.items():
            for dt, entry in cs.statuses.items():
                if entry.last_successful_sync is not None:
                    ts = entry.last_successful_sync.timestamp()
                    last.add_metric([cid, dt], ts)
                    since.add_metric([cid, dt], now - ts)
                active = statuses.one_hot_label(entry.current_status, self.status_set)
                if self.sparse:
                    status.add_metric([cid, dt, active], 1)
                else:
                    for s in self.status_set:
                        status.add_metric([cid, dt, s], 1 if s == active else 0)
                in_progress.add_metric([cid, dt], cs.pull_operations_in_progress.get(dt, 0))
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


# --- server processes ---------------------------------------------------------------------


def _announce(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)


def _serve_until_stdin_closes() -> None:
    sys.stdin.read()


def serve(kind: str, companies: int, data_types: int, mode: str, workdir: Path) -> None:
    """Run one benchmark server process (the ``serve`` sub-command)."""
    from exporter.exposition import ExpositionCache, status_set
    from exporter.landing import LandingData
    from exporter.metrics import Telemetry
    from exporter.server import ExporterServer

    if kind == "baseline":
        server = ExporterServer(
            "127.0.0.1:0", ExpositionCache(mode), Telemetry(), lambda: True, lambda: LandingData(Snapshot())
        )
        server.start()
        _announce({"port": server.port})
        _serve_until_stdin_closes()
        return
    snapshot = synthetic_snapshot(companies, data_types)
    if kind in ("ours", "cold"):
        telemetry = Telemetry()
        cache = ExpositionCache(mode, telemetry.registry)
        started = time.perf_counter()
        cache.update(snapshot)
        render_seconds = time.perf_counter() - started
        changed = changed_companies(snapshot, 0.01)
        started = time.perf_counter()
        cache.update(changed)
        rerender_seconds = time.perf_counter() - started
        assert cache.rendered.rendered_companies == max(1, companies // 100)
        age_block = _age_block_costs(cache)
        ticks = itertools.count()
        base = time.time()
        server = ExporterServer(
            "127.0.0.1:0",
            cache,
            telemetry,
            lambda: True,
            lambda: LandingData(changed),
            # cold: a new second per scrape and no ticker, so every scrape builds its age block
            clock=(lambda: base + next(ticks)) if kind == "cold" else time.time,
            prebuild_ages=kind == "ours",
        )
        server.start()
        _announce(
            {
                "port": server.port,
                "series": cache.rendered.series,
                "render_seconds": render_seconds,
                "rerender_1pct_seconds": rerender_seconds,
                **age_block,
            }
        )
        _serve_until_stdin_closes()
        return
    if kind == "naive":
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(NaiveCollector(snapshot, status_set(mode), mode == "sparse"))
        wsgi, _thread = start_http_server(0, "127.0.0.1", registry)
        _announce({"port": wsgi.server_address[1]})
        _serve_until_stdin_closes()
        return
    if kind == "static":
        cache = ExpositionCache(mode)
        cache.update(snapshot)
        (workdir / "metrics").write_bytes(cache.body(False, False, time.time()))
        (workdir / "metrics.gz").write_bytes(cache.body(False, True, time.time()))
        del cache, snapshot
        handler = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})

        def factory(*args: Any) -> SimpleHTTPRequestHandler:
            return handler(*args, directory=str(workdir))  # type: ignore[no-any-return]

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), factory)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        _announce({"port": httpd.server_address[1]})
        _serve_until_stdin_closes()
        return
    raise SystemExit(f"unknown server kind {kind}")


def _age_block_costs(cache: Any, rounds: int = 5) -> dict[str, float]:
    """Median cost of building one second's age block: formatting its lines, gzipping them, and
    both as a gzip-only build does them (piece by piece)."""
    from exporter.exposition import build_age_block, gzip_member

    rendered = cache.rendered
    formats: list[float] = []
    gzips: list[float] = []
    builds: list[float] = []
    lines = b""
    for i in range(rounds):
        started = time.perf_counter()
        lines = rendered.since_lines(int(time.time()) + i)
        formats.append(time.perf_counter() - started)
        started = time.perf_counter()
        gzip_member(lines)
        gzips.append(time.perf_counter() - started)
        started = time.perf_counter()
        build_age_block(rendered, int(time.time()) + i, plain=False, gzip=True)
        builds.append(time.perf_counter() - started)
    return {
        "age_lines": float(len(rendered.last_sync_seconds)),
        "age_block_bytes": float(len(lines)),
        "age_format_ms": statistics.median(formats) * 1000,
        "age_gzip_ms": statistics.median(gzips) * 1000,
        "age_build_gzip_only_ms": statistics.median(builds) * 1000,
    }


@dataclass
class ServerProcess:
    """A benchmark server running in a child process."""

    process: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def memory(self) -> dict[str, int]:
        """``VmRSS`` and ``VmHWM`` of the process, in bytes."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

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


def start_server(kind: str, companies: int, data_types: int, mode: str, workdir: Path) -> ServerProcess:
    """Start a ``serve`` child process and wait for its announcement line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_scrape",
            "serve",
            kind,
            str(companies),
            str(data_types),
            mode,
            str(workdir),
        ],
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


def scrape(port: int, path: str, headers: dict[str, str]) -> tuple[float, int]:
    """One scrape on a new connection: (seconds until the last byte, body length)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, resp.status
    finally:
        conn.close()
    return time.perf_counter() - started, len(body)


@dataclass
class Latency:
    """Scrape timings of one server and body variant."""

    scrapes: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    body_bytes: int


def measure(port: int, path: str, headers: dict[str, str], count: int, warmup: int = 2) -> Latency:
    """Scrape one server ``count`` times after ``warmup`` scrapes; p99 is the nearest-rank percentile."""
    for _ in range(warmup):
        scrape(port, path, headers)
    size = 0
    samples: list[float] = []
    for _ in range(count):
        seconds, size = scrape(port, path, headers)
        samples.append(seconds)
    return _latency(samples, size)


@dataclass
class ShapeResult:
    """Everything measured for one snapshot shape."""

    companies: int
    data_types: int
    status_mode: str
    series: int
    render_seconds: float
    rerender_1pct_seconds: float
    age_block: dict[str, float]
    latency: dict[str, dict[str, Latency]]
    memory: dict[str, dict[str, int]]
    ticker_cpu_share: float
    """Share of one core the ``ours`` process used per wall second while idle but recently scraped."""

    def rss_per_series(self) -> tuple[float, float]:
        """(RSS / series, (RSS − empty-exporter RSS) / series) of our server, in bytes."""
        ours = self.memory["ours"]["VmRSS"]
        base = self.memory["baseline"]["VmRSS"]
        return ours / self.series, (ours - base) / self.series


GZIP = {"Accept-Encoding": "gzip"}
TICKER_CPU_SECONDS = 5.0


def measure_interleaved(
    targets: dict[str, tuple[int, str, dict[str, str]]], count: int, warmup: int = 2
) -> dict[str, Latency]:
    """Scrape every target in turn ``count`` times, so machine noise hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in targets}
    sizes: dict[str, int] = {}
    for round_number in range(warmup + count):
        for name, (port, path, headers) in targets.items():
            seconds, sizes[name] = scrape(port, path, headers)
            if round_number >= warmup:
                times[name].append(seconds)
    return {name: _latency(samples, sizes[name]) for name, samples in times.items()}


def _latency(samples: list[float], size: int) -> Latency:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return Latency(
        len(ordered), statistics.median(ordered) * 1000, p99 * 1000, statistics.fmean(ordered) * 1000, size
    )


def _print(kind: str, latency: dict[str, Latency], memory: dict[str, int] | None) -> None:
    for variant, lat in latency.items():
        print(
            f"    {kind:6} {variant:5}: p50 {lat.p50_ms:9.1f} ms  p99 {lat.p99_ms:9.1f} ms  "
            f"{lat.body_bytes / 1e6:8.2f} MB  ({lat.scrapes} scrapes)",
            flush=True,
        )
    if memory:
        print(f"    {kind:6} RSS {_mib(memory['VmRSS'])} (peak {_mib(memory['VmHWM'])})", flush=True)


def measure_gzip_only(
    companies: int, data_types: int, mode: str, workdir: Path
) -> tuple[float, dict[str, int]]:
    """A fresh ``ours`` scraped with gzip only, as by Prometheus: (share of a core, memory).

    No scrape arrives while the CPU is measured, so it is the age ticker's (gzip blocks only).
    """
    server = start_server("ours", companies, data_types, mode, workdir)
    try:
        scrape(server.port, "/metrics", GZIP)
        time.sleep(1.0)  # let the ticker reach its steady once-per-second rhythm
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        time.sleep(TICKER_CPU_SECONDS)
        share = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        return share, server.memory()
    finally:
        server.stop()


def run_shape(companies: int, data_types: int, mode: str, scrapes: int, naive_scrapes: int) -> ShapeResult:
    """Start the servers for one shape, scrape them, collect the numbers.

    Ours (age ticker on), cold (every scrape builds its age block) and the static floor run side by
    side and are scraped in turn; the naive reference (seconds per scrape) runs alone afterwards
    with fewer scrapes.
    """
    latency: dict[str, dict[str, Latency]] = {"ours": {}, "cold": {}, "static": {}}
    memory: dict[str, dict[str, int]] = {}
    print(f"  servers for {companies} companies × {data_types} data types, status mode {mode}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        baseline = start_server("baseline", companies, data_types, mode, workdir)
        memory["baseline"] = baseline.memory()
        baseline.stop()
        _print("empty", {}, memory["baseline"])
        ours = start_server("ours", companies, data_types, mode, workdir)
        cold = start_server("cold", companies, data_types, mode, workdir)
        static = start_server("static", companies, data_types, mode, workdir)
        try:
            for variant, ours_headers, static_path in (
                ("plain", {}, "/metrics"),
                ("gzip", GZIP, "/metrics.gz"),
            ):
                side_by_side = measure_interleaved(
                    {
                        "ours": (ours.port, "/metrics", ours_headers),
                        "cold": (cold.port, "/metrics", ours_headers),
                        "static": (static.port, static_path, {}),
                    },
                    scrapes,
                )
                for kind, lat in side_by_side.items():
                    latency[kind][variant] = lat
            memory["ours"] = ours.memory()
            info = ours.info
        finally:
            ours.stop()
            cold.stop()
            static.stop()
        ticker_cpu, memory["ours_gzip_only"] = measure_gzip_only(companies, data_types, mode, workdir)
        _print("ours", latency["ours"], memory["ours"])
        _print("cold", latency["cold"], None)
        _print("static", latency["static"], None)
        print(f"    age ticker: {ticker_cpu:.1%} of a core while scraped", flush=True)
        _print("ours, gzip scrapes only", {}, memory["ours_gzip_only"])
        naive = start_server("naive", companies, data_types, mode, workdir)
        try:
            latency["naive"] = {
                "plain": measure(naive.port, "/metrics", {}, naive_scrapes, warmup=1),
                "gzip": measure(naive.port, "/metrics", GZIP, max(1, naive_scrapes // 2), warmup=0),
            }
            memory["naive"] = naive.memory()
        finally:
            naive.stop()
        _print("naive", latency["naive"], memory["naive"])
    return ShapeResult(
        companies,
        data_types,
        mode,
        int(info["series"]),
        float(info["render_seconds"]),
        float(info["rerender_1pct_seconds"]),
        {k: float(v) for k, v in info.items() if k.startswith("age_")},
        latency,
        memory,
        ticker_cpu,
    )


def machine() -> dict[str, str]:
    """A short description of the machine the numbers come from."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": f"{mem_kb / 2**20:.1f} GiB",
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


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def summary(results: list[ShapeResult]) -> str:
    """The markdown table for RESULTS.md."""
    lines = [
        "| shape | series | variant | ours p50 / p99 | cold p50 / p99 | naive p50 / p99 | "
        "static p50 / p99 | ours vs naive | ours / static (p99) | cold / static | body |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        shape = f"{r.companies:,} × {r.data_types}, {r.status_mode}"
        for variant in ("plain", "gzip"):
            o, c, n, s = (r.latency[k][variant] for k in ("ours", "cold", "naive", "static"))
            lines.append(
                f"| {shape} | {r.series:,} | {variant} | {o.p50_ms:.1f} / {o.p99_ms:.1f} ms | "
                f"{c.p50_ms:.1f} / {c.p99_ms:.1f} ms | "
                f"{n.p50_ms:,.0f} / {n.p99_ms:,.0f} ms | {s.p50_ms:.1f} / {s.p99_ms:.1f} ms | "
                f"{n.p50_ms / o.p50_ms:.0f}× faster | {o.p50_ms / s.p50_ms:.2f}× "
                f"({o.p99_ms / s.p99_ms:.2f}×) | {c.p50_ms / s.p50_ms:.2f}× | "
                f"{o.body_bytes / 1e6:.1f} MB |"
            )
    lines += [
        "",
        "| shape | render (all) | re-render (1 % changed) | RSS ours | RSS empty exporter | "
        "RSS/series | (RSS − empty)/series | RSS ours, gzip scrapes only | RSS naive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per, marginal = r.rss_per_series()
        ours, base, naive, gz = (r.memory[k] for k in ("ours", "baseline", "naive", "ours_gzip_only"))
        lines.append(
            f"| {r.companies:,} × {r.data_types}, {r.status_mode} | {r.render_seconds:.2f} s | "
            f"{r.rerender_1pct_seconds:.2f} s | {_mib(ours['VmRSS'])} (peak {_mib(ours['VmHWM'])}) | "
            f"{_mib(base['VmRSS'])} | {per:.0f} B | {marginal:.0f} B | "
            f"{_mib(gz['VmRSS'])} ({gz['VmRSS'] / r.series:.0f} B/series) | "
            f"{_mib(naive['VmRSS'])} (peak {_mib(naive['VmHWM'])}) |"
        )
    lines += [
        "",
        "| shape | age lines per second | their bytes | format them | gzip them | "
        "gzip-only build (pieces) | age ticker CPU while scraped |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a = r.age_block
        lines.append(
            f"| {r.companies:,} × {r.data_types}, {r.status_mode} | {a['age_lines']:,.0f} | "
            f"{a['age_block_bytes'] / 1e6:.1f} MB | {a['age_format_ms']:.1f} ms | "
            f"{a['age_gzip_ms']:.1f} ms | "
            f"{a['age_build_gzip_only_ms']:.1f} ms | {r.ticker_cpu_share:.1%} of a core |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with ``serve``, one server process of it)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "serve":
        kind, companies_arg, data_types_arg, mode_arg, workdir = args[1:6]
        serve(kind, int(companies_arg), int(data_types_arg), mode_arg, Path(workdir))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small shapes and few scrapes (smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench/results-scrape.json"))
    opts = parser.parse_args(args)
    if opts.quick:
        shapes = [(100, 30, "default", 20, 2), (1000, 30, "sparse", 10, 1)]
    else:
        shapes = [(1000, 30, "default", 200, 5), (10_000, 30, "sparse", 100, 2)]
    results = []
    load_before = list(os.getloadavg())
    for companies, data_types, mode, scrapes, naive_scrapes in shapes:
        print(f"shape: {companies} companies × {data_types} data types, status mode {mode}", flush=True)
        results.append(run_shape(companies, data_types, mode, scrapes, naive_scrapes))
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
