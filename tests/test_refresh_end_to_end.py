"""The whole loop over real sockets: stale → queued by auto-refresh → simulator finishes → staleness drops."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.statuses import is_in_progress
from exporter.collector.scheduler import Scheduler
from exporter.collector.snapshot import Snapshot
from exporter.config import load_config
from exporter.config.schema import Config
from exporter.exposition.selfmetrics import Telemetry
from exporter.refresh.auto import AutoRefresher
from tests.conftest import RunningSimulator


@pytest.fixture
def client(simulator: RunningSimulator) -> Iterator[CodatClient]:
    with CodatClient(simulator.api_key, simulator.url, sleep=lambda _seconds: None) as codat:
        yield codat


def refresh_config(base_url: str, stale: str) -> Config:
    """Auto-refresh of one company's invoices and bills once they are six hours stale."""
    return load_config(
        None,
        env={},
        overrides={
            "codat.base_url": base_url,
            "auto_refresh": {
                "enabled": True,
                "rules": [{"data_types": ["invoices", "bills"], "companies": [stale], "max_staleness": "6h"}],
                "cooldown": "10m",
            },
        },
    )


def test_stale_data_is_refreshed_and_its_staleness_drops(
    simulator: RunningSimulator, client: CodatClient
) -> None:
    stale = simulator.sim.company_id_by_name("Driftwood Outfitters")
    config = refresh_config(simulator.url, stale)
    telemetry = Telemetry()
    clock = simulator.clock
    scheduler = Scheduler(client, config, telemetry, clock=clock.now)
    refresher = AutoRefresher(
        client,
        config.auto_refresh,
        telemetry,
        clock=clock.now,
        daily_request_budget=scheduler.daily_request_budget,
        on_queued=lambda company_id: scheduler.request_poll(company_id, "refresh"),
        spend_requests=scheduler.spend_requests,
        publish_attempts=scheduler.publish_refresh_attempts,
    )
    scheduler.on_snapshot(refresher.on_snapshot)
    cycle_ends: list[Snapshot] = []
    scheduler.on_snapshot(lambda snapshot: cycle_ends.append(snapshot) if snapshot.cycle == 1 else None)
    try:
        scheduler.run_cycle(clock.now())
        # Auto-refresh annotated the cycle's snapshot in place: one publication, attempts included.
        assert len(cycle_ends) == 1
        assert set(cycle_ends[0].companies[stale].refresh_last_attempt) == {"invoices", "bills"}
        first = scheduler.snapshot.companies[stale]
        synced = first.statuses["invoices"].last_successful_sync
        assert synced is not None
        assert clock.now() - synced > timedelta(hours=6)
        # Auto-refresh queued both stale types, and the snapshot says when it tried.
        assert {dt for (cid, dt) in refresher.pending() if cid == stale} == {"invoices", "bills"}
        assert set(scheduler.snapshot.companies[stale].refresh_last_attempt) == {"invoices", "bills"}
        assert simulator.sim.data_status(stale)["invoices"]["currentStatus"] == "Queued"

        # The targeted poll the refresh asked for sees the syncs running.
        scheduler.poll_requested(clock.now())
        running = scheduler.snapshot.companies[stale].statuses["invoices"].current_status
        assert is_in_progress(running)

        # The simulator finishes the syncs; the next cycles see fresh data.
        clock.advance(120)
        simulator.sim.complete_syncs_now(stale, status="Complete")
        clock.advance(120)
        scheduler.run_cycle(clock.now())
        scheduler.poll_requested(clock.now())
        fresh = scheduler.snapshot.companies[stale].statuses["invoices"]
        assert fresh.current_status == "Complete"
        assert fresh.last_successful_sync is not None
        assert clock.now() - fresh.last_successful_sync < timedelta(minutes=5)
        assert refresher.pending() == {}
        queued = telemetry.registry.get_sample_value(
            "codat_refresh_requests_total", {"data_type": "invoices", "result": "queued"}
        )
        assert queued == 1
        assert telemetry.registry.get_sample_value("codat_refresh_pending") == 0
    finally:
        scheduler.close()
