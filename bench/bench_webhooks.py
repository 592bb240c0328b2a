"""Webhook benchmarks: how fast an event reaches /metrics, and what webhooks save in Codat requests.

Two measurements, both against the simulator over real HTTP:

* ``latency``: a sync completes in the simulator, its signed ``read.completed``
  goes to a running exporter (poll interval 1 h, so only the webhook can make
  the change visible), and the time until /metrics shows the new sync time is
  recorded; p50/p99 over ``--events`` events.
* ``budget``: one simulated day (fake clock, a cycle every poll interval) of a
  generated account, with and without webhooks; Codat requests per company per
  day by endpoint.

Run from the repository root (about four minutes on 2 cores)::

    .venv/bin/python -m bench.bench_webhooks --json bench/results-webhooks.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import build_app
from exporter.codat.client import CodatClient
from exporter.config.loading import load_config
from exporter.config.schema import Config
from exporter.exposition.families import DATA_LAST_SUCCESSFUL_SYNC
from exporter.exposition.selfmetrics import Telemetry
from exporter.exposition.selfspecs import WEBHOOK_LATENCY
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


def _wait(condition: Callable[[], bool], timeout: float = 30.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = requests.get(url + "/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _last_sync(url: str, company_id: str, data_type: str) -> float | None:
    labels = (("company_id", company_id), ("data_type", data_type))
    return _scrape(url).get((DATA_LAST_SUCCESSFUL_SYNC.name, labels))


@dataclass
class LatencyResult:
    """Event → /metrics latencies (seconds) and the exporter's own receipt → snapshot figures."""

    gap: float
    samples: list[float]
    exporter_count: float
    exporter_mean: float


def measure_latency(events: int, gap: float, scrape_every: float = 0.005) -> LatencyResult:
    """Complete ``events`` syncs one at a time, ``gap`` seconds apart, and time each until /metrics shows it.

    With the default pacing (300 requests a minute, two seconds' burst) events closer than
    about half a second apart each wait for the client's token bucket: ``gap=0`` measures
    that worst case, a gap of a few seconds the usual case of sparse events.

    The exporter runs as its own process (``codat-exporter run``), as in production, so the
    scraping loop here does not compete with it for the interpreter lock.
    """
    clock = FakeClock()
    sim = Simulator(Scenario.generated(companies=5, data_types=3, seed=3), api_key="demo", clock=clock)
    server = sim.serve()
    listen = f"127.0.0.1:{free_port()}"
    url = f"http://{listen}"
    env = {
        **os.environ,
        "CODAT_API_KEY": "demo",
        "CODAT_BASE_URL": server.url,
        "CODAT_WEBHOOK_SECRET": SECRET,
    }
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "config.yaml")
        config.write_text("polling:\n  interval: 1h\n", encoding="utf-8")
        run = ("run", "--config", str(config), "--web.listen-address", listen)
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", *run],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        samples: list[float] = []
        try:
            _wait(lambda: _ready(url))
            sim.configure_webhooks(url + "/webhooks/codat", SECRET)
            companies = sim.company_ids
            for i in range(events):
                time.sleep(gap)  # lets the client's token bucket refill, as between real events
                company_id = companies[i % len(companies)]
                data_type = sorted(sim.data_status(company_id))[0]
                clock.advance(60)
                sim.queue_sync(company_id, data_type, outcome="Complete")
                sim.complete_syncs_now(company_id)
                expected = clock.now().timestamp()
                started = time.perf_counter()
                _wait(lambda: _last_sync(url, company_id, data_type) == expected, every=scrape_every)  # noqa: B023
                samples.append(time.perf_counter() - started)
            metrics = _scrape(url)
        finally:
            exporter.terminate()
            exporter.wait(timeout=30)
            sim.close()
            server.close()
    count = metrics.get((WEBHOOK_LATENCY.name + "_count", ()), 0.0)
    total = metrics.get((WEBHOOK_LATENCY.name + "_sum", ()), 0.0)
    return LatencyResult(gap, samples, count, total / count if count else float("nan"))


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


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


def _markdown(latencies: Sequence[LatencyResult], budgets: Sequence[BudgetResult], companies: int) -> str:
    lines = [
        "Event → /metrics latency (exporter as its own process, default pacing of 300 requests/min; "
        "/metrics scraped every 5 ms):",
        "",
        "| events | spacing | p50 | p99 | max | exporter's own receipt→snapshot mean |",
        "|---|---|---|---|---|---|",
    ]
    for latency in latencies:
        ms = [x * 1000 for x in latency.samples]
        lines.append(
            f"| {len(ms)} | {latency.gap:g} s | {_percentile(ms, 0.5):.0f} ms "
            f"| {_percentile(ms, 0.99):.0f} ms | {max(ms):.0f} ms | {latency.exporter_mean * 1000:.0f} ms |"
        )
    lines += [
        "",
        f"Codat requests per company per day ({companies} companies × 5 data types, daily syncs, "
        "one simulated day after the first full poll):",
        "",
        "| configuration | companies list | dataStatus | history | total | webhooks processed |",
        "|---|---|---|---|---|---|",
    ]
    for r in budgets:
        c = r.per_company_day
        lines.append(
            f"| {r.label} | {c['companies']:.2f} | {c['dataStatus']:.2f} | {c['history']:.2f} "
            f"| {sum(c.values()):.2f} | {r.webhooks_processed:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements, print Markdown tables for RESULTS.md, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20, help="webhook events to time (default 20)")
    parser.add_argument(
        "--companies", type=int, default=100, help="companies in the budget runs (default 100)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results to this file")
    args = parser.parse_args(argv)

    latencies = [measure_latency(args.events, gap) for gap in (3.0, 0.0)]
    variants: list[tuple[str, bool, dict[str, Any]]] = [
        ("no webhooks (60 s change detection, 6 h sweep)", False, {}),
        ("webhooks (60 s change detection, 24 h sweep)", True, {}),
        ("webhooks, relaxed change detection (15 min, 24 h sweep)", True, {"polling.interval": "15m"}),
    ]
    budgets = [
        measure_budget(label, args.companies, webhooks=hooks, overrides=extra)
        for label, hooks, extra in variants
    ]
    print(_markdown(latencies, budgets, args.companies))
    if args.json is not None:
        document = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "latency": [asdict(latency) for latency in latencies],
            "budget": [asdict(b) | {"companies": args.companies} for b in budgets],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
