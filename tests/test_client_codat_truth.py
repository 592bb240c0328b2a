"""The client's sync-settings and connections operations against the demo simulator, over real sockets,
and the parsers' tolerance of what those endpoints may carry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.errors import MalformedResponseError, NotFoundError
from exporter.codat.parsing import ShapeError, parse_connection_errors, parse_sync_settings
from tests.conftest import RunningSimulator


@pytest.fixture
def client(simulator: RunningSimulator) -> Iterator[CodatClient]:
    codat = CodatClient("demo", simulator.url, sleep=lambda _: None, jitter=lambda: 0.0)
    try:
        yield codat
    finally:
        codat.close()


def test_company_sync_settings_give_each_types_schedule(
    simulator: RunningSimulator, client: CodatClient
) -> None:
    weekly = client.get_company_sync_settings(simulator.sim.company_id_by_name("Kestrel Farms"))
    assert weekly.company_id == simulator.sim.company_id_by_name("Kestrel Farms")
    assert weekly.overrides_defaults is True
    assert set(weekly.schedules().values()) == {168 * 3600.0}
    hourly = client.get_company_sync_settings(simulator.sim.company_id_by_name("Juniper Analytics"))
    assert set(hourly.schedules().values()) == {3600.0}
    stale = client.get_company_sync_settings(simulator.sim.company_id_by_name("Driftwood Outfitters"))
    # No automatic syncs: syncSchedule 0, so no schedule to judge freshness by.
    assert stale.schedules() == {}
    assert all(s.fetch_on_first_link for s in stale.settings)


def test_profile_sync_settings_are_the_defaults(client: CodatClient) -> None:
    profile = client.get_profile_sync_settings()
    assert profile.client_id
    assert len(profile.settings) == 10
    assert set(profile.schedules().values()) == {24 * 3600.0}


def test_unknown_company_sync_settings_is_not_found(client: CodatClient) -> None:
    with pytest.raises(NotFoundError):
        client.get_company_sync_settings("00000000-0000-0000-0000-000000000000")


def test_connections_carry_their_active_errors(simulator: RunningSimulator, client: CodatClient) -> None:
    company = simulator.sim.company_id_by_name("Acme Trading Ltd")
    simulator.sim.complete_syncs_now()
    # Every type fails, so no success on the connection resolves the error meanwhile.
    simulator.sim.force_outcome(company, "FetchError")
    simulator.sim.queue_sync(company, "invoices")
    simulator.clock.advance(30)
    [conn] = list(client.iter_connections(company))
    assert conn.active_errors == 1
    error = next(e for e in conn.errors if e.active)
    assert (error.status, error.status_code, error.resolved_on) == ("Active", "503", None)
    assert error.errored_on is not None
    # The listing embeds the same connections, errors included: no extra request needed.
    listed = next(c for c in client.iter_companies() if c.id == company)
    assert listed.connections[0].active_errors == 1


def test_connections_query_filters(simulator: RunningSimulator, client: CodatClient) -> None:
    company = simulator.sim.company_id_by_name("Copperfield Consulting")
    assert {c.platform_name for c in client.iter_connections(company)} == {"Xero", "Plaid"}
    banking = client.list_connections(company, query="sourceType=Banking")
    assert [c.platform_name for c in banking.results] == ["Plaid"]


def test_odd_connection_errors_are_skipped_not_fatal() -> None:
    errors = parse_connection_errors(
        [
            "not an object",
            {"statusCode": 429, "status": "Active", "erroredOnUtc": "yesterday"},
            {"statusCode": True, "status": None, "resolvedOnUtc": "2026-01-05T09:00:00Z"},
        ]
    )
    assert [(e.status_code, e.status, e.errored_on) for e in errors] == [
        ("429", "Active", None),
        (None, None, None),
    ]
    assert errors[1].resolved_on is not None
    assert parse_connection_errors(None) == ()


@pytest.mark.parametrize(
    "body",
    [
        {"settings": [{"dataType": "invoices", "syncSchedule": 1.5}]},
        {"settings": [{"dataType": "invoices", "syncSchedule": -1}]},
        {"settings": [{"syncSchedule": 24}]},
        {"settings": "daily"},
    ],
)
def test_malformed_sync_settings_are_refused(body: object) -> None:
    with pytest.raises(ShapeError):
        parse_sync_settings(body)


def test_a_malformed_sync_settings_answer_is_a_clear_error(
    simulator: RunningSimulator, client: CodatClient
) -> None:
    simulator.sim.faults.set(malformed_json=1)
    with pytest.raises(MalformedResponseError):
        client.get_profile_sync_settings()
