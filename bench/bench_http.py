"""HTTP server benchmark: kept-alive stalls, TLS and basic-auth cost, and a bounded slowloris.

Run from the repository root (about a minute; needs the ``openssl`` CLI for the test certificate)::

    .venv/bin/python -m bench.bench_http

Servers run in this process on loopback (the demo's 24 companies, default status mode), each
measurement interleaved between the variants it compares so machine noise hits them alike:

* kept-alive vs fresh connections: the median of 100 requests (after 5 warm-up ones) for a
  gzip+OpenMetrics scrape with Prometheus' own headers, a plain scrape and ``/healthz``;
* TLS vs plain: a new connection's first ``/healthz`` (TCP + TLS handshake) and a kept-alive gzip
  scrape, as a ratio measured in one run;
* basic auth: the first request of a user (one bcrypt check at cost 12) and the next ones (cached);
* slowloris: 1,000 connections that never finish their headers, opened against the default
  connection cap while one kept-alive scraper and fresh-connection scrapers keep scraping.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import yaml

from exporter.exposition import ExpositionCache, Telemetry
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.webconfig import WebConfig, load_web_config
from tests.support.snapshots import demo_snapshot
from tests.support.tls import make_pki

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
GZIP = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
REQUESTS = 100
WARMUP = 5


def build(web: WebConfig | None = None) -> ExporterServer:
    """An exporter server over the demo snapshot on a free loopback port."""
    snap = demo_snapshot()
    cache = ExpositionCache()
    cache.update(snap)
    return ExporterServer(
        "127.0.0.1:0", cache, Telemetry(), ready=lambda: True, landing=lambda: LandingData(snap), web=web
    )


def median_ms(
    connect: Callable[[], http.client.HTTPConnection], path: str, headers: dict[str, str], keep: bool
) -> float:
    """Median wall time (ms) from request to last byte, over one kept-alive or fresh connections."""
    times = []
    conn = connect()
    for i in range(REQUESTS + WARMUP):
        if not keep:
            conn.close()
            conn = connect()
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        if i >= WARMUP:
            times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return statistics.median(times)


def plain_connect(port: int) -> Callable[[], http.client.HTTPConnection]:
    """Connections to ``port`` over plain HTTP."""
    return lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def tls_connect(port: int, context: ssl.SSLContext) -> Callable[[], http.client.HTTPConnection]:
    """Connections to ``port`` over HTTPS."""
    return lambda: http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def keep_alive() -> None:
    """Kept-alive against fresh connections."""
    with build() as server:
        connect = plain_connect(server.port)
        for label, path, headers in (
            ("gzip OpenMetrics", "/metrics", GZIP),
            ("plain", "/metrics", {}),
            ("/healthz", "/healthz", {}),
        ):
            kept = median_ms(connect, path, headers, keep=True)
            fresh = median_ms(connect, path, headers, keep=False)
            print(f"{label:18} kept-alive {kept:6.2f} ms   fresh connection {fresh:6.2f} ms")


def tls_cost(workdir: Path) -> None:
    """TLS against plain, and basic auth's first and cached requests."""
    pki = make_pki(workdir / "pki")
    web_file = pki.path("web.yml")
    web_file.write_text(
        yaml.safe_dump({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}})
    )
    context = ssl.create_default_context(cafile=str(pki.path("ca.crt")))
    results: dict[tuple[str, str], list[float]] = {}
    with build() as plain, build(load_web_config(web_file)) as tls:
        for _ in range(3):
            for label, connect in (
                ("plain", plain_connect(plain.port)),
                ("TLS", tls_connect(tls.port, context)),
            ):
                results.setdefault((label, "new connection"), []).append(
                    median_ms(connect, "/healthz", {}, keep=False)
                )
                results.setdefault((label, "kept-alive scrape"), []).append(
                    median_ms(connect, "/metrics", GZIP, keep=True)
                )
    for what in ("new connection", "kept-alive scrape"):
        plain_ms = statistics.median(results[("plain", what)])
        tls_ms = statistics.median(results[("TLS", what)])
        print(
            f"TLS {what:18} plain {plain_ms:6.2f} ms   TLS {tls_ms:6.2f} ms   ratio {tls_ms / plain_ms:.2f}x"
        )
    hashed = bcrypt.hashpw(b"bench-password", bcrypt.gensalt(12)).decode()
    web_file.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    with build(load_web_config(web_file)) as server:
        auth = {"Authorization": "Basic cHJvbWV0aGV1czpiZW5jaC1wYXNzd29yZA=="}  # prometheus:bench-password
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        start = time.perf_counter()
        conn.request("GET", "/healthz", headers=auth)
        assert conn.getresponse().read() == b"ok\n"
        first = (time.perf_counter() - start) * 1000
        conn.close()
        cached = median_ms(plain_connect(server.port), "/healthz", auth, keep=True)
        print(f"basic auth (bcrypt cost 12): first request {first:.1f} ms, then {cached:.2f} ms (cached)")


def slowloris(held_target: int = 1000) -> None:
    """Half-open connections against the default cap while scrapers keep scraping."""
    with build() as server:
        latencies: list[float] = []
        held: list[socket.socket] = []
        scraper = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        start = time.monotonic()
        try:
            for i in range(held_target):
                loris = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                loris.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nX-Never: ")
                held.append(loris)
                if i % 20 == 0:
                    for conn in (scraper, http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)):
                        began = time.perf_counter()
                        conn.request("GET", "/metrics", headers=GZIP)
                        response = conn.getresponse()
                        response.read()
                        assert response.status == 200
                        latencies.append((time.perf_counter() - began) * 1000)
            table = server.http.connections
            took = time.monotonic() - start
            print(
                f"slowloris: {len(held)} half-open connections in {took:.1f} s against a cap of {table.cap}: "
                f"{len(table)} open on the server, {table.evicted} evicted; {len(latencies)} scrapes "
                f"(kept-alive and fresh) all answered 200, median {statistics.median(latencies):.2f} ms, "
                f"max {max(latencies):.2f} ms"
            )
        finally:
            scraper.close()
            for loris in held:
                loris.close()


def main() -> None:
    """Run every measurement and print one line each."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    keep_alive()
    with tempfile.TemporaryDirectory() as workdir:
        tls_cost(Path(workdir))
    slowloris()


if __name__ == "__main__":
    main()
