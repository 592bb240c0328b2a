"""The fault suite: the real exporter (``codat-exporter run``) against a hostile fake Codat API.

One exporter process runs for the whole module against ``tests.support.hostile_codat``:
five healthy companies with fixed values and one victim. Each test gives the
victim (or, for account-wide faults, every request) one fault, and asserts
what an operator relies on:

* scrapes keep answering within a generous bound while the fault lasts;
* the healthy companies' values stay exact, and they keep being read: one
  slow company must not hold back the others' freshness;
* the victim visibly fails with a reason (``codat_exporter_company_up`` 0 and
  ``codat_exporter_poll_errors_total{reason}`` rising), or the listing does
  (``codat_exporter_listing_failing{reason}``) for faults of the listing;
* no traceback and no secret in the log, the scrape or the landing page, and
  no log line forged by the API;
* the process's memory stays bounded;
* once the fault ends, the victim is back within two poll intervals (plus the
  time an in-flight request may still take to end).

Bounded in time (each fault has a window) and loopback only.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hostile_codat import (
    DATA_TYPES,
    FORGED_ID,
    FORGED_LINE,
    HEALTHY_IDS,
    VICTIM_ID,
    HostileCodat,
    expected_timestamps,
    running_hostile_codat,
)
from tests.support.processes import stop_process, wait_until_ready
from tests.support.tools import REPO_ROOT, free_port
from tests.support.waiting import wait_until
from tests.test_cli_serve import exporter_env

pytestmark = pytest.mark.slow

KEY = "sk-fault-suite-0123456789abcdef"
TOKEN = base64.b64encode(KEY.encode()).decode()
INTERVAL = 2.0
"""The exporter's poll interval in this suite (seconds)."""
REQUEST_TIMEOUT = 3.0
"""The exporter's total deadline per request in this suite (seconds)."""
SCRAPE_BOUND = 5.0
"""A scrape must answer within this (generous; a healthy scrape takes milliseconds)."""
RSS_GROWTH_LIMIT = 100 * 1024 * 1024
"""How much the exporter's resident memory may grow during one fault (a 200 MB body must not land)."""
LOG_GROWTH_LIMIT = 256 * 1024
"""How much log one fault window may write (a 1 MB error text repeated must not)."""
DEADLINE = REQUEST_TIMEOUT
"""The deadline in force (``codat.request_timeout``): it ends a trickle."""
TRICKLE_WINDOW = DEADLINE + 25.0
RECOVERY_BOUND = 2 * INTERVAL + DEADLINE + 3.0
"""Two poll intervals after the fault ends, plus an in-flight request's deadline, plus slack."""


@dataclass(frozen=True)
class Case:
    """One fault and how the exporter must show it."""

    fault: str
    reason: str | None
    """``poll_errors_total`` reason the victim's failure counts under; None: the victim stays up."""
    listing_reason: str | None = None
    """For faults of the listing: the ``listing_failing`` reason that must be 1."""
    window: float = 25.0
    """Seconds the fault may take to become visible."""
    target: str = VICTIM_ID
    """The company that must fail."""


CASES = (
    Case("trickle", "connection_error", window=TRICKLE_WINDOW),
    Case("trickle_headers", "connection_error", window=TRICKLE_WINDOW),
    Case("huge_body", "malformed_response"),
    Case("huge_declared", "malformed_response"),
    Case("bad_record", "malformed_response"),
    Case("paging_loop", None, listing_reason="malformed_response"),
    Case("server_error", "server_error"),
    Case("reset", "connection_error"),
    Case("malformed_json", "malformed_response"),
    Case("deep_json", "malformed_response"),
    Case("wrong_types", "malformed_response"),
    Case("unknown_status", None),
    Case("forbidden", "forbidden"),
    Case("not_found", "not_found"),
    Case("hang", "connection_error"),
    Case("redirect", "api_error"),
    Case("overflow_date", "malformed_response"),
    Case("future_date", "malformed_response"),
    Case("many_data_types", "malformed_response"),
    Case("forged_log_lines", "server_error"),
    Case("forged_company_id", "not_found", target=FORGED_ID),
    Case("flood_error_text", "server_error"),
    Case("secret_echo", "bad_request"),
    Case("lone_surrogates", None),
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Running:
    """The exporter process under test and its hostile Codat."""

    proc: subprocess.Popen[bytes]
    url: str
    hostile: HostileCodat
    log_path: Path


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("faults")
    codat = {
        "connect_timeout": "1s",
        "read_timeout": "2s",
        "max_retries": 1,
        "retry_max_elapsed": "2s",
        "request_timeout": f"{REQUEST_TIMEOUT:g}s",
    }
    config = tmp / "config.yaml"
    lines = ["codat:", *(f"  {k}: {v}" for k, v in codat.items())]
    lines += ["polling:", f"  interval: {INTERVAL:g}s", f"  full_sweep_interval: {INTERVAL:g}s"]
    lines += ["logging:", "  level: info"]
    config.write_text("\n".join(lines) + "\n")
    log_path = tmp / "exporter.log"
    port = free_port()
    listen = ["--web.listen-address", f"127.0.0.1:{port}"]
    with running_hostile_codat(KEY) as hostile, log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--config", str(config), *listen],
            env=exporter_env(CODAT_API_KEY=KEY, CODAT_BASE_URL=hostile.url),
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(
                proc, f"{url}/readyz", name="exporter", log_path=log_path, timeout=60, interval=0.2
            )
            yield Running(proc, url, hostile, log_path)
        finally:
            stop_process(proc)


# --- reading the exporter -------------------------------------------------------------------------


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=SCRAPE_BOUND) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def scrape(run: Running) -> tuple[Samples, str]:
    """Scrape /metrics (it must answer 200 within ``SCRAPE_BOUND``); the samples and the raw text."""
    started = time.monotonic()
    status, body = _get(f"{run.url}/metrics")
    took = time.monotonic() - started
    assert status == 200, f"/metrics answered {status}"
    assert took < SCRAPE_BOUND, f"a scrape took {took:.1f}s"
    text = body.decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, text


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))


