"""Fault knobs and rate limiting, seen from a real HTTP client."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
import requests

from tests.conftest import RunningSimulator

AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo").decode()}


def get(sim: RunningSimulator, path: str = "/companies", timeout: float = 10) -> requests.Response:
    return requests.get(sim.url + path, headers=AUTH, timeout=timeout)


def test_rate_limit_headers_on_every_response(simulator: RunningSimulator) -> None:
    first = get(simulator)
    second = get(simulator)
    for response in (first, second):
        assert response.headers["X-Rate-Limit-Limit"] == "1000000"
        reset = parsedate_to_datetime(response.headers["X-Rate-Limit-Reset"])
        assert reset == datetime(2026, 1, 6, tzinfo=UTC)
    assert int(first.headers["X-Rate-Limit-Remaining"]) - 1 == int(second.headers["X-Rate-Limit-Remaining"])
    not_found = get(simulator, "/companies/nope/dataStatus")
    assert not_found.status_code == 404
    assert "X-Rate-Limit-Remaining" in not_found.headers


def test_daily_quota_exhaustion_gives_429_until_midnight_utc(simulator: RunningSimulator) -> None:
    simulator.sim.set_rate_limit(daily_quota=3)
    assert [get(simulator).status_code for _ in range(3)] == [200, 200, 200]
    limited = get(simulator)
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    # 09:00 → midnight is 15 hours.
    assert int(limited.headers["Retry-After"]) == 15 * 3600
    body = limited.json()
    assert body["statusCode"] == 429
    assert body["error"] == "You have made too many requests in a given amount of time; please retry later."
    simulator.clock.set(datetime(2026, 1, 6, 0, 0, tzinfo=UTC))
    fresh = get(simulator)
    assert fresh.status_code == 200
    assert fresh.headers["X-Rate-Limit-Remaining"] == "2"
    assert parsedate_to_datetime(fresh.headers["X-Rate-Limit-Reset"]) == datetime(2026, 1, 7, tzinfo=UTC)


def test_per_minute_limit_gives_429_until_the_next_minute(simulator: RunningSimulator) -> None:
    simulator.sim.set_rate_limit(per_minute=2)
    simulator.clock.advance(15)
    assert [get(simulator).status_code for _ in range(3)] == [200, 200, 429]
    assert int(get(simulator).headers["Retry-After"]) == 45
    simulator.clock.advance(45)
    assert get(simulator).status_code == 200


def test_status_burst_answers_the_next_n_requests_with_the_code(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(status_burst=(503, 2))
    codes = [get(simulator).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    simulator.sim.faults.set(status_burst=(500, 1))
    failed = get(simulator)
    assert failed.json()["statusCode"] == 500
    assert "correlationId" in failed.json()


def test_rate_limit_storm_sends_429_with_retry_after(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(rate_limit_storm=(2, 7.0))
    storm = [get(simulator) for _ in range(3)]
    assert [r.status_code for r in storm] == [429, 429, 200]
    assert storm[0].headers["Retry-After"] == "7"
    assert storm[0].json()["statusCode"] == 429


def test_error_rate_one_fails_every_request_and_zero_none(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(error_rate=1.0, error_status=502)
    assert {get(simulator).status_code for _ in range(3)} == {502}
    simulator.sim.faults.set(error_rate=0.0)
    assert {get(simulator).status_code for _ in range(3)} == {200}


def test_error_rate_half_fails_some_requests(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(error_rate=0.5)
    codes = [get(simulator).status_code for _ in range(40)]
    assert 0 < codes.count(500) < 40
    assert codes.count(500) + codes.count(200) == 40


def test_malformed_json_is_a_200_that_does_not_parse(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(malformed_json=1)
    response = get(simulator)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert get(simulator).json()["totalResults"] == len(simulator.sim.company_ids)


def test_connection_reset_closes_without_a_response(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(connection_reset=True)
    with pytest.raises(requests.ConnectionError):
        get(simulator)
    simulator.sim.faults.clear()
    assert get(simulator).status_code == 200


def test_latency_delays_the_answer_past_a_client_timeout(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(latency=1.0)
    with pytest.raises(requests.Timeout):
        get(simulator, timeout=0.2)
    simulator.sim.faults.set(latency=0.0)
    assert get(simulator).status_code == 200


def test_company_faults_affect_only_that_company(simulator: RunningSimulator) -> None:
    bad, good = simulator.sim.company_ids[:2]
    simulator.sim.faults.set(company_id=bad, status_burst=(503, 5))
    assert get(simulator, f"/companies/{bad}/dataStatus").status_code == 503
    assert get(simulator, f"/companies/{good}/dataStatus").status_code == 200
    assert get(simulator).status_code == 200
    simulator.sim.faults.clear()
    assert get(simulator, f"/companies/{bad}/dataStatus").status_code == 200


def test_faulted_requests_are_still_logged(simulator: RunningSimulator) -> None:
    simulator.sim.reset_request_log()
    simulator.sim.faults.set(status_burst=(503, 1))
    get(simulator)
    get(simulator)
    assert simulator.sim.count_requests("companies") == 2


def test_real_time_clock_moves_syncs_without_a_test_advancing_it() -> None:
    from exporter.simulator import Scenario, Simulator, SystemClock

    sim = Simulator(Scenario.demo(seed=1), clock=SystemClock(speed=600))
    server = sim.serve()
    try:
        deadline = time.monotonic() + 10
        while sim.completed_operations() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for a condition with a deadline
        assert sim.completed_operations() > 0
    finally:
        server.close()
