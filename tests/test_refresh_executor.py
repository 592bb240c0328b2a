"""The auto-refresher against the simulated Codat API over real sockets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from exporter.codat.client import CodatClient
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.config.schema import AutoRefreshSettings, RefreshRule
from exporter.exposition.selfmetrics import Telemetry
from exporter.refresh.actions import perform_refresh
from exporter.refresh.auto import AutoRefresher
from exporter.simulator import FakeClock, Simulator, SimulatorServer
from tests.conftest import RunningSimulator

MAX_RETRIES = 2


class Sim:
    """A running simulator, its fake clock and a client pointed at it."""

    def __init__(
        self, sim: Simulator, server: SimulatorServer, clock: FakeClock, client: CodatClient
    ) -> None:
        self.sim, self.server, self.clock, self.client = sim, server, clock, client

    @property
    def stale_company(self) -> str:
        return self.sim.company_id_by_name("Driftwood Outfitters")

    def posts(self) -> int:
        return sum(1 for record in self.sim.request_log if record.method == "POST")

    def poll(self) -> Snapshot:
        """What a poll cycle would produce: every company's data status, read over HTTP."""
        now = self.clock.now()
        companies = {}
        for company in self.client.iter_companies():
            companies[company.id] = CompanySnapshot(
                company=company,
                statuses=self.client.get_data_status(company.id),
                up=True,
                last_poll_success=now,
            )
        return Snapshot(companies, now, True)


@pytest.fixture
def codat(simulator: RunningSimulator) -> Iterator[Sim]:
    """The shared demo simulator plus a client pointed at it."""
    # The client's retry waits go to a no-op: the test controls time, and a 429 storm must not stall it.
    client = CodatClient(
        simulator.api_key, simulator.url, max_retries=MAX_RETRIES, sleep=lambda _seconds: None
    )
    try:
        yield Sim(simulator.sim, simulator.server, simulator.clock, client)
    finally:
        client.close()


def only_invoices(**overrides: Any) -> AutoRefreshSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "rules": [RefreshRule(data_types=["invoices"], companies=["*"], max_staleness=6 * 3600)],
        "refresh_all_threshold": 100,
        "cooldown": 3600,
    }
    values.update(overrides)
    return AutoRefreshSettings(**values)


def counted(telemetry: Telemetry, data_type: str, result: str) -> float:
    value = telemetry.registry.get_sample_value(
        "codat_refresh_requests_total", {"data_type": data_type, "result": result}
    )
    return value or 0.0


