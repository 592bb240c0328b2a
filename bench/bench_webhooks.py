"""Webhook benchmarks: how fast an event reaches /metrics, and what webhooks save in Codat requests.

Two measurements, both against the simulator over real HTTP:

* ``latency``: a sync completes in the simulator, its signed ``read.completed``
  goes to a running exporter (poll interval 1 h, so only the webhook can make
  the change visible), and the time until /metrics shows the new sync time is
  recorded; p50/p99 over ``--events`` events.
* ``budget``: one simulated day (fake clock, a cycle every poll interval) of a
  generated account, with and without webhooks; Codat requests per company per
  day by endpoint.

Run: ``.venv/bin/python -m bench.bench_webhooks [--events 20] [--companies 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App, build_app
from exporter.codat.client import CodatClient
from exporter.config.loading import load_config
from exporter.config.schema import Config
from exporter.metrics import DATA_LAST_SUCCESSFUL_SYNC, WEBHOOK_LATENCY, Telemetry
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.tools import free_port
from tests.support.webhooks import SECRET_TEXT as SECRET

ENDPOINTS = ("companies", "dataStatus", "history")


def _config(sim_url: str, *, webhooks: bool, overrides: dict[str, Any] | None = None) -> Config:
    env = {"CODAT_WEBHOOK_SECRET": SECRET} if webhooks else {}
    return load_config(
        None,
        env=env,
        overrides={
            "codat.base_url": sim_url,
            "codat.api_key": "demo",
            "server.listen_address": f"127.0.0.1:{free_port()}",
            "budget.max_requests_per_minute": 1000,
            **(overrides or {}),
        },
    )


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.001)


def _last_sync(app: App, company_id: str, data_type: str) -> float | None:
    body = requests.get(app.url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        if family.name != DATA_LAST_SUCCESSFUL_SYNC.name:
            continue
        for sample in family.samples:
            if sample.labels == {"company_id": company_id, "data_type": data_type}:
                return float(sample.value)
    return None


def _exporter_histogram(app: App) -> tuple[float, float]:
    registry = app.telemetry.registry
    count = registry.get_sample_value(WEBHOOK_LATENCY.name + "_count") or 0.0
    total = registry.get_sample_value(WEBHOOK_LATENCY.name + "_sum") or 0.0
    return count, total


@dataclass
class LatencyResult:
    """Event → /metrics latencies (seconds) and the exporter's own receipt → snapshot figures."""

    samples: list[float]
    exporter_count: float
    exporter_mean: float


def measure_latency(events: int) -> LatencyResult:
    """Complete ``events`` syncs one at a time and time each until /metrics shows it."""
    clock = FakeClock()
    sim = Simulator(Scenario.generated(companies=5, data_types=3, seed=3), api_key="demo", clock=clock)
    server = sim.serve()
    app = build_app(_config(server.url, webhooks=True, overrides={"polling.interval": "1h"}))
    app.start()
    samples: list[float] = []
    try:
        sim.configure_webhooks(app.url + app.config.webhooks.path, SECRET)
        _wait(lambda: requests.get(app.url + "/readyz", timeout=5).status_code == 200)
        companies = sim.company_ids
        for i in range(events):
            company_id = companies[i % len(companies)]
            data_type = sorted(sim.data_status(company_id))[0]
            clock.advance(60)
            sim.queue_sync(company_id, data_type, outcome="Complete")
            sim.complete_syncs_now(company_id)
            expected = clock.now().timestamp()
            started = time.perf_counter()
            _wait(lambda: _last_sync(app, company_id, data_type) == expected)  # noqa: B023 - used at once
            samples.append(time.perf_counter() - started)
        count, total = _exporter_histogram(app)
    finally:
        app.stop()
        sim.close()
        server.close()
    return LatencyResult(samples, count, total / count if count else float("nan"))


@dataclass
class BudgetResult:
    """Codat requests per company per day by endpoint for one configuration."""

    label: str
    per_company_day: dict[str, float]
    webhooks_processed: float


def measure_budget(label: str, companies: int, *, webhooks: bool, overrides: dict[str, Any]) -> BudgetResult:
    """Run one simulated day of cycles and count what the simulator received."""
    clock = FakeClock()
    sim = Simulator(
        Scenario.generated(companies=companies, data_types=5, seed=11), api_key="demo", clock=clock
    )
    server = sim.serve()
    config = _config(server.url, webhooks=webhooks, overrides=overrides)
    client = CodatClient("demo", server.url, requests_per_minute=1e9, max_concurrency=4)
    app = build_app(config, telemetry=Telemetry(), clock=clock.now, client=client)
    app.server.start()
    if app.webhooks is not None:
        app.webhooks.start()
        sim.configure_webhooks(app.url + config.webhooks.path, SECRET)
    step = config.polling.interval
    try:
        app.scheduler.run_cycle(clock.now())  # the first full poll: not part of the steady state
        sim.reset_request_log()
        elapsed = 0.0
        while elapsed < timedelta(days=1).total_seconds():
            clock.advance(step)
            elapsed += step
            sim.webhooks.wait_until_idle()
            if app.webhooks is not None:
                app.webhooks.wait_idle(timeout=10)
            app.scheduler.run_cycle(clock.now())
        counts = {ep: sim.count_requests(ep) / companies for ep in ENDPOINTS}
        processed = sum(
            app.telemetry.registry.get_sample_value(
                "codat_exporter_webhooks_received_total", {"event_type": t, "result": "processed"}
            )
            or 0.0
            for t in ("read.completed", "read.completed.initial")
        )
    finally:
        app.stop()
        sim.close()
        server.close()
    return BudgetResult(label, counts, processed)


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--companies", type=int, default=100)
    args = parser.parse_args(argv)

    latency = measure_latency(args.events)
    ms = [s * 1000 for s in latency.samples]
    print(f"### Event → /metrics latency ({len(ms)} events, simulator and exporter on one machine)\n")
    print("| p50 | p99 | max | mean | exporter receipt→snapshot mean |")
    print("|---|---|---|---|---|")
    print(
        f"| {_percentile(ms, 0.5):.1f} ms | {_percentile(ms, 0.99):.1f} ms | {max(ms):.1f} ms "
        f"| {statistics.fmean(ms):.1f} ms | {latency.exporter_mean * 1000:.1f} ms "
        f"({latency.exporter_count:.0f} obs.) |\n"
    )

    variants = [
        ("no webhooks (60 s change detection, 6 h sweep)", False, {}),
        ("webhooks (60 s change detection, 24 h sweep)", True, {}),
        ("webhooks, relaxed change detection (15 min, 24 h sweep)", True, {"polling.interval": "15m"}),
    ]
    results = [
        measure_budget(label, args.companies, webhooks=hooks, overrides=extra)
        for label, hooks, extra in variants
    ]
    print(
        f"### Codat requests per company per day ({args.companies} companies × 5 data types, daily syncs)\n"
    )
    print("| configuration | companies list | dataStatus | history | total | webhooks processed |")
    print("|---|---|---|---|---|---|")
    for r in results:
        c = r.per_company_day
        print(
            f"| {r.label} | {c['companies']:.2f} | {c['dataStatus']:.2f} | {c['history']:.2f} "
            f"| {sum(c.values()):.2f} | {r.webhooks_processed:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
