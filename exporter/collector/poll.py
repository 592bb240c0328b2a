"""One company's poll: its ``dataStatus``, and its ``data/history`` when something moved.

``poll_company`` does the HTTP for one company and returns a ``PollResult``: the company's next
state, the requests it cost, and the failure if there was one. It never raises for a Codat or
parsing error: a failure marks only that company down, with a bounded reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

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
from exporter.codat.models import Company, DataTypeStatus, Page, PullOperation, SyncSettings
from exporter.collector.history import HistoryRead, HistoryScan, duration_seconds, split_baseline
from exporter.collector.planner import needs_history
from exporter.collector.settings import CollectorSettings
from exporter.collector.state import CompanyState, with_failure, with_status_read

log = logging.getLogger("exporter.collector.scheduler")


class PollClient(Protocol):
    """The two Codat client calls a poll makes (``exporter.codat.client.CodatClient`` has them)."""

    def get_data_status(self, company_id: str) -> dict[str, DataTypeStatus]:
        """The company's dataStatus by data type."""
        ...

    def list_pull_operations(
        self, company_id: str, *, page: int = 1, page_size: int = 100, order_by: str | None = None
    ) -> Page[PullOperation]:
        """One page of the company's pull operations."""
        ...


@runtime_checkable
class SyncSettingsClient(Protocol):
    """A client that can also read a company's sync settings (``CodatClient`` can)."""

    def get_company_sync_settings(self, company_id: str) -> SyncSettings:
        """``GET /companies/{id}/syncSettings``."""
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
    client: PollClient,
    state: CompanyState,
    listed: Company,
    now: datetime,
    settings: CollectorSettings,
    clock: Callable[[], datetime],
) -> PollResult:
    """Read one company's dataStatus (and history if needed); never raises for an API failure."""
    requests_made = 0
    try:
        statuses = client.get_data_status(listed.id)
        requests_made += 1
        allowed = {dt: s for dt, s in statuses.items() if settings.data_type_filter(dt)}
        history = None
        if needs_history(state.statuses, allowed, bool(state.ledger.open)):
            history = read_history(client, state, settings)
            requests_made += history.pages
        new_state = with_status_read(state, statuses, history, listed, now, settings.data_type_filter)
        if sync_settings_due(state, now, settings) and isinstance(client, SyncSettingsClient):
            new_state = read_sync_settings(client, new_state, now, settings)
            requests_made += 1
        finished = history.result.new_terminal if history is not None and not history.result.baseline else ()
        return PollResult(listed.id, new_state, requests_made, finished=finished)
    except RateLimitedError as exc:
        # The state is left as it was: a rate limit says nothing about the company.
        return PollResult(listed.id, state, requests_made + 1, exc, rate_limited_at=clock())
    except Exception as exc:
        message = describe_error(exc)
        log.warning("poll of company %s failed (%s): %s", listed.id, error_reason(exc), message)
        failed = with_failure(state, message, now, listed)
        return PollResult(listed.id, failed, requests_made + 1, exc)


def sync_settings_due(state: CompanyState, now: datetime, settings: CollectorSettings) -> bool:
    """Whether this poll should (re)read the company's sync settings: never read, or read longer
    than ``sync_settings_interval`` ago."""
    interval = settings.sync_settings_interval
    if interval is None:
        return False
    read = state.sync_settings_read
    return read is None or (now - read).total_seconds() >= interval


def read_sync_settings(
    client: SyncSettingsClient, state: CompanyState, now: datetime, settings: CollectorSettings
) -> CompanyState:
    """The state with the company's sync schedules (Codat's ``syncSchedule``, hours, as seconds).

    A failure keeps the schedules read before and is retried after the interval: staleness rules
    fall back to the static thresholds for a type without a schedule, so nothing is lost.
    A rate limit is not swallowed: the scheduler must pause.
    """
    try:
        schedules = client.get_company_sync_settings(state.company.id).schedules()
    except RateLimitedError:
        raise
    except CodatError as exc:
        log.info("sync settings of company %s not read (%s)", state.company.id, error_reason(exc))
        return replace(state, sync_settings_read=now)
    kept = {dt: seconds for dt, seconds in schedules.items() if settings.data_type_filter(dt)}
    return replace(state, sync_schedules=kept, sync_settings_read=now)


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


def read_history(client: PollClient, state: CompanyState, settings: CollectorSettings) -> HistoryRead:
    """Page through the company's history, newest first, until what was counted before is reached."""
    ledger = state.ledger
    scan = HistoryScan(ledger)
    # A first scan only sets the baseline: one page is enough, older operations are history.
    max_pages = settings.max_history_pages if ledger.started else 1
    page_number = 1
    exhausted = True
    while True:
        page = client.list_pull_operations(
            state.company.id, page=page_number, page_size=settings.history_page_size, order_by="-requested"
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
