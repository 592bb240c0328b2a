"""Every Codat client operation and error path against the simulator, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.errors import (
    BadRequestError,
    CodatConnectionError,
    DatasetAlreadyInProgressError,
    ForbiddenError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
)
from exporter.codat.models import RateLimitInfo
from exporter.codat.query import history_query
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.conftest import RunningSimulator


@dataclass
class RecordingObserver:
    """Collects what the client reports (a real observer, not a mock: it only records)."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    rate_limits: list[RateLimitInfo] = field(default_factory=list)

    def on_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        assert duration_seconds >= 0
        self.requests.append((endpoint, code))

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        self.rate_limits.append(info)


@dataclass
class Harness:
    """A client wired to the running simulator, with a recorded sleep and observer."""

    running: RunningSimulator
    client: CodatClient
    observer: RecordingObserver
    slept: list[float]

    @property
    def acme(self) -> str:
        return self.running.sim.company_id_by_name("Acme Trading Ltd")


def _make(running: RunningSimulator, api_key: str = "demo", **kwargs: object) -> Harness:
    observer = RecordingObserver()
    slept: list[float] = []
    options: dict[str, object] = {"observer": observer, "sleep": slept.append, "jitter": lambda: 0.0}
    options.update(kwargs)
    client = CodatClient(api_key, running.url, **options)  # type: ignore[arg-type]
    return Harness(running, client, observer, slept)


@pytest.fixture
def codat(simulator: RunningSimulator) -> Iterator[Harness]:
    harness = _make(simulator)
    try:
        yield harness
    finally:
        harness.client.close()


# --- operations -----------------------------------------------------------------------------------


def test_lists_companies_with_their_connections(codat: Harness) -> None:
    page = codat.client.list_companies()
    sim = codat.running.sim
    assert page.total_results == len(sim.company_ids)
    assert [c.id for c in page.results] == sim.company_ids
    acme = next(c for c in page.results if c.name == "Acme Trading Ltd")
    assert acme.platform == "Xero"
    assert acme.connections[0].status == "Linked"


