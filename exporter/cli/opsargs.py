"""The operator sub-commands' arguments: ``companies``, ``status``, ``history``, ``operation``,
the Codat settings reads and ``refresh``, each with the shared ``--base-url``, ``--api-key-file``,
``--config`` and ``--json`` options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.cli.ops import (
    check_refresh_args,
    cmd_companies,
    cmd_connections,
    cmd_history,
    cmd_operation,
    cmd_refresh,
    cmd_status,
    cmd_sync_settings,
)
from exporter.cli.opsrun import Command, run_command
from exporter.codat.defaults import DEFAULT_BASE_URL
from exporter.common import env as envvars


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
    parser.set_defaults(func=lambda args: run_command(args, command, check))
    return parser


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the operator sub-commands to the parser."""
    common = _common_options()
    _register_reads(subparsers, common)
    _register_history(subparsers, common)
    _register_codat_settings(subparsers, common)
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


def _register_codat_settings(
    subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> None:
    sync_settings = _add(
        subparsers,
        "sync-settings",
        "Show how often Codat syncs each data type of a company.",
        cmd_sync_settings,
        common,
    )
    sync_settings.add_argument("company", metavar="COMPANY", help="company id")
    connections = _add(
        subparsers,
        "connections",
        "List a company's data connections and their active errors.",
        cmd_connections,
        common,
    )
    connections.add_argument("company", metavar="COMPANY", help="company id")


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
