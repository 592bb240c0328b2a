"""Operator sub-commands: look at Codat the way the exporter sees it, and queue a refresh by hand.

``companies``, ``status``, ``history``, ``operation`` and ``refresh`` print
aligned tables for people and, with ``--json``, JSON for scripts. Any failure
exits 1 with one line on stderr saying why; usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from exporter.cli.render import (
    Output,
    age_seconds,
    company_json,
    error_line,
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
from exporter.codat.defaults import DEFAULT_BASE_URL
from exporter.codat.errors import CodatError
from exporter.codat.models import Page, PullOperation
from exporter.common import env as envvars
from exporter.config.loading import ConfigError, config_file, load_config
from exporter.config.schema import Config
from exporter.refresh.actions import perform_refresh

T = TypeVar("T")

PROG: Final = "codat-exporter"
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE, what a shell reports for a killed writer
# A person waits at the terminal: retry less and for less long than the exporter may.
INTERACTIVE_MAX_RETRIES: Final = 2
INTERACTIVE_RETRY_MAX_ELAPSED: Final = 20.0


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


def operator_config(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """The config the operator commands use: loaded exactly as ``run`` loads it, flags on top."""
    overrides: dict[str, Any] = {
        "codat.base_url": args.base_url,
        "codat.api_key_file": str(args.api_key_file) if args.api_key_file is not None else None,
    }
    return load_config(config_file(args.config, env), env=env, overrides=overrides)


def _client(args: argparse.Namespace) -> CodatClient:
    try:
        config = operator_config(args, os.environ)
    except ConfigError as exc:
        raise UsageError("; ".join(f"{p}: {r}" if p else r for p, r in exc.problems)) from None
    codat = config.codat
    key = codat.api_key_value()
    if not key:
        raise UsageError(
            f"no Codat API key: set {envvars.API_KEY}, or {envvars.API_KEY_FILE} to a file that holds it"
        )
    return CodatClient(
        key,
        codat.base_url,
        connect_timeout=codat.connect_timeout,
        read_timeout=codat.read_timeout,
        request_timeout=codat.request_timeout,
        max_retries=min(codat.max_retries, INTERACTIVE_MAX_RETRIES),
        retry_max_elapsed=min(codat.retry_max_elapsed, INTERACTIVE_RETRY_MAX_ELAPSED),
    )


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
        help=f"Codat API base URL (default: ${envvars.BASE_URL}, else codat.base_url, "
        f"else {DEFAULT_BASE_URL})",
    )
    common.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help=f"read the API key from FILE (without it: ${envvars.API_KEY}, "
        f"else the file named by ${envvars.API_KEY_FILE}, else the config file)",
    )
    common.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML config file to take the codat section from (default: ${envvars.CONFIG}, else none)",
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
    _register_reads(subparsers, common)
    _register_history(subparsers, common)
    _register_refresh(subparsers, common)


def _register_reads(subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
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


def _register_history(subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
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


def _register_refresh(subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
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
