"""A ``read.completed`` poll reads the history of only the data types the event names, and the
client-wide sync settings fill in what a company's own settings leave out: the scheduler against
the simulator over real sockets, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.errors import BadRequestError
from exporter.codat.models import Page, PullOperation, SyncSetting, SyncSettings
from exporter.collector.companies import RELIST_REASON
from exporter.collector.poll import effective_schedules
from exporter.collector.scheduler import Scheduler
from exporter.collector.settings import collector_settings
from exporter.config.schema import Config
from exporter.exposition.selfmetrics import Telemetry
from exporter.simulator import FakeClock, Scenario, Simulator

SCENARIO: dict[str, Any] = {
    "name": "webhook-focus",
    "seed": 5,
    "data_types": ["invoices", "bills", "customers"],
    "profiles": {"quiet": {"sync_schedule_hours": None, "history": 3, "history_interval_hours": 6}},
    "companies": [{"name": "Alpha", "profile": "quiet", "platform": "Xero"}],
}


class RecordingClient(CodatClient):
    """The real client, noting each history read's ``query`` and, optionally, leaving one data type
    out of every company's sync settings (what a company that overrides only some types sends)."""

    def __init__(self, *args: Any, drop_from_settings: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history_queries: list[str | None] = []
        self.drop_from_settings = drop_from_settings
        self.refuse_queries = False
        """Answer a narrowed history read as Codat answers a query it cannot parse."""

    def list_pull_operations(
        self,
        company_id: str,
        *,
        page: int = 1,
        page_size: int = 100,
        query: str | None = None,
        order_by: str | None = None,
    ) -> Page[PullOperation]:
        self.history_queries.append(query)
        if query is not None and self.refuse_queries:
            raise BadRequestError("Error parsing query - Malformed query.", status_code=400)
        return super().list_pull_operations(
            company_id, page=page, page_size=page_size, query=query, order_by=order_by
        )

    def get_company_sync_settings(self, company_id: str) -> SyncSettings:
        read = super().get_company_sync_settings(company_id)
        kept = tuple(s for s in read.settings if s.data_type != self.drop_from_settings)
        return replace(read, settings=kept)


@dataclass
class Rig:
    sim: Simulator
    clock: FakeClock
    client: RecordingClient
    scheduler: Scheduler
    company: str = field(init=False)

    def __post_init__(self) -> None:
        self.company = self.sim.company_id_by_name("Alpha")

    def sync(self, *data_types: str) -> None:
        """Run and finish one Complete sync of each data type."""
        for data_type in data_types:
            self.sim.queue_sync(self.company, data_type, outcome="Complete")
        self.clock.advance(1)
        self.sim.complete_syncs_now(self.company)
        self.clock.advance(1)

    def webhook(self, *data_types: str) -> None:
        """What the receiver does with a ``read.completed`` naming ``data_types``."""
        self.client.history_queries.clear()
        self.scheduler.request_poll(self.company, "webhook", data_types)
        self.scheduler.poll_requested()

    def completed(self, data_type: str) -> int:
        totals = self.scheduler.snapshot.companies[self.company].pull_operations_total
        return totals.get((data_type, "Complete"), 0)


def make_rig(drop_from_settings: str | None = None) -> Iterator[Rig]:
    clock = FakeClock()
    sim = Simulator(Scenario.from_dict(SCENARIO), api_key="demo", clock=clock)
    server = sim.serve()
    telemetry = Telemetry()
    client = RecordingClient(
        "demo",
        server.url,
        observer=telemetry,
        max_retries=0,
        requests_per_minute=1e6,
        drop_from_settings=drop_from_settings,
    )
    config = Config.default()
    scheduler = Scheduler(client, config, telemetry, clock=clock.now, settings=collector_settings(config))
    try:
        yield Rig(sim, clock, client, scheduler)
    finally:
        scheduler.close()
        client.close()
        server.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from make_rig()


def started(rig: Rig) -> None:
    """First sweep, then one history read of the whole company (its baseline)."""
    rig.scheduler.run_cycle()
    rig.sync("customers")
    rig.webhook("customers")
    assert rig.client.history_queries == [None]  # a company never scanned reads everything


def test_a_read_completed_reads_the_history_of_only_the_types_it_names(rig: Rig) -> None:
    started(rig)
    before = {dt: rig.completed(dt) for dt in ("invoices", "bills", "customers")}
    history_before = rig.sim.count_requests("history", rig.company)
    rig.sync("invoices", "bills")
    rig.webhook("invoices", "bills")
    assert rig.client.history_queries == ["dataType=bills||dataType=invoices"]
    assert rig.sim.count_requests("history", rig.company) == history_before + 1
    # Each sync counted exactly once, nothing else.
    assert rig.completed("invoices") == before["invoices"] + 1
    assert rig.completed("bills") == before["bills"] + 1
    assert rig.completed("customers") == before["customers"]
    # The next narrowed read starts where this one stopped: nothing is counted twice.
    rig.sync("invoices")
    rig.webhook("invoices")
    assert rig.client.history_queries == ["dataType=invoices"]
    assert rig.completed("invoices") == before["invoices"] + 2
    assert rig.completed("bills") == before["bills"] + 1


def test_a_type_the_event_does_not_name_that_moved_too_widens_the_read(rig: Rig) -> None:
    # Narrowing would leave the customers sync out of a ledger that then takes it as counted.
    started(rig)
    before = {dt: rig.completed(dt) for dt in ("invoices", "customers")}
    rig.sync("invoices", "customers")
    rig.webhook("invoices")
    assert rig.client.history_queries == [None]
    assert rig.completed("invoices") == before["invoices"] + 1
    assert rig.completed("customers") == before["customers"] + 1


def test_a_refused_narrowing_reads_the_whole_history_instead(rig: Rig) -> None:
    started(rig)
    before = rig.completed("invoices")
    rig.client.refuse_queries = True
    rig.sync("invoices")
    rig.webhook("invoices")
    assert rig.client.history_queries == ["dataType=invoices", None]
    assert rig.completed("invoices") == before + 1
    assert rig.scheduler.snapshot.companies[rig.company].up


def test_an_unquotable_data_type_name_never_reaches_the_query(rig: Rig) -> None:
    started(rig)
    rig.sync("invoices")
    rig.webhook("invoices||status!=Complete")
    assert rig.client.history_queries == [None]


def test_the_client_wide_schedule_fills_in_a_type_the_company_does_not_name() -> None:
    for rig in make_rig(drop_from_settings="bills"):
        rig.sim.reset_request_log()
        rig.scheduler.run_cycle()
        schedules = rig.scheduler.snapshot.companies[rig.company].sync_schedules
        assert "bills" not in schedules  # the client-wide settings are not read yet
        # The next cycle reads them once, and the company its own again at its next poll.
        rig.clock.advance(60)
        rig.scheduler.run_cycle()
        assert rig.sim.count_requests("profileSyncSettings") == 1
        rig.scheduler.request_poll(rig.company, "webhook")
        rig.scheduler.poll_requested()
        schedules = rig.scheduler.snapshot.companies[rig.company].sync_schedules
        assert schedules["bills"] == 24 * 3600  # the simulator's client-wide default
        assert rig.sim.count_requests("companySyncSettings", rig.company) == 2
        # Read again only a day later, however many cycles run.
        for _ in range(3):
            rig.clock.advance(3600)
            rig.scheduler.run_cycle()
        assert rig.sim.count_requests("profileSyncSettings") == 1


def test_a_company_that_names_every_type_costs_no_client_wide_read(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    rig.clock.advance(60)
    rig.scheduler.run_cycle()
    assert rig.sim.count_requests("profileSyncSettings") == 0


def test_a_relist_reads_the_companys_sync_settings_again(rig: Rig) -> None:
    rig.scheduler.run_cycle()
    assert rig.sim.count_requests("companySyncSettings", rig.company) == 1
    rig.scheduler.request_poll(rig.company, "webhook")
    rig.scheduler.poll_requested()
    assert rig.sim.count_requests("companySyncSettings", rig.company) == 1  # read daily, not per poll
    rig.scheduler.request_poll(rig.company, RELIST_REASON)  # a connection.* or company.* event
    rig.scheduler.poll_requested()  # lists again, and the poll after it reads them
    rig.scheduler.run_cycle()
    assert rig.sim.count_requests("companySyncSettings", rig.company) == 2


def test_a_named_type_on_no_schedule_keeps_no_schedule() -> None:
    own = SyncSettings((SyncSetting("invoices", 0), SyncSetting("bills", 1)))
    defaults = {"invoices": 86400.0, "bills": 86400.0, "customers": 7 * 86400.0}
    assert effective_schedules(own, defaults, ["invoices", "bills", "customers", "items"]) == {
        "bills": 3600.0,
        "customers": 7 * 86400.0,
    }
