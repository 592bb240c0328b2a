"""Request budget over a simulated day: tiered polling against a naive dataStatus poller.

Runs the real scheduler against the simulator over real sockets, with a fake
clock that advances one poll interval per cycle for a whole day. It counts the
requests the simulator received per company, checks after every cycle that
each sync the simulator completed is already visible in the exporter's
snapshot (last successful sync time and counters), and compares the spend with
a naive poller that reads every company's dataStatus every interval.

    python -m bench.bench_budget [--companies 200] [--data-types 10] [--hours 24]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exporter.codat.client import CodatClient
from exporter.codat.timestamps import parse_timestamp
from exporter.collector.scheduler import Scheduler
from exporter.config.schema import Config
from exporter.exposition.selfmetrics import Telemetry
from exporter.simulator import FakeClock, Scenario, Simulator


@dataclass
class BudgetResult:
    """What a simulated run spent and whether it kept up."""

    companies: int
    hours: float
    interval: float
    requests: int
    requests_by_endpoint: dict[str, int]
    naive_requests: int
    completed_syncs: int
    missed: list[str] = field(default_factory=list)
    """Syncs not visible in the snapshot one cycle after they completed (should be empty)."""
    wall_seconds: float = 0.0

    @property
    def per_company_per_day(self) -> float:
        """Our requests per company per day."""
        return self.requests / self.companies / (self.hours / 24)

    @property
    def naive_per_company_per_day(self) -> float:
        """The naive poller's requests per company per day."""
        return self.naive_requests / self.companies / (self.hours / 24)

    @property
    def share_of_naive(self) -> float:
        """Our spend as a fraction of the naive spend."""
        return self.requests / self.naive_requests


def _totals(scheduler: Scheduler) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for company_id, cs in scheduler.snapshot.companies.items():
        for (data_type, status), n in cs.pull_operations_total.items():
            if n:
                counts[(company_id, data_type, status)] += n
    return counts


def run_day(
    companies: int = 200, data_types: int = 10, hours: float = 24.0, interval: float = 60.0, seed: int = 7
) -> BudgetResult:
    """Simulate ``hours`` of polling ``companies`` companies; return spend and detection misses."""
    clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=UTC))
    sim = Simulator(Scenario.generated(companies=companies, data_types=data_types, seed=seed), clock=clock)
    # Codat's real quota for this many active companies: 1,000 × (1 + companies) a day.
    sim.set_rate_limit(daily_quota=1000 * (1 + companies), per_minute=100_000)
    server = sim.serve()
    telemetry = Telemetry()
    client = CodatClient("demo", server.url, observer=telemetry, max_retries=0, requests_per_minute=1e9)
    config = Config.model_validate({"polling": {"interval": interval}})
    scheduler = Scheduler(client, config, telemetry, clock=clock.now)
    started = time.monotonic()
    missed: list[str] = []
    try:
        scheduler.run_cycle()
        baseline = sim.terminal_counts()
        seen_counts = Counter(baseline)
        cycles = round(hours * 3600 / interval)
        for _ in range(cycles):
            clock.advance(interval)
            scheduler.run_cycle()
            truth = sim.terminal_counts()
            if truth == seen_counts:
                continue
            expected = truth - baseline
            ours = _totals(scheduler)
            for key in (truth - seen_counts).keys() | (ours.keys() ^ expected.keys()):
                if ours[key] != expected[key]:
                    missed.append(
                        f"{clock.now().isoformat()} counter {key}: ours {ours[key]} truth {expected[key]}"
                    )
            for company_id in {key[0] for key in truth - seen_counts}:
                snapshot = scheduler.snapshot.companies[company_id]
                for data_type, body in sim.data_status(company_id).items():
                    want = body.get("lastSuccessfulSync")
                    have = snapshot.statuses[data_type].last_successful_sync
                    if (parse_timestamp(want) if want else None) != have:
                        missed.append(f"{clock.now().isoformat()} {company_id}/{data_type}: {have} != {want}")
            seen_counts = Counter(truth)
        by_endpoint: Counter[str] = Counter()
        for (endpoint, _company), n in sim.request_counts.items():
            by_endpoint[endpoint] += n
        total = sum(by_endpoint.values())
        return BudgetResult(
            companies=companies,
            hours=hours,
            interval=interval,
            requests=total,
            requests_by_endpoint=dict(by_endpoint),
            naive_requests=companies * (cycles + 1),
            completed_syncs=sum((sim.terminal_counts() - baseline).values()),
            missed=missed,
            wall_seconds=time.monotonic() - started,
        )
    finally:
        scheduler.close()
        client.close()
        server.close()


def main() -> None:
    """Run the simulated day and print the numbers for bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--data-types", type=int, default=10)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--interval", type=float, default=60.0)
    args = parser.parse_args()
    result = run_day(args.companies, args.data_types, args.hours, args.interval)
    shape = f"companies={result.companies} data_types={args.data_types} hours={result.hours:g}"
    print(f"{shape} interval={result.interval:g}s")
    print(f"syncs completed: {result.completed_syncs}; not visible within one interval: {len(result.missed)}")
    print(f"requests by endpoint: {result.requests_by_endpoint}")
    print(f"ours:  {result.requests} requests = {result.per_company_per_day:.1f} per company per day")
    naive = result.naive_per_company_per_day
    print(f"naive: {result.naive_requests} requests = {naive:.0f} per company per day")
    print(f"ours / naive = {result.share_of_naive:.2%}   (wall time {result.wall_seconds:.0f}s)")


if __name__ == "__main__":
    main()
