"""Operator sub-commands: look at Codat the way the exporter sees it, and queue a refresh by hand.

``companies``, ``status``, ``history``, ``operation`` and ``refresh`` print
aligned tables for people and, with ``--json``, JSON for scripts. Any failure
exits 1 with one line on stderr saying why; usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from exporter.codat.auth import API_KEY_ENV, API_KEY_FILE_ENV, ApiKeyError, load_api_key
from exporter.codat.client import DEFAULT_BASE_URL, CodatClient
from exporter.codat.errors import (
    CodatConnectionError,
    CodatError,
    DatasetAlreadyInProgressError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from exporter.codat.models import Company, DataTypeStatus, Page, PullOperation
from exporter.codat.parsing import format_timestamp
from exporter.refresh.actions import RefreshOutcome, perform_refresh

T = TypeVar("T")

BASE_URL_ENV: Final = "CODAT_BASE_URL"
PROG: Final = "codat-exporter"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a shell reports for a killed writer
MISSING: Final = "-"


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


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
    """A compact duration like ``1m30s`` or ``2h5m``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return MISSING
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


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
    if isinstance(error, NotFoundError) and error.endpoint == "dataStatus" and error.status_code == 404:
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


def _client(args: argparse.Namespace) -> CodatClient:
    base_url = args.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    try:
        key = load_api_key(os.environ, args.api_key_file)
    except ApiKeyError as exc:
        raise UsageError(str(exc)) from None
    return CodatClient(key, base_url, max_retries=2, retry_max_elapsed=20.0)


Command = Callable[[CodatClient, argparse.Namespace, Output], int]


