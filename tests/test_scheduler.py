"""The scheduler against the simulator over real sockets, with a fake clock."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.timestamps import parse_timestamp
from exporter.collector.scheduler import Scheduler
from exporter.collector.settings import collector_settings
from exporter.collector.sharding import owns
from exporter.collector.snapshot import Snapshot
from exporter.config.schema import Config
from exporter.exposition import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.waiting import wait_until

QUIET: dict[str, Any] = {
    "name": "scheduler-test",
    "seed": 3,
    "data_types": ["invoices", "bills", "customers"],
    "profiles": {"quiet": {"sync_schedule_hours": None, "history": 3, "history_interval_hours": 6}},
    "companies": [
        {"name": "Alpha", "profile": "quiet", "platform": "Xero"},
        {"name": "Bravo", "profile": "quiet", "platform": "Sage"},
        {"name": "Charlie", "profile": "quiet", "platform": "Xero"},
        {"name": "Delta", "profile": "quiet", "platform": "QuickBooks Online"},
    ],
}


@dataclass
class Rig:
    """A quiet simulated Codat account and a scheduler polling it."""

    sim: Simulator
    clock: FakeClock
    scheduler: Scheduler
    telemetry: Telemetry

    def company(self, name: str) -> str:
        return self.sim.company_id_by_name(name)

    def cycle_after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.scheduler.run_cycle()

    def counted(self) -> Counter[tuple[str, str, str]]:
        counts: Counter[tuple[str, str, str]] = Counter()
        for cid, cs in self.scheduler.snapshot.companies.items():
            for (dt, status), n in cs.pull_operations_total.items():
                if n:
                    counts[(cid, dt, status)] += n
        return counts

    def assert_matches_simulator(self, company_id: str) -> None:
        """The snapshot shows exactly what the simulator's dataStatus says now."""
        shown = self.scheduler.snapshot.companies[company_id].statuses
        truth = self.sim.data_status(company_id)
        assert set(shown) == set(truth)
        for data_type, body in truth.items():
            want = body.get("lastSuccessfulSync")
            assert shown[data_type].last_successful_sync == (parse_timestamp(want) if want else None)
            assert shown[data_type].current_status == body.get("currentStatus")


def make_rig(
    config: Config | None = None, scenario: dict[str, Any] | None = None, **settings_changes: Any
) -> Iterator[Rig]:
    clock = FakeClock()
    sim = Simulator(Scenario.from_dict(scenario or QUIET), api_key="demo", clock=clock)
    server = sim.serve()
    telemetry = Telemetry()
    client = CodatClient("demo", server.url, observer=telemetry, max_retries=0, requests_per_minute=1e6)
    config = config or Config.default()
    settings = replace(collector_settings(config), **settings_changes)
    scheduler = Scheduler(client, config, telemetry, clock=clock.now, settings=settings)
    try:
        yield Rig(sim, clock, scheduler, telemetry)
    finally:
        scheduler.close()
        client.close()
        server.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from make_rig()


def test_first_cycle_polls_every_company_and_becomes_ready(rig: Rig) -> None:
    ready_before = rig.scheduler.ready
    report = rig.scheduler.run_cycle()
    assert not ready_before
    assert sorted(report.polled) == sorted(rig.sim.company_ids)
    assert rig.scheduler.ready
    for cid in rig.sim.company_ids:
        assert rig.scheduler.snapshot.companies[cid].up
        rig.assert_matches_simulator(cid)