def test_iterating_companies_reads_each_page_once_and_yields_each_company_once(codat: Harness) -> None:
    sim = codat.running.sim
    sim.reset_request_log()
    seen_pages: list[int] = []
    ids = [
        c.id
        for c in codat.client.iter_companies(page_size=3, on_page=lambda p: seen_pages.append(p.page_number))
    ]
    assert ids == sim.company_ids
    expected_pages = -(-len(ids) // 3)
    assert seen_pages == list(range(1, expected_pages + 1))
    assert sim.count_requests("companies") == expected_pages


def test_companies_filtered_by_query_and_tags(codat: Harness) -> None:
    sim = codat.running.sim
    linked = codat.client.list_companies(query="dataConnections.status=Linked")
    for company in linked.results:
        assert any(c.status == "Linked" for c in company.connections)
    assert linked.total_results < len(sim.company_ids)
    some_tag = next(iter(sim.company(sim.company_ids[0])["tags"].items()), None)
    if some_tag is not None:
        key, value = some_tag
        tagged = codat.client.list_companies(tags=f"{key}={value}")
        assert {c.id for c in tagged.results} == set(sim.companies_with_tag(key, value))


def test_data_status_has_every_data_type(codat: Harness) -> None:
    statuses = codat.client.get_data_status(codat.acme)
    assert set(statuses) == set(codat.running.sim.data_status(codat.acme))
    invoices = statuses["invoices"]
    assert invoices.current_status == "Complete"
    assert invoices.last_successful_sync is not None
    assert invoices.latest_successful_sync_id == invoices.latest_sync_id


def test_never_synced_company_has_no_current_status(codat: Harness) -> None:
    granite = codat.running.sim.company_id_by_name("Granite Builders")
    statuses = codat.client.get_data_status(granite)
    assert statuses
    assert all(s.current_status is None and s.last_successful_sync is None for s in statuses.values())


def test_data_status_for_one_type(codat: Harness) -> None:
    status = codat.client.get_data_status_for_type(codat.acme, "bills")
    assert status.data_type == "bills"
    with pytest.raises(NotFoundError, match="not in the company's data status") as caught:
        codat.client.get_data_status_for_type(codat.acme, "spaceships")
    assert caught.value.company_id == codat.acme


def test_unknown_status_values_come_through_as_strings(codat: Harness) -> None:
    codat.running.sim.set_status(codat.acme, "invoices", "Teleporting")
    assert codat.client.get_data_status_for_type(codat.acme, "invoices").current_status == "Teleporting"


def test_history_walks_every_page_once_in_order(codat: Harness) -> None:
    sim = codat.running.sim
    expected = [op["id"] for op in sim.operations(codat.acme)]
    sim.reset_request_log()
    ids = [op.id for op in codat.client.iter_pull_operations(codat.acme, page_size=7, order_by="requested")]
    assert sorted(ids) == sorted(expected)
    assert len(ids) == len(set(ids))
    assert sim.count_requests("history") == -(-len(expected) // 7)


def test_history_page_reports_paging(codat: Harness) -> None:
    page = codat.client.list_pull_operations(codat.acme, page=2, page_size=5)
    assert (page.page_number, page.page_size) == (2, 5)
    assert page.total_results == len(codat.running.sim.operations(codat.acme))
    assert len(page.results) == 5
    assert page.has_next


def test_history_query_with_every_operator_is_applied_by_the_server(codat: Harness) -> None:
    query = "{status=Complete||status=FetchError}&&dataType!=bills&&requested>=2020-01-01"
    ops = list(codat.client.iter_pull_operations(codat.acme, query=query, page_size=50))
    everything = codat.running.sim.operations(codat.acme)
    expected = [
        op["id"]
        for op in everything
        if op["status"] in ("Complete", "FetchError") and op["dataType"] != "bills"
    ]
    assert sorted(op.id for op in ops) == sorted(expected)
    assert expected


def test_history_query_helper_finds_failed_syncs(codat: Harness) -> None:
    evergreen = codat.running.sim.company_id_by_name("Evergreen Logistics")
    query = history_query(status_not=["Complete", "NotSupported"])
    ops = list(codat.client.iter_pull_operations(evergreen, query=query))
    assert ops
    assert all(op.status not in ("Complete", "NotSupported") for op in ops)


def test_malformed_query_is_a_bad_request(codat: Harness) -> None:
    with pytest.raises(BadRequestError, match="Error parsing query") as caught:
        codat.client.list_pull_operations(codat.acme, query="isCompleted=true")
    assert caught.value.status_code == 400
    assert codat.slept == []


def test_one_pull_operation_by_dataset_id(codat: Harness) -> None:
    first = codat.client.list_pull_operations(codat.acme, page_size=1).results[0]
    again = codat.client.get_pull_operation(codat.acme, first.id)
    assert again == first


def test_unknown_dataset_is_not_found(codat: Harness) -> None:
    with pytest.raises(NotFoundError) as caught:
        codat.client.get_pull_operation(codat.acme, "00000000-0000-0000-0000-000000000000")
    assert caught.value.endpoint == "pullOperation"


def test_refresh_queues_a_sync_and_a_second_refresh_names_the_running_one(codat: Harness) -> None:
    codat.running.sim.complete_syncs_now(codat.acme)
    queued = codat.client.refresh_data_type(codat.acme, "invoices")
    assert queued.data_type == "invoices"
    assert queued.company_id == codat.acme
    assert codat.client.get_pull_operation(codat.acme, queued.id).id == queued.id
    with pytest.raises(DatasetAlreadyInProgressError) as caught:
        codat.client.refresh_data_type(codat.acme, "invoices")
    assert caught.value.dataset_id == queued.id
    assert caught.value.data_type == "invoices"
    assert caught.value.status_code is not None
    assert 400 <= caught.value.status_code < 500


def test_refresh_through_one_connection(codat: Harness) -> None:
    sim = codat.running.sim
    copperfield = sim.company_id_by_name("Copperfield Consulting")
    sim.complete_syncs_now(copperfield)
    connection = codat.client.list_companies().results
    conn_id = next(c for c in connection if c.id == copperfield).connections[0].id
    data_type = next(iter(codat.client.get_data_status(copperfield)))
    op = codat.client.refresh_data_type(copperfield, data_type, connection_id=conn_id)
    assert op.connection_id == conn_id


def test_refresh_all_queues_syncs(codat: Harness) -> None:
    sim = codat.running.sim
    sim.complete_syncs_now(codat.acme)
    assert sim.running_operations(codat.acme) == 0
    codat.client.refresh_all(codat.acme)
    assert sim.running_operations(codat.acme) > 0


# --- errors ---------------------------------------------------------------------------------------


def test_wrong_key_is_unauthorized_and_never_shown(simulator: RunningSimulator) -> None:
    harness = _make(simulator, api_key="wrong-key-123")
    with harness.client as client, pytest.raises(UnauthorizedError) as caught:
        client.list_companies()
    assert "rejected the API key (401 Unauthorized)" in str(caught.value)
    assert "wrong-key-123" not in str(caught.value)
    assert "wrong-key-123" not in repr(harness.client)
    assert harness.slept == []  # a bad key is not retried


def test_forbidden_is_not_retried(codat: Harness) -> None:
    codat.running.sim.faults.set(status_burst=(403, 1))
    with pytest.raises(ForbiddenError):
        codat.client.get_data_status(codat.acme)
    assert codat.observer.requests == [("dataStatus", "403")]


def test_unknown_company_is_not_found_with_codat_details(codat: Harness) -> None:
    with pytest.raises(NotFoundError) as caught:
        codat.client.get_data_status("11111111-2222-3333-4444-555555555555")
    error = caught.value
    assert error.status_code == 404
    assert error.company_id == "11111111-2222-3333-4444-555555555555"
    assert error.endpoint == "dataStatus"
    assert error.correlation_id
    assert error.service


def test_rate_limited_then_success_waits_as_told(codat: Harness) -> None:
    codat.running.sim.faults.set(rate_limit_storm=(2, 3.0))
    statuses = codat.client.get_data_status(codat.acme)
    assert statuses
    assert codat.slept == [3.0, 3.0]
    assert codat.observer.requests == [("dataStatus", "429"), ("dataStatus", "429"), ("dataStatus", "200")]


def test_retry_after_beyond_the_budget_fails_at_once(simulator: RunningSimulator) -> None:
    harness = _make(simulator, retry_max_elapsed=60.0)
    simulator.sim.faults.set(rate_limit_storm=(1, 3600.0))
    with harness.client as client, pytest.raises(RateLimitedError) as caught:
        client.list_companies()
    assert caught.value.retry_after == 3600.0
    assert harness.slept == []
    assert harness.observer.requests == [("companies", "429")]


def test_persistent_rate_limit_gives_up_after_max_retries(simulator: RunningSimulator) -> None:
    harness = _make(simulator, max_retries=2)
    simulator.sim.faults.set(rate_limit_storm=(10, 1.0))
    with harness.client as client, pytest.raises(RateLimitedError) as caught:
        client.list_companies()
    assert caught.value.retry_after == 1.0
    assert harness.slept == [1.0, 1.0]
    assert len(harness.observer.requests) == 3


def test_server_errors_then_success_back_off_exponentially(codat: Harness) -> None:
    codat.running.sim.faults.set(status_burst=(503, 3))
    assert codat.client.list_companies().results
    assert codat.slept == [0.25, 0.5, 1.0]
    assert [code for _, code in codat.observer.requests] == ["503", "503", "503", "200"]


def test_persistent_server_errors_raise_server_error_after_retries(codat: Harness) -> None:
    codat.running.sim.faults.set(status_burst=(500, 100))
    with pytest.raises(ServerError) as caught:
        codat.client.get_data_status(codat.acme)
    assert caught.value.status_code == 500
    assert len(codat.observer.requests) == 5  # 1 + max_retries (4)


def test_refresh_is_not_retried_after_a_server_error(codat: Harness) -> None:
    sim = codat.running.sim
    sim.complete_syncs_now(codat.acme)
    sim.faults.set(status_burst=(503, 1))
    with pytest.raises(ServerError):
        codat.client.refresh_data_type(codat.acme, "invoices")
    assert codat.observer.requests == [("refreshDataType", "503")]
    assert codat.slept == []


def test_refresh_is_retried_when_rate_limited_and_queues_once(codat: Harness) -> None:
    sim = codat.running.sim
    sim.complete_syncs_now(codat.acme)
    sim.faults.set(rate_limit_storm=(1, 2.0))
    op = codat.client.refresh_data_type(codat.acme, "invoices")
    assert codat.slept == [2.0]
    assert sim.running_operations(codat.acme) == 1
    assert codat.client.get_pull_operation(codat.acme, op.id).status != "Complete"


def test_refresh_is_not_retried_after_a_lost_connection(codat: Harness) -> None:
    sim = codat.running.sim
    sim.complete_syncs_now(codat.acme)
    sim.faults.set(connection_reset=1)
    with pytest.raises(CodatConnectionError):
        codat.client.refresh_data_type(codat.acme, "invoices")
    assert codat.observer.requests == [("refreshDataType", "error")]


def test_reads_are_retried_after_a_lost_connection(codat: Harness) -> None:
    codat.running.sim.faults.set(connection_reset=2)
    assert codat.client.get_data_status(codat.acme)
    assert [code for _, code in codat.observer.requests] == ["error", "error", "200"]


def test_malformed_json_names_the_endpoint_and_company(codat: Harness) -> None:
    codat.running.sim.faults.set(malformed_json=1)
    with pytest.raises(MalformedResponseError) as caught:
        codat.client.get_data_status(codat.acme)
    assert caught.value.endpoint == "dataStatus"
    assert caught.value.company_id == codat.acme
    assert codat.acme in str(caught.value)
    assert "not JSON" in str(caught.value)


def test_read_timeout_on_a_refresh_is_not_retried(simulator: RunningSimulator) -> None:
    harness = _make(simulator, read_timeout=0.2)
    simulator.sim.complete_syncs_now()
    simulator.sim.faults.set(latency=1.0)
    acme = harness.acme
    with harness.client as client, pytest.raises(CodatConnectionError, match="read timeout"):
        client.refresh_data_type(acme, "invoices")
    assert harness.observer.requests == [("refreshDataType", "error")]


def test_rate_limit_headers_are_kept_and_reported(codat: Harness) -> None:
    codat.client.list_companies()
    info = codat.client.rate_limit
    assert info is not None
    assert info.limit is not None
    assert info.limit > 0
    assert info.remaining is not None
    assert 0 <= info.remaining <= info.limit
    assert info.reset is not None
    assert codat.observer.rate_limits[-1] == info


def test_remaining_quota_goes_down_with_each_request(codat: Harness) -> None:
    codat.client.list_companies()
    first = codat.client.rate_limit
    codat.client.list_companies()
    second = codat.client.rate_limit
    assert first is not None
    assert second is not None
    assert first.remaining is not None
    assert second.remaining is not None
    assert second.remaining < first.remaining


def test_client_pacing_waits_on_the_fake_clock(simulator: RunningSimulator) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    harness = _make(simulator, requests_per_minute=60.0, sleep=sleep, clock=lambda: now[0])
    with harness.client as client:
        for _ in range(5):
            client.list_companies()
    # 60/min: a burst of 2, then one a second.
    assert now[0] == pytest.approx(3.0)


@pytest.mark.parametrize(("companies", "page_size"), [(250, 10), (250, 1000), (101, 100), (0, 50)])
def test_many_pages_of_a_large_account_yield_every_company_once(
    fake_clock: FakeClock, companies: int, page_size: int
) -> None:
    sim = Simulator(
        Scenario.generated(companies=companies, data_types=3, seed=7), api_key="k", clock=fake_clock
    )
    server = sim.serve(host="127.0.0.1", port=0)
    try:
        with CodatClient("k", server.url, sleep=lambda _s: None) as client:
            ids = [c.id for c in client.iter_companies(page_size=page_size)]
        assert ids == sim.company_ids
        assert sim.count_requests("companies") == max(1, -(-companies // page_size))
    finally:
        server.close()
