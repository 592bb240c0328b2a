"""The collector's settings, translated from ``Config`` once (the only place the collector reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.collector.filters import CompanyFilter, DataTypeFilter
from exporter.collector.planner import PlanSettings
from exporter.config.schema import Config

COMPANIES_PAGE_SIZE: Final = 5000
"""Codat's largest page: one request lists up to this many companies."""
MAX_HISTORY_PAGES: Final = 20
"""A scan never reads more pages than this in one poll (protects the budget from a huge backlog)."""
SYNC_SETTINGS_INTERVAL: Final = 24 * 3600.0
"""How often a company's sync settings are read again (seconds): they change rarely, so one request
a company a day; a ``connection.*`` or ``company.*`` webhook asks for them again sooner."""
PUBLISH_INTERVAL: Final = 2.0
"""While a cycle reads companies, what it has read so far is published at most this often (seconds)."""


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """Everything the scheduler, its polls and its listing need to know about the configuration."""

    plan: PlanSettings
    company_filter: CompanyFilter
    data_type_filter: DataTypeFilter
    explicit_ids: tuple[str, ...] = ()
    """Ids configured in ``companies.ids``: reported down when Codat does not list them."""
    query: str | None = None
    tags: str | None = None
    shard: int = 0
    total_shards: int = 1
    seen_operations_limit: int = 1000
    history_page_size: int = 100
    max_history_pages: int = MAX_HISTORY_PAGES
    companies_page_size: int = COMPANIES_PAGE_SIZE
    max_concurrency: int = 4
    daily_quota_share: float = 0.5
    requests_per_minute: float = 300.0
    cycle_wait: float = 60.0
    """The longest a cycle waits for its polls; slower ones finish (and publish) on their own."""
    publish_interval: float = PUBLISH_INTERVAL
    sync_settings_interval: float | None = SYNC_SETTINGS_INTERVAL
    """Seconds between reads of a company's sync settings; None never reads them."""

    @property
    def poll_interval(self) -> float:
        """Seconds between cycles."""
        return self.plan.poll_interval


def collector_settings(config: Config, *, webhooks_enabled: bool | None = None) -> CollectorSettings:
    """Translate ``config`` for the collector; ``webhooks_enabled`` overrides ``webhooks.enabled``."""
    polling = config.polling
    with_webhooks = config.webhooks.enabled if webhooks_enabled is None else webhooks_enabled
    plan = PlanSettings(
        poll_interval=polling.interval,
        full_sweep_interval=(
            polling.full_sweep_interval_with_webhooks if with_webhooks else polling.full_sweep_interval
        ),
        requests_per_minute=config.budget.max_requests_per_minute,
    )
    selection = config.companies
    return CollectorSettings(
        plan=plan,
        company_filter=CompanyFilter(selection.ids, selection.include, selection.exclude),
        data_type_filter=DataTypeFilter(config.data_types.include, config.data_types.exclude),
        explicit_ids=tuple(selection.ids),
        query=selection.query,
        tags=selection.tags,
        shard=config.sharding.shard,
        total_shards=config.sharding.total_shards,
        seen_operations_limit=polling.seen_operations_limit,
        history_page_size=polling.history_page_size,
        max_concurrency=config.budget.max_concurrency,
        daily_quota_share=config.budget.daily_quota_share,
        requests_per_minute=config.budget.max_requests_per_minute,
        cycle_wait=polling.interval,
    )