def test_faulty_company_is_marked_down_while_the_others_keep_exact_values(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    bad = rig.company("Bravo")
    before = rig.scheduler.snapshot.companies[bad]
    rig.sim.faults.set(bad, error_rate=1.0, error_status=503)
    for cid in rig.sim.company_ids:
        rig.sim.queue_sync(cid, "invoices")
    rig.clock.advance(30)
    rig.sim.complete_syncs_now()
    rig.cycle_after(30)

    failed = rig.scheduler.snapshot.companies[bad]
    assert not failed.up
    assert failed.last_error is not None
    assert "503" in failed.last_error
    assert failed.statuses == before.statuses, "last good values are kept"
    assert failed.last_poll_success == before.last_poll_success
    for cid in rig.sim.company_ids:
        if cid != bad:
            assert rig.scheduler.snapshot.companies[cid].up
            rig.assert_matches_simulator(cid)
    assert rig.telemetry.registry.get_sample_value(
        "codat_exporter_poll_errors_total", {"reason": "server_error"}
    ) == pytest.approx(1.0)


def test_malformed_response_marks_only_that_company_down(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    bad = rig.company("Charlie")
    rig.sim.faults.set(bad, malformed_json=True)
    rig.sim.set_status(bad, "bills", "FetchError")
    rig.sim.set_status(rig.company("Alpha"), "bills", "FetchError")
    rig.cycle_after(60)
    assert not rig.scheduler.snapshot.companies[bad].up
    assert rig.scheduler.snapshot.companies[rig.company("Alpha")].up
    rig.assert_matches_simulator(rig.company("Alpha"))


def test_failed_company_recovers_after_backoff(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    bad = rig.company("Delta")
    rig.sim.faults.set(bad, status_burst=(500, 1))
    rig.sim.set_status(bad, "customers", "Complete")
    rig.cycle_after(60)
    assert not rig.scheduler.snapshot.companies[bad].up
    rig.cycle_after(60)
    assert rig.scheduler.snapshot.companies[bad].up
    rig.assert_matches_simulator(bad)


def test_removed_company_loses_its_series(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    gone = rig.company("Alpha")
    rig.sim.remove_company(gone)
    rig.cycle_after(60)
    assert gone not in rig.scheduler.snapshot.companies
    assert len(rig.scheduler.snapshot.companies) == 3
    cache = ExpositionCache()
    cache.update(rig.scheduler.snapshot)
    assert gone.encode() not in cache.body(openmetrics=False, gzip=False, now=rig.clock.now().timestamp())


def test_new_company_is_picked_up_on_the_next_cycle(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    new = rig.sim.add_company("Echo", profile="quiet")
    rig.cycle_after(60)
    assert rig.scheduler.snapshot.companies[new].up
    rig.assert_matches_simulator(new)


def test_counters_rise_by_exactly_the_operations_the_simulator_completed(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    baseline = rig.sim.terminal_counts()
    outcomes = ["Complete", "FetchError", "Complete", "ValidationError", "Complete"]
    for round_number, outcome in enumerate(outcomes):
        for cid in rig.sim.company_ids:
            for dt in ("invoices", "bills"):
                rig.sim.queue_sync(cid, dt, outcome=outcome)
        # Poll while some syncs are still running, then after they finished.
        rig.cycle_after(2)
        rig.clock.advance(60)
        rig.sim.complete_syncs_now()
        rig.cycle_after(1 + round_number)
        assert rig.counted() == rig.sim.terminal_counts() - baseline
    # Nothing is counted twice on quiet cycles.
    for _ in range(3):
        rig.cycle_after(600)
    assert rig.counted() == rig.sim.terminal_counts() - baseline
    assert sum(rig.counted().values()) == len(outcomes) * 2 * len(rig.sim.company_ids)


def test_open_operation_shows_in_progress_then_is_counted_once(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    cid = rig.company("Alpha")
    rig.sim.queue_sync(cid, "invoices", outcome="Complete")
    rig.scheduler.request_poll(cid, "webhook")
    rig.clock.advance(1)
    rig.scheduler.poll_requested()
    company = rig.scheduler.snapshot.companies[cid]
    assert company.pull_operations_in_progress == {"invoices": 1}
    before = company.pull_operations_total.get(("invoices", "Complete"), 0)
    rig.clock.advance(120)
    rig.sim.complete_syncs_now()
    rig.cycle_after(5)
    rig.cycle_after(600)
    company = rig.scheduler.snapshot.companies[cid]
    assert company.pull_operations_in_progress == {}
    assert company.pull_operations_total[("invoices", "Complete")] == before + 1
    assert rig.telemetry.registry.get_sample_value(
        "codat_pull_operation_duration_seconds_count", {"data_type": "invoices", "status": "Complete"}
    ) == pytest.approx(1.0)


def test_unknown_status_flows_through_as_other(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    cid = rig.company("Bravo")
    rig.sim.set_status(cid, "bills", "Reticulating")
    rig.scheduler.request_poll(cid, "webhook")
    rig.scheduler.poll_requested(rig.clock.advance(1))
    company = rig.scheduler.snapshot.companies[cid]
    assert company.up
    assert company.statuses["bills"].current_status == "Reticulating"
    cache = ExpositionCache()
    cache.update(rig.scheduler.snapshot)
    body = cache.body(openmetrics=False, gzip=False, now=rig.clock.now().timestamp()).decode()
    assert f'codat_data_status{{company_id="{cid}",data_type="bills",status="Other"}} 1' in body
    assert "Reticulating" not in body


def test_rate_limit_stops_the_cycle_and_waits_for_retry_after(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    rig.sim.faults.set(None, rate_limit_storm=(1, 120.0))
    for cid in rig.sim.company_ids:
        rig.sim.set_status(cid, "invoices", "Complete")
    rig.clock.advance(60)
    report = rig.scheduler.run_cycle()
    assert report.rate_limited
    paused_until = rig.scheduler.paused_until
    assert paused_until == rig.clock.now() + timedelta(seconds=120)
    requests_before = rig.sim.count_requests()
    rig.cycle_after(60)
    assert rig.sim.count_requests() == requests_before, "no request while paused"
    rig.cycle_after(61)
    for cid in rig.sim.company_ids:
        rig.assert_matches_simulator(cid)


def test_pause_until_and_resume_from_rate_limit_webhooks(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    rig.scheduler.pause_until(rig.clock.now() + timedelta(hours=1))
    before = rig.sim.count_requests()
    rig.cycle_after(60)
    assert rig.sim.count_requests() == before
    rig.scheduler.resume()
    rig.cycle_after(60)
    assert rig.sim.count_requests() > before


def test_a_far_future_pause_is_cut_to_one_day(rig: Rig) -> None:
    rig.scheduler.pause_until(rig.clock.now() + timedelta(days=3650))
    assert rig.scheduler.paused_until == rig.clock.now() + timedelta(days=1)


def test_webhook_poll_reads_only_that_company_right_away(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    cid = rig.company("Delta")
    rig.sim.set_status(cid, "customers", "Complete")
    rig.sim.reset_request_log()
    rig.scheduler.request_poll(cid, "webhook")
    rig.scheduler.poll_requested(rig.clock.advance(1))
    assert {r.company_id for r in rig.sim.request_log} == {cid}
    assert rig.sim.count_requests("companies") == 0
    rig.assert_matches_simulator(cid)


def test_quiet_cycles_only_list_companies(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    rig.sim.reset_request_log()
    for _ in range(10):
        rig.cycle_after(60)
    assert rig.sim.count_requests() == rig.sim.count_requests("companies") == 10


def _config(**sections: Any) -> Config:
    return Config.model_validate(sections)


def test_company_and_data_type_filters_apply() -> None:
    config = _config(companies={"exclude": ["Bra*"]}, data_types={"exclude": ["bills"]})
    for rig in make_rig(config):
        rig.scheduler.run_cycle()
        names = {cs.company.name for cs in rig.scheduler.snapshot.companies.values()}
        assert names == {"Alpha", "Charlie", "Delta"}
        for cs in rig.scheduler.snapshot.companies.values():
            assert set(cs.statuses) == {"invoices", "customers"}
            assert all(dt != "bills" for dt, _ in cs.pull_operations_total)


def test_explicit_id_that_codat_does_not_list_is_reported_down() -> None:
    config = _config(companies={"ids": ["not-a-company"], "discover": False})
    for rig in make_rig(config):
        rig.scheduler.run_cycle()
        snapshot = rig.scheduler.snapshot
        assert set(snapshot.companies) == {"not-a-company"}
        assert not snapshot.companies["not-a-company"].up
        assert "not listed" in (snapshot.companies["not-a-company"].last_error or "")


def test_shards_split_the_companies_between_them() -> None:
    seen: dict[int, set[str]] = {}
    for shard in (0, 1):
        for rig in make_rig(_config(sharding={"shard": shard, "total_shards": 2})):
            rig.scheduler.run_cycle()
            seen[shard] = set(rig.scheduler.snapshot.companies)
            assert all(owns(cid, shard, 2) for cid in seen[shard])
            assert seen[shard] | seen.get(1 - shard, set()) <= set(rig.sim.company_ids)
    assert seen[0].isdisjoint(seen[1])
    assert len(seen[0]) + len(seen[1]) == len(QUIET["companies"])


def test_snapshot_listeners_hear_every_new_snapshot(rig: Rig) -> None:
    heard: list[datetime | None] = []
    rig.scheduler.on_snapshot(lambda snapshot: heard.append(snapshot.generated_at))
    rig.scheduler.run_cycle()
    rig.cycle_after(60)
    assert heard == [None, rig.clock.now() - timedelta(seconds=60), rig.clock.now()]


def test_a_company_not_polled_again_keeps_its_snapshot_object(rig: Rig) -> None:
    # The exposition re-renders only companies whose snapshot object changed; a cycle that polls
    # one company must hand it the same objects for all the others.
    rig.scheduler.run_cycle()
    before = rig.scheduler.snapshot
    polled = rig.company("Delta")
    rig.sim.set_status(polled, "customers", "Complete")
    rig.scheduler.request_poll(polled, "webhook")
    rig.scheduler.poll_requested(rig.clock.advance(1))
    after = rig.scheduler.snapshot
    assert after is not before
    assert after.companies[polled] is not before.companies[polled]
    for cid in set(rig.sim.company_ids) - {polled}:
        assert after.companies[cid] is before.companies[cid]


def test_connection_status_comes_from_the_listing_without_extra_reads(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    cid = rig.company("Charlie")
    rig.sim.set_connection_status(cid, "Deauthorized")
    rig.sim.reset_request_log()
    rig.cycle_after(60)
    company = rig.scheduler.snapshot.companies[cid].company
    assert [c.status for c in company.connections] == ["Deauthorized"]
    assert rig.sim.count_requests() == rig.sim.count_requests("companies") == 1


def test_a_tiny_quota_share_is_never_overspent() -> None:
    # 1,000 requests a day (the simulator's quota below) × 1% = 10 a day for this exporter.
    for rig in make_rig(_config(budget={"daily_quota_share": 0.01})):
        rig.sim.set_rate_limit(daily_quota=1000)
        hours = 6
        for minute in range(hours * 60):
            if minute % 30 == 0:
                for cid in rig.sim.company_ids:
                    rig.sim.set_status(cid, "invoices", "Complete")
            rig.cycle_after(60)
        budget = 10 * hours / 24 + 10  # the day's pace plus one burst
        assert 5 <= rig.sim.count_requests() <= budget, rig.sim.count_requests()
        assert rig.telemetry.registry.get_sample_value("codat_exporter_request_budget_per_day") == 10


def test_first_real_quota_replaces_the_guess_so_a_large_account_is_ready_after_one_cycle() -> None:
    # Before Codat's first answer the budget assumes the smallest quota (1,000 a day, one burst of
    # ~20 requests). Forty companies need more than that; the listing's X-Rate-Limit-Limit says the
    # real quota is far larger, so the first cycle must poll every company, not a burst's worth.
    many = dict(QUIET, companies=[{"name": f"Company {i}", "profile": "quiet"} for i in range(40)])
    for rig in make_rig(scenario=many):
        rig.sim.set_rate_limit(daily_quota=101_000)
        rig.scheduler.run_cycle()
        assert rig.scheduler.ready
        assert len(rig.scheduler.snapshot.companies) == 40
        assert all(cs.up for cs in rig.scheduler.snapshot.companies.values())
        assert rig.telemetry.registry.get_sample_value("codat_exporter_request_budget_per_day") == 50_500


def test_webhook_for_an_unlisted_company_lists_again_at_once_instead_of_next_interval() -> None:
    # A read.completed.initial arrives for a company created after the last listing; with an
    # hour between listings, the running loop must list again right away to pick it up.
    for rig in make_rig(_config(polling={"interval": "1h"})):
        _webhook_for_new_company_is_polled_while_running(rig)


def test_webhook_for_a_filtered_out_company_does_not_list_companies_again() -> None:
    # Codat sends read.completed for every company of the account; one this exporter filters
    # out must not cost a GET /companies per webhook.
    for rig in make_rig(_config(companies={"exclude": ["Bra*"]})):
        rig.scheduler.run_cycle()
        rig.sim.reset_request_log()
        excluded = rig.company("Bravo")
        for _ in range(3):
            rig.scheduler.request_poll(excluded, "webhook")
            rig.scheduler.poll_requested(rig.clock.advance(1))
            rig.scheduler.run_cycle(rig.clock.advance(1))
        assert rig.sim.count_requests() == 0
        assert excluded not in rig.scheduler.snapshot.companies


def _webhook_for_new_company_is_polled_while_running(rig: Rig) -> None:
    stop = threading.Event()
    loop = threading.Thread(target=rig.scheduler.run_forever, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_until(lambda: rig.scheduler.ready)
        new_id = rig.sim.add_company("Echo", profile="quiet")
        rig.scheduler.request_poll(new_id, reason="webhook")
        wait_until(lambda: new_id in rig.scheduler.snapshot.companies)
        assert rig.scheduler.snapshot.companies[new_id].up
    finally:
        stop.set()
        rig.scheduler.request_poll("wake-up", reason="stop")
        loop.join(timeout=10)
    assert not loop.is_alive()


# --- progressive publication, first-sweep cost, recovery, listing health, detection lag ----------


def test_a_first_sweep_with_requests_to_spare_reads_the_sync_settings_along(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    companies = len(rig.sim.company_ids)
    assert rig.sim.count_requests("dataStatus") == companies
    # Plus each company's sync settings (issue 12.1): the pace (300 a minute) has room for them.
    assert rig.sim.count_requests("companySyncSettings") == companies
    # The companies' own settings name every data type: the client-wide ones are not needed.
    assert rig.sim.count_requests("profileSyncSettings") == 0
    assert (
        rig.sim.count_requests() == 2 * companies + rig.sim.count_requests("companies") == 2 * companies + 1
    )
    rig.cycle_after(60)
    assert rig.sim.count_requests("companySyncSettings") == companies  # then once a day


def test_a_first_sweep_bound_by_the_pace_costs_one_request_per_company() -> None:
    # 40 companies at 30 requests a minute: the sweep itself does not fit in one cycle's pace,
    # so the sync settings wait until every company's dataStatus was read (issue 16.2), and the
    # first reads are queued 75 s of the pace at a time (37), so a change need not wait for all.
    many = dict(QUIET, companies=[{"name": f"Company {i}", "profile": "quiet"} for i in range(40)])
    slow = _config(budget={"max_requests_per_minute": 30})
    for rig in make_rig(slow, many):
        rig.scheduler.run_cycle()
        assert not bool(rig.scheduler.ready)  # a call: mypy keeps no narrowing across run_cycle()
        assert rig.sim.count_requests("dataStatus") == 37
        rig.scheduler.run_cycle()
        assert rig.scheduler.ready
        assert rig.sim.count_requests("dataStatus") == 40
        assert rig.sim.count_requests() == 40 + rig.sim.count_requests("companies") + rig.sim.count_requests(
            "companySyncSettings"
        )
        # Settings come at most half a cycle's pace (15) each cycle, the last first reads included:
        # no dataStatus again.
        for read in (12, 27, 40):
            assert rig.sim.count_requests("companySyncSettings") == read
            rig.scheduler.run_cycle()
        assert rig.sim.count_requests("dataStatus") == 40
        rig.cycle_after(60)
        assert rig.sim.count_requests("companySyncSettings") == 40  # then once a day


def test_a_failed_settings_only_read_leaves_the_company_up() -> None:
    slow = _config(budget={"max_requests_per_minute": 4})  # no room beside the 4 dataStatus reads
    for rig in make_rig(slow):
        rig.scheduler.run_cycle()
        assert rig.sim.count_requests("companySyncSettings") == 0
        cid = rig.company("Alpha")
        rig.sim.faults.set(cid, status_burst=(500, 1))
        rig.scheduler.run_cycle()  # two settings reads a cycle: half the pace
        rig.scheduler.run_cycle()
        assert rig.sim.count_requests("companySyncSettings") == 4
        assert rig.scheduler.snapshot.companies[cid].up
        errors = rig.telemetry.registry.get_sample_value(
            "codat_exporter_poll_errors_total", {"reason": "server_error"}
        )
        assert errors == 0
        # Read again a day later, not at every cycle.
        rig.cycle_after(60)
        assert rig.sim.count_requests("companySyncSettings") == 4
    # The skipped baseline still starts each data type's last outcome at zero.
    for cid in rig.sim.company_ids:
        company = rig.scheduler.snapshot.companies[cid]
        complete = {dt for dt, s in company.statuses.items() if s.current_status == "Complete"}
        assert {
            dt for (dt, status), n in company.pull_operations_total.items() if status == "Complete"
        } >= complete
        assert all(n == 0 for n in company.pull_operations_total.values())


def test_a_sync_running_at_the_first_read_is_counted_once_it_ends(rig: Rig) -> None:
    cid = rig.company("Alpha")
    rig.sim.queue_sync(cid, "invoices", outcome="Complete")
    rig.clock.advance(1)
    rig.scheduler.run_cycle()
    assert rig.scheduler.snapshot.companies[cid].pull_operations_in_progress == {"invoices": 1}
    rig.clock.advance(120)
    rig.sim.complete_syncs_now()
    rig.cycle_after(60)
    company = rig.scheduler.snapshot.companies[cid]
    assert company.pull_operations_in_progress == {}
    assert company.pull_operations_total[("invoices", "Complete")] == 1


def test_a_failing_company_whose_last_sync_moved_is_read_at_once_despite_its_backoff(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    bad = rig.company("Bravo")
    rig.sim.faults.set(bad, error_rate=1.0, error_status=503)
    for _ in range(4):  # failures at 60 s intervals push the backoff to 240 s and more
        rig.sim.set_status(bad, "bills", "Complete")
        rig.cycle_after(60)
    assert not rig.scheduler.snapshot.companies[bad].up
    rig.sim.faults.clear(bad)
    quiet = rig.scheduler.run_cycle(rig.clock.advance(60))
    assert bad not in quiet.polled, "an unchanged failing company stays on its backoff"
    rig.sim.set_status(bad, "customers", "Complete")  # its lastSync moves
    report = rig.scheduler.run_cycle(rig.clock.advance(60))
    assert bad in report.polled
    assert rig.scheduler.snapshot.companies[bad].up
    rig.assert_matches_simulator(bad)


def test_companies_are_published_as_the_first_sweep_reads_them() -> None:
    # One poll at a time, and a publication whenever a poll ends while others still wait.
    for rig in make_rig(_config(budget={"max_concurrency": 1}), publish_interval=0.0):
        heard: list[tuple[int, bool]] = []

        def hear(snapshot: Snapshot, heard: list[tuple[int, bool]] = heard) -> None:
            heard.append((len(snapshot.companies), snapshot.ready))

        rig.scheduler.on_snapshot(hear)
        rig.scheduler.run_cycle()
        companies = len(rig.sim.company_ids)
        assert heard[0] == (0, False)
        partial = [size for size, ready in heard[1:-1]]
        assert partial, "snapshots were published while the sweep ran"
        assert partial == list(range(1, companies))
        assert not any(ready for _, ready in heard[:-1])
        assert heard[-1] == (companies, True)
        registry = rig.telemetry.registry
        assert registry.get_sample_value("codat_exporter_companies_listed") == companies
        assert registry.get_sample_value("codat_exporter_companies_polled") == companies


def test_listing_health_shows_a_revoked_key_at_once_and_its_recovery(rig: Rig) -> None:
    registry = rig.telemetry.registry
    assert registry.get_sample_value("codat_exporter_listing_up") == 0
    assert registry.get_sample_value("codat_exporter_listing_last_success_timestamp_seconds") is None
    rig.sim.faults.set(None, error_rate=1.0, error_status=401)
    report = rig.scheduler.run_cycle()
    assert report.error is not None
    assert registry.get_sample_value("codat_exporter_listing_up") == 0
    failing = {
        reason: registry.get_sample_value("codat_exporter_listing_failing", {"reason": reason})
        for reason in ("unauthorized", "forbidden", "server_error", "rate_limited", "other")
    }
    assert failing == {"unauthorized": 1, "forbidden": 0, "server_error": 0, "rate_limited": 0, "other": 0}
    rig.sim.faults.clear(None)
    rig.cycle_after(60)
    assert registry.get_sample_value("codat_exporter_listing_up") == 1
    assert registry.get_sample_value("codat_exporter_listing_failing", {"reason": "unauthorized"}) == 0
    assert (
        registry.get_sample_value("codat_exporter_listing_last_success_timestamp_seconds")
        == rig.clock.now().timestamp()
    )


def test_detection_lag_is_the_age_of_the_oldest_change_not_read_yet(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    registry = rig.telemetry.registry
    assert registry.get_sample_value("codat_exporter_detection_lag_seconds") == 0
    cid = rig.company("Charlie")
    rig.scheduler.pause_until(rig.clock.now() + timedelta(minutes=10))
    rig.scheduler.request_poll(cid, "webhook")  # a change is known, but polling is paused
    rig.cycle_after(90)
    assert registry.get_sample_value("codat_exporter_detection_lag_seconds") == 90
    rig.scheduler.resume()
    rig.cycle_after(30)
    assert registry.get_sample_value("codat_exporter_detection_lag_seconds") == 0
