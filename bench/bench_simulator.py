"""Simulator speed and size: build time, memory, per-request latency over HTTP, and clock advances.

Run from the repository root::

    .venv/bin/python -m bench.bench_simulator                 # 10,000 companies × 10 data types
    .venv/bin/python -m bench.bench_simulator --companies 1000

It reports: the time to build the account and the Python heap it holds
(peak RSS growth), median and p99 latency of ``GET /companies/{id}/dataStatus``
and ``GET .../data/history`` over real HTTP with a kept-alive connection, the
time of one ``GET /companies?pageSize=5000`` page, and the time to advance the
fake clock by one day.
"""

from __future__ import annotations

import argparse
import base64
import gc
import random
import resource
import statistics
import time
from datetime import UTC, datetime

import requests

from exporter.simulator import FakeClock, Scenario, Simulator
from exporter.simulator.api import handle


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(companies: int, data_types: int, requests_per_endpoint: int, seed: int) -> dict[str, float]:
    """Measure one scenario size; returns the numbers (milliseconds, seconds, MiB)."""
    clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    sim = Simulator(Scenario.generated(companies=companies, data_types=data_types, seed=seed), clock=clock)
    build_seconds = time.perf_counter() - started
    # Peak RSS growth (KiB on Linux) while building: the account's footprint, roughly.
    heap_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    # The fake clock stands still, so the per-minute limit would stop the run; measure speed only.
    sim.set_rate_limit(per_minute=10**9)
    server = sim.serve()
    session = requests.Session()
    session.headers["Authorization"] = "Basic " + base64.b64encode(b"demo").decode()
    rng = random.Random(seed)
    ids = sim.company_ids
    results: dict[str, float] = {"companies": companies, "build_s": build_seconds, "rss_growth_mib": heap_mib}
    try:
        for name, path in (
            ("dataStatus", "/companies/{}/dataStatus"),
            ("history", "/companies/{}/data/history"),
        ):
            timings = []
            for _ in range(requests_per_endpoint):
                url = server.url + path.format(rng.choice(ids))
                t0 = time.perf_counter()
                response = session.get(url, timeout=30)
                timings.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
            results[f"{name}_p50_ms"] = statistics.median(timings)
            results[f"{name}_p99_ms"] = _percentile(timings, 0.99)
        auth = {"Authorization": "Basic " + base64.b64encode(b"demo").decode()}
        timings = []
        for _ in range(requests_per_endpoint):
            target = f"/companies/{rng.choice(ids)}/dataStatus"
            t0 = time.perf_counter()
            reply = handle(sim, "GET", target, auth)
            timings.append((time.perf_counter() - t0) * 1000)
            assert reply.status == 200
        results["dataStatus_in_process_p50_ms"] = statistics.median(timings)
        results["dataStatus_in_process_p99_ms"] = _percentile(timings, 0.99)
        t0 = time.perf_counter()
        session.get(server.url + "/companies?page=1&pageSize=5000", timeout=60).raise_for_status()
        results["companies_page_5000_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        clock.advance(86400)
        results["advance_1_day_s"] = time.perf_counter() - t0
        results["syncs_completed_in_day"] = sim.completed_operations()
    finally:
        session.close()
        server.close()
    return results


def main() -> None:
    """Parse arguments, run, print one line per number."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--data-types", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500, help="requests per endpoint")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for key, value in run(args.companies, args.data_types, args.requests, args.seed).items():
        print(f"{key:>30}: {value:.2f}" if isinstance(value, float) else f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
