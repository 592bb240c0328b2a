"""Counting pull operations once each, from newest-first history pages, with bounded memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.codat.models import PullOperation
from exporter.collector.history import (
    HistoryLedger,
    HistoryScan,
    ScanResult,
    duration_seconds,
    has_finished,
    split_baseline,
    terminal_operations,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def op(op_id: str, minute: int, status: str = "Complete", data_type: str = "invoices") -> PullOperation:
    requested = T0 + timedelta(minutes=minute)
    done = status in ("Complete", "FetchError", "NotSupported", "Cancelled", "AuthError")
    return PullOperation(
        id=op_id,
        company_id="c1",
        connection_id=None,
        data_type=data_type,
        status=status,
        requested=requested,
        completed=requested + timedelta(seconds=90) if done else None,
    )


@pytest.mark.parametrize(
    ("status", "completed", "is_completed", "is_errored", "finished"),
    [
        ("Complete", True, True, False, True),
        ("FetchError", True, False, True, True),
        ("Fetching", True, False, False, False),  # a known status decides, whatever the fields say
        ("Archived", False, False, False, False),  # unknown and nothing says it ended: still open
        ("Archived", True, False, False, True),  # unknown but completed: it ended
        ("Archived", False, True, False, True),
        ("Archived", False, False, True, True),
    ],
)
def test_an_unknown_status_is_finished_when_the_operation_says_it_ended(
    status: str, completed: bool, is_completed: bool, is_errored: bool, finished: bool
) -> None:
    requested = T0
    operation = PullOperation(
        id="x",
        company_id="c1",
        connection_id=None,
        data_type="invoices",
        status=status,
        requested=requested,
        completed=requested + timedelta(seconds=5) if completed else None,
        is_completed=is_completed,
        is_errored=is_errored,
    )
    assert has_finished(operation) is finished


def scan_all(
    ledger: HistoryLedger, history: Sequence[PullOperation], page_size: int
) -> tuple[HistoryLedger, ScanResult, int]:
    """Read ``history`` (newest first) page by page as the scheduler does; return pages read."""
    scan = HistoryScan(ledger)
    pages = 0
    for start in range(0, max(len(history), 1), page_size):
        pages += 1
        if not scan.add_page(history[start : start + page_size]):
            break
    new_ledger, result = scan.finish(exhausted=True)
    return new_ledger, result, pages


STARTED = HistoryLedger(limit=100, started=True)


@pytest.mark.parametrize(
    ("name", "ledger", "page", "new", "open_", "fetch_next"),
    [
        ("empty page", STARTED, [], [], [], True),
        ("all new terminal", STARTED, [op("b", 2), op("a", 1)], ["b", "a"], [], True),
        ("open is not counted", STARTED, [op("b", 2, "Fetching"), op("a", 1)], ["a"], ["b"], True),
        (
            "stops at first seen terminal",
            HistoryLedger(
                limit=10, seen=(("a", T0 + timedelta(minutes=1)),), seen_ids=frozenset({"a"}), started=True
            ),
            [op("c", 3), op("a", 1), op("z", 0)],
            ["c"],
            [],
            False,
        ),
        (
            "stops below the watermark even for forgotten ids",
            HistoryLedger(limit=10, watermark=T0 + timedelta(minutes=5), started=True),
            [op("n", 6), op("old", 4), op("older", 3)],
            ["n"],
            [],
            False,
        ),
        (
            "keeps reading past seen ids until the oldest open operation",
            HistoryLedger(
                limit=10,
                seen=(("b", T0 + timedelta(minutes=2)),),
                seen_ids=frozenset({"b"}),
                open={"a": T0 + timedelta(minutes=1)},
                started=True,
            ),
            [op("b", 2), op("a", 1, "FetchError"), op("z", 0)],
            ["a"],
            [],
            False,
        ),
        (
            "an open operation below the watermark still counts when it ends",
            HistoryLedger(
                limit=10,
                watermark=T0 + timedelta(minutes=5),
                open={"a": T0 + timedelta(minutes=1)},
                started=True,
            ),
            [op("x", 4), op("a", 1, "Complete")],
            ["a"],
            [],
            True,
        ),
        (
            "unknown status is open, never counted early",
            STARTED,
            [op("m", 1, "Reticulating")],
            [],
            ["m"],
            True,
        ),
    ],
)
def test_terminal_operations_table(
    name: str,
    ledger: HistoryLedger,
    page: list[PullOperation],
    new: list[str],
    open_: list[str],
    fetch_next: bool,
) -> None:
    verdict = terminal_operations(ledger, page)
    assert [o.id for o in verdict.new_terminal] == new, name
    assert [o.id for o in verdict.open] == open_, name
    assert verdict.fetch_next is fetch_next, name


def test_operation_seen_open_then_terminal_is_counted_once_then() -> None:
    ledger = STARTED
    ledger, first, _ = scan_all(ledger, [op("a", 1, "Fetching")], 10)
    assert first.new_terminal == ()
    assert [o.id for o in first.open] == ["a"]
    ledger, second, _ = scan_all(ledger, [op("a", 1, "Complete")], 10)
    assert [o.id for o in second.new_terminal] == ["a"]
    ledger, third, _ = scan_all(ledger, [op("a", 1, "Complete")], 10)
    assert third.new_terminal == ()
    assert ledger.open == {}


def test_first_scan_is_a_baseline() -> None:
    ledger, result, _ = scan_all(HistoryLedger(limit=10), [op("b", 2), op("a", 1, "Processing")], 10)
    assert result.baseline
    assert ledger.started
    assert ledger.open == {"a": T0 + timedelta(minutes=1)}
    _, later, _ = scan_all(ledger, [op("c", 3), op("b", 2), op("a", 1)], 10)
    assert not later.baseline
    assert sorted(o.id for o in later.new_terminal) == ["a", "c"]


def test_a_late_baseline_counts_only_what_came_after_the_last_read_sync_of_each_type() -> None:
    # The first dataStatus read saw invoices' latest sync "i1" and bills' "b1" and skipped the
    # history. Now invoices moved twice and bills once; customers had never synced.
    page = [
        op("c1", 9, data_type="customers"),
        op("i3", 8),
        op("b2", 7, "FetchError", data_type="bills"),
        op("i2", 6),
        op("i1", 5),
        op("b1", 4, data_type="bills"),
        op("i0", 3, "FetchError"),
    ]
    ledger, result = _first_scan(page)
    split = split_baseline(result, {"invoices": "i1", "bills": "b1", "customers": None})
    assert not split.baseline
    assert [o.id for o in split.new_terminal] == ["c1", "i3", "b2", "i2"]
    assert [o.id for o in split.zero] == ["i1", "b1", "i0"]
    assert ledger.started
    # A scan that already was not a baseline is left alone.
    assert split_baseline(split, {"invoices": "i3"}) is split


def _first_scan(page: list[PullOperation]) -> tuple[HistoryLedger, ScanResult]:
    scan = HistoryScan(HistoryLedger(limit=50))
    scan.add_page(page)
    return scan.finish()


def test_operation_repeated_across_shifted_pages_is_counted_once() -> None:
    scan = HistoryScan(STARTED)
    assert scan.add_page([op("c", 3), op("b", 2)])
    # A new operation arrived between the two requests, pushing "b" onto page 2 as well.
    assert scan.add_page([op("b", 2), op("a", 1)])
    _, result = scan.finish()
    assert sorted(o.id for o in result.new_terminal) == ["a", "b", "c"]


def test_capped_scan_moves_the_watermark_and_keeps_unreached_open_operations() -> None:
    ledger = HistoryLedger(limit=10, open={"old": T0}, started=True)
    scan = HistoryScan(ledger)
    assert scan.add_page([op("d", 4), op("c", 3)])
    new_ledger, result = scan.finish(exhausted=False)
    assert new_ledger.watermark == T0 + timedelta(minutes=3)
    assert "old" in new_ledger.open
    assert len(result.new_terminal) == 2


def test_failed_scan_changes_nothing() -> None:
    ledger = STARTED
    scan = HistoryScan(ledger)
    scan.add_page([op("a", 1)])
    # The caller drops the scan (page 2 failed): the ledger it holds is untouched.
    assert ledger.seen == ()
    assert ledger.open == {}


def test_an_operation_missed_while_paging_is_counted_by_the_next_scan_despite_a_tie() -> None:
    # Two operations queued together (one refresh, the same ``requested``) appear at the top while
    # a scan pages with a ledger of limit 1: the scan reads one of them on its second page and
    # misses the other on the first. Evicting the one it counted must not hide the missed one.
    ledger = HistoryLedger(limit=1, started=True)
    scan = HistoryScan(ledger)
    assert scan.add_page([op("old", 0, "Fetching")])
    scan.add_page([op("tied-b", 1), op("old", 0)])  # "tied-a" landed on page 1, already read
    ledger, result = scan.finish()
    assert [o.id for o in result.new_terminal] == ["tied-b", "old"]
    ledger, result, _ = scan_all(ledger, [op("tied-a", 1), op("tied-b", 1), op("old", 0)], page_size=3)
    assert [o.id for o in result.new_terminal] == ["tied-a"]


def test_memory_is_bounded_and_evicted_ids_are_not_recounted() -> None:
    ledger = HistoryLedger(limit=3, started=True)
    history: list[PullOperation] = []
    counted = 0
    for minute in range(20):
        history.insert(0, op(f"op{minute}", minute))
        ledger, result, _ = scan_all(ledger, history, page_size=4)
        counted += len(result.new_terminal)
        assert len(ledger.seen) <= 3
    assert counted == 20


def test_duration_is_requested_to_completed() -> None:
    assert duration_seconds(op("a", 1)) == 90.0
    assert duration_seconds(op("b", 1, "Fetching")) is None


# --- property: any interleaving of polls and page sizes counts exactly the truth --------------


@dataclass(frozen=True)
class Life:
    created: int
    ends: int | None
    status: str
    data_type: str


lives = st.lists(
    st.builds(
        Life,
        created=st.integers(0, 12),
        ends=st.one_of(st.none(), st.integers(0, 8)),
        status=st.sampled_from(["Complete", "FetchError", "NotSupported", "Cancelled", "AuthError"]),
        data_type=st.sampled_from(["invoices", "bills"]),
    ),
    max_size=30,
)


def world_at(step: int, ops: Sequence[Life]) -> list[PullOperation]:
    """History as Codat would list it at ``step``, newest first."""
    visible = []
    for index, life in enumerate(ops):
        if life.created > step:
            continue
        done = life.ends is not None and life.created + life.ends <= step
        status = life.status if done else ("Fetching" if index % 3 else "Mystery")
        visible.append(
            PullOperation(
                id=f"op{index}",
                company_id="c1",
                connection_id=None,
                data_type=life.data_type,
                status=status,
                requested=T0 + timedelta(minutes=life.created),
            )
        )
    visible.sort(key=lambda o: (o.requested, o.id), reverse=True)
    return visible


@settings(max_examples=300, deadline=None)
@given(
    ops=lives,
    polls=st.lists(st.tuples(st.integers(0, 25), st.integers(1, 7)), min_size=1, max_size=12),
    limit=st.integers(1, 8),
)
def test_counts_equal_the_truth_for_any_interleaving(
    ops: list[Life], polls: list[tuple[int, int]], limit: int
) -> None:
    ledger = HistoryLedger(limit=limit)
    counted: list[str] = []
    baseline: set[str] = set()
    for n, (step, page_size) in enumerate(sorted(polls)):
        history = world_at(step, ops)
        ledger, result, _ = scan_all(ledger, history, page_size)
        if n == 0:
            assert result.baseline
            baseline = {o.id for o in result.new_terminal}
        else:
            counted.extend(o.id for o in result.new_terminal)
        terminal_now = {o.id for o in history if o.status not in ("Fetching", "Mystery")}
        assert len(counted) == len(set(counted)), "an operation was counted twice"
        assert set(counted) == terminal_now - baseline
        assert {o.id for o in history if o.status in ("Fetching", "Mystery")} == set(ledger.open)
        assert len(ledger.seen) <= limit + len(result.new_terminal)


@settings(max_examples=200, deadline=None)
@given(
    ops=lives,
    polls=st.lists(st.tuples(st.integers(0, 20), st.integers(1, 5)), min_size=1, max_size=10),
    drift=st.lists(st.booleans(), min_size=1, max_size=40),
    limit=st.integers(1, 8),
)
def test_history_moving_between_pages_never_double_counts_and_catches_up(
    ops: list[Life], polls: list[tuple[int, int]], drift: list[bool], limit: int
) -> None:
    """New operations and completions landing while a scan pages through history."""
    ledger, first, _ = scan_all(HistoryLedger(limit=limit), world_at(0, ops), 3)
    baseline = {o.id for o in first.new_terminal}
    counted: list[str] = []
    moves = iter(drift * 50)
    now = 0
    for start, page_size in sorted(polls):
        step = max(start, now)  # Codat's history never goes back: a poll starts where the last ended
        scan = HistoryScan(ledger)
        page_number = 0
        while True:
            history = world_at(step, ops)
            page = history[page_number * page_size : (page_number + 1) * page_size]
            more = scan.add_page(page)
            if not more or (page_number + 1) * page_size >= len(history):
                break
            page_number += 1
            if next(moves, False):
                step += 1  # the world moved on between two page requests
        now = step
        ledger, result = scan.finish(exhausted=True)
        counted.extend(o.id for o in result.new_terminal)
        assert len(counted) == len(set(counted)), "an operation was counted twice"
    # A final scan of a world that holds still catches up exactly.
    final = world_at(30, ops)
    ledger, result, _ = scan_all(ledger, final, 4)
    counted.extend(o.id for o in result.new_terminal)
    assert len(counted) == len(set(counted))
    assert set(counted) == {o.id for o in final if o.status not in ("Fetching", "Mystery")} - baseline
