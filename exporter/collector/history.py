"""Counting pull operations from ``data/history`` exactly once, with bounded memory.

Codat's history lists every pull operation of a company; the exporter reads it
newest first (``orderBy=-requested``) and must count each operation once, when
it reaches a terminal status, across any number of polls and pages.

A company's ``HistoryLedger`` remembers:

* ``seen``: ids already counted, oldest first, at most ``limit`` of them plus
  what the last scan counted;
* ``watermark``: a ``requested`` time below which every operation has been
  accounted for. It rises whenever an id is evicted from ``seen``, so an
  operation older than the watermark is never counted again even after its id
  was forgotten;
* ``open``: operations seen in progress (id → requested). They are counted when
  a later scan finds them terminal, and a scan keeps reading pages until it has
  gone past the oldest of them.

A company's first scan reads one page only and sets the baseline: operations
that had finished before the exporter started watching are remembered but not
counted (so a restart does not look like a burst of syncs to ``increase()``).

Everything here is pure: the scheduler does the HTTP and feeds pages in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exporter.codat.models import PullOperation
from exporter.codat.statuses import StatusClass, classify, is_terminal


@dataclass(frozen=True, slots=True)
class HistoryLedger:
    """What one company's history accounting remembers between scans (immutable)."""

    limit: int = 1000
    seen: tuple[tuple[str, datetime], ...] = ()
    """Counted operation ids with their ``requested`` time, in the order they were counted."""
    seen_ids: frozenset[str] = frozenset()
    watermark: datetime | None = None
    open: Mapping[str, datetime] = field(default_factory=dict)
    """Operations last seen in progress: id → requested."""
    started: bool = False
    """True once a first scan has set the baseline (operations that existed before are not counted)."""

    @property
    def oldest_open(self) -> datetime | None:
        """``requested`` of the oldest operation still open, if any."""
        return min(self.open.values()) if self.open else None

    def is_accounted(self, op: PullOperation) -> bool:
        """True when ``op`` was already counted (or is no newer than everything still to count)."""
        if op.id in self.seen_ids:
            return True
        if op.id in self.open:
            return False
        return self.watermark is not None and op.requested <= self.watermark


@dataclass(frozen=True, slots=True)
class PageVerdict:
    """What one history page means for the counters."""

    new_terminal: tuple[PullOperation, ...]
    """Operations that reached a terminal status and were not counted before."""
    open: tuple[PullOperation, ...]
    """Operations still queued or running."""
    fetch_next: bool
    """False once the page reached operations that are already accounted for."""
    past_accounted: bool = False
    """True once an accounted operation was passed (carried over to the next page)."""


def terminal_operations(
    ledger: HistoryLedger, page: Sequence[PullOperation], *, past_accounted: bool = False
) -> PageVerdict:
    """Sort one newest-first history page into new terminal operations and open ones.

    Reading stops at the first operation already accounted for (counted, or no
    newer than the watermark), unless an operation we saw open is older still:
    then reading goes on until it is found, so its completion is counted. On the
    way there, anything older than an accounted operation that was not open was
    accounted for when that operation was.
    """
    oldest_open = ledger.oldest_open
    new_terminal: list[PullOperation] = []
    still_open: list[PullOperation] = []
    for op in page:
        if ledger.is_accounted(op) or (past_accounted and op.id not in ledger.open):
            past_accounted = True
            if oldest_open is None or op.requested < oldest_open:
                return PageVerdict(tuple(new_terminal), tuple(still_open), False, past_accounted)
            continue
        if has_finished(op):
            new_terminal.append(op)
        else:
            still_open.append(op)
    return PageVerdict(tuple(new_terminal), tuple(still_open), True, past_accounted)


def has_finished(op: PullOperation) -> bool:
    """True when a pull operation will not change again, so it can be counted.

    A known status decides. For a status Codat adds later, the operation's own
    ``completed`` time and ``isCompleted``/``isErrored`` flags decide: otherwise an
    operation in an unknown status would stay open forever, and every poll would
    re-read its company's history looking for its end.
    """
    if classify(op.status) is not StatusClass.UNKNOWN:
        return is_terminal(op.status)
    return op.completed is not None or op.is_completed or op.is_errored


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The outcome of a finished scan: what to add to the counters and gauges."""

    new_terminal: tuple[PullOperation, ...]
    open: tuple[PullOperation, ...]
    baseline: bool = False
    """True for a company's first scan: its terminal operations finished before the exporter
    watched, so they only mark (data_type, status) series to start at zero, and are not counted."""
    zero: tuple[PullOperation, ...] = ()
    """Operations that only mark their (data_type, status) series to start at zero."""


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """One company's history read: the ledger to keep, what to count, and the pages it cost."""

    ledger: HistoryLedger
    result: ScanResult
    pages: int


