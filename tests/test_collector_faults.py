"""The collector against a hostile fake Codat over real sockets: a slow company, a 429 storm, a bad record.

A cycle waits for its polls at most ``cycle_wait``: a company that never answers must not hold
back the others' values or the snapshot. A 429 pauses every request from the moment it arrived
for at least ``Retry-After``. A listing record that does not parse fails that company only.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from exporter.codat.client import CodatClient
from exporter.collector.scheduler import Scheduler
from exporter.collector.settings import collector_settings
from exporter.config.schema import Config
from exporter.exposition.selfmetrics import Telemetry
from tests.support.hostile_codat import (
    HEALTHY_IDS,
    VICTIM_ID,
    HostileCodat,
    expected_timestamps,
    running_hostile_codat,
)
from tests.support.waiting import wait_until

API_KEY = "hostile-test-key"
CYCLE_WAIT = 1.0


@dataclass
class Rig:
    hostile: HostileCodat
    scheduler: Scheduler
    telemetry: Telemetry

    def assert_healthy_values_exact(self) -> None:
        expected = expected_timestamps()
        for company_id in HEALTHY_IDS:
            company = self.scheduler.snapshot.companies[company_id]
            assert company.up, company_id
            for data_type, status in company.statuses.items():
                assert status.last_successful_sync is not None
                assert status.last_successful_sync.timestamp() == expected[(company_id, data_type)]


@pytest.fixture
def rig() -> Iterator[Rig]:
    with running_hostile_codat(API_KEY) as hostile:
        hostile.retry_after = 1
        telemetry = Telemetry()
        client = CodatClient(API_KEY, hostile.url, max_retries=0, requests_per_minute=1e6, read_timeout=30)
        config = Config.model_validate({"polling": {"interval": 0.2}})
        settings = replace(collector_settings(config), cycle_wait=CYCLE_WAIT)
        scheduler = Scheduler(client, config, telemetry, settings=settings)
        try:
            yield Rig(hostile, scheduler, telemetry)
        finally:
            hostile.stopping.set()  # ends a hanging answer, so the poll in flight returns
            scheduler.close()
            client.close()


def test_a_company_that_never_answers_does_not_hold_back_the_others(rig: Rig) -> None:
    rig.hostile.fault = "hang"
    report = rig.scheduler.run_cycle()
    assert report.still_running == 1
    assert sorted(report.polled) == sorted(HEALTHY_IDS)
    rig.assert_healthy_values_exact()
    assert VICTIM_ID not in rig.scheduler.snapshot.companies
    assert not rig.scheduler.ready, "ready means every company is served"

    # The next cycle reads the healthy companies again, but not the victim a second time.
    before = rig.hostile.count("dataStatus")
    report = rig.scheduler.run_cycle()
    assert sorted(report.polled) == sorted(HEALTHY_IDS)
    assert rig.hostile.count("dataStatus") == before + len(HEALTHY_IDS)
    rig.assert_healthy_values_exact()


def test_a_poll_that_outlives_its_cycle_is_published_when_it_finishes(rig: Rig) -> None:
    rig.hostile.fault = "hang"
    rig.scheduler.run_cycle()
    assert VICTIM_ID not in rig.scheduler.snapshot.companies
    rig.hostile.fault = None
    rig.hostile.stopping.set()  # the hanging answer ends: the victim's poll fails now

    def published() -> bool:
        rig.scheduler.publish_late_results()
        return VICTIM_ID in rig.scheduler.snapshot.companies

    wait_until(published, "the late poll's result")
    assert not rig.scheduler.snapshot.companies[VICTIM_ID].up
    assert rig.scheduler.ready


def test_requests_during_a_429_storm_stay_within_retry_after(rig: Rig) -> None:
    stop = threading.Event()
    loop = threading.Thread(target=rig.scheduler.run_forever, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_until(lambda: rig.scheduler.ready, "the first sweep")
        # The sync settings are read after the sweep; the storm must meet an idle exporter.
        wait_until(lambda: rig.hostile.count("syncSettings") >= len(HEALTHY_IDS) + 1, "the settings reads")
        rig.hostile.fault = "rate_limit_storm"
        started = time.monotonic()
        storm_requests = 4
        wait_until(
            lambda: rig.hostile.requests_since(started) >= storm_requests, "the storm's requests", timeout=20
        )
        elapsed = time.monotonic() - started
        seen = rig.hostile.requests_since(started)
        rig.hostile.fault = None
    finally:
        stop.set()
        rig.scheduler.wake()
        loop.join(timeout=10)
    retry_after = rig.hostile.retry_after
    # Each 429 pauses every request for Retry-After from the moment it arrived.
    assert seen <= elapsed / retry_after + 1, (seen, elapsed)
    times = [at for at, _kind in rig.hostile.request_times if at >= started]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= retry_after * 0.95, gaps
    assert (
        rig.telemetry.registry.get_sample_value("codat_exporter_listing_failing", {"reason": "rate_limited"})
        == 1
    )


def test_a_listing_record_that_does_not_parse_fails_that_company_only(rig: Rig) -> None:
    rig.hostile.fault = "bad_record"
    report = rig.scheduler.run_cycle()
    assert report.change_detection
    assert sorted(report.polled) == sorted(HEALTHY_IDS)
    rig.assert_healthy_values_exact()
    victim = rig.scheduler.snapshot.companies[VICTIM_ID]
    assert not victim.up
    assert "did not parse" in (victim.last_error or "")
    assert "lastSync" in (victim.last_error or "")
    assert rig.scheduler.ready
    registry = rig.telemetry.registry
    assert (
        registry.get_sample_value("codat_exporter_poll_errors_total", {"reason": "malformed_response"}) == 1
    )
    assert registry.get_sample_value("codat_exporter_listing_up") == 1
    assert registry.get_sample_value("codat_exporter_companies_listed") == len(HEALTHY_IDS) + 1

    # Once the record parses again, the company is read and up.
    rig.hostile.fault = None
    wait_until(lambda: rig.scheduler.run_cycle().change_detection, "the next listing")
    assert rig.scheduler.snapshot.companies[VICTIM_ID].up
