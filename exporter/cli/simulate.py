"""Sub-command ``simulate``: serve a fake Codat API to point the exporter (or curl) at."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from exporter.common import env as envvars
from exporter.common.listen import parse_listen_address
from exporter.common.logs import setup_logging
from exporter.simulator import Scenario, ScenarioError, Simulator, SystemClock

DEFAULT_LISTEN = "127.0.0.1:8330"
log = logging.getLogger("codat_exporter.simulate")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this module's sub-commands to the parser."""
    parser = subparsers.add_parser(
        "simulate",
        help="Serve a simulated Codat API (for the demo, tests and benchmarks).",
        description=(
            "Serve a fake Codat Platform API with companies whose syncs move in real time. "
            "Point the exporter or the operator commands at it with CODAT_BASE_URL=http://HOST:PORT "
            "and CODAT_API_KEY set to the --api-key value."
        ),
    )
    parser.add_argument("--scenario", metavar="FILE", help="scenario YAML (default: the built-in demo)")
    parser.add_argument(
        "--listen-address",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"address to serve on; :PORT = all interfaces, port 0 = any free port "
        f"(default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--api-key", metavar="KEY", default="demo", help="API key clients must send (default demo)"
    )
    parser.add_argument(
        "--companies", metavar="N", type=int, help="generate N companies instead of the demo scenario"
    )
    parser.add_argument(
        "--data-types",
        metavar="K",
        type=int,
        default=10,
        help="data types per generated company (default 10)",
    )
    parser.add_argument("--seed", metavar="N", type=int, help="random seed (default: the scenario's, else 1)")
    parser.add_argument(
        "--speed", metavar="F", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    parser.add_argument(
        "--webhook-url",
        metavar="URL",
        help="send read.completed and client.rateLimit.* webhooks to this URL (signed with the secret below)",
    )
    parser.add_argument(
        "--webhook-secret",
        metavar="S",
        help=f"whsec_… signing secret for webhooks (default: env {envvars.WEBHOOK_SECRET})",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also serve the run-time control API under /_control to loopback clients (incident replays)",
    )
    parser.set_defaults(func=run)


def build_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario the flags ask for (raises ``ScenarioError``/``ValueError`` on bad flags)."""
    if args.scenario and args.companies is not None:
        raise ValueError("give either --scenario or --companies, not both")
    if args.scenario:
        return Scenario.load(args.scenario, seed=args.seed)
    if args.companies is not None:
        return Scenario.generated(companies=args.companies, data_types=args.data_types, seed=args.seed or 1)
    return Scenario.demo(seed=args.seed or 1)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 2 on bad arguments or scenario."""
    setup_logging("info")
    try:
        host, port = parse_listen_address(args.listen_address)
        scenario = build_scenario(args)
        clock = SystemClock(speed=args.speed)
    except (ScenarioError, ValueError) as exc:
        print(f"codat-exporter simulate: {exc}", file=sys.stderr)
        return 2
    secret = args.webhook_secret or os.environ.get(envvars.WEBHOOK_SECRET) or None
    try:
        sim = Simulator(
            scenario, api_key=args.api_key, clock=clock, webhook_url=args.webhook_url, webhook_secret=secret
        )
    except Exception as exc:  # a bad secret, for example; never echo it
        print(f"codat-exporter simulate: cannot start: {type(exc).__name__}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Before serving: a client that sees the port open may stop the simulator at once.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server = sim.serve(host=host, port=port, control=args.control)
    except OSError as exc:
        print(
            f"codat-exporter simulate: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    key_hint = "demo" if args.api_key == "demo" else "<your --api-key>"
    log.info(
        "simulated Codat API (%s, %d companies) at %s — point the exporter at it with "
        "CODAT_BASE_URL=%s CODAT_API_KEY=%s codat-exporter run",
        scenario.name,
        len(sim.company_ids),
        server.url,
        server.url,
        key_hint,
    )
    if args.control:
        log.info("control API at %s/_control (loopback clients only)", server.url)
    if args.webhook_url:
        log.info("sending webhooks to %s (%s)", args.webhook_url, "signed" if secret else "unsigned")
    stop.wait()
    log.info("stopping")
    server.close()
    return 0
