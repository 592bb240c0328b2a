"""Scale: the first sweep, a restart, and steady state of ``codat-exporter run`` against the simulator.

Starts the simulator in a child process with N companies and its per-minute
limit set to the exporter's ``budget.max_requests_per_minute``, then
``codat-exporter run`` as a real process pointed at it. Once a second it
scrapes ``/metrics`` (reading ``codat_exporter_companies_polled``,
``codat_exporter_companies_listed``, ``codat_exporter_detection_lag_seconds``)
and ``/readyz``, and records: the time to the first company's series, the
curve of companies served against time, the time to every company and to
ready, against the quota floor 1.1 · N / rate minutes (one dataStatus per
company); the simulator's requests by endpoint; and the exporter's CPU seconds
(``/proc/<pid>/stat``, user + system). The one-second scrapes are part of the
measured CPU.

    .venv/bin/python -m bench.bench_scale --companies 2000 --rate 1000
    .venv/bin/python -m bench.bench_scale --companies 10000 --rate 1000 --status-mode sparse --restart
    .venv/bin/python -m bench.bench_scale --companies 2000 --rate 1000 --steady 900

``--clock live`` (the default) runs the simulated clock at wall-clock speed. ``--clock frozen``
stops it, so no sync completes; the simulator's per-minute window runs on that clock too, so a run
that spends more than one minute's requests stalls there.
``--restart`` kills the exporter (SIGKILL) once ready, starts it again and measures the time to
full data again, and checks that the sum of ``codat_pull_operations_total`` after it is no larger
than before the kill plus the operations the simulator completed in between.
``--steady S`` keeps polling S seconds after ready and reports the largest detection lag and
the CPU seconds per hour; with ``--syncs-per-minute R`` the simulator completes syncs at that pace
meanwhile (10,000 companies syncing daily is about 7 a minute; each costs the exporter a dataStatus
and a history read). The curve counts the companies with a ``codat_company_info`` series on
``/metrics``: served, not merely polled.
``--prometheus`` runs a real Prometheus during the steady state, scraping the exporter every 15 s
with the project's recording and alert rules, and records when each alert went pending and firing;
``--until-firing NAME`` ends the steady state once that alert fires. With a sync pace the rate
cannot follow, it shows ``CodatExporterFallingBehind`` live:

    .venv/bin/python -m bench.bench_scale --companies 10000 --rate 1000 --status-mode sparse \
        --steady 3600 --syncs-per-minute 2000 --prometheus --until-firing CodatExporterFallingBehind
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.bench_scrape import ServerProcess, machine
from tests.support.processes import stop_process
from tests.support.prometheus import PrometheusServer, run_prometheus, scrape_config
from tests.support.tools import REPO_ROOT, free_port

CURVE_POINTS = 10
SAMPLE_SECONDS = 1.0


# --- the simulator child process ------------------------------------------------------------


def serve_simulator(
    companies: int, data_types: int, rate: int, clock_mode: str, syncs_per_minute: float = 0.0
) -> None:
    """Child process: serve the simulator; answer ``counts`` on stdin with its request counts.

    ``syncs_per_minute`` > 0 queues a sync of one company's first data type at that steady rate
    (companies taken in turn), each completing after the simulator's usual sync duration: a fleet
    whose companies sync every N / rate minutes, for the detection lag in steady state.
    """
    from exporter.simulator import FakeClock, Scenario, Simulator, SystemClock

    clock = FakeClock(datetime.now(UTC)) if clock_mode == "frozen" else SystemClock()
    sim = Simulator(Scenario.generated(companies=companies, data_types=data_types, seed=1), clock=clock)
    # Only the per-minute limit is under test: the daily quota must not be what stops the sweep.
    sim.set_rate_limit(daily_quota=10**9, per_minute=rate)
    server = sim.serve()
    stop = threading.Event()
    if syncs_per_minute > 0:
        threading.Thread(target=_sync_steadily, args=(sim, syncs_per_minute, stop), daemon=True).start()
    print(json.dumps({"port": server.port, "url": server.url}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "counts":
                by_endpoint: dict[str, int] = {}
                with sim.lock:
                    for (endpoint, _company), n in sim.request_counts.items():
                        by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + n
                completed = sum(sim.terminal_counts().values())
                print(json.dumps({"by_endpoint": by_endpoint, "completed": completed}), flush=True)
    finally:
        stop.set()
        server.close()


def _sync_steadily(sim: Any, per_minute: float, stop: threading.Event) -> None:
    ids = sim.company_ids
    data_type = sim.scenario.data_types[0]
    index = 0
    # The pace of a load generator, not synchronisation: one sync every 60 / per_minute seconds.
    while not stop.wait(60.0 / per_minute):
        sim.queue_sync(ids[index % len(ids)], data_type, outcome="Complete")
        index += 1


def start_simulator(
    companies: int, data_types: int, rate: int, clock_mode: str, syncs_per_minute: float = 0.0
) -> ServerProcess:
    """Start the simulator child and wait for its announcement line."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_scale",
            "sim",
            str(companies),
            str(data_types),
            str(rate),
            clock_mode,
            str(syncs_per_minute),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the simulator exited with {process.wait()}")
    return ServerProcess(process, json.loads(line))


