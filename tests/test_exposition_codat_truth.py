"""The per-company families of what Codat knows beyond dataStatus (issue 12): rendered from a snapshot."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from exporter.codat.models import Connection, DataConnectionError
from exporter.collector.snapshot import CompanySnapshot
from exporter.exposition.cache import ExpositionCache
from exporter.exposition.families import (
    CONNECTION_ACTIVE_ERRORS,
    DATA_SYNC_SCHEDULE,
    PULL_OPERATION_OLDEST_OPEN,
)
from tests.support.snapshots import T0, company, snapshot

NOW = T0.timestamp()


def _series(mode: str, *connections: Connection) -> dict[tuple[tuple[str, str], ...], float]:
    cache = ExpositionCache(mode)
    cache.update(snapshot(company("c1", {"invoices": ("Complete", T0)}, connections=connections)))
    body = cache.body(False, False, NOW).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == CONNECTION_ACTIVE_ERRORS.name
    }


ACTIVE = DataConnectionError("503", "Service Unavailable", "The platform failed.", T0, "Active")
RESOLVED = DataConnectionError("429", None, None, T0 - timedelta(hours=2), "Resolved", T0)
NOT_TRANSIENT = DataConnectionError("400", None, "Bad request", T0, None)


def test_active_errors_are_counted_per_connection_and_resolved_ones_are_not() -> None:
    series = _series(
        "default",
        Connection("k1", "Xero", "Linked", errors=(ACTIVE, RESOLVED, ACTIVE, NOT_TRANSIENT)),
        Connection("k2", "Plaid", "Linked", errors=(RESOLVED,)),
        Connection("k3", "Sage", "Linked"),
    )
    assert series == {
        (("company_id", "c1"), ("connection_id", "k1")): 2,
        (("company_id", "c1"), ("connection_id", "k2")): 0,
        (("company_id", "c1"), ("connection_id", "k3")): 0,
    }


def test_sparse_mode_keeps_only_connections_with_an_active_error() -> None:
    series = _series(
        "sparse",
        Connection("k1", "Xero", "Linked", errors=(ACTIVE,)),
        Connection("k2", "Plaid", "Linked", errors=(RESOLVED,)),
    )
    assert series == {(("company_id", "c1"), ("connection_id", "k1")): 1}


def test_the_error_message_never_becomes_a_label() -> None:
    cache = ExpositionCache("default")
    connection = Connection("k1", "Xero", "Linked", errors=(ACTIVE,))
    cache.update(snapshot(company("c1", {"invoices": ("Complete", T0)}, connections=(connection,))))
    assert b"The platform failed." not in cache.body(False, False, NOW)


def _family(
    name: str, cs: CompanySnapshot, mode: str = "default"
) -> dict[tuple[tuple[str, str], ...], float]:
    cache = ExpositionCache(mode)
    cache.update(snapshot(cs))
    body = cache.body(False, False, NOW).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == name
    }


def test_sync_schedules_are_exported_for_reported_pairs_only() -> None:
    cs = replace(
        company("c1", {"invoices": ("Complete", T0), "bills": ("Complete", T0)}),
        sync_schedules={"invoices": 3600.0, "bills": 604800.0, "filteredOut": 86400.0},
    )
    assert _family(DATA_SYNC_SCHEDULE.name, cs) == {
        (("company_id", "c1"), ("data_type", "bills")): 604800.0,
        (("company_id", "c1"), ("data_type", "invoices")): 3600.0,
    }


def test_no_schedule_means_no_series() -> None:
    cs = company("c1", {"invoices": ("Complete", T0)})
    assert _family(DATA_SYNC_SCHEDULE.name, cs) == {}


def test_the_oldest_open_operation_is_exported_as_a_timestamp() -> None:
    requested = T0 - timedelta(hours=5)
    cs = replace(
        company("c1", {"invoices": ("Fetching", T0 - timedelta(days=1))}, in_progress={"invoices": 1}),
        oldest_open_requested={"invoices": requested},
    )
    assert _family(PULL_OPERATION_OLDEST_OPEN.name, cs) == {
        (("company_id", "c1"), ("data_type", "invoices")): requested.timestamp()
    }
    assert _family(PULL_OPERATION_OLDEST_OPEN.name, company("c1", {"invoices": ("Complete", T0)})) == {}