def company_up(samples: Samples, company_id: str) -> float | None:
    """``codat_exporter_company_up`` of one company."""
    return value(samples, "codat_exporter_company_up", company_id=company_id)


def poll_errors(samples: Samples, reason: str) -> float:
    """``codat_exporter_poll_errors_total`` for one reason (0 when absent)."""
    return value(samples, "codat_exporter_poll_errors_total", reason=reason) or 0.0


def sync_values(samples: Samples, company_ids: tuple[str, ...]) -> dict[tuple[str, str], float | None]:
    """The exported ``lastSuccessfulSync`` of each (company, data type) asked for."""
    return {
        (company_id, data_type): value(
            samples,
            "codat_data_last_successful_sync_timestamp_seconds",
            company_id=company_id,
            data_type=data_type,
        )
        for company_id in company_ids
        for data_type in DATA_TYPES
    }


def assert_healthy_exact(samples: Samples) -> None:
    """Every healthy company is up with exactly its fixed values."""
    expected = expected_timestamps()
    for (company_id, data_type), seen in sync_values(samples, HEALTHY_IDS).items():
        assert seen == expected[(company_id, data_type)], f"{company_id}/{data_type} shows {seen}"
    for company_id in HEALTHY_IDS:
        assert company_up(samples, company_id) == 1, f"healthy company {company_id} is not up"


def victim_recovered(samples: Samples) -> bool:
    """The victim is up with exactly its fixed values, and the listing works."""
    expected = expected_timestamps()
    exact = all(seen == expected[key] for key, seen in sync_values(samples, (VICTIM_ID,)).items())
    listing = value(samples, "codat_exporter_listing_up")
    return company_up(samples, VICTIM_ID) == 1 and exact and listing in (None, 1.0)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def new_log(run: Running, offset: int) -> str:
    """What the exporter logged since ``offset`` bytes."""
    with run.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", "replace")


def assert_clean_outputs(run: Running, log_text: str, metrics_text: str) -> None:
    """No traceback, secret or forged line in the log; no secret in the scrape or the landing page."""
    assert "Traceback" not in log_text, log_text[-3000:]
    for secret in (KEY, TOKEN):
        assert secret not in log_text
        assert secret not in metrics_text
    forged = [line for line in log_text.splitlines() if line.startswith(FORGED_LINE[:30])]
    assert not forged, f"a log line was forged by the API: {forged[0]!r}"
    status, landing = _get(f"{run.url}/")
    assert status == 200, f"the landing page answered {status}"
    for secret in (KEY, TOKEN):
        assert secret.encode() not in landing


# --- the suite ------------------------------------------------------------------------------------


def _wait_baseline(run: Running) -> Samples:
    """Wait until every company, the victim included, is up with exact values."""
    latest: list[Samples] = []

    def healthy() -> bool:
        samples, _ = scrape(run)
        latest[:] = [samples]
        return victim_recovered(samples) and all(company_up(samples, c) == 1 for c in HEALTHY_IDS)

    wait_until(healthy, "every company up with exact values before the fault", timeout=60, interval=0.2)
    return latest[0]


