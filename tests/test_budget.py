"""Request budget over a simulated day: ours against a naive dataStatus poller, with no sync missed."""

from __future__ import annotations

import pytest

from bench.bench_budget import run_day

pytestmark = pytest.mark.slow


def test_a_simulated_day_costs_under_5_percent_of_naive_polling_and_misses_no_sync() -> None:
    result = run_day(companies=60, data_types=10, hours=24, interval=60)
    assert result.completed_syncs > 500, "the simulated companies synced all day"
    # Every sync the simulator completed was visible (timestamps and counters) one cycle later.
    assert result.missed == []
    assert result.naive_per_company_per_day == pytest.approx(1441 / 1, rel=0.01)
    assert result.share_of_naive <= 0.05, result
    # What the exporter spent went where the design says: listing, then targeted reads.
    assert result.requests_by_endpoint["companies"] == 1441
    assert set(result.requests_by_endpoint) == {"companies", "dataStatus", "history", "companySyncSettings"}
    # Sync schedules change rarely: read once a company a day (at its first poll, then daily).
    assert result.requests_by_endpoint["companySyncSettings"] <= 2 * 60
