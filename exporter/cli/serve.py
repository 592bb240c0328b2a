"""Sub-commands that run the exporter: ``run``, ``once`` and ``check-config``.

Exit codes: 0 success; 1 runtime failure (``once`` when every company failed,
a port that cannot be bound); 2 invalid configuration, with each problem on
stderr as ``field.path: reason``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from exporter.app import build_app, build_client, config_secrets
from exporter.collector.scheduler import Scheduler, describe_error
from exporter.common import env as envvars
from exporter.common.logs import setup_logging
from exporter.config.check import check_config_command
from exporter.config.loading import ConfigError, config_file, load_config
from exporter.config.schema import Config
from exporter.exposition import ExpositionCache
from exporter.exposition.families import company_catalogue
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.server import ListenError
from exporter.http.webconfig import WebConfigError

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``run``, ``once`` and ``check-config`` to the parser."""
    _register_run(subparsers)
    _register_once_and_check(subparsers)


def _register_run(subparsers: argparse._SubParsersAction[Any]) -> None:
    run = subparsers.add_parser(
        "run",
        help="Poll Codat and serve /metrics until stopped.",
        description="Poll Codat in the background and serve /metrics, /healthz, /readyz and a landing "
        "page until SIGTERM/SIGINT (exit 0). The API key comes from CODAT_API_KEY or CODAT_API_KEY_FILE "
        "(or the config file). Exit 2 on an invalid configuration, 1 if the address cannot be bound.",
    )
    _config_argument(run)
    run.add_argument(
        "--demo",
        action="store_true",
        help="run against a built-in simulated Codat account (no API key needed; refuses --config "
        "and --shard, ignores CODAT_API_KEY, CODAT_BASE_URL and CODAT_EXPORTER_CONFIG)",
    )
    run.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        help="address to serve on (default: $CODAT_EXPORTER_LISTEN_ADDRESS, else server.listen_address, "
        "else 0.0.0.0:8329; with --demo 127.0.0.1:8329)",
    )
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web configuration (TLS, basic auth, headers) for both ports "
        "(default: server.web_config_file, else plain HTTP)",
    )
    run.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        default=None,
        help="serve POST /-/reload to reload the config (default: server.enable_lifecycle, else off; "
        "SIGHUP always reloads)",
    )
    run.add_argument(
        "--shard",
        type=int,
        metavar="N",
        help="this replica's shard, counted from 0 (default: sharding.shard, else 0)",
    )
    run.add_argument(
        "--total-shards",
        type=int,
        metavar="M",
        help="how many shards companies are split into (default: sharding.total_shards, else 1)",
    )
    _log_level_argument(run, default="$CODAT_EXPORTER_LOG_LEVEL, else logging.level, else info")
    run.set_defaults(func=run_command)


def _register_once_and_check(subparsers: argparse._SubParsersAction[Any]) -> None:
    once = subparsers.add_parser(
        "once",
        help="Poll every company once and print the metrics to stdout.",
        description="Poll every company once and print the metrics in the Prometheus text format "
        "(for node_exporter's textfile collector); logs go to stderr. Exits 1 if the companies could not "
        "be listed, every company failed, or Codat rate-limited the poll; 2 on an invalid configuration.",
    )
    _config_argument(once)
    _log_level_argument(once, default="$CODAT_EXPORTER_LOG_LEVEL, else warning")
    once.set_defaults(func=once_command)

    check = subparsers.add_parser(
        "check-config",
        help="Validate a config file and print a summary.",
        description="Validate FILE with the environment applied (CODAT_API_KEY, CODAT_BASE_URL, ...). "
        "Prints 'FILE: OK' and a summary (exit 0), or every problem as 'field.path: reason' (exit 2).",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="YAML config file to check")
    check.set_defaults(func=lambda args: check_config_command(args.file, os.environ))


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML config file (default: ${envvars.CONFIG}; with neither, the defaults: every company "
        "the API key can see)",
    )


def _log_level_argument(parser: argparse.ArgumentParser, default: str) -> None:
    # The default is only named in the help: an absent flag stays None so that each command can
    # fall back on its own source (the config file for `run`).
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help=f"log verbosity (default {default})",
    )


