"""Operator sub-commands: look at Codat the way the exporter sees it, and queue a refresh by hand.

``companies``, ``status``, ``history``, ``operation``, ``sync-settings``, ``connections``
and ``refresh`` print
aligned tables for people and, with ``--json``, JSON for scripts. Any failure
exits 1 with one line on stderr saying why; usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any, TypeVar

from exporter.cli.opsrun import EXIT_FAILURE, EXIT_OK, PROG, UsageError
from exporter.cli.render import (
    Output,
    age_seconds,
    company_json,
    connection_json,
    format_age,
    format_duration,
    operation_duration,
    operation_json,
    outcome_json,
    plural,
    progress_printer,
    render_table,
    status_json,
)
from exporter.codat.client import CodatClient
from exporter.codat.models import Page, PullOperation, SyncSettings
from exporter.refresh.actions import perform_refresh

T = TypeVar("T")


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
    every = client.get_data_status(args.company)
    if args.data_type and args.data_type not in every:
        # A local filter that matched nothing: the company's answer was fine, so do not blame Codat.
        known = ", ".join(sorted(every)) or "none"
        print(
            f"{PROG}: error: company {args.company} has no data type {args.data_type!r} (it has: {known})",
            file=output.err,
        )
        return EXIT_FAILURE
    if args.data_type:
        statuses = [every[args.data_type]]
    else:
        statuses = sorted(every.values(), key=lambda s: s.data_type)
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
        count = plural(page.total_results, "operation")
        output.emit(f"page {page.page_number} of {max(pages, 1)} ({count}){more}\n")
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


def sync_settings_json(settings: SyncSettings) -> dict[str, Any]:
    """A company's sync settings as JSON (Codat's field names), each schedule also in seconds."""
    return {
        "companyId": settings.company_id,
        "overridesDefaults": settings.overrides_defaults,
        "settings": [
            {
                "dataType": s.data_type,
                "syncSchedule": s.sync_schedule_hours,
                "syncScheduleSeconds": s.schedule_seconds,
                "fetchOnFirstLink": s.fetch_on_first_link,
                "syncOrder": s.sync_order,
                "isLocked": s.is_locked,
            }
            for s in settings.settings
        ],
    }


def cmd_sync_settings(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """Show how often Codat syncs each data type of a company (``syncSchedule``, hours)."""
    settings = client.get_company_sync_settings(args.company)
    if output.json:
        output.emit_json(sync_settings_json(settings))
        return EXIT_OK
    rows = [
        (
            s.data_type,
            format_duration(s.schedule_seconds) if s.schedule_seconds is not None else "none",
            s.fetch_on_first_link,
            s.is_locked,
        )
        for s in sorted(settings.settings, key=lambda s: (s.sync_order, s.data_type))
    ]
    output.emit(render_table(("DATA TYPE", "SCHEDULE", "FETCH ON FIRST LINK", "LOCKED"), rows))
    return EXIT_OK


def cmd_connections(client: CodatClient, args: argparse.Namespace, output: Output) -> int:
    """List a company's data connections with their status and active connection errors."""
    connections = list(client.iter_connections(args.company))
    if output.json:
        output.emit_json([connection_json(c) for c in connections])
        return EXIT_OK
    now = datetime.now(UTC)
    rows = [
        (
            c.id,
            c.platform_name,
            c.status,
            c.last_sync,
            format_age(age_seconds(c.last_sync, now)),
            c.active_errors,
        )
        for c in connections
    ]
    headers = ("CONNECTION ID", "PLATFORM", "STATUS", "LAST SYNC", "AGE", "ACTIVE ERRORS")
    output.emit(render_table(headers, rows))
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
