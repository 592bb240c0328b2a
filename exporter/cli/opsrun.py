"""How an operator command runs: its Codat client from the same config code as ``run``, and
one line on stderr with the right exit code for every way it can fail.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from exporter.cli.render import Output, error_line
from exporter.codat.client import CodatClient
from exporter.codat.errors import CodatError
from exporter.common import env as envvars
from exporter.config.loading import ConfigError, config_file, load_config
from exporter.config.schema import Config

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


def run_command(
    args: argparse.Namespace, command: Command, check: Callable[[argparse.Namespace], None] | None
) -> int:
    """Run one operator command: check its arguments, open its client, map failures to exit codes."""
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
