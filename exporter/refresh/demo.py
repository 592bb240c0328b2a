"""Auto-refresh settings for ``run --demo``: on, with thresholds the demo's stale companies cross at once."""

from __future__ import annotations

from exporter.config.schema import AutoRefreshSettings, RefreshRule


def demo_auto_refresh_settings() -> AutoRefreshSettings:
    """Auto-refresh for the demo: data older than 5 minutes is refreshed, each pair at most every 2 minutes.

    The demo's healthy companies sync every minute or so and never cross the
    threshold; the stale company (days old) and the never-synced one do, so
    the first cycle after start-up queues their syncs and the metrics show the
    staleness drop within a minute. Deauthorized data types (AuthError) are
    skipped, as they would be in production.
    """
    return AutoRefreshSettings(
        enabled=True,
        dry_run=False,
        rules=[RefreshRule(data_types=["*"], max_staleness=300.0)],
        never_synced_grace=600.0,
        cooldown=120.0,
        max_per_cycle=10,
        max_per_day=2000,
        request_share=0.2,
        refresh_all_threshold=5,
    )