def split_baseline(result: ScanResult, baseline_sync_ids: Mapping[str, str | None]) -> ScanResult:
    """Count what happened after a first dataStatus read that skipped the history baseline.

    A company's first read skips ``data/history`` when nothing is running, so its first scan
    happens only once a ``latestSyncId`` moved. That scan's page holds both the operations the
    earlier reads already summed up (``baseline_sync_ids``: each data type's ``latestSyncId`` as
    last read, and anything older of that type) and the new ones, newest first. The new ones are
    counted; the rest only start their series at zero.
    """
    if not result.baseline:
        return result
    reached: set[str] = set()
    counted: list[PullOperation] = []
    zero: list[PullOperation] = []
    for op in result.new_terminal:  # newest first, as the page listed them
        if op.data_type in reached or op.id == baseline_sync_ids.get(op.data_type):
            reached.add(op.data_type)
            zero.append(op)
        else:
            counted.append(op)
    return ScanResult(tuple(counted), result.open, baseline=False, zero=result.zero + tuple(zero))


class HistoryScan:
    """Accumulates the pages of one scan; nothing is committed until ``finish``.

    A scan that fails half-way (an HTTP error on page 2) is simply dropped: the
    ledger is unchanged, and the next scan sees the same operations again.
    """

    def __init__(self, ledger: HistoryLedger) -> None:
        """Start a scan against the ledger as it was before this scan."""
        self._ledger = ledger
        self._new: dict[str, PullOperation] = {}
        self._open: dict[str, PullOperation] = {}
        self._oldest_scanned: datetime | None = None
        self._done = False
        self._past_accounted = False

    def add_page(self, page: Sequence[PullOperation]) -> bool:
        """Take in the next page; return True if the following page should be fetched."""
        verdict = terminal_operations(self._ledger, page, past_accounted=self._past_accounted)
        self._past_accounted = verdict.past_accounted
        for op in verdict.new_terminal:
            # An operation can move between pages while we page; the first sighting wins.
            self._new.setdefault(op.id, op)
            self._open.pop(op.id, None)
        for op in verdict.open:
            if op.id not in self._new:
                self._open.setdefault(op.id, op)
        for op in page:
            if self._oldest_scanned is None or op.requested < self._oldest_scanned:
                self._oldest_scanned = op.requested
        if not verdict.fetch_next:
            self._done = True
        return verdict.fetch_next

    def finish(self, *, exhausted: bool = True) -> tuple[HistoryLedger, ScanResult]:
        """Commit the scan: the new ledger and what to count.

        ``exhausted`` is True when the scan ended naturally (an accounted operation
        was reached, or there were no more pages). When the caller stopped early
        (a page cap), operations older than the last page read are treated as
        accounted: the watermark moves down to there, and previously open
        operations that were not reached stay open.
        """
        ledger = self._ledger
        open_ops: dict[str, datetime] = {op.id: op.requested for op in self._open.values()}
        if not (exhausted or self._done):
            for op_id, requested in ledger.open.items():
                if op_id not in self._new and op_id not in open_ops:
                    open_ops[op_id] = requested
        watermark = ledger.watermark
        if not (exhausted or self._done) and self._oldest_scanned is not None:
            watermark = self._oldest_scanned if watermark is None else max(watermark, self._oldest_scanned)
        new_ledger = _remember(
            HistoryLedger(ledger.limit, ledger.seen, ledger.seen_ids, watermark, open_ops, started=True),
            ((op.id, op.requested) for op in self._new.values()),
        )
        result = ScanResult(
            tuple(self._new.values()), tuple(self._open.values()), baseline=not ledger.started
        )
        return new_ledger, result


def _remember(ledger: HistoryLedger, counted: Iterable[tuple[str, datetime]]) -> HistoryLedger:
    """Add counted ids to the ledger, evicting the oldest beyond ``limit`` into the watermark.

    Only ids counted by earlier scans are evicted, so ``seen`` may exceed ``limit`` by what one
    scan counted (a scan reads a bounded number of pages). An operation created while a scan was
    paging can land above the pages already read and be missed until the next scan; it may share
    its ``requested`` time with one this scan counted (Codat queues a refresh's data types
    together). Raising the watermark to that time now would hide it for good.
    """
    earlier = list(ledger.seen)
    fresh = list(counted)
    watermark = ledger.watermark
    excess = min(len(earlier) + len(fresh) - max(ledger.limit, 1), len(earlier))
    if excess > 0:
        for _op_id, requested in earlier[:excess]:
            # Everything requested before an evicted operation was accounted for by the time it
            # was counted (open ones are tracked separately), so it can never count again.
            if watermark is None or requested > watermark:
                watermark = requested
        earlier = earlier[excess:]
    seen = earlier + fresh
    return HistoryLedger(
        ledger.limit,
        tuple(seen),
        frozenset(op_id for op_id, _ in seen),
        watermark,
        ledger.open,
        ledger.started,
    )


def duration_seconds(op: PullOperation) -> float | None:
    """requested → completed in seconds for a finished operation (None without ``completed``)."""
    if op.completed is None:
        return None
    return max(0.0, (op.completed - op.requested).total_seconds())
