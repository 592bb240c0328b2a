"""Sync lifecycles on the fake clock: stages, outcomes, schedules, counters and test helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.codat.statuses import is_terminal
from exporter.simulator import FakeClock, Scenario, Simulator, SimulatorError
from exporter.simulator.scenario import CompanySpec, ConnectionSpec, Profile, StageSpec, SyncSettings
from exporter.simulator.wire import codat_timestamp

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def one_company(**profile: object) -> Scenario:
    """One company, two data types, 10-second stages and no randomness in stage lengths."""
    return Scenario(
        name="one",
        data_types=("invoices", "bills"),
        sync=SyncSettings(
            stages=(
                StageSpec(status="Queued", seconds=10),
                StageSpec(status="Fetching", seconds=10),
                StageSpec(status="Mapping", seconds=10),
                StageSpec(status="Validating", seconds=10),
                StageSpec(status="Processing", seconds=10),
            ),
            jitter=0,
        ),
        profiles={"p": Profile.model_validate({"sync_schedule_hours": None, "history": 1, **profile})},
        companies=(CompanySpec(name="Solo Ltd", profile="p"),),
    )


def make(scenario: Scenario) -> tuple[Simulator, FakeClock, str]:
    clock = FakeClock(START)
    sim = Simulator(scenario, clock=clock)
    return sim, clock, sim.company_ids[0]


def test_queued_sync_walks_through_every_stage_to_complete() -> None:
    sim, clock, company = make(one_company())
    sim.queue_sync(company, "invoices")
    seen = []
    for _ in range(6):
        seen.append(sim.data_status(company)["invoices"]["currentStatus"])
        clock.advance(10)
    assert seen == ["Queued", "Fetching", "Mapping", "Validating", "Processing", "Complete"]


def test_completion_moves_last_successful_sync_and_company_last_sync() -> None:
    sim, clock, company = make(one_company())
    op_id = sim.queue_sync(company, "invoices")
    clock.advance(50)
    status = sim.data_status(company)["invoices"]
    done = START + timedelta(seconds=50)
    assert status == {
        "dataType": "invoices",
        "currentStatus": "Complete",
        "lastSuccessfulSync": codat_timestamp(done),
        "latestSyncId": op_id,
        "latestSuccessfulSyncId": op_id,
    }
    company_body = sim.company(company)
    assert company_body["lastSync"] == codat_timestamp(done)
    assert company_body["dataConnections"][0]["lastSync"] == codat_timestamp(done)
    op = next(o for o in sim.operations(company) if o["id"] == op_id)
    assert op["completed"] == codat_timestamp(done)
    assert op["isCompleted"] is True
    assert op["progress"] == 100


def test_forced_fetch_error_stops_after_fetching_and_keeps_old_success() -> None:
    sim, clock, company = make(one_company())
    before = sim.data_status(company)["bills"]
    op_id = sim.queue_sync(company, "bills", outcome="FetchError")
    clock.advance(20)
    after = sim.data_status(company)["bills"]
    assert after["currentStatus"] == "FetchError"
    assert after["latestSyncId"] == op_id
    assert after["lastSuccessfulSync"] == before["lastSuccessfulSync"]
    assert after["latestSuccessfulSyncId"] == before["latestSuccessfulSyncId"]
    op = next(o for o in sim.operations(company) if o["id"] == op_id)
    assert op["isErrored"] is True
    assert op["errorMessage"]


def test_company_last_sync_moves_on_failed_syncs_too() -> None:
    sim, clock, company = make(one_company())
    sim.queue_sync(company, "bills", outcome="FetchError")
    clock.advance(20)
    assert sim.company(company)["lastSync"] == codat_timestamp(START + timedelta(seconds=20))


def test_scheduled_sync_is_queued_schedule_hours_after_the_last_one() -> None:
    sim, clock, company = make(one_company(sync_schedule_hours=1))
    sim.complete_syncs_now()
    sim.queue_sync(company, "invoices")
    clock.advance(50)  # completes at START+50s
    assert sim.data_status(company)["invoices"]["currentStatus"] == "Complete"
    clock.advance(3600 - 1)
    assert sim.data_status(company)["invoices"]["currentStatus"] == "Complete"
    clock.advance(1)
    assert sim.data_status(company)["invoices"]["currentStatus"] == "Queued"


def test_stale_company_without_schedule_never_syncs_by_itself() -> None:
    sim, clock, company = make(one_company(last_success_hours_ago=72))
    before = sim.data_status(company)
    clock.advance(86400)
    assert sim.data_status(company) == before
    assert sim.completed_operations() == 0


def test_deauthorized_connection_produces_auth_errors() -> None:
    sim, clock, company = make(one_company())
    sim.set_connection_status(company, "Deauthorized")
    sim.queue_sync(company, "invoices")
    clock.advance(60)
    assert sim.data_status(company)["invoices"]["currentStatus"] == "AuthError"
    assert sim.company(company)["dataConnections"][0]["status"] == "Deauthorized"
    assert sim.completed_operations(company, "invoices", "AuthError") == 1


def test_not_supported_types_finish_not_supported_and_are_skipped_by_refresh_all() -> None:
    sim, clock, company = make(one_company(not_supported=["bills"]))
    assert sim.data_status(company)["bills"]["currentStatus"] == "NotSupported"
    sim.queue_sync(company, "bills")
    clock.advance(60)
    assert sim.data_status(company)["bills"]["currentStatus"] == "NotSupported"
    assert sim.completed_operations(status="NotSupported") == 1


def test_never_synced_type_has_only_data_type_until_it_syncs() -> None:
    sim, _clock, company = make(one_company(never_synced=["*"], history=0))
    assert sim.data_status(company)["invoices"] == {"dataType": "invoices"}
    assert "lastSync" not in sim.company(company)
    sim.queue_sync(company, "invoices")
    assert sim.data_status(company)["invoices"]["currentStatus"] == "Queued"
    assert "lastSuccessfulSync" not in sim.data_status(company)["invoices"]


def test_counters_rise_by_exactly_the_operations_completed() -> None:
    sim, clock, company = make(one_company())
    sim.queue_sync(company, "invoices")
    sim.queue_sync(company, "bills", outcome="ValidationError")
    assert sim.completed_operations() == 0
    clock.advance(30)
    assert sim.completed_operations() == 0
    clock.advance(20)
    assert sim.terminal_counts() == {
        (company, "invoices", "Complete"): 1,
        (company, "bills", "ValidationError"): 1,
    }


def test_complete_syncs_now_finishes_everything_running() -> None:
    sim, _clock, company = make(one_company())
    sim.queue_sync(company, "invoices")
    sim.queue_sync(company, "bills")
    assert sim.running_operations() == 2
    assert sim.complete_syncs_now(status="FetchError") == 2
    assert sim.running_operations() == 0
    assert sim.completed_operations(status="FetchError") == 2


def test_set_status_holds_an_in_progress_status_until_finished() -> None:
    sim, clock, company = make(one_company())
    sim.set_status(company, "invoices", "Fetching")
    clock.advance(86400)
    assert sim.data_status(company)["invoices"]["currentStatus"] == "Fetching"
    sim.set_status(company, "invoices", "MapError")
    assert sim.data_status(company)["invoices"]["currentStatus"] == "MapError"
    sim.set_status(company, "bills", "Complete")
    assert sim.data_status(company)["bills"]["lastSuccessfulSync"] == codat_timestamp(clock.now())


def test_queue_sync_while_running_raises_already_in_progress() -> None:
    sim, _clock, company = make(one_company())
    op_id = sim.queue_sync(company, "invoices")
    with pytest.raises(SimulatorError, match=f"previous sync {op_id} is still in progress"):
        sim.queue_sync(company, "invoices")


def test_add_and_remove_company() -> None:
    sim, _clock, company = make(one_company())
    new_id = sim.add_company("Newco", profile="p", tags={"team": "x"})
    assert sim.company_ids == [company, new_id]
    assert sim.company(new_id)["tags"] == {"team": "x"}
    sim.remove_company(company)
    assert sim.company_ids == [new_id]
    with pytest.raises(SimulatorError, match="No company was found"):
        sim.data_status(company)


def test_history_is_kept_within_the_limit() -> None:
    scenario = one_company(sync_schedule_hours=0.02)
    scenario = scenario.model_copy(update={"sync": scenario.sync.model_copy(update={"history_limit": 10})})
    sim, clock, company = make(scenario)
    for _ in range(20):
        clock.advance(3600)
    assert sim.completed_operations() > 20
    assert len(sim.operations(company)) <= 12  # 10 live plus the seeded history


def test_same_seed_gives_the_same_account() -> None:
    first = Simulator(Scenario.demo(seed=7), clock=FakeClock(START))
    second = Simulator(Scenario.demo(seed=7), clock=FakeClock(START))
    other = Simulator(Scenario.demo(seed=8), clock=FakeClock(START))
    assert first.company_ids == second.company_ids
    assert first.company_ids != other.company_ids
    for company in first.company_ids:
        assert first.data_status(company) == second.data_status(company)
        assert first.operations(company) == second.operations(company)


def test_demo_syncs_complete_within_a_minute_of_simulated_time() -> None:
    clock = FakeClock(START)
    sim = Simulator(Scenario.demo(seed=1), clock=clock)
    clock.advance(60)
    healthy = sim.company_id_by_name("Acme Trading Ltd")
    assert sim.completed_operations(healthy) >= 5
    assert sim.completed_operations(sim.company_id_by_name("Foxglove Florists"), status="AuthError") >= 1
    assert sim.completed_operations(sim.company_id_by_name("Granite Builders")) == 0
    assert sim.completed_operations(sim.company_id_by_name("Driftwood Outfitters")) == 0


def test_demo_operations_only_ever_report_known_statuses() -> None:
    clock = FakeClock(START)
    sim = Simulator(Scenario.demo(seed=3), clock=clock)
    clock.advance(600)
    for company in sim.company_ids:
        for op in sim.operations(company):
            assert op["isCompleted"] == (op["status"] == "Complete")
            if "completed" in op:
                assert is_terminal(op["status"])


def test_advancing_a_day_at_a_thousand_companies_completes_their_daily_syncs() -> None:
    clock = FakeClock(START)
    sim = Simulator(Scenario.generated(companies=1000, data_types=10, seed=2), clock=clock)
    clock.advance(86400)
    # 86 % healthy and 4 % failing on a 24-hour schedule, plus 3 % deauthorized: each type syncs once a day.
    assert sim.completed_operations() == 930 * 10
    assert sim.completed_operations(status="AuthError") == 30 * 10


def test_connection_spec_without_accounting_still_assigns_types() -> None:
    scenario = one_company().model_copy(
        update={
            "companies": (
                CompanySpec(
                    name="Bank only",
                    profile="p",
                    connections=(ConnectionSpec(platform="Plaid", source_type="Banking"),),
                ),
            )
        }
    )
    sim, _clock, company = make(scenario)
    connection = sim.company(company)["dataConnections"][0]["id"]
    assert sim.operations(company)[0]["connectionId"] == connection
