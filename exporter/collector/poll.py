"""One company's poll: its ``dataStatus``, and its ``data/history`` when something moved.

``poll_company`` does the HTTP for one company and returns a ``PollResult``: the company's next
state, the requests it cost, and the failure if there was one. It never raises for a Codat or
parsing error: a failure marks only that company down, with a bounded reason.

A poll asked for by a ``read.completed`` webhook names the event's data types: its history read
then asks Codat for those types only (``query=dataType=X||dataType=Y``), provided nothing else of
the company moved since it was last read. Otherwise a narrowed read could skip another type's
operations that the company-wide ledger would then take as counted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from exporter.codat.errors import (
    BadRequestError,
    CodatConnectionError,
    CodatError,
    ForbiddenError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
)
from exporter.codat.models import Company, DataTypeStatus, PullOperation, SyncSettings
from exporter.codat.statuses import is_in_progress
from exporter.collector.history import HistoryRead, HistoryScan, duration_seconds, split_baseline
from exporter.collector.planner import PollReason, needs_history
from exporter.collector.settings import CollectorSettings
from exporter.collector.state import CompanyState, with_failure, with_status_read

if TYPE_CHECKING:
    from exporter.codat.client import CodatClient

log = logging.getLogger("exporter.collector.scheduler")

PLAIN_DATA_TYPE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
"""Codat's data type names are camelCase words; anything else never goes into a query."""
MAX_QUERY_CHARS: Final = 2000
"""Codat refuses a ``query`` of 2,048 characters or more (docs: using-the-api/querying.md)."""


@runtime_checkable
class SyncSettingsClient(Protocol):
    """A client that can also read a company's sync settings (``CodatClient`` can)."""

    def get_company_sync_settings(self, company_id: str) -> SyncSettings:
        """``GET /companies/{id}/syncSettings``."""
        ...


@runtime_checkable
class ProfileSettingsClient(Protocol):
    """A client that can read the client-wide sync settings (``CodatClient`` can)."""

    def get_profile_sync_settings(self) -> SyncSettings:
        """``GET /profile/syncSettings``."""
        ...


class PollTelemetry(Protocol):
    """The self-metrics a poll's outcome feeds (``Telemetry`` has them)."""

    def count_poll_error(self, reason: str) -> None:
        """Count one failed company poll."""
        ...

    def observe_pull_operation(self, data_type: str, status: str, duration_seconds: float) -> None:
        """Observe requested→completed of a finished pull operation."""
        ...


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one company's poll produced."""

    company_id: str
    state: CompanyState
    requests: int
    error: BaseException | None = None
    rate_limited_at: datetime | None = None
    """When Codat answered 429 (the pause runs from then)."""
    finished: tuple[PullOperation, ...] = ()
    """Operations newly counted as finished (their durations feed the duration histogram)."""
    unnamed_types: bool = False
    """The company's own sync settings, read now, leave out a data type it has, and no
    client-wide schedule was known for it (the scheduler then reads ``GET /profile/syncSettings``)."""
    settings_only: bool = False
    """Only the sync settings were read (``PollReason.SETTINGS``): no dataStatus, no change seen."""

    @property
    def ok(self) -> bool:
        """True when the poll succeeded."""
        return self.error is None