# --- the exporter process -------------------------------------------------------------------


def write_config(workdir: Path, base_url: str, rate: int, status_mode: str, port: int) -> Path:
    """The exporter's config file for this run."""
    path = workdir / "config.yaml"
    path.write_text(
        f"codat:\n  base_url: {base_url}\n"
        f"budget:\n  max_requests_per_minute: {rate}\n"
        f"metrics:\n  status_mode: {status_mode}\n"
        f"server:\n  listen_address: 127.0.0.1:{port}\n"
    )
    return path


def start_exporter(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``codat-exporter run --config`` as a real process, logging to ``log_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "CODAT_EXPORTER_"))}
    env["CODAT_API_KEY"] = "demo"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--config", str(config), "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
        )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- sampling ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One second's look at the exporter."""

    t: float
    listed: float
    polled: float
    ready: bool
    lag: float
    pull_operations: float
    companies_with_info: int


_GAUGES = (
    "codat_exporter_companies_polled",
    "codat_exporter_companies_listed",
    "codat_exporter_detection_lag_seconds",
    "codat_pull_operations_total",
)
# Regexes run in C: a 10,000-company page is tens of MB, split into lines in Python it would
# cost the sampler a core.
_SAMPLE = re.compile(rf"^({'|'.join(_GAUGES)})(?:{{[^\n]*}})? (\S+)$", re.MULTILINE)


def _metric_sums(text: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for match in _SAMPLE.finditer(text):
        sums[match[1]] = sums.get(match[1], 0.0) + float(match[2])
    sums["info_series"] = text.count("\ncodat_company_info{")
    return sums


def sample(session: requests.Session, base: str, started: float) -> Sample | None:
    """Scrape /metrics and /readyz once; None while the exporter does not answer yet."""
    try:
        # /readyz first: a ready answer then promises every company on the /metrics that follows.
        ready = session.get(base + "/readyz", timeout=5).status_code == 200
        metrics = session.get(base + "/metrics", timeout=30)
    except requests.RequestException:
        return None
    sums = _metric_sums(metrics.text)
    return Sample(
        t=time.monotonic() - started,
        listed=sums.get("codat_exporter_companies_listed", 0.0),
        polled=sums.get("codat_exporter_companies_polled", 0.0),
        ready=ready,
        lag=sums.get("codat_exporter_detection_lag_seconds", 0.0),
        pull_operations=sums.get("codat_pull_operations_total", 0.0),
        companies_with_info=int(sums["info_series"]),
    )


@dataclass
class Sweep:
    """One start of the exporter up to full data."""

    first_company_s: float | None = None
    all_companies_s: float | None = None
    ready_s: float | None = None
    curve: list[tuple[float, int]] = field(default_factory=list)
    companies_with_info_at_ready: int = 0
    pull_operations_at_ready: float = 0.0
    cpu_seconds_to_ready: float = 0.0


def watch_sweep(proc: subprocess.Popen[bytes], base: str, companies: int, timeout: float) -> Sweep:
    """Sample once a second from the process start until ready with every company, or the deadline."""
    started = time.monotonic()
    session = requests.Session()
    samples: list[Sample] = []
    result = Sweep()
    try:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"the exporter exited with {proc.returncode}")
            tick = time.monotonic()
            s = sample(session, base, started)
            if s is not None:
                samples.append(s)
                # Served means on /metrics (a company_info series), not merely polled.
                if result.first_company_s is None and s.companies_with_info >= 1:
                    result.first_company_s = s.t
                if result.all_companies_s is None and s.companies_with_info >= companies:
                    result.all_companies_s = s.t
                if result.ready_s is None and s.ready:
                    result.ready_s = s.t
                if result.ready_s is not None and result.all_companies_s is not None:
                    result.companies_with_info_at_ready = s.companies_with_info
                    result.pull_operations_at_ready = s.pull_operations
                    break
            # The sampling cadence of a deadline loop, not synchronisation.
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.monotonic() - tick)))
    finally:
        session.close()
    result.cpu_seconds_to_ready = cpu_seconds(proc.pid)
    if samples:
        end = samples[-1].t
        for i in range(CURVE_POINTS + 1):
            at = end * i / CURVE_POINTS
            last = max((s for s in samples if s.t <= at), key=lambda s: s.t, default=samples[0])
            result.curve.append((round(at, 1), last.companies_with_info))
    return result