def config_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path | None:
    """The config file to read: ``--config``, else ``$CODAT_EXPORTER_CONFIG``, else none."""
    return config_file(None if args.config is None else Path(args.config), env)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from command-line flags (flags beat the environment and the file)."""
    overrides: dict[str, Any] = {}
    if getattr(args, "listen_address", None):
        overrides["server.listen_address"] = args.listen_address
    if getattr(args, "web_config_file", None):
        overrides["server.web_config_file"] = args.web_config_file
    if getattr(args, "enable_lifecycle", None):
        overrides["server.enable_lifecycle"] = True
    if getattr(args, "shard", None) is not None:
        overrides["sharding.shard"] = args.shard
    if getattr(args, "total_shards", None) is not None:
        overrides["sharding.total_shards"] = args.total_shards
    if getattr(args, "log_level", None):
        overrides["logging.level"] = args.log_level
    return overrides


def report_config_error(error: ConfigError, source: Path | None, err: TextIO) -> int:
    """Print every problem of ``error`` as ``field: reason`` and return exit code 2."""
    where = f"{source}: " if source is not None else ""
    print(f"{where}invalid configuration", file=err)
    for field, reason in error.problems:
        print(f"{field}: {reason}" if field else reason, file=err)
    return EXIT_CONFIG


def load_for(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
    """Load the config the way ``run``/``once`` do: file, then environment, then flags."""
    return load_config(config_path(args, env), env=env, overrides=flag_overrides(args))


def run_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``run``: serve until SIGTERM/SIGINT; 2 on a bad config, 1 if the port cannot be bound."""
    env = os.environ if env is None else env
    source = None if args.demo else config_path(args, env)
    if args.demo and (args.shard is not None or args.total_shards is not None):
        print("--demo runs a single shard; drop --shard/--total-shards", file=sys.stderr)
        return EXIT_CONFIG
    if args.demo and getattr(args, "web_config_file", None) is not None:
        print("--demo serves plain HTTP on loopback; drop --web.config.file", file=sys.stderr)
        return EXIT_CONFIG
    if args.demo and args.config is not None:
        print("--demo polls its own simulated account and reads no config; drop --config", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.demo:
            from exporter.cli.demo import build_demo_app  # the simulator is only imported for the demo

            setup_logging(args.log_level or env.get(envvars.LOG_LEVEL, "info").lower() or "info")
            app = build_demo_app(args.listen_address, env, log_level=args.log_level)
            config = app.config
        else:
            config = load_for(args, env)
            setup_logging(config.logging.level, config.logging.format, config_secrets(config))
            app = build_app(config, load=lambda: load_for(args, env))
    except ConfigError as error:
        return report_config_error(error, source, sys.stderr)
    except WebConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    except ListenError as error:
        print(error, file=sys.stderr)  # names the address and how to choose another
        return EXIT_FAILED
    except OSError as error:
        # The server's own message names the address and how to move it; say only that when it has one.
        text = str(error)
        print(text if text.startswith("cannot listen") else f"cannot listen: {text}", file=sys.stderr)
        return EXIT_FAILED
    setup_logging(config.logging.level, config.logging.format, config_secrets(config))
    code = app.run_until_signal()
    if app.busy:
        # A Codat request is still hanging (up to read_timeout); the pool's threads would hold
        # the interpreter's exit. Shutdown must take seconds, and nothing is left to save.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def once_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``once``: poll every company once, print the text exposition; 1 if every company failed."""
    env = os.environ if env is None else env
    source = config_path(args, env)
    try:
        config = load_for(args, env)
        telemetry = Telemetry()
        client = build_client(config, telemetry)
    except ConfigError as error:
        return report_config_error(error, source, sys.stderr)
    # stdout carries the exposition; logs go to stderr, quieter than for `run`.
    level = args.log_level or env.get(envvars.LOG_LEVEL) or "warning"
    setup_logging(level.lower(), config.logging.format, config_secrets(config))
    scheduler = Scheduler(client, config, telemetry)
    try:
        report = scheduler.run_cycle(ignore_budget=True)
    except Exception as error:
        print(f"poll failed: {describe_error(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        scheduler.close()
        client.close()
    if report.error is not None:
        # The scheduler has logged why (at error level, shown at every --log-level): say it once.
        return EXIT_FAILED
    cache = ExpositionCache(
        config.metrics.status_mode,
        registry=telemetry.registry,
        catalogue=company_catalogue(config.metrics.company_tag_labels),
    )
    cache.update(scheduler.snapshot)
    sys.stdout.buffer.write(cache.body(openmetrics=False, gzip=False, now=time.time()))
    sys.stdout.flush()
    companies = scheduler.snapshot.companies
    if companies and not any(c.up for c in companies.values()):
        print(f"every company failed ({len(companies)}); see the log above", file=sys.stderr)
        return EXIT_FAILED
    if report.rate_limited:
        print("rate limited by Codat before every company was polled", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