def error_reason(exc: BaseException) -> str:
    """A short, bounded label for a poll failure (the ``reason`` of the poll-errors counter)."""
    reasons: tuple[tuple[type[BaseException], str], ...] = (
        (RateLimitedError, "rate_limited"),
        (UnauthorizedError, "unauthorized"),
        (ForbiddenError, "forbidden"),
        (PaymentRequiredError, "payment_required"),
        (NotFoundError, "not_found"),
        (BadRequestError, "bad_request"),
        (ServerError, "server_error"),
        (MalformedResponseError, "malformed_response"),
        (CodatConnectionError, "connection_error"),
        (CodatError, "api_error"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "unexpected"


def describe_error(exc: BaseException) -> str:
    """One line for logs and the landing page; Codat errors are already redacted by the client."""
    if isinstance(exc, CodatError):
        return str(exc)
    # An unexpected exception's text could echo anything; its type and a short message will do.
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def poll_company(
    client: CodatClient,
    state: CompanyState,
    listed: Company,
    now: datetime,
    settings: CollectorSettings,
    clock: Callable[[], datetime],
    *,
    data_types: frozenset[str] | None = None,
    default_schedules: Mapping[str, float] | None = None,
    reason: PollReason | None = None,
    with_settings: bool = True,
) -> PollResult:
    """Read one company's dataStatus (and history if needed); never raises for an API failure.

    ``data_types`` (named by a webhook) narrows the history read when that is safe
    (``history_query``); ``default_schedules`` (the client-wide sync settings) fill in the
    schedule of a data type the company's own sync settings do not name. The sync settings are
    read with the dataStatus when due and ``with_settings``; a first read the planner left them
    out of (``PlannedPoll.with_settings``) gets them later on their own (``PollReason.SETTINGS``).
    """
    if reason is PollReason.SETTINGS:
        return poll_sync_settings(client, state, listed, now, settings, clock, default_schedules or {})
    requests_made = 0
    try:
        statuses = client.get_data_status(listed.id)
        requests_made += 1
        allowed = {dt: s for dt, s in statuses.items() if settings.data_type_filter(dt)}
        history = None
        if needs_history(state.statuses, allowed, bool(state.ledger.open)):
            query = history_query(state, allowed, data_types) if data_types is not None else None
            try:
                history = read_history(client, state, settings, query)
            except BadRequestError:
                if query is None:
                    raise
                # Codat refused the narrowing (its query language on history is undocumented):
                # the whole history answers the same question.
                requests_made += 1
                history = read_history(client, state, settings)
            requests_made += history.pages
        new_state = with_status_read(state, statuses, history, listed, now, settings.data_type_filter)
        lacking = False
        if (
            with_settings
            and sync_settings_due(state, now, settings)
            and isinstance(client, SyncSettingsClient)
        ):
            new_state, lacking = read_sync_settings(client, new_state, now, settings, default_schedules)
            requests_made += 1
        finished = history.result.new_terminal if history is not None and not history.result.baseline else ()
        return PollResult(listed.id, new_state, requests_made, finished=finished, unnamed_types=lacking)
    except RateLimitedError as exc:
        # The state is left as it was: a rate limit says nothing about the company.
        return PollResult(listed.id, state, requests_made + 1, exc, rate_limited_at=clock())
    except Exception as exc:
        message = describe_error(exc)
        log.warning("poll of company %s failed (%s): %s", listed.id, error_reason(exc), message)
        failed = with_failure(state, message, now, listed)
        return PollResult(listed.id, failed, requests_made + 1, exc)


def poll_sync_settings(
    client: object,
    state: CompanyState,
    listed: Company,
    now: datetime,
    settings: CollectorSettings,
    clock: Callable[[], datetime],
    default_schedules: Mapping[str, float],
) -> PollResult:
    """Read only the company's sync settings (one request); a failure other than 429 keeps the
    schedules read before (``read_sync_settings``), so it never marks the company down."""
    if not isinstance(client, SyncSettingsClient):
        return PollResult(listed.id, state, 0, settings_only=True)
    try:
        new_state, lacking = read_sync_settings(client, state, now, settings, default_schedules)
    except RateLimitedError as exc:
        return PollResult(listed.id, state, 1, exc, rate_limited_at=clock(), settings_only=True)
    return PollResult(listed.id, new_state, 1, unnamed_types=lacking, settings_only=True)


def history_query(
    state: CompanyState, current: Mapping[str, DataTypeStatus], data_types: frozenset[str]
) -> str | None:
    """The ``query`` that narrows a history read to ``data_types``, or None to read everything.

    Narrowing is safe only when no other data type moved: each other type's ``latestSyncId`` and
    status are as last read, and every open operation is of a named type (the ledger then meets
    nothing it has to find outside the named types). A company never scanned reads everything
    (its first scan sets the baseline), and so does a name that is not a plain data type name.
    """
    if not data_types or not state.ledger.started or state.statuses is None:
        return None
    if not all(PLAIN_DATA_TYPE.fullmatch(dt) for dt in data_types):
        return None
    # ``in_progress`` counts the open operations of exported types; the ledger holds them all.
    if sum(state.in_progress.values()) != len(state.ledger.open):
        return None
    if not set(state.in_progress) <= data_types:
        return None
    for data_type, status in current.items():
        if data_type in data_types:
            continue
        before = state.statuses.get(data_type)
        if (
            before is None
            or is_in_progress(status.current_status)
            or before.latest_sync_id != status.latest_sync_id
            or before.current_status != status.current_status
        ):
            return None
    query = "||".join(f"dataType={dt}" for dt in sorted(data_types))
    return query if len(query) < MAX_QUERY_CHARS else None


def sync_settings_due(state: CompanyState, now: datetime, settings: CollectorSettings) -> bool:
    """Whether this poll should (re)read the company's sync settings: never read, or read longer
    than ``sync_settings_interval`` ago."""
    return sync_settings_due_at(state.sync_settings_read, now, settings)


def sync_settings_due_at(read: datetime | None, now: datetime, settings: CollectorSettings) -> bool:
    """Whether sync settings last read at ``read`` (None: never) are due for a new read."""
    interval = settings.sync_settings_interval
    if interval is None:
        return False
    return read is None or (now - read).total_seconds() >= interval


def effective_schedules(
    own: SyncSettings, defaults: Mapping[str, float], data_types: Iterable[str]
) -> dict[str, float]:
    """Each data type's schedule in seconds: the company's own setting where it names the type
    (a named type on no schedule has none), else the client-wide one, for ``data_types`` only."""
    named = {s.data_type for s in own.settings}
    schedules = own.schedules()
    return {
        dt: seconds
        for dt in data_types
        if (seconds := schedules.get(dt) if dt in named else defaults.get(dt)) is not None
    }


def read_sync_settings(
    client: SyncSettingsClient,
    state: CompanyState,
    now: datetime,
    settings: CollectorSettings,
    defaults: Mapping[str, float] | None = None,
) -> tuple[CompanyState, bool]:
    """The state with the company's sync schedules (Codat's ``syncSchedule``, hours, as seconds),
    and whether an (exported) data type the company has is named neither by its own settings nor
    by the client-wide ones known so far (``defaults``): the scheduler then reads those.
    A failure keeps the schedules read before and is retried after the interval: staleness rules
    fall back to the static thresholds for a type without a schedule, so nothing is lost.
    A rate limit is not swallowed: the scheduler must pause.
    """
    try:
        own = client.get_company_sync_settings(state.company.id)
    except RateLimitedError:
        raise
    except CodatError as exc:
        log.info("sync settings of company %s not read (%s)", state.company.id, error_reason(exc))
        return replace(state, sync_settings_read=now), False
    named = {s.data_type for s in own.settings}
    present = named | set(state.statuses or {})
    schedules = effective_schedules(own, defaults or {}, present)
    kept = {dt: seconds for dt, seconds in schedules.items() if settings.data_type_filter(dt)}
    lacking = any(dt not in (defaults or {}) and settings.data_type_filter(dt) for dt in present - named)
    return replace(state, sync_schedules=kept, sync_settings_read=now), lacking


def record_result(
    telemetry: PollTelemetry, result: PollResult, data_type_allowed: Callable[[str], bool]
) -> None:
    """Count a failed poll by reason, and observe how long each newly finished operation took."""
    if result.error is not None:
        telemetry.count_poll_error(error_reason(result.error))
    for op in result.finished:
        seconds = duration_seconds(op)
        if seconds is not None and data_type_allowed(op.data_type):
            telemetry.observe_pull_operation(op.data_type, op.status, seconds)


def read_history(
    client: CodatClient, state: CompanyState, settings: CollectorSettings, query: str | None = None
) -> HistoryRead:
    """Page through the company's history, newest first, until what was counted before is reached
    (only the operations ``query`` selects, when given: see ``history_query``)."""
    ledger = state.ledger
    scan = HistoryScan(ledger)
    # A first scan only sets the baseline: one page is enough, older operations are history.
    max_pages = settings.max_history_pages if ledger.started else 1
    page_number = 1
    exhausted = True
    while True:
        page = client.list_pull_operations(
            state.company.id,
            page=page_number,
            page_size=settings.history_page_size,
            query=query,
            order_by="-requested",
        )
        more = scan.add_page(page.results)
        if not more or not page.has_next or not page.results:
            break
        if page_number >= max_pages:
            exhausted = False
            break
        page_number += 1
    new_ledger, result = scan.finish(exhausted=exhausted)
    if state.statuses is not None:
        # Earlier reads skipped the baseline (nothing was running): what moved since is counted.
        result = split_baseline(result, {dt: s.latest_sync_id for dt, s in state.statuses.items()})
    return HistoryRead(new_ledger, result, page_number)
