"""``codat-exporter check-config FILE``: validate a config file and summarise what it will do."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from exporter.config.durations import format_duration
from exporter.config.loading import ConfigError, load_config
from exporter.config.schema import Config

EXIT_OK = 0
EXIT_INVALID = 2


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
        count = len(exc.problems)
        print(f"{path}: invalid configuration ({count} problem{'s' if count != 1 else ''})", file=err)
        for field, reason in exc.problems:
            print(f"{field}: {reason}" if field else reason, file=err)
        return EXIT_INVALID
    print(f"{path}: OK", file=out)
    for line in summarize(config):
        print(line, file=out)
    return EXIT_OK
