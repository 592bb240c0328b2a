"""The ``codat-exporter`` command line: parses arguments and hands over to a sub-command.

Each sub-command module owns its arguments through ``register(subparsers)`` and
sets ``func`` to a handler returning the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.cli import opsargs, serve, simulate
from exporter.common import env as envvars


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="codat-exporter",
        description="Prometheus exporter for the freshness of Codat companies' synced data.",
        epilog="Run 'codat-exporter COMMAND --help' for a command's options. Environment: "
        f"{', '.join(envvars.ALL)}. Flags beat the environment, which beats the config file.",
    )
    parser.add_argument("--version", action="version", version=f"codat-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    serve.register(sub)
    simulate.register(sub)
    opsargs.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
