"""``codat-exporter check-config FILE``: validate a config file and summarise what it will do."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from exporter.collector.progress import rate_advice, steady_rate
from exporter.common.durations import format_duration
from exporter.config.loading import ConfigError, load_config
from exporter.config.schema import Config
from exporter.http.webconfig import WebConfigError, load_web_config

EXIT_OK = 0
EXIT_INVALID = 2
ASSUMED_DATA_TYPES = 30
"""Data types a company is assumed to sync when the config does not name them all literally."""


def summarize(config: Config) -> list[str]:
    """Short human lines describing the effective config (no secrets)."""
    companies = config.companies
    if companies.ids:
        mode = f"{len(companies.ids)} listed"
        if companies.discover:
            mode += " + discovery"
    else:
        mode = "discover every company the API key sees"
    filters = [f"query={companies.query}"] if companies.query else []
    filters += [f"tags={companies.tags}"] if companies.tags else []
    filters += [f"include={','.join(companies.include)}"] if companies.include else []
    filters += [f"exclude={','.join(companies.exclude)}"] if companies.exclude else []
    if filters:
        mode += f" ({'; '.join(filters)})"
    refresh = config.auto_refresh
    if refresh.enabled:
        refresh_text = (
            f"on{' (dry run)' if refresh.dry_run else ''}, {len(refresh.rules)} rule(s), "
            f"cooldown {format_duration(refresh.cooldown)}, at most {refresh.max_per_cycle}/cycle "
            f"and {refresh.max_per_day}/day"
        )
    else:
        refresh_text = "off"
    webhooks = f"on at {config.webhooks.path}" if config.webhooks.enabled else "off"
    return [
        f"  companies: {mode}",
        f"  poll interval: {format_duration(config.polling.interval)} "
        f"(full sweep every {format_duration(config.polling.full_sweep_interval)})",
        f"  status mode: {config.metrics.status_mode}",
        f"  listen address: {config.server.listen_address}",
        f"  shard: {config.sharding.shard} of {config.sharding.total_shards}",
        f"  api key: {'set' if config.codat.api_key is not None else 'not set'}",
        f"  auto-refresh: {refresh_text}",
        f"  webhooks: {webhooks}",
    ]


# Connection statuses the shipped alerts page on (CodatConnectionDeauthorized, CodatConnectionUnlinked).
_WATCHED_CONNECTION_STATUSES = frozenset({"Deauthorized", "Unlinked"})
_CONNECTION_STATUS_TERM = re.compile(r"dataConnections\.status\s*(!=|=)\s*([A-Za-z]+)", re.IGNORECASE)


def query_warnings(query: str | None) -> list[str]:
    """Warnings for a discovery query that drops companies the shipped alerts exist to page on.

    A company left out of discovery has no series, so an alert about it can never fire:
    ``dataConnections.status=Linked`` hides exactly the deauthorized and unlinked companies.
    """
    if not query:
        return []
    hidden: set[str] = set()
    for operator, value in _CONNECTION_STATUS_TERM.findall(query):
        if operator == "=":
            hidden |= {s for s in _WATCHED_CONNECTION_STATUSES if s.lower() != value.lower()}
        else:
            hidden |= {s for s in _WATCHED_CONNECTION_STATUSES if s.lower() == value.lower()}
    if not hidden:
        return []
    return [
        f"companies.query hides companies whose connection is {' or '.join(sorted(hidden))}: "
        "their alerts can never fire; filter on something else (e.g. tags)"
    ]


def rate_warnings(config: Config) -> list[str]:
    """A warning when ``budget.max_requests_per_minute`` cannot keep up with the fleet the config names.

    Offline, the fleet is known only through ``companies.ids`` (a lower bound when discovery is
    also on), split over the shards; each company is assumed to sync every data type the config
    names, or ``ASSUMED_DATA_TYPES``, once a day. A fleet found by discovery is checked at
    start-up, after the first sweep, instead.
    """
    if not config.companies.ids:
        return []
    shards = config.sharding.total_shards
    companies = -(-len(config.companies.ids) // shards)
    literal = [t for t in config.data_types.include if not set("*?[") & set(t)]
    named_all = bool(literal) and len(literal) == len(config.data_types.include)
    per_company = len(literal) if named_all else ASSUMED_DATA_TYPES
    needed = steady_rate(
        companies,
        companies * per_company,
        poll_interval=config.polling.interval,
        full_sweep_interval=(
            config.polling.full_sweep_interval_with_webhooks
            if config.webhooks.enabled
            else config.polling.full_sweep_interval
        ),
    )
    advice = rate_advice(needed, config.budget.max_requests_per_minute)
    if advice is None:
        return []
    return [f"{advice} ({companies} companies per shard, {per_company} data types each, daily syncs)"]


def check_config_command(
    path: Path, env: Mapping[str, str], *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Validate ``path`` with ``env`` applied; print ``FILE: OK`` and a summary or every problem.

    Returns the exit code: 0 when valid, 2 when not.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        config = load_config(path, env=env)
    except ConfigError as exc:
        count = exc.total
        print(f"{path}: invalid configuration ({count} problem{'s' if count != 1 else ''})", file=err)
        for field, reason in exc.problems:
            print(f"{field}: {reason}" if field else reason, file=err)
        return EXIT_INVALID
    try:
        web = load_web_config(config.server.web_config_file)
    except WebConfigError as exc:
        print(exc, file=err)  # one line: web config file, field, reason
        return EXIT_INVALID
    print(f"{path}: OK", file=out)
    if config.server.web_config_file is not None:
        print(f"  web config: {config.server.web_config_file} ({web.describe()})", file=out)
    for line in summarize(config):
        print(line, file=out)
    for warning in query_warnings(config.companies.query) + rate_warnings(config):
        print(f"warning: {warning}", file=err)
    return EXIT_OK
