"""Which refreshes to queue now: a pure decision over the poll snapshot and past attempts.

Safety comes before cleverness. A pair (company, data type) is refreshed only
when a rule says it is stale, and never when: a sync of it is running or one
we queued has not shown up yet; its status is one a refresh cannot fix; it was
tried within the cooldown (or its backoff after errors); the company is not
ours; or a budget (per cycle, per day, share of requests) is spent. Every stale
pair that is not refreshed is listed with the reason, so the executor can say
what it did not do and why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from exporter.codat import statuses
from exporter.codat.models import Company
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.common.globs import matches_any
from exporter.config.schema import AutoRefreshSettings, RefreshRule
from exporter.refresh.actions import ALL_DATA_TYPES

UNFIXABLE_STATUSES: Final[Mapping[str, str]] = {
    "AuthError": "the connection must be re-linked by the customer",
    "NotSupported": "the platform does not support this data type",
}
"""Statuses a refresh cannot fix (skipped unless a rule's ``refresh_statuses`` lists them)."""

SYNC_FAILED: Final = "sync_failed"
"""Attempt result recorded afterwards when a sync we queued ended in an error status."""

FAILED_RESULTS: Final[frozenset[str]] = frozenset({"error", "rate_limited", SYNC_FAILED})
"""Attempt results that count towards a pair's backoff."""


BACKOFF_CAP: Final = timedelta(days=1)
MIN_BACKOFF_BASE: Final = timedelta(minutes=1)
DAY: Final = timedelta(days=1)


class Reason(StrEnum):
    """Why a stale pair was not refreshed this cycle."""

    NOT_OWNED = "not_owned"
    POLL_FAILED = "poll_failed"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    UNFIXABLE_STATUS = "unfixable_status"
    COOLDOWN = "cooldown"
    BACKOFF = "backoff"
    BUDGET_CYCLE = "budget_cycle"
    BUDGET_DAY = "budget_day"
    BUDGET_REQUESTS = "budget_requests"

    @property
    def is_budget(self) -> bool:
        """True for the reasons counted as ``skipped_budget``."""
        return self in (Reason.BUDGET_CYCLE, Reason.BUDGET_DAY, Reason.BUDGET_REQUESTS)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One past refresh attempt (or dry-run decision) of a company's data type (or ``"all"``)."""

    company_id: str
    data_type: str
    at: datetime
    result: str
    """queued, already_in_progress, rate_limited, error, dry_run, or sync_failed (queued, then failed)."""
    counted: bool = True
    """False for a marker that is not a decision of its own (a data type covered by a refresh-all
    whose sync failed): it feeds the backoff but not the budgets."""


@dataclass(frozen=True, slots=True)
class Staleness:
    """Why one pair counts as stale."""

    company_id: str
    data_type: str
    seconds: float
    """Seconds since the last successful sync (since company creation if it never synced)."""
    limit: float
    """The rule's ``max_staleness`` (``never_synced_grace`` if it never synced)."""
    never_synced: bool = False

    @property
    def overdue(self) -> float:
        """How many times over its limit the pair is (orders who goes first when budgets are short)."""
        return self.seconds / self.limit if self.limit > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class RefreshAction:
    """A refresh to queue: one data type, or ``"all"`` covering several stale ones."""

    company_id: str
    data_type: str
    covers: tuple[Staleness, ...]
    """The stale pairs this action refreshes (one for a single data type)."""

    @property
    def worst(self) -> Staleness:
        """The most overdue pair covered (what the log line reports)."""
        return max(self.covers, key=lambda s: s.overdue)

    @property
    def is_refresh_all(self) -> bool:
        """True for a refresh of every data type."""
        return self.data_type == ALL_DATA_TYPES


@dataclass(frozen=True, slots=True)
class Skipped:
    """A stale pair not refreshed this cycle, and why."""

    staleness: Staleness
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The refreshes to queue now (most overdue first) and the stale pairs left alone."""

    actions: tuple[RefreshAction, ...] = ()
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)


# --- rules -------------------------------------------------------------------------------


def rule_applies(rule: RefreshRule, company: Company, data_type: str) -> bool:
    """True when ``rule`` covers this company's data type (data type, company id/name and tags)."""
    if not matches_any(data_type, rule.data_types):
        return False
    if rule.companies and not (
        matches_any(company.id, rule.companies) or matches_any(company.name, rule.companies)
    ):
        return False
    return all(company.tags.get(key) == value for key, value in rule.tags.items())


def matching_rule(rules: Sequence[RefreshRule], company: Company, data_type: str) -> RefreshRule | None:
    """The first rule that covers this pair, or ``None``."""
    return next((rule for rule in rules if rule_applies(rule, company, data_type)), None)


def stale_pairs(
    company: CompanySnapshot, settings: AutoRefreshSettings, now: datetime
) -> list[tuple[Staleness, RefreshRule]]:
    """The company's data types that a rule calls stale at ``now``, with that rule."""
    found = []
    for data_type, status in company.statuses.items():
        rule = matching_rule(settings.rules, company.company, data_type)
        if rule is None:
            continue
        if status.last_successful_sync is not None:
            age = (now - status.last_successful_sync).total_seconds()
            if age > rule.max_staleness:
                found.append((Staleness(company.company.id, data_type, age, rule.max_staleness), rule))
        elif company.company.created is not None:
            # Never synced: give a new company time for its first syncs before calling it stale.
            age = (now - company.company.created).total_seconds()
            if age > settings.never_synced_grace:
                found.append(
                    (
                        Staleness(company.company.id, data_type, age, settings.never_synced_grace, True),
                        rule,
                    )
                )
    return found


# --- attempt history ---------------------------------------------------------------------


def next_allowed(history: Sequence[Attempt], cooldown: float) -> datetime | None:
    """When a pair may be tried again given its attempts (oldest first), or ``None`` if never tried.

    After ``n`` consecutive failures the wait doubles each time (from the
    cooldown, at least a minute), up to a day: a broken pair is not hammered.
    """
    if not history:
        return None
    last = history[-1]
    failures = 0
    for attempt in reversed(history):
        if attempt.result not in FAILED_RESULTS:
            break
        failures += 1
    wait = timedelta(seconds=cooldown)
    if failures:
        base = max(wait, MIN_BACKOFF_BASE)
        wait = max(wait, min(base * (2 ** (failures - 1)), BACKOFF_CAP))
    return last.at + wait


def _by_pair(attempts: Iterable[Attempt]) -> dict[tuple[str, str], list[Attempt]]:
    grouped: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in sorted(attempts, key=lambda a: a.at):
        grouped[(attempt.company_id, attempt.data_type)].append(attempt)
    return grouped


# --- the decision ------------------------------------------------------------------------


def decide_refreshes(
    snapshot: Snapshot,
    settings: AutoRefreshSettings,
    attempts: Sequence[Attempt],
    now: datetime,
    *,
    owns: Callable[[str], bool] = lambda _company_id: True,
    pending: Collection[tuple[str, str]] = (),
    request_allowance: float | None = None,
) -> Decision:
    """Decide which refreshes to queue at ``now``.

    ``attempts`` are past attempts (at least the last day's, and each pair's
    latest); ``pending`` are pairs we queued whose sync has not shown up as
    running or finished yet; ``request_allowance`` is how many refresh requests
    the exporter's request budget still allows (``None``: no such limit).
    """
    history = _by_pair(attempts)
    skipped: list[Skipped] = []
    candidates: list[RefreshAction] = []
    for company_id in sorted(snapshot.companies):
        company = snapshot.companies[company_id]
        eligible: list[Staleness] = []
        for staleness, rule in stale_pairs(company, settings, now):
            reason = _blocked(company, staleness, rule, settings, history, pending, owns, now)
            if reason is not None:
                skipped.append(Skipped(staleness, *reason))
            else:
                eligible.append(staleness)
        candidates.extend(_actions_for(company_id, eligible, settings, history, now))
    candidates.sort(key=lambda a: (-a.worst.overdue, a.company_id, a.data_type))
    limit, limit_reason = _limit(settings, attempts, now, request_allowance)
    chosen = tuple(candidates[:limit])
    for action in candidates[limit:]:
        skipped.extend(Skipped(s, limit_reason, "budget spent") for s in action.covers)
    return Decision(chosen, tuple(skipped))


def _blocked(
    company: CompanySnapshot,
    staleness: Staleness,
    rule: RefreshRule,
    settings: AutoRefreshSettings,
    history: Mapping[tuple[str, str], Sequence[Attempt]],
    pending: Collection[tuple[str, str]],
    owns: Callable[[str], bool],
    now: datetime,
) -> tuple[Reason, str] | None:
    company_id, data_type = staleness.company_id, staleness.data_type
    if not owns(company_id):
        return Reason.NOT_OWNED, "another shard owns this company"
    if not company.up:
        return Reason.POLL_FAILED, "the last poll of this company failed; its statuses may be out of date"
    status = company.statuses[data_type].current_status
    if statuses.is_in_progress(status):
        return Reason.IN_PROGRESS, f"a sync is already {status}"
    if (company_id, data_type) in pending or (company_id, ALL_DATA_TYPES) in pending:
        return Reason.PENDING, "a refresh we queued has not started yet"
    if status is not None and status in UNFIXABLE_STATUSES and status not in rule.refresh_statuses:
        return Reason.UNFIXABLE_STATUS, f"{status}: {UNFIXABLE_STATUSES[status]}"
    for key in ((company_id, data_type), (company_id, ALL_DATA_TYPES)):
        pair_history = history.get(key, ())
        allowed = next_allowed(pair_history, settings.cooldown)
        if allowed is not None and now < allowed:
            if pair_history[-1].result in FAILED_RESULTS:
                return Reason.BACKOFF, f"last attempt failed; next try after {allowed.isoformat()}"
            return Reason.COOLDOWN, f"tried at {pair_history[-1].at.isoformat()}"
    return None


def _actions_for(
    company_id: str,
    eligible: list[Staleness],
    settings: AutoRefreshSettings,
    history: Mapping[tuple[str, str], Sequence[Attempt]],
    now: datetime,
) -> list[RefreshAction]:
    if len(eligible) >= settings.refresh_all_threshold:
        allowed = next_allowed(history.get((company_id, ALL_DATA_TYPES), ()), settings.cooldown)
        if allowed is None or now >= allowed:
            return [RefreshAction(company_id, ALL_DATA_TYPES, tuple(eligible))]
    return [RefreshAction(company_id, s.data_type, (s,)) for s in eligible]


def _limit(
    settings: AutoRefreshSettings, attempts: Sequence[Attempt], now: datetime, request_allowance: float | None
) -> tuple[int, Reason]:
    """How many actions may run this cycle, and the reason given to those cut off."""
    # A dry run counts too, so a dry run shows what a real run would do.
    spent_today = sum(1 for a in attempts if a.counted and now - a.at < DAY)
    limits = [
        (settings.max_per_cycle, Reason.BUDGET_CYCLE),
        (max(0, settings.max_per_day - spent_today), Reason.BUDGET_DAY),
    ]
    if request_allowance is not None:
        limits.append((max(0, int(request_allowance)), Reason.BUDGET_REQUESTS))
    return min(limits, key=lambda item: item[0])
