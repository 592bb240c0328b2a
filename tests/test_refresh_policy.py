"""The auto-refresh policy (pure): table-driven cases and properties that must always hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.codat.models import Company, DataTypeStatus
from exporter.codat.statuses import ALL_STATUSES, is_in_progress
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.config.schema import AutoRefreshSettings, RefreshRule
from exporter.refresh.policy import (
    Attempt,
    Decision,
    Reason,
    decide_refreshes,
    matching_rule,
    next_allowed,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

Status = tuple[str | None, datetime | None]


def company(
    company_id: str,
    statuses: Mapping[str, Status],
    *,
    created: datetime | None = NOW - timedelta(days=30),
    tags: Mapping[str, str] | None = None,
    up: bool = True,
) -> CompanySnapshot:
    return CompanySnapshot(
        company=Company(id=company_id, name=f"Company {company_id}", created=created, tags=dict(tags or {})),
        statuses={dt: DataTypeStatus(dt, status, synced) for dt, (status, synced) in statuses.items()},
        up=up,
        last_poll_success=NOW - timedelta(minutes=1),
    )


def snap(*companies: CompanySnapshot) -> Snapshot:
    return Snapshot({c.company.id: c for c in companies}, NOW, True)


def auto(**overrides: Any) -> AutoRefreshSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "rules": [RefreshRule(data_types=["*"], max_staleness=6 * 3600)],
        "cooldown": 3600,
        "never_synced_grace": 86400,
        "refresh_all_threshold": 5,
    }
    values.update(overrides)
    return AutoRefreshSettings(**values)


def planned(decision: Decision) -> list[tuple[str, str]]:
    return [(a.company_id, a.data_type) for a in decision.actions]


def reasons(decision: Decision) -> dict[tuple[str, str], Reason]:
    return {(s.staleness.company_id, s.staleness.data_type): s.reason for s in decision.skipped}


STALE = NOW - 7 * HOUR
FRESH = NOW - 1 * HOUR

# One row per case: (name, company statuses, settings overrides, attempts, expected actions, expected skips)
CASES: list[tuple[str, dict[str, Status], dict[str, Any], list[Attempt], list[str], dict[str, Reason]]] = [
    ("fresh_data_is_left_alone", {"invoices": ("Complete", FRESH)}, {}, [], [], {}),
    ("stale_complete_is_refreshed", {"invoices": ("Complete", STALE)}, {}, [], ["invoices"], {}),
    ("stale_fetch_error_is_refreshed", {"bills": ("FetchError", STALE)}, {}, [], ["bills"], {}),
    ("queued_is_skipped", {"invoices": ("Queued", STALE)}, {}, [], [], {"invoices": Reason.IN_PROGRESS}),
    ("fetching_is_skipped", {"invoices": ("Fetching", STALE)}, {}, [], [], {"invoices": Reason.IN_PROGRESS}),
    (
        "processing_queued_is_skipped",
        {"invoices": ("ProcessingQueued", STALE)},
        {},
        [],
        [],
        {"invoices": Reason.IN_PROGRESS},
    ),
    (
        "auth_error_needs_relink_not_refresh",
        {"invoices": ("AuthError", STALE)},
        {},
        [],
        [],
        {"invoices": Reason.UNFIXABLE_STATUS},
    ),
    (
        "not_supported_is_skipped",
        {"invoices": ("NotSupported", STALE)},
        {},
        [],
        [],
        {"invoices": Reason.UNFIXABLE_STATUS},
    ),
    (
        "rule_may_opt_in_to_auth_error",
        {"invoices": ("AuthError", STALE)},
        {"rules": [RefreshRule(max_staleness=6 * 3600, refresh_statuses=["AuthError"])]},
        [],
        ["invoices"],
        {},
    ),
    (
        "never_synced_within_grace_is_left_alone",
        {"invoices": (None, None)},
        {"never_synced_grace": 31 * 86400},
        [],
        [],
        {},
    ),
    ("never_synced_after_grace_is_refreshed", {"invoices": (None, None)}, {}, [], ["invoices"], {}),
    (
        "cooldown_blocks_a_second_try",
        {"invoices": ("Complete", STALE)},
        {},
        [Attempt("c1", "invoices", NOW - timedelta(minutes=30), "queued")],
        [],
        {"invoices": Reason.COOLDOWN},
    ),
    (
        "after_cooldown_it_may_try_again",
        {"invoices": ("Complete", STALE)},
        {},
        [Attempt("c1", "invoices", NOW - 2 * HOUR, "queued")],
        ["invoices"],
        {},
    ),
    (
        "refresh_all_counts_for_cooldown_of_every_type",
        {"invoices": ("Complete", STALE)},
        {},
        [Attempt("c1", "all", NOW - timedelta(minutes=30), "queued")],
        [],
        {"invoices": Reason.COOLDOWN},
    ),
    (
        "errors_back_off_beyond_the_cooldown",
        {"invoices": ("Complete", STALE)},
        {},
        [
            Attempt("c1", "invoices", NOW - 5 * HOUR, "error"),
            Attempt("c1", "invoices", NOW - 90 * timedelta(minutes=1), "error"),
        ],
        [],
        {"invoices": Reason.BACKOFF},
    ),
    (
        "a_success_resets_the_backoff",
        {"invoices": ("Complete", STALE)},
        {},
        [
            Attempt("c1", "invoices", NOW - 5 * HOUR, "error"),
            Attempt("c1", "invoices", NOW - 3 * HOUR, "queued"),
        ],
        ["invoices"],
        {},
    ),
    (
        "max_per_cycle_cuts_the_least_overdue",
        {"a": ("Complete", NOW - 8 * HOUR), "b": ("Complete", NOW - 20 * HOUR), "c": ("Complete", STALE)},
        {"max_per_cycle": 1},
        [],
        ["b"],
        {"a": Reason.BUDGET_CYCLE, "c": Reason.BUDGET_CYCLE},
    ),
    (
        "max_per_day_counts_the_last_day",
        {"a": ("Complete", STALE), "b": ("Complete", STALE)},
        {"max_per_day": 2},
        [Attempt("c9", "x", NOW - 2 * HOUR, "queued"), Attempt("c9", "y", NOW - 25 * HOUR, "queued")],
        ["a"],
        {"b": Reason.BUDGET_DAY},
    ),
    (
        "k_stale_types_become_one_refresh_all",
        dict.fromkeys(("a", "b", "c"), ("Complete", STALE)),
        {"refresh_all_threshold": 3},
        [],
        ["all"],
        {},
    ),
    (
        "below_threshold_stays_single",
        {"a": ("Complete", STALE), "b": ("Complete", STALE), "c": ("Queued", STALE)},
        {"refresh_all_threshold": 3},
        [],
        ["a", "b"],
        {"c": Reason.IN_PROGRESS},
    ),
    (
        "first_matching_rule_wins",
        {"invoices": ("Complete", NOW - 3 * HOUR), "bills": ("Complete", NOW - 3 * HOUR)},
        {"rules": [RefreshRule(data_types=["inv*"], max_staleness=7200), RefreshRule(max_staleness=86400)]},
        [],
        ["invoices"],
        {},
    ),
    (
        "types_no_rule_matches_are_ignored",
        {"invoices": ("Complete", STALE), "bills": ("Complete", STALE)},
        {"rules": [RefreshRule(data_types=["bills"], max_staleness=3600)]},
        [],
        ["bills"],
        {},
    ),
]


@pytest.mark.parametrize(
    ("statuses", "overrides", "attempts", "actions", "skips"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(
    statuses: dict[str, Status],
    overrides: dict[str, Any],
    attempts: list[Attempt],
    actions: list[str],
    skips: dict[str, Reason],
) -> None:
    decision = decide_refreshes(snap(company("c1", statuses)), auto(**overrides), attempts, NOW)
    assert sorted(planned(decision)) == sorted(("c1", a) for a in actions)
    assert reasons(decision) == {("c1", dt): r for dt, r in skips.items()}


def test_pending_refresh_is_not_queued_again() -> None:
    decision = decide_refreshes(
        snap(company("c1", {"invoices": ("Complete", STALE)})),
        auto(cooldown=0),
        [],
        NOW,
        pending={("c1", "invoices")},
    )
    assert planned(decision) == []
    assert reasons(decision) == {("c1", "invoices"): Reason.PENDING}


def test_companies_of_other_shards_are_never_refreshed() -> None:
    both = snap(
        company("mine", {"invoices": ("Complete", STALE)}),
        company("theirs", {"invoices": ("Complete", STALE)}),
    )
    decision = decide_refreshes(both, auto(), [], NOW, owns=lambda cid: cid == "mine")
    assert planned(decision) == [("mine", "invoices")]
    assert reasons(decision) == {("theirs", "invoices"): Reason.NOT_OWNED}


def test_company_whose_poll_failed_is_not_refreshed() -> None:
    decision = decide_refreshes(
        snap(company("c1", {"invoices": ("Complete", STALE)}, up=False)), auto(), [], NOW
    )
    assert reasons(decision) == {("c1", "invoices"): Reason.POLL_FAILED}


def test_request_allowance_limits_actions() -> None:
    many = snap(company("c1", dict.fromkeys(("a", "b", "c"), ("Complete", STALE))))
    decision = decide_refreshes(many, auto(refresh_all_threshold=10), [], NOW, request_allowance=2.7)
    assert len(decision.actions) == 2
    assert list(reasons(decision).values()) == [Reason.BUDGET_REQUESTS]


def test_rules_match_companies_by_id_glob_and_tags() -> None:
    rules = [
        RefreshRule(data_types=["invoices"], companies=["acme-*"], tags={"tier": "gold"}, max_staleness=60),
        RefreshRule(max_staleness=600),
    ]
    gold = Company(id="acme-1", name="Acme", tags={"tier": "gold"})
    silver = Company(id="acme-2", name="Acme", tags={"tier": "silver"})
    other = Company(id="beta-1", name="Beta", tags={"tier": "gold"})
    assert matching_rule(rules, gold, "invoices") is rules[0]
    assert matching_rule(rules, silver, "invoices") is rules[1]
    assert matching_rule(rules, other, "invoices") is rules[1]
    assert matching_rule(rules, gold, "bills") is rules[1]


def test_staleness_reported_for_logs() -> None:
    decision = decide_refreshes(snap(company("c1", {"invoices": ("Complete", STALE)})), auto(), [], NOW)
    worst = decision.actions[0].worst
    assert (worst.seconds, worst.limit, worst.never_synced) == (7 * 3600, 6 * 3600, False)


@pytest.mark.parametrize(
    ("results", "wait"),
    [
        ([], None),
        (["queued"], HOUR),
        (["error"], HOUR),
        (["error", "error"], 2 * HOUR),
        (["error", "rate_limited", "error"], 4 * HOUR),
        (["error"] * 12, timedelta(days=1)),
        (["error", "queued"], HOUR),
    ],
)
def test_backoff_doubles_per_consecutive_failure_up_to_a_day(
    results: list[str], wait: timedelta | None
) -> None:
    history = [Attempt("c", "t", NOW - timedelta(seconds=len(results) - i), r) for i, r in enumerate(results)]
    allowed = next_allowed(history, cooldown=3600)
    assert (allowed - history[-1].at if allowed is not None else None) == wait


# --- properties ---------------------------------------------------------------------------

DATA_TYPES = ("invoices", "bills", "customers", "suppliers", "journals", "accounts")
statuses_st = st.sampled_from((*ALL_STATUSES, None, "BrandNewStatus"))
ages_st = st.one_of(st.none(), st.integers(min_value=0, max_value=10 * 86400))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Snapshot, AutoRefreshSettings, list[Attempt]]:
    companies = []
    for index in range(draw(st.integers(min_value=0, max_value=6))):
        types = draw(st.lists(st.sampled_from(DATA_TYPES), unique=True, max_size=len(DATA_TYPES)))
        statuses: dict[str, Status] = {}
        for data_type in types:
            age = draw(ages_st)
            statuses[data_type] = (draw(statuses_st), None if age is None else NOW - timedelta(seconds=age))
        created_age = draw(st.integers(min_value=0, max_value=5 * 86400))
        companies.append(company(f"c{index}", statuses, created=NOW - timedelta(seconds=created_age)))
    settings_ = auto(
        cooldown=draw(st.integers(min_value=0, max_value=7200)),
        max_per_cycle=draw(st.integers(min_value=0, max_value=8)),
        max_per_day=draw(st.integers(min_value=0, max_value=20)),
        refresh_all_threshold=draw(st.integers(min_value=1, max_value=7)),
        never_synced_grace=draw(st.integers(min_value=1, max_value=3 * 86400)),
        rules=[RefreshRule(max_staleness=draw(st.integers(min_value=60, max_value=2 * 86400)))],
    )
    attempts = [
        Attempt(
            f"c{draw(st.integers(min_value=0, max_value=5))}",
            draw(st.sampled_from((*DATA_TYPES, "all"))),
            NOW - timedelta(seconds=draw(st.integers(min_value=0, max_value=2 * 86400))),
            draw(st.sampled_from(("queued", "error", "rate_limited", "already_in_progress", "dry_run"))),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=15)))
    ]
    return snap(*companies), settings_, attempts


def covered_pairs(decision: Decision) -> list[tuple[str, str]]:
    return [(s.company_id, s.data_type) for a in decision.actions for s in a.covers]


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_an_action_for_an_in_progress_pair(
    case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]],
) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW)
    for company_id, data_type in covered_pairs(decision):
        assert not is_in_progress(snapshot.companies[company_id].statuses[data_type].current_status)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_twice_within_cooldown(case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]]) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW)
    cooldown = timedelta(seconds=settings_.cooldown)
    for company_id, data_type in covered_pairs(decision):
        for attempt in attempts:
            if attempt.company_id == company_id and attempt.data_type in (data_type, "all"):
                assert NOW - attempt.at >= cooldown
    assert len(set(planned(decision))) == len(decision.actions)


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.one_of(st.none(), st.floats(min_value=-5, max_value=10)))
def test_never_past_the_budgets(
    case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]], allowance: float | None
) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW, request_allowance=allowance)
    last_day = sum(1 for a in attempts if NOW - a.at < timedelta(days=1))
    assert len(decision.actions) <= settings_.max_per_cycle
    assert last_day + len(decision.actions) <= max(settings_.max_per_day, last_day)
    if allowance is not None:
        assert len(decision.actions) <= max(0, int(allowance))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_refresh_all_only_at_threshold_and_never_alongside_singles(
    case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]],
) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW)
    by_company: dict[str, list[str]] = {}
    for action in decision.actions:
        by_company.setdefault(action.company_id, []).append(action.data_type)
        if action.is_refresh_all:
            assert len(action.covers) >= settings_.refresh_all_threshold
        else:
            assert len(action.covers) == 1
    for types in by_company.values():
        assert "all" not in types or types == ["all"]


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_refreshed_pair_is_stale_and_fixable(
    case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]],
) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW)
    for action in decision.actions:
        for stale in action.covers:
            status = snapshot.companies[stale.company_id].statuses[stale.data_type]
            assert status.current_status not in ("AuthError", "NotSupported")
            if status.last_successful_sync is None:
                created = snapshot.companies[stale.company_id].company.created
                assert created is not None
                assert (NOW - created).total_seconds() > settings_.never_synced_grace
            else:
                assert (NOW - status.last_successful_sync).total_seconds() > settings_.rules[0].max_staleness


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_stale_pairs_are_either_refreshed_or_skipped_with_a_reason(
    case: tuple[Snapshot, AutoRefreshSettings, list[Attempt]],
) -> None:
    snapshot, settings_, attempts = case
    decision = decide_refreshes(snapshot, settings_, attempts, NOW)
    accounted: Sequence[tuple[str, str]] = covered_pairs(decision) + list(reasons(decision))
    assert len(accounted) == len(set(accounted))