def _run(
    args: argparse.Namespace, command: Command, check: Callable[[argparse.Namespace], None] | None
) -> int:
    output = Output(json=args.json, out=sys.stdout, err=sys.stderr)
    try:
        if check is not None:
            check(args)
        with _client(args) as client:
            return command(client, args, output)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CodatError as exc:
        output.end_progress()
        print(f"{PROG}: error: {error_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, as a process killed by SIGPIPE would.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# --- commands -------------------------------------------------------------------------------------


def cmd_companies(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """List every company the key can see (all pages)."""
    companies = list(
        client.iter_companies(
            query=args.query,
            tags=args.tags,
            page_size=args.page_size,
            on_page=progress_printer(output, "companies"),
        )
    )
    output.end_progress()
    if output.json:
        output.emit_json([company_json(c) for c in companies])
        return EXIT_OK
    now = datetime.now(UTC)
    rows = [
        (
            c.id,
            c.name,
            c.platform,
            ",".join(sorted({conn.status for conn in c.connections if conn.status})),
            c.last_sync,
            format_age(age_seconds(c.last_sync, now)),
        )
        for c in companies
    ]
    output.emit(render_table(("COMPANY ID", "NAME", "PLATFORM", "CONNECTIONS", "LAST SYNC", "AGE"), rows))
    return EXIT_OK


def cmd_status(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """Show the data status of every data type of a company (or of one)."""
    now = datetime.now(UTC)
    if args.data_type:
        statuses = [client.get_data_status_for_type(args.company, args.data_type)]
    else:
        statuses = sorted(client.get_data_status(args.company).values(), key=lambda s: s.data_type)
    if output.json:
        payload: object = [status_json(s, now) for s in statuses]
        if args.data_type:
            payload = status_json(statuses[0], now)
        output.emit_json(payload)
        return EXIT_OK
    rows = [
        (
            s.data_type,
            s.current_status or "never synced",
            s.last_successful_sync,
            format_age(age_seconds(s.last_successful_sync, now)),
            s.latest_sync_id,
        )
        for s in statuses
    ]
    output.emit(render_table(("DATA TYPE", "STATUS", "LAST SUCCESSFUL SYNC", "AGE", "LATEST SYNC ID"), rows))
    return EXIT_OK


def cmd_history(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """Show a company's pull operations: one page, or every page with ``--all-pages``."""
    page: Page[PullOperation] | None = None
    if args.all_pages:
        operations = list(
            client.iter_pull_operations(
                args.company,
                query=args.query,
                order_by=args.order_by,
                page_size=args.page_size,
                on_page=progress_printer(output, "history"),
            )
        )
        output.end_progress()
    else:
        page = client.list_pull_operations(
            args.company, page=args.page, page_size=args.page_size, query=args.query, order_by=args.order_by
        )
        operations = list(page.results)
    if output.json:
        output.emit_json(
            {
                "companyId": args.company,
                "pageNumber": page.page_number if page else None,
                "pageSize": page.page_size if page else args.page_size,
                "totalResults": page.total_results if page else len(operations),
                "results": [operation_json(op) for op in operations],
            }
        )
        return EXIT_OK
    rows = [
        (op.id, op.data_type, op.status, op.requested, op.completed, format_duration(operation_duration(op)))
        for op in operations
    ]
    output.emit(render_table(("DATASET ID", "DATA TYPE", "STATUS", "REQUESTED", "COMPLETED", "TOOK"), rows))
    if page is not None:
        pages = -(-page.total_results // page.page_size) if page.page_size else 1
        more = "; --page N for more, or --all-pages" if page.has_next else ""
        output.emit(f"page {page.page_number} of {max(pages, 1)} ({page.total_results} operations){more}\n")
    return EXIT_OK


def cmd_operation(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """Show one pull operation."""
    op = client.get_pull_operation(args.company, args.dataset)
    if output.json:
        output.emit_json(operation_json(op))
        return EXIT_OK
    rows: list[tuple[str, object]] = [
        ("dataset id", op.id),
        ("company id", op.company_id),
        ("connection id", op.connection_id),
        ("data type", op.data_type),
        ("status", op.status),
        ("requested", op.requested),
        ("completed", op.completed),
        ("took", format_duration(operation_duration(op))),
        ("progress", op.progress),
        ("is completed", op.is_completed),
        ("is errored", op.is_errored),
        ("status description", op.status_description),
        ("error message", op.error_message),
    ]
    output.emit(render_table(("FIELD", "VALUE"), rows))
    return EXIT_OK


def check_refresh_args(args: argparse.Namespace) -> None:
    """Exactly one of DATA_TYPE and --all; --connection-id only with a DATA_TYPE."""
    if args.all and args.data_type:
        raise UsageError("give either a DATA_TYPE or --all, not both")
    if not args.all and not args.data_type:
        raise UsageError("give a DATA_TYPE to refresh, or --all")
    if args.all and args.connection_id:
        raise UsageError("--connection-id applies to a single data type, not to --all")


def cmd_refresh(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """Queue a sync of one data type (or all) through the same path auto-refresh uses."""
    outcome = perform_refresh(
        client, args.company, None if args.all else args.data_type, connection_id=args.connection_id
    )
    if output.json:
        output.emit_json(outcome_json(outcome))
    elif outcome.result == "queued":
        output.emit(outcome.message + "\n")
    if outcome.result == "queued":
        return EXIT_OK
    print(f"{PROG}: error: {outcome.message}", file=output.err)
    return EXIT_FAILURE


# --- argument parsing -----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _page_size(text: str) -> int:
    value = _positive_int(text)
    if value > 5000:
        raise argparse.ArgumentTypeError(f"Codat allows at most 5000 per page, got {value}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-url",
        metavar="URL",
        help=f"Codat API base URL (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})",
    )
    common.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help=f"read the API key from FILE (without it: ${API_KEY_ENV}, "
        f"else the file named by ${API_KEY_FILE_ENV})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def _add(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    help_text: str,
    command: Command,
    common: argparse.ArgumentParser,
    check: Callable[[argparse.Namespace], None] | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, parents=[common]
    )
    parser.set_defaults(func=lambda args: _run(args, command, check))
    return parser


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the operator sub-commands to the parser."""
    common = _common_options()

    companies = _add(
        subparsers, "companies", "List the companies the API key can see.", cmd_companies, common
    )
    companies.add_argument("--query", metavar="Q", help="Codat query, e.g. 'dataConnections.status=Linked'")
    companies.add_argument("--tags", metavar="T", help="Codat tags filter, e.g. 'region=uk'")
    companies.add_argument(
        "--page-size",
        type=_page_size,
        default=1000,
        metavar="N",
        help="companies per page, 1-5000 (default 1000)",
    )

    status = _add(subparsers, "status", "Show a company's data status per data type.", cmd_status, common)
    status.add_argument("company", metavar="COMPANY", help="company id")
    status.add_argument("--data-type", metavar="T", help="show only this data type")

    history = _add(
        subparsers, "history", "Show a company's pull operations (sync history).", cmd_history, common
    )
    history.add_argument("company", metavar="COMPANY", help="company id")
    history.add_argument(
        "--query", metavar="Q", help="Codat query, e.g. 'dataType=invoices&&status!=Complete'"
    )
    history.add_argument(
        "--order-by", metavar="F", help="field to sort by; newest first is --order-by=-requested"
    )
    history.add_argument(
        "--page", type=_positive_int, default=1, metavar="N", help="page to show (default 1)"
    )
    history.add_argument(
        "--page-size",
        type=_page_size,
        default=100,
        metavar="N",
        help="operations per page, 1-5000 (default 100)",
    )
    history.add_argument("--all-pages", action="store_true", help="read every page")

    operation = _add(subparsers, "operation", "Show one pull operation.", cmd_operation, common)
    operation.add_argument("company", metavar="COMPANY", help="company id")
    operation.add_argument("dataset", metavar="DATASET", help="dataset (pull operation) id")

    refresh = _add(
        subparsers,
        "refresh",
        "Queue a sync of one data type, or of all.",
        cmd_refresh,
        common,
        check_refresh_args,
    )
    refresh.add_argument("company", metavar="COMPANY", help="company id")
    refresh.add_argument(
        "data_type", metavar="DATA_TYPE", nargs="?", help="data type to refresh, e.g. invoices"
    )
    refresh.add_argument(
        "--all", action="store_true", help="refresh every data type set to fetch on first link"
    )
    refresh.add_argument("--connection-id", metavar="ID", help="refresh through this data connection only")
