"""How the operator commands show things: aligned tables, compact ages and durations, JSON, one-line errors.

Pure functions (``now`` is an argument) except ``Output`` and the progress line,
which write where the command was told to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO, TypeVar

from exporter.codat.errors import (
    CodatConnectionError,
    CodatError,
    DatasetAlreadyInProgressError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from exporter.codat.models import Company, Connection, DataTypeStatus, Page, PullOperation
from exporter.codat.timestamps import format_timestamp
from exporter.common.durations import format_duration as format_seconds
from exporter.refresh.actions import RefreshOutcome

T = TypeVar("T")

MISSING: Final = "-"


# --- pure formatting ------------------------------------------------------------------------------


def format_age(seconds: float | None) -> str:
    """A compact age: ``45s``, ``12m``, ``3h12m``, ``2d4h``; ``-`` when unknown, ``future`` when negative."""
    if seconds is None:
        return MISSING
    if seconds < 0:
        return "future"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_duration(seconds: float | None) -> str:
    """A compact duration like ``1m30s`` or ``2h5m`` (the one duration format); ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return MISSING
    return format_seconds(seconds)


def plural(count: int, noun: str) -> str:
    """``1 operation``, ``2 operations``: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def age_seconds(when: datetime | None, now: datetime) -> float | None:
    """Seconds from ``when`` to ``now``, or None when ``when`` is unknown."""
    return None if when is None else (now - when).total_seconds()


def _cell(value: object) -> str:
    if value is None or value == "":
        return MISSING
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, headers first; no trailing spaces."""
    cells = [list(headers), *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines) + "\n"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def status_json(status: DataTypeStatus, now: datetime) -> dict[str, Any]:
    """A data type's status as JSON, with its age in seconds."""
    return {
        "dataType": status.data_type,
        "currentStatus": status.current_status,
        "lastSuccessfulSync": _iso(status.last_successful_sync),
        "secondsSinceLastSuccessfulSync": age_seconds(status.last_successful_sync, now),
        "latestSyncId": status.latest_sync_id,
        "latestSuccessfulSyncId": status.latest_successful_sync_id,
    }


def operation_json(op: PullOperation) -> dict[str, Any]:
    """A pull operation as JSON (Codat's field names, ISO timestamps)."""
    return {
        "id": op.id,
        "companyId": op.company_id,
        "connectionId": op.connection_id,
        "dataType": op.data_type,
        "status": op.status,
        "requested": _iso(op.requested),
        "completed": _iso(op.completed),
        "progress": op.progress,
        "isCompleted": op.is_completed,
        "isErrored": op.is_errored,
        "statusDescription": op.status_description,
        "errorMessage": op.error_message,
    }


def connection_json(connection: Connection) -> dict[str, Any]:
    """A data connection as JSON, with its ``dataConnectionErrors`` (Codat's field names)."""
    return {
        "id": connection.id,
        "platformName": connection.platform_name,
        "status": connection.status,
        "sourceType": connection.source_type,
        "lastSync": _iso(connection.last_sync),
        "created": _iso(connection.created),
        "activeErrors": connection.active_errors,
        "dataConnectionErrors": [
            {
                "statusCode": e.status_code,
                "statusText": e.status_text,
                "errorMessage": e.error_message,
                "erroredOnUtc": _iso(e.errored_on),
                "status": e.status,
                "resolvedOnUtc": _iso(e.resolved_on),
            }
            for e in connection.errors
        ],
    }


def company_json(company: Company) -> dict[str, Any]:
    """A company and its connections as JSON."""
    return {
        "id": company.id,
        "name": company.name,
        "description": company.description,
        "created": _iso(company.created),
        "lastSync": _iso(company.last_sync),
        "tags": dict(company.tags),
        "dataConnections": [
            {
                "id": c.id,
                "platformName": c.platform_name,
                "status": c.status,
                "integrationKey": c.integration_key,
                "sourceType": c.source_type,
                "lastSync": _iso(c.last_sync),
                "created": _iso(c.created),
            }
            for c in company.connections
        ],
    }


def outcome_json(outcome: RefreshOutcome) -> dict[str, Any]:
    """A refresh outcome as JSON."""
    return {
        "result": outcome.result,
        "companyId": outcome.company_id,
        "dataType": outcome.data_type,
        "datasetId": outcome.dataset_id,
        "runningDatasetId": outcome.running_dataset_id,
        "message": outcome.message,
        "retryAfter": outcome.retry_after,
    }


def operation_duration(op: PullOperation) -> float | None:
    """Seconds from requested to completed, or None while it runs."""
    return None if op.completed is None else (op.completed - op.requested).total_seconds()


_COMPANY_ENDPOINTS: Final = frozenset({"dataStatus", "companySyncSettings", "connections"})
"""Endpoints whose 404 means the company itself is unknown."""


def error_line(error: CodatError) -> str:
    """One line an operator can act on, for any client error."""
    if isinstance(error, DatasetAlreadyInProgressError):
        running = f" as dataset {error.dataset_id}" if error.dataset_id else ""
        kind = error.data_type or "this data type"
        return f"a sync of {kind} is already in progress for company {error.company_id}{running}"
    if isinstance(error, RateLimitedError):
        wait = f"; retry after {error.retry_after:g}s" if error.retry_after is not None else ""
        return f"Codat is rate limiting this API key (429){wait} [{error.endpoint}]"
    if isinstance(error, UnauthorizedError):
        ref = f" (correlation id {error.correlation_id})" if error.correlation_id else ""
        return (
            "Codat rejected the API key (401 Unauthorized): check CODAT_API_KEY, CODAT_API_KEY_FILE "
            f"or --api-key-file, and --base-url{ref}"
        )
    if isinstance(error, CodatConnectionError):
        return f"cannot reach Codat: {error.error}"
    if isinstance(error, NotFoundError) and error.endpoint in _COMPANY_ENDPOINTS and error.status_code == 404:
        return f"unknown company {error.company_id}: {error.error}"
    return str(error)


# --- I/O ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Output:
    """Where a command writes, whether it writes JSON, and whether a progress line is open on stderr."""

    json: bool
    out: TextIO
    err: TextIO
    progress_open: bool = False

    def emit_json(self, payload: object) -> None:
        """Write one JSON document."""
        json.dump(payload, self.out, indent=2, sort_keys=False)
        self.out.write("\n")

    def emit(self, text: str) -> None:
        """Write text as is."""
        self.out.write(text)

    def end_progress(self) -> None:
        """End an open progress line so what follows starts on a line of its own."""
        if self.progress_open:
            self.err.write("\n")
            self.progress_open = False


def progress_printer(output: Output, label: str) -> Callable[[Page[T]], None] | None:
    """A per-page progress line on stderr, only when stderr is a terminal (never in pipes or logs)."""
    if not output.err.isatty():
        return None
    fetched = 0

    def on_page(page: Page[T]) -> None:
        nonlocal fetched
        fetched += len(page.results)
        total = f" of {page.total_results}" if page.total_results else ""
        output.err.write(f"\r{label}: page {page.page_number}, {fetched}{total}")
        output.err.flush()
        output.progress_open = True

    return on_page