def _fault_visible(
    case: Case, samples: Samples, before: Samples, run: Running, reads: tuple[int, int]
) -> bool:
    victim_reads, healthy_reads = reads
    if case.listing_reason is not None:
        return value(samples, "codat_exporter_listing_failing", reason=case.listing_reason) == 1
    if run.hostile.count("healthy") - healthy_reads < 2 * len(HEALTHY_IDS):
        # Two more rounds of the healthy companies' reads, while the victim misbehaves.
        return False
    if case.reason is None:
        # A fault the exporter must absorb: the victim was read under it at least twice.
        return run.hostile.count("victim") - victim_reads >= 2
    return company_up(samples, case.target) == 0 and poll_errors(samples, case.reason) > poll_errors(
        before, case.reason
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.fault)
def test_a_fault_fails_only_the_victim_visibly_and_recovery_is_quick(exporter: Running, case: Case) -> None:
    run, hostile = exporter, exporter.hostile
    hostile.fault = None
    before = _wait_baseline(run)
    log_offset = run.log_path.stat().st_size
    rss_before = rss_bytes(run.proc.pid)
    peak_rss = rss_before
    reads = (hostile.count("victim"), hostile.count("healthy"))
    started = time.monotonic()
    listings_before = hostile.count("companies")
    hostile.fault = case.fault
    while True:
        samples, text = scrape(run)
        assert_healthy_exact(samples)
        peak_rss = max(peak_rss, rss_bytes(run.proc.pid))
        if _fault_visible(case, samples, before, run, reads):
            break
        assert run.proc.poll() is None, "the exporter exited"
        assert time.monotonic() - started < case.window, (
            f"{case.fault}: not visible within {case.window}s; victim up="
            f"{company_up(samples, VICTIM_ID)}, errors={poll_errors(samples, case.reason or 'x')}, "
            f"healthy reads={hostile.count('healthy') - reads[1]}"
        )
        time.sleep(0.2)  # the pace of the polling loop above, not synchronisation
    if case.reason is None and case.listing_reason is None:
        assert company_up(samples, VICTIM_ID) == 1, f"{case.fault} must not fail the victim"
    if case.fault == "paging_loop":
        elapsed = time.monotonic() - started
        listings = hostile.count("companies") - listings_before
        assert listings <= 2 * (elapsed / INTERVAL + 2), f"{listings} listing requests in {elapsed:.0f}s"
    log_text = new_log(run, log_offset)
    assert len(log_text.encode()) < LOG_GROWTH_LIMIT, f"{len(log_text)} bytes of log in one fault window"
    assert_clean_outputs(run, log_text, text)
    assert peak_rss - rss_before < RSS_GROWTH_LIMIT, f"RSS grew by {(peak_rss - rss_before) >> 20} MiB"

    hostile.fault = None
    cleared = time.monotonic()
    latest: list[Samples] = []

    def recovered() -> bool:
        samples, _ = scrape(run)
        latest[:] = [samples]
        return victim_recovered(samples)

    wait_until(recovered, f"the victim's recovery after {case.fault}", timeout=RECOVERY_BOUND, interval=0.2)
    assert_healthy_exact(latest[0])
    assert time.monotonic() - cleared <= RECOVERY_BOUND


def test_a_rate_limit_storm_pauses_polling_for_retry_after(exporter: Running) -> None:
    run, hostile = exporter, exporter.hostile
    hostile.fault = None
    _wait_baseline(run)
    hostile.retry_after = 3
    hostile.fault = "rate_limit_storm"
    first = hostile.count()
    wait_until(lambda: hostile.count() > first, "the first request of the storm", timeout=RECOVERY_BOUND)
    storm_started = time.monotonic()
    storm = 9.0
    while time.monotonic() - storm_started < storm:
        samples, text = scrape(run)
        assert_healthy_exact(samples)
        time.sleep(0.2)  # the pace of the scrape loop, not synchronisation
    during = hostile.requests_since(storm_started)
    # At most one request per Retry-After, plus one in flight as the storm began and one of slack.
    bound = int(storm / hostile.retry_after) + 2
    assert during <= bound, (
        f"{during} requests in a {storm:g}s 429 storm with Retry-After {hostile.retry_after}"
    )
    assert (
        value(samples, "codat_exporter_listing_failing", reason="rate_limited") == 1
        or poll_errors(samples, "rate_limited") > 0
    )
    assert_clean_outputs(run, new_log(run, 0), text)
    hostile.fault = None
    wait_until(
        lambda: victim_recovered(scrape(run)[0]),
        "recovery after the storm",
        timeout=RECOVERY_BOUND + hostile.retry_after,
        interval=0.2,
    )
