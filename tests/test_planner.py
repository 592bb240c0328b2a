"""Tiered polling decisions: what each cycle reads, and what it defers to stay within budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.codat.models import Company, Connection, DataTypeStatus
from exporter.collector.budget import DEFAULT_QUOTA_LIMIT, RequestBudget, daily_budget
from exporter.collector.planner import (
    CompanyPollState,
    PlanSettings,
    PollReason,
    change_detection_interval,
    needs_history,
    plan_cycle,
    poll_reason,
    retry_backoff,
    sweep_due,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=10)
SETTINGS = PlanSettings(poll_interval=60, full_sweep_interval=6 * 3600, open_sync_interval=300)


def company(
    cid: str = "c1", last_sync: datetime | None = EARLIER, conn_sync: datetime | None = EARLIER
) -> Company:
    return Company(
        id=cid,
        name=cid,
        last_sync=last_sync,
        connections=(Connection(id="k1", platform_name="Xero", status="Linked", last_sync=conn_sync),),
    )


def seen(**overrides: object) -> CompanyPollState:
    base: dict[str, object] = {
        "last_sync_seen": EARLIER,
        "connection_syncs_seen": {"k1": EARLIER},
        "last_status_poll": NOW - timedelta(minutes=1),
        "open_sync": False,
        "failures": 0,
        "last_attempt": NOW - timedelta(minutes=1),
    }
    base.update(overrides)
    return CompanyPollState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "listed", "state", "expected"),
    [
        ("never seen", company(), None, PollReason.NEW),
        ("nothing moved", company(), seen(), None),
        ("company lastSync moved", company(last_sync=NOW), seen(), PollReason.CHANGED),
        ("connection lastSync moved", company(conn_sync=NOW), seen(), PollReason.CHANGED),
        ("new connection appeared", company(), seen(connection_syncs_seen={}), PollReason.CHANGED),
        ("open sync, read recently", company(), seen(open_sync=True), None),
        (
            "open sync, re-read due",
            company(),
            seen(open_sync=True, last_status_poll=NOW - timedelta(minutes=5)),
            PollReason.OPEN,
        ),
        (
            "failed, backoff not over",
            company(),
            seen(failures=2, last_attempt=NOW - timedelta(seconds=90)),
            None,
        ),
        (
            "failed, backoff over",
            company(),
            seen(failures=2, last_attempt=NOW - timedelta(seconds=120)),
            PollReason.RETRY,
        ),
        (
            "failed first poll retries, not new",
            company(),
            seen(failures=1, last_status_poll=None, last_attempt=NOW - timedelta(minutes=2)),
            PollReason.RETRY,
        ),
        (
            "not read for a whole sweep interval",
            company(),
            seen(last_status_poll=NOW - timedelta(hours=6)),
            PollReason.SWEEP,
        ),
    ],
)
def test_poll_reason_table(
    name: str, listed: Company, state: CompanyPollState | None, expected: PollReason | None
) -> None:
    assert poll_reason(listed, state, NOW, SETTINGS) is expected, name


def test_retry_backoff_doubles_and_is_capped() -> None:
    assert [retry_backoff(n, SETTINGS) for n in range(5)] == [0, 60, 120, 240, 480]
    assert retry_backoff(40, SETTINGS) == SETTINGS.max_retry_backoff


def test_sweep_is_due_at_most_one_interval_after_the_last_read() -> None:
    interval = 3600.0
    for cid in ("a", "b", "c", "d"):
        last = NOW
        due_after = next(
            s for s in range(1, 3700) if sweep_due(cid, last, last + timedelta(seconds=s), interval)
        )
        assert 0 < due_after <= interval


def test_sweeps_after_a_restart_spread_over_the_interval() -> None:
    interval = 3600.0
    ids = [f"company-{i}" for i in range(400)]
    first_due = [
        next(m for m in range(1, 61) if sweep_due(cid, NOW, NOW + timedelta(minutes=m), interval))
        for cid in ids
    ]
    per_quarter = [sum(1 for m in first_due if q * 15 < m <= (q + 1) * 15) for q in range(4)]
    assert all(60 <= n <= 140 for n in per_quarter), per_quarter


def test_plan_defers_sweeps_before_changes_when_budget_is_short() -> None:
    changed = [company(f"chg{i}", last_sync=NOW) for i in range(3)]
    swept = [company(f"swp{i}") for i in range(3)]
    state = {c.id: seen(last_status_poll=NOW - timedelta(hours=7)) for c in swept}
    state.update({c.id: seen() for c in changed})
    plan = plan_cycle(state, changed + swept, NOW, budget=7.0, settings=SETTINGS)
    assert [p.reason for p in plan.polls] == [PollReason.CHANGED] * 3 + [PollReason.SWEEP]
    assert [p.reason for p in plan.deferred] == [PollReason.SWEEP] * 2
    assert plan.estimated_cost == 7.0


def test_plan_puts_new_companies_first_and_never_lets_cheaper_work_overtake() -> None:
    listed = [company("old", last_sync=NOW), company("new")]
    plan = plan_cycle({"old": seen()}, listed, NOW, budget=2.0, settings=SETTINGS)
    assert [(p.company_id, p.reason) for p in plan.polls] == [("new", PollReason.NEW)]
    assert [p.company_id for p in plan.deferred] == ["old"]


def test_a_first_read_takes_the_sync_settings_along_only_while_the_pace_has_room() -> None:
    # 5 requests a minute, 60 s cycles: 3 dataStatus reads leave room for 2 settings reads.
    paced = PlanSettings(poll_interval=60, full_sweep_interval=6 * 3600, requests_per_minute=5)
    listed = [company(f"new{i}") for i in range(3)]
    plan = plan_cycle({}, listed, NOW, budget=100.0, settings=paced)
    assert [(p.reason, p.with_settings, p.cost) for p in plan.polls] == [
        (PollReason.NEW, True, 2.0),
        (PollReason.NEW, True, 2.0),
        (PollReason.NEW, False, 1.0),
    ]
    # Ignoring the budget (the ``once`` command) reads everything at once, whatever the pace.
    unlimited = plan_cycle({}, listed, NOW, budget=float("inf"), settings=paced)
    assert all(p.with_settings for p in unlimited.polls)
    # Work waiting for budget: no first read spends a request on settings.
    short = plan_cycle({}, listed, NOW, budget=2.0, settings=SETTINGS)
    assert [p.with_settings for p in short.polls] == [False, False]
    assert len(short.deferred) == 1


def test_settings_only_reads_come_after_every_other_read() -> None:
    swept = company("swept")
    quiet = [company(f"quiet{i}") for i in range(2)]
    state = {"swept": seen(last_status_poll=NOW - timedelta(hours=7))}
    state.update({c.id: seen() for c in quiet})
    due = frozenset({"quiet0", "quiet1", "swept"})
    plan = plan_cycle(state, [*quiet, swept, company("new")], NOW, 3.0, SETTINGS, due)
    assert [(p.company_id, p.reason) for p in plan.polls] == [
        ("new", PollReason.NEW),
        ("swept", PollReason.SWEEP),  # its dataStatus read takes the settings along
        ("quiet0", PollReason.SETTINGS),
    ]
    assert [(p.company_id, p.reason) for p in plan.deferred] == [("quiet1", PollReason.SETTINGS)]
    # A company with no settings due and nothing else to read is left alone.
    assert plan_cycle(state, quiet, NOW, 3.0, SETTINGS).polls == ()


def test_background_reads_take_half_a_cycles_pace_and_changes_are_never_held_back() -> None:
    # 6 requests a cycle: two changes (4 requests) still go; settings reads wait for room.
    paced = PlanSettings(poll_interval=60, full_sweep_interval=6 * 3600, requests_per_minute=6)
    changed = [company(f"chg{i}", last_sync=NOW) for i in range(2)]
    quiet = [company(f"quiet{i}") for i in range(5)]
    state = {c.id: seen() for c in changed + quiet}
    due = frozenset(c.id for c in quiet)
    plan = plan_cycle(state, changed + quiet, NOW, 100.0, paced, due)
    assert [p.reason for p in plan.polls] == [PollReason.CHANGED] * 2
    assert len(plan.deferred) == 5
    # With no change waiting, half the pace (3 requests) goes to settings reads...
    plan = plan_cycle(state, quiet, NOW, 100.0, paced, due)
    assert [p.reason for p in plan.polls] == [PollReason.SETTINGS] * 3
    # ...less what earlier cycles still have queued on the pool.
    assert len(plan_cycle(state, quiet, NOW, 100.0, paced, due, queued=2).polls) == 1
    assert plan_cycle(state, quiet, NOW, 100.0, paced, due, queued=3).polls == ()
    # A change is planned whatever is queued (it is the point of the cycle).
    assert len(plan_cycle(state, changed, NOW, 100.0, paced, due, queued=50).polls) == 2
    # Ignoring the budget (``once``) ignores the pace too.
    assert len(plan_cycle(state, quiet, NOW, float("inf"), paced, due).polls) == 5


def test_plan_reports_companies_that_disappeared() -> None:
    plan = plan_cycle({"gone": seen(), "c1": seen()}, [company("c1")], NOW, budget=100.0, settings=SETTINGS)
    assert plan.removed == frozenset({"gone"})
    assert plan.polls == ()


def test_unlimited_budget_plans_everything() -> None:
    listed = [company(f"c{i}") for i in range(50)]
    plan = plan_cycle({}, listed, NOW, budget=float("inf"), settings=SETTINGS)
    assert len(plan.polls) == 50
    assert plan.deferred == ()


def _status(dt: str, sync_id: str | None, status: str | None = "Complete") -> DataTypeStatus:
    return DataTypeStatus(data_type=dt, current_status=status, latest_sync_id=sync_id)


@pytest.mark.parametrize(
    ("name", "previous", "current", "open_ops", "expected"),
    [
        ("first read, nothing running", None, {"invoices": _status("invoices", "s1")}, False, False),
        (
            "first read, a sync running",
            None,
            {"invoices": _status("invoices", "s2", "Fetching")},
            False,
            True,
        ),
        (
            "unchanged",
            {"invoices": _status("invoices", "s1")},
            {"invoices": _status("invoices", "s1")},
            False,
            False,
        ),
        (
            "latestSyncId moved",
            {"invoices": _status("invoices", "s1")},
            {"invoices": _status("invoices", "s2")},
            False,
            True,
        ),
        (
            "an op is open",
            {"invoices": _status("invoices", "s1")},
            {"invoices": _status("invoices", "s1")},
            True,
            True,
        ),
        ("new type synced", {}, {"bills": _status("bills", "s9")}, False, True),
        ("new type never synced", {}, {"bills": _status("bills", None, None)}, False, False),
    ],
)
def test_needs_history_table(
    name: str,
    previous: dict[str, DataTypeStatus] | None,
    current: dict[str, DataTypeStatus],
    open_ops: bool,
    expected: bool,
) -> None:
    assert needs_history(previous, current, open_ops) is expected, name


def test_change_detection_stretches_to_fit_a_small_budget() -> None:
    assert change_detection_interval(60, per_day=100_000, pages=1) == 60
    # 1 company, 2,000 requests a day at a 0.5 share: 1,000 a day, half of it for listing.
    assert change_detection_interval(60, per_day=1000, pages=1) == pytest.approx(172.8)
    assert change_detection_interval(60, per_day=1000, pages=2) == pytest.approx(345.6)


def test_daily_budget_is_the_share_of_the_quota_with_a_conservative_default() -> None:
    assert daily_budget(201_000, 0.5) == 100_500
    assert daily_budget(None, 0.5) == DEFAULT_QUOTA_LIMIT * 0.5


def test_shards_split_the_share_of_one_quota() -> None:
    assert daily_budget(201_000, 0.5, total_shards=4) == 100_500 / 4
    assert daily_budget(201_000, 0.5, total_shards=0) == 100_500


def test_request_budget_refills_at_the_daily_pace_up_to_an_hour() -> None:
    bucket = RequestBudget.full(per_day=24_000, now=NOW)
    assert bucket.available(NOW) == 1000
    bucket.spend(1000)
    assert bucket.available(NOW + timedelta(minutes=30)) == pytest.approx(500)
    assert bucket.available(NOW + timedelta(days=3)) == 1000
    bucket.resize(2400, NOW + timedelta(days=3))
    assert bucket.available(NOW + timedelta(days=3)) == 100


def test_first_reads_are_paced_so_changes_seen_during_the_sweep_do_not_wait_for_all_of_it() -> None:
    # 4 requests a minute: first reads fill 75 s of it (5), less what is queued; a change behind
    # them still goes this cycle, and background reads wait until no first read does.
    paced = PlanSettings(poll_interval=60, full_sweep_interval=6 * 3600, requests_per_minute=4)
    fresh = [company(f"new{i}") for i in range(8)]
    changed = company("chg", last_sync=NOW)
    quiet = company("quiet")
    state = {"chg": seen(), "quiet": seen()}
    plan = plan_cycle(state, [*fresh, changed, quiet], NOW, 100.0, paced, frozenset({"quiet"}))
    assert [p.reason for p in plan.polls] == [PollReason.NEW] * 5 + [PollReason.CHANGED]
    assert [p.reason for p in plan.deferred] == [PollReason.NEW] * 3 + [PollReason.SETTINGS]
    assert not any(p.with_settings for p in plan.polls if p.reason is PollReason.NEW)
    # The next cycle tops the queue up to the same depth.
    again = plan_cycle(state, [*fresh, changed], NOW, 100.0, paced, queued=3)
    assert [p.reason for p in again.polls] == [PollReason.NEW] * 2 + [PollReason.CHANGED]
    # ``once`` reads every company at once.
    assert len(plan_cycle(state, fresh, NOW, float("inf"), paced).polls) == 8


def test_a_pace_under_one_request_a_cycle_still_reads_one_company_a_cycle_when_nothing_is_queued() -> None:
    # 0.6 requests a minute: 0.01 a 1 s cycle, and 75 s of first reads is 0.75 of a request.
    slow = PlanSettings(poll_interval=1, full_sweep_interval=6 * 3600, requests_per_minute=0.6)
    fresh = [company(f"new{i}") for i in range(3)]
    assert [p.reason for p in plan_cycle({}, fresh, NOW, 100.0, slow).polls] == [PollReason.NEW]
    assert plan_cycle({}, fresh, NOW, 100.0, slow, queued=1).polls == ()
    quiet = {f"new{i}": seen() for i in range(3)}
    due = frozenset(quiet)
    assert [p.reason for p in plan_cycle(quiet, fresh, NOW, 100.0, slow, due).polls] == [PollReason.SETTINGS]