def test_stale_data_type_is_queued_and_simulator_shows_the_sync(
    codat: Sim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.refresh")
    telemetry = Telemetry()
    refresher = AutoRefresher(codat.client, only_invoices(), telemetry)
    stale = codat.stale_company
    snapshot = codat.poll()
    outcomes = refresher.run_cycle(snapshot, codat.clock.now())
    queued = [o for o in outcomes if o.company_id == stale]
    assert [(o.result, o.data_type) for o in queued] == [("queued", "invoices")]
    operation = codat.sim.operations(stale)[-1]
    assert operation["id"] == queued[0].dataset_id
    assert codat.sim.data_status(stale)["invoices"]["currentStatus"] == "Queued"
    assert counted(telemetry, "invoices", "queued") == len([o for o in outcomes if o.result == "queued"])
    assert (stale, "invoices") in refresher.pending()
    assert refresher.last_attempts()[(stale, "invoices")] == codat.clock.now()
    dataset = operation["id"]
    expected = f"refresh queued company={stale} data_type=invoices staleness=3d rule_max=6h dataset={dataset}"
    assert expected in caplog.messages


def test_queued_refresh_completes_and_staleness_drops(codat: Sim) -> None:
    telemetry = Telemetry()
    refresher = AutoRefresher(codat.client, only_invoices(), telemetry)
    stale = codat.stale_company
    before = codat.poll().companies[stale].statuses["invoices"].last_successful_sync
    assert before is not None
    refresher.run_cycle(codat.poll(), codat.clock.now())
    codat.clock.advance(5)
    running = codat.poll()
    assert refresher.run_cycle(running, codat.clock.now()) == []  # in progress: nothing new
    assert (stale, "invoices") in refresher.pending()
    codat.clock.advance(120)
    codat.sim.complete_syncs_now(stale, status="Complete")
    done = codat.poll()
    refresher.run_cycle(done, codat.clock.now())
    after = done.companies[stale].statuses["invoices"].last_successful_sync
    assert after is not None
    assert codat.clock.now() - after < timedelta(minutes=5) < codat.clock.now() - before
    assert (stale, "invoices") not in refresher.pending()
    assert telemetry.registry.get_sample_value("codat_refresh_pending") == 0


def test_dry_run_queues_nothing(codat: Sim) -> None:
    telemetry = Telemetry()
    refresher = AutoRefresher(codat.client, only_invoices(dry_run=True), telemetry)
    snapshot = codat.poll()
    codat.sim.reset_request_log()
    outcomes = refresher.run_cycle(snapshot, codat.clock.now())
    assert outcomes == []
    assert codat.posts() == 0
    assert codat.sim.running_operations(codat.stale_company) == 0
    assert counted(telemetry, "invoices", "dry_run") >= 1
    # A dry run still respects the cooldown, so its counts show what a real run would do.
    assert refresher.run_cycle(snapshot, codat.clock.now() + timedelta(minutes=1)) == []
    assert counted(telemetry, "invoices", "dry_run") == len(refresher.last_attempts())


def test_sync_already_running_is_counted_not_failed(codat: Sim) -> None:
    telemetry = Telemetry()
    refresher = AutoRefresher(codat.client, only_invoices(), telemetry)
    stale = codat.stale_company
    snapshot = codat.poll()  # taken before the sync below starts, so the policy cannot know
    running_id = codat.sim.queue_sync(stale, "invoices")
    outcomes = {o.company_id: o for o in refresher.run_cycle(snapshot, codat.clock.now())}
    assert outcomes[stale].result == "already_in_progress"
    assert outcomes[stale].running_dataset_id == running_id
    assert counted(telemetry, "invoices", "already_in_progress") == 1
    assert counted(telemetry, "invoices", "error") == 0


def test_rate_limit_storm_stops_the_cycle_without_a_retry_loop(codat: Sim) -> None:
    telemetry = Telemetry()
    settings = only_invoices(rules=[RefreshRule(data_types=["*"], max_staleness=6 * 3600)])
    refresher = AutoRefresher(codat.client, settings, telemetry)
    snapshot = codat.poll()
    codat.sim.reset_request_log()
    codat.sim.faults.set(rate_limit_storm=(1000, 30.0))
    outcomes = refresher.run_cycle(snapshot, codat.clock.now())
    planned = len(refresher.last_decision.actions)
    assert planned >= 3  # the stale company's ten data types at least
    assert [o.result for o in outcomes] == ["rate_limited"]
    assert outcomes[0].retry_after == 30.0
    first_cycle_posts = codat.posts()
    assert 1 <= first_cycle_posts <= 1 + MAX_RETRIES  # the client's own bounded retries, nothing more
    over_budget = sum(1 for skipped in refresher.last_decision.skipped if skipped.reason.is_budget)
    assert counted_total(telemetry, "skipped_budget") == planned - 1 + over_budget
    # Until Retry-After has passed, later cycles send nothing at all.
    for seconds in (5, 15, 29):
        assert refresher.run_cycle(snapshot, codat.clock.now() + timedelta(seconds=seconds)) == []
    assert codat.posts() == first_cycle_posts


def test_refresh_resumes_after_retry_after_passes(codat: Sim) -> None:
    refresher = AutoRefresher(codat.client, only_invoices(), Telemetry())
    snapshot = codat.poll()
    codat.sim.faults.set(rate_limit_storm=(1 + MAX_RETRIES, 30.0))
    first = refresher.run_cycle(snapshot, codat.clock.now())
    assert [o.result for o in first] == ["rate_limited"]
    later = refresher.run_cycle(snapshot, codat.clock.now() + timedelta(seconds=31))
    # The pair that was rate limited backs off; the others go ahead now.
    assert later
    assert {o.result for o in later} == {"queued"}
    assert first[0].company_id not in {o.company_id for o in later}


def test_cli_and_auto_refresh_share_the_refresh_path(codat: Sim) -> None:
    stale = codat.stale_company
    outcome = perform_refresh(codat.client, stale, None)
    assert (outcome.result, outcome.data_type, outcome.dataset_id) == ("queued", "all", None)
    assert codat.sim.running_operations(stale) >= 1
    again = perform_refresh(codat.client, stale, "bills")
    assert again.result == "already_in_progress"
    missing = perform_refresh(codat.client, stale, "no-such-type")
    assert (missing.result, missing.status_code) == ("error", 404)


def counted_total(telemetry: Telemetry, result: str) -> float:
    total = 0.0
    for metric in telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == "codat_refresh_requests_total" and sample.labels.get("result") == result:
                total += sample.value
    return total


def test_sync_that_keeps_failing_backs_off_instead_of_requeueing_every_cooldown(codat: Sim) -> None:
    stale = codat.stale_company
    settings = only_invoices(
        rules=[RefreshRule(data_types=["invoices"], companies=[stale], max_staleness=6 * 3600)], cooldown=600
    )
    refresher = AutoRefresher(codat.client, settings, Telemetry())

    def cycle_after(seconds: float) -> list[str]:
        codat.clock.advance(seconds)
        return [o.result for o in refresher.run_cycle(codat.poll(), codat.clock.now())]

    def fail_running_sync() -> None:
        assert codat.sim.complete_syncs_now(stale, status="FetchError") == 1

    assert cycle_after(0) == ["queued"]
    fail_running_sync()
    assert cycle_after(60) == []  # the failed sync is seen; still within the cooldown
    assert cycle_after(541) == ["queued"]  # one failure: the plain cooldown
    fail_running_sync()
    assert cycle_after(60) == []
    assert cycle_after(541) == []  # two failures in a row: twice the cooldown
    assert cycle_after(600) == ["queued"]
    assert codat.posts() == 3


def test_demo_settings_refresh_the_demo_stale_company_in_the_first_cycle(codat: Sim) -> None:
    from exporter.cli.demo import demo_auto_refresh_settings

    telemetry = Telemetry()
    refresher = AutoRefresher(codat.client, demo_auto_refresh_settings(), telemetry)
    outcomes = refresher.run_cycle(codat.poll(), codat.clock.now())
    by_company = {(o.company_id, o.data_type): o.result for o in outcomes}
    assert by_company[(codat.stale_company, "all")] == "queued"
    deauthorized = codat.sim.company_id_by_name("Foxglove Florists")
    assert all(company_id != deauthorized for company_id, _ in by_company)
