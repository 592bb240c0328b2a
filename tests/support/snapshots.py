"""Hand-built poll snapshots for exposition, server and landing-page tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from exporter.codat.models import Company, Connection, DataTypeStatus
from exporter.collector.snapshot import CompanySnapshot, Snapshot

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""A fixed "now" for snapshots; tests scrape at ``T0.timestamp()`` plus an offset."""


def company(
    company_id: str,
    statuses: Mapping[str, tuple[str | None, datetime | None]],
    *,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    connections: tuple[Connection, ...] = (),
    up: bool = True,
    pull_operations_total: Mapping[tuple[str, str], int] | None = None,
    in_progress: Mapping[str, int] | None = None,
    refresh_last_attempt: Mapping[str, datetime] | None = None,
    last_poll_success: datetime | None = T0,
) -> CompanySnapshot:
    """A company snapshot; ``statuses`` maps data type → (current status, last successful sync)."""
    return CompanySnapshot(
        company=Company(
            id=company_id,
            name=name if name is not None else f"Company {company_id}",
            tags=dict(tags or {}),
            connections=connections,
        ),
        statuses={
            dt: DataTypeStatus(dt, status, synced, latest_sync_id=None)
            for dt, (status, synced) in statuses.items()
        },
        pull_operations_total=dict(pull_operations_total or {}),
        pull_operations_in_progress=dict(in_progress or {}),
        up=up,
        last_poll_success=last_poll_success,
        last_error=None if up else "server_error",
        refresh_last_attempt=dict(refresh_last_attempt or {}),
    )


def snapshot(*companies: CompanySnapshot, generated_at: datetime | None = T0, ready: bool = True) -> Snapshot:
    """A snapshot of ``companies`` keyed by id."""
    return Snapshot({cs.company.id: cs for cs in companies}, generated_at, ready)


def rich_snapshot() -> Snapshot:
    """Three companies covering every family: unknown and never-synced statuses, odd names, counters."""
    synced = T0 - timedelta(hours=3)
    return snapshot(
        company(
            "c-acme",
            {
                "invoices": ("Complete", synced),
                "bills": ("FetchError", T0 - timedelta(days=2)),
                "balanceSheet": (None, None),
                "bankAccounts": ("SomethingCodatAddsLater", synced),
                "orders": ("NotSupported", None),
            },
            name='Acme "Widgets" \\ Ltd\nUK & <Co> 100%',
            tags={"tier": "gold", "region": "eu"},
            connections=(
                Connection("conn-1", "Xero", "Linked"),
                Connection("conn-2", "QuickBooks Online", "Deauthorized"),
                Connection("conn-3", "Xero", "BrandNewConnectionState"),
            ),
            pull_operations_total={("invoices", "Complete"): 12, ("bills", "FetchError"): 3},
            in_progress={"invoices": 1},
            refresh_last_attempt={"bills": T0 - timedelta(minutes=5), "all": T0 - timedelta(hours=1)},
        ),
        company(
            "c-beta",
            {"invoices": ("Processing", synced - timedelta(days=9)), "customers": ("Complete", synced)},
            name="Beta GmbH",
            up=False,
            last_poll_success=T0 - timedelta(minutes=30),
        ),
        company("c-empty", {}, name="Nothing Yet", last_poll_success=None),
    )


_DEMO_NAMES = (
    "Northwind Traders",
    "Contoso Bakery",
    "Fabrikam Tools",
    "Tailspin Toys",
    "Wide World Importers",
    "Adventure Works Cycles",
    "Blue Yonder Airlines",
    "Coho Vineyard",
    "Alpine Ski House",
    "Margie's Travel",
    "Proseware Ltd",
    "Litware Inc",
    "Lucerne Publishing",
    "Woodgrove Bank",
    "Fourth Coffee",
    "Humongous Insurance",
    "Graphic Design Institute",
    "School of Fine Art",
    "Trey Research",
    "VanArsdel Ltd",
    "Wingtip Toys",
    "Relecloud",
    "Bellows College",
    "Munson's Pickles & Preserves",
)
_DEMO_TYPES = ("invoices", "bills", "customers", "suppliers", "bankAccounts", "balanceSheet", "profitAndLoss")
_DEMO_PLATFORMS = ("Xero", "QuickBooks Online", "Sage Intacct", "NetSuite")


def demo_snapshot(companies: int = 24, now: datetime = T0) -> Snapshot:
    """A plausible, deterministic snapshot: mostly fresh data, a few stale, failing or never-synced pairs."""
    out: list[CompanySnapshot] = []
    for i in range(companies):
        statuses: dict[str, tuple[str | None, datetime | None]] = {}
        for j, data_type in enumerate(_DEMO_TYPES):
            k = (i * 7 + j * 3) % 29
            if k == 0:
                statuses[data_type] = (None, None)
            elif k in (1, 2):
                statuses[data_type] = ("FetchError", now - timedelta(days=k * 3 + i % 5, hours=j))
            elif k == 3:
                statuses[data_type] = ("AuthError", now - timedelta(days=12 + i % 3))
            elif k == 4:
                statuses[data_type] = ("Processing", now - timedelta(hours=26 + i))
            else:
                statuses[data_type] = ("Complete", now - timedelta(minutes=(i * 37 + j * 11) % 600 + 5))
        platform = _DEMO_PLATFORMS[i % len(_DEMO_PLATFORMS)]
        out.append(
            company(
                f"{i:08x}-5f2c-4c1e-9b1a-{i * 7919:012x}",
                statuses,
                name=_DEMO_NAMES[i % len(_DEMO_NAMES)],
                tags={"segment": "sme" if i % 3 else "enterprise"},
                connections=(Connection(f"conn-{i}", platform, "Deauthorized" if i % 11 == 5 else "Linked"),),
                up=i % 11 != 5,
                last_poll_success=now - timedelta(seconds=40 + i),
            )
        )
    return snapshot(*out, generated_at=now - timedelta(seconds=40))