class AlertWatch:
    """Polls a Prometheus' alerts every 15 s: when each alert first went pending and firing."""

    def __init__(self, prometheus: PrometheusServer, started: float, until_firing: str | None) -> None:
        self.prometheus = prometheus
        self.started = started
        self.until_firing = until_firing
        self.pending_s: dict[str, float] = {}
        self.firing_s: dict[str, float] = {}
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AlertWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # Prometheus evaluates the rules every 15 s; polling more often would see nothing new.
        while not self._stop.wait(15.0):
            t = round(time.monotonic() - self.started, 1)
            for alert in self.prometheus.api("/api/v1/alerts")["alerts"]:
                name = alert["labels"]["alertname"]
                self.pending_s.setdefault(name, t)
                if alert["state"] == "firing":
                    self.firing_s.setdefault(name, t)
            if self.until_firing in self.firing_s:
                self.done.set()

    def result(self) -> dict[str, Any]:
        """First pending and firing time of every alert seen, seconds from the steady state's start."""
        return {"first_pending_s": self.pending_s, "first_firing_s": self.firing_s}


def steady_state(
    proc: subprocess.Popen[bytes], base: str, seconds: float, stop_early: threading.Event | None = None
) -> dict[str, Any]:
    """Keep sampling ``seconds`` after ready (or until ``stop_early``): the largest detection lag
    and CPU seconds per hour."""
    session = requests.Session()
    cpu_before = cpu_seconds(proc.pid)
    started = time.monotonic()
    max_lag = 0.0
    lag_by_minute: list[float] = []
    ops_before: float | None = None
    ops_after = 0.0
    try:
        while time.monotonic() - started < seconds and not (stop_early and stop_early.is_set()):
            tick = time.monotonic()
            s = sample(session, base, started)
            if s is not None:
                max_lag = max(max_lag, s.lag)
                minute = int(s.t // 60)
                lag_by_minute.extend([0.0] * (minute + 1 - len(lag_by_minute)))
                lag_by_minute[minute] = max(lag_by_minute[minute], s.lag)
                ops_before = s.pull_operations if ops_before is None else ops_before
                ops_after = s.pull_operations
            time.sleep(max(0.0, SAMPLE_SECONDS - (time.monotonic() - tick)))
    finally:
        session.close()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(proc.pid) - cpu_before
    return {
        "seconds": round(elapsed, 1),
        "max_detection_lag_s": max_lag,
        "max_detection_lag_by_minute_s": [round(lag, 1) for lag in lag_by_minute],
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_hour": round(cpu * 3600 / elapsed, 1),
        "pull_operations_seen": ops_after - (ops_before or 0.0),
    }


def steady_with_prometheus(
    proc: subprocess.Popen[bytes], base: str, port: int, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """The steady state with a real Prometheus scraping every 15 s and evaluating the project's rules."""
    rules = [REPO_ROOT / "prometheus" / "rules.yml", REPO_ROOT / "prometheus" / "alerts.yml"]
    targets = [scrape_config([f"127.0.0.1:{port}"])]
    with run_prometheus(workdir / "prometheus", targets, rule_files=rules, interval="15s") as prometheus:
        with AlertWatch(prometheus, time.monotonic(), args.until_firing) as watch:
            out = steady_state(proc, base, args.steady, stop_early=watch.done)
        out["alerts"] = watch.result()
    return out


def _progress(phase: str, out: dict[str, Any]) -> None:
    # A long run's phases are reported as they end, so an interrupted run still leaves numbers.
    print(json.dumps({phase: out[phase]}), file=sys.stderr, flush=True)


# --- one run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one shape; returns the numbers."""
    bound_s = 1.1 * args.companies / args.rate * 60
    timeout = args.sweep_timeout or bound_s * 2 + 120
    sim = start_simulator(args.companies, args.data_types, args.rate, args.clock, args.syncs_per_minute)
    out: dict[str, Any] = {
        "companies": args.companies,
        "data_types": args.data_types,
        "rate_per_minute": args.rate,
        "status_mode": args.status_mode,
        "clock": args.clock,
        "syncs_per_minute": args.syncs_per_minute,
        "bound_s": round(bound_s, 1),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = write_config(workdir, sim.info["url"], args.rate, args.status_mode, port)
        log_path = workdir / "exporter.log"
        proc = start_exporter(config, log_path)
        try:
            first = watch_sweep(proc, base, args.companies, timeout)
            out["first_sweep"] = asdict(first)
            out["first_sweep"]["requests_by_endpoint"] = sim.command("counts")["by_endpoint"]
            _progress("first_sweep", out)
            if args.restart:
                completed_before = sim.command("counts")["completed"]
                proc.kill()
                proc.wait()
                proc = start_exporter(config, log_path)
                again = watch_sweep(proc, base, args.companies, args.restart_timeout or timeout)
                counts = sim.command("counts")
                completed_between = counts["completed"] - completed_before
                out["restart"] = asdict(again)
                out["restart"]["requests_by_endpoint_cumulative"] = counts["by_endpoint"]
                out["restart"]["pull_operations_before_kill"] = first.pull_operations_at_ready
                out["restart"]["completed_in_between"] = completed_between
                out["restart"]["counters_did_not_jump"] = (
                    again.pull_operations_at_ready <= first.pull_operations_at_ready + completed_between
                )
                _progress("restart", out)
            if args.steady:
                completed_before = sim.command("counts")["completed"]
                if args.prometheus:
                    out["steady"] = steady_with_prometheus(proc, base, port, workdir, args)
                else:
                    out["steady"] = steady_state(proc, base, args.steady)
                out["steady"]["completed_by_simulator"] = (
                    sim.command("counts")["completed"] - completed_before
                )
                out["steady"]["requests_by_endpoint_cumulative"] = sim.command("counts")["by_endpoint"]
        except BaseException:
            sys.stderr.write(log_path.read_text()[-4000:])
            raise
        finally:
            stop_process(proc)
            sim.stop()
    return out


def main() -> None:
    """Parse arguments, run one shape, print and optionally store the numbers."""
    if len(sys.argv) > 1 and sys.argv[1] == "sim":
        companies, data_types, rate, clock_mode, syncs = sys.argv[2:7]
        serve_simulator(int(companies), int(data_types), int(rate), clock_mode, float(syncs))
        return
    # A stopped run must still stop its exporter and simulator (the ``finally`` in ``run``).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--companies", type=int, default=2000)
    parser.add_argument("--data-types", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="requests per minute, both sides")
    parser.add_argument("--status-mode", choices=("default", "full", "sparse"), default="default")
    parser.add_argument("--clock", choices=("frozen", "live"), default="live")
    parser.add_argument("--restart", action="store_true", help="kill once ready, start again, measure")
    parser.add_argument("--steady", type=float, default=0.0, metavar="S", help="seconds of steady state")
    parser.add_argument(
        "--syncs-per-minute",
        type=float,
        default=0.0,
        metavar="R",
        help="the simulator completes about R syncs a minute, companies in turn (for --steady)",
    )
    parser.add_argument(
        "--sweep-timeout",
        type=float,
        metavar="S",
        help="give up on a sweep after S seconds (default 2 × bound + 2 min)",
    )
    parser.add_argument("--restart-timeout", type=float, metavar="S", help="the same for the restart's sweep")
    parser.add_argument("--prometheus", action="store_true", help="real Prometheus + rules in --steady")
    parser.add_argument("--until-firing", metavar="ALERT", help="end --steady once this alert fires")
    parser.add_argument("--out", type=Path, help="append the result to this JSON file (a list)")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.out:
        existing = json.loads(args.out.read_text()) if args.out.exists() else []
        existing.append(result)
        args.out.write_text(json.dumps(existing, indent=1) + "\n")


if __name__ == "__main__":
    main()
