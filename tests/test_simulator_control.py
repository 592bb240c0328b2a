"""The simulator's run-time control API: each incident injected and cleared over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.codat.auth import authorization_header
from exporter.simulator import FakeClock, Scenario, Simulator, SimulatorServer
from exporter.simulator.control import INCIDENTS, is_loopback

AUTH = {"Authorization": authorization_header("demo")}


class Rig:
    """A demo simulator served with the control API on a fake clock."""

    def __init__(self, sim: Simulator, server: SimulatorServer, clock: FakeClock) -> None:
        self.sim = sim
        self.server = server
        self.clock = clock

    def control(self, action: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.post(f"{self.server.url}/_control/{action}", json=body, timeout=10)

    def api(self, method: str, path: str) -> requests.Response:
        return requests.request(method, self.server.url + path, headers=AUTH, timeout=10)


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock()
    sim = Simulator(Scenario.demo(seed=1), api_key="demo", clock=clock)
    server = sim.serve(control=True)
    try:
        yield Rig(sim, server, clock)
    finally:
        server.close()


def test_control_is_off_by_default(simulator: Any) -> None:
    answer = requests.post(f"{simulator.url}/_control/revoke-key", timeout=10)
    # Without the control API the path is just an unknown, unauthenticated API path.
    assert answer.status_code == 401
    assert requests.get(simulator.url + "/companies", headers=AUTH, timeout=10).status_code == 200


def test_only_loopback_peers_may_use_it() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.7")
    assert not is_loopback("::ffff:192.168.1.2")
    assert not is_loopback("not-an-address")


def test_listing_names_every_incident(rig: Rig) -> None:
    body = requests.get(f"{rig.server.url}/_control", timeout=10).json()
    assert set(body["actions"]) == set(INCIDENTS)
    assert body["incidents"]["key_revoked"] is False


def test_revoke_key_answers_401_until_cleared(rig: Rig) -> None:
    assert rig.control("revoke-key").status_code == 200
    assert rig.api("GET", "/companies").status_code == 401
    assert rig.control("revoke-key/clear").status_code == 200
    assert rig.api("GET", "/companies").status_code == 200


def test_forbid_answers_403_for_one_company_only(rig: Rig) -> None:
    target, other = rig.sim.company_ids[:2]
    assert rig.control("forbid", {"company_id": target}).status_code == 200
    assert rig.api("GET", f"/companies/{target}/dataStatus").status_code == 403
    assert rig.api("GET", f"/companies/{other}/dataStatus").status_code == 200
    assert rig.api("GET", "/companies").status_code == 200
    rig.control("forbid/clear", {"company_id": target})
    assert rig.api("GET", f"/companies/{target}/dataStatus").status_code == 200


def test_quota_spend_leaves_five_percent(rig: Rig) -> None:
    rig.control("quota", {"fraction": 0.95})
    answer = rig.api("GET", "/companies")
    limit = int(answer.headers["X-Rate-Limit-Limit"])
    remaining = int(answer.headers["X-Rate-Limit-Remaining"])
    assert remaining == limit - round(0.95 * limit) - 1
    rig.control("quota/clear")
    answer = rig.api("GET", "/companies")
    assert int(answer.headers["X-Rate-Limit-Remaining"]) == limit - 1


def test_rate_limit_storm_answers_429_until_cleared(rig: Rig) -> None:
    rig.control("rate-limit-storm", {"retry_after": 7})
    for _ in range(3):
        answer = rig.api("GET", "/companies")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "7"
    rig.control("rate-limit-storm/clear")
    assert rig.api("GET", "/companies").status_code == 200


def test_refused_refreshes_and_clear(rig: Rig) -> None:
    company = rig.sim.company_id_by_name("Acme Trading Ltd")
    rig.sim.complete_syncs_now()
    rig.control("refuse-refresh", {"status": 500})
    assert rig.api("POST", f"/companies/{company}/data/queue/invoices").status_code == 500
    assert rig.api("POST", f"/companies/{company}/data/all").status_code == 500
    rig.control("refuse-refresh/clear")
    assert rig.api("POST", f"/companies/{company}/data/queue/invoices").status_code == 200


def test_stopped_schedule_queues_nothing_until_resumed(rig: Rig) -> None:
    company = rig.sim.company_id_by_name("Acme Trading Ltd")
    rig.sim.complete_syncs_now()
    rig.control("schedule", {"company_id": company, "data_type": "invoices"})
    before = rig.sim.completed_operations(company, "invoices")
    rig.clock.advance(600)  # more than ten 45-second schedule periods
    assert rig.sim.completed_operations(company, "invoices") == before
    assert rig.sim.completed_operations(company, "bills") > 0
    rig.control("schedule/clear", {"company_id": company, "data_type": "invoices"})
    rig.clock.advance(600)
    assert rig.sim.completed_operations(company, "invoices") > before


def test_forced_outcome_makes_every_new_sync_fail(rig: Rig) -> None:
    company = rig.sim.company_id_by_name("Acme Trading Ltd")
    rig.sim.complete_syncs_now()
    complete = rig.sim.completed_operations(company, "bills", "Complete")
    rig.control("outcome", {"company_id": company, "data_type": "bills", "status": "MapError"})
    rig.clock.advance(600)
    assert rig.sim.completed_operations(company, "bills", "MapError") >= 5
    assert rig.sim.completed_operations(company, "bills", "Complete") == complete
    rig.control("outcome/clear", {"company_id": company})
    rig.clock.advance(600)
    assert rig.sim.completed_operations(company, "bills", "Complete") > complete


def test_deauthorized_connection_fails_syncs_and_clear_relinks(rig: Rig) -> None:
    company = rig.sim.company_id_by_name("Acme Trading Ltd")
    rig.control("connection", {"company_id": company})
    [conn] = rig.api("GET", f"/companies/{company}/connections").json()["results"]
    assert conn["status"] == "Deauthorized"
    rig.sim.complete_syncs_now()
    rig.clock.advance(300)
    assert rig.sim.completed_operations(company, status="AuthError") > 0
    rig.control("connection", {"company_id": company, "status": "Unlinked"})
    assert rig.api("GET", f"/companies/{company}").json()["dataConnections"][0]["status"] == "Unlinked"
    rig.control("connection/clear", {"company_id": company})
    assert rig.api("GET", f"/companies/{company}").json()["dataConnections"][0]["status"] == "Linked"


def test_deleted_company_answers_404_and_comes_back(rig: Rig) -> None:
    company = rig.sim.company_ids[0]
    total = rig.api("GET", "/companies").json()["totalResults"]
    rig.control("company", {"company_id": company})
    assert rig.api("GET", f"/companies/{company}").status_code == 404
    assert rig.api("GET", "/companies").json()["totalResults"] == total - 1
    rig.control("company/clear", {"company_id": company})
    assert rig.api("GET", f"/companies/{company}").status_code == 200


def test_clear_lifts_everything(rig: Rig) -> None:
    company = rig.sim.company_ids[0]
    for action, body in (
        ("revoke-key", None),
        ("forbid", {"company_id": company}),
        ("rate-limit-storm", None),
        ("refuse-refresh", None),
        ("schedule", {"company_id": company}),
        ("outcome", {"company_id": company, "status": "FetchError"}),
    ):
        assert rig.control(action, body).status_code == 200, action
    state = rig.control("clear").json()["incidents"]
    assert state["key_revoked"] is False
    assert state["forbidden"] == []
    assert state["rate_limit_storm"] == 0
    assert state["refused_refreshes"] == {}
    assert state["schedule_stopped"] == []
    assert state["forced_outcomes"] == []
    assert rig.api("GET", f"/companies/{company}/dataStatus").status_code == 200


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("nonsense", None, 404),
        ("forbid", None, 400),
        ("outcome", {"company_id": "x", "status": "Complete"}, 400),
        ("forbid", {"company_id": "no-such-company"}, 404),
        ("quota", {"fraction": 2}, 400),
        ("connection", {"company_id": "x", "status": "Sideways"}, 400),
    ],
)
def test_bad_control_requests_get_a_clear_error(
    rig: Rig, action: str, body: dict[str, Any] | None, status: int
) -> None:
    answer = rig.control(action, body)
    assert answer.status_code == status
    assert answer.json()["error"]


def test_a_body_that_is_not_an_object_is_refused(rig: Rig) -> None:
    answer = requests.post(f"{rig.server.url}/_control/revoke-key", data=b"[1]", timeout=10)
    assert answer.status_code == 400
    assert rig.sim.key_revoked is False


def test_control_requests_are_not_api_requests(rig: Rig) -> None:
    rig.sim.reset_request_log()
    rig.control("revoke-key")
    rig.control("revoke-key/clear")
    assert rig.sim.count_requests() == 0
