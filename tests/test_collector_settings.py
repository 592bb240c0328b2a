"""The collector's settings, pauses, budget bootstrap and capacity advice (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exporter.collector.budget import BudgetKeeper, RateLimitPause, capacity
from exporter.collector.planner import PlanSettings, retry_backoff
from exporter.collector.progress import ChangeWatch, rate_advice, steady_rate
from exporter.collector.settings import collector_settings
from exporter.config.schema import Config

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_settings_take_the_planner_defaults_without_hidden_clamps() -> None:
    config = Config.model_validate({"polling": {"interval": 30, "full_sweep_interval": 1800}})
    settings = collector_settings(config)
    assert settings.plan.poll_interval == 30
    assert settings.plan.full_sweep_interval == 1800
    assert settings.plan.open_sync_interval == PlanSettings().open_sync_interval
    assert settings.plan.max_retry_backoff == PlanSettings().max_retry_backoff
    # A failing company is never read less often than a healthy one's sweep.
    assert retry_backoff(40, settings.plan) == 1800
    assert settings.cycle_wait == 30


def test_webhooks_stretch_the_sweep() -> None:
    config = Config.model_validate({"polling": {"full_sweep_interval_with_webhooks": 7200}})
    assert collector_settings(config, webhooks_enabled=True).plan.full_sweep_interval == 7200
    assert collector_settings(config, webhooks_enabled=False).plan.full_sweep_interval == 21600


def test_a_pause_only_grows_and_never_lasts_more_than_a_day() -> None:
    pause = RateLimitPause()
    assert not pause.active(NOW)
    assert pause.pause(NOW + timedelta(seconds=30), NOW) == NOW + timedelta(seconds=30)
    assert pause.pause(NOW + timedelta(seconds=10), NOW) == NOW + timedelta(seconds=30)
    assert pause.active(NOW + timedelta(seconds=29))
    assert not pause.active(NOW + timedelta(seconds=30))
    assert pause.until is None
    assert pause.pause(NOW + timedelta(days=400), NOW) == NOW + timedelta(days=1)
    pause.resume()
    assert not pause.active(NOW)


def test_the_first_real_quota_replaces_the_guess_with_a_full_bucket() -> None:
    quota: dict[str, int | None] = {"limit": None}
    sizes: list[float] = []
    keeper = BudgetKeeper(lambda: quota["limit"], share=0.5, total_shards=1, on_resize=sizes.append)
    before_any_answer = keeper.per_day
    assert before_any_answer is None
    assert keeper.available(NOW) == capacity(500)
    keeper.spend(5, NOW)
    quota["limit"] = 201_000
    assert keeper.available(NOW) == pytest.approx(capacity(100_500) - 5)
    quota["limit"] = 101_000
    keeper.at(NOW)
    assert keeper.per_day == 50_500
    assert sizes == [500, 100_500, 50_500]


def test_detection_lag_is_the_oldest_unread_change() -> None:
    watch = ChangeWatch()
    assert watch.lag(NOW) == 0
    watch.seen("a", NOW)
    watch.seen("b", NOW + timedelta(seconds=20))
    watch.seen("a", NOW + timedelta(seconds=40))  # the earliest unread change of a company counts
    assert watch.lag(NOW + timedelta(seconds=60)) == 60
    watch.read("a")
    assert watch.lag(NOW + timedelta(seconds=60)) == 40
    watch.forget_all_but({"c"})
    assert watch.lag(NOW + timedelta(seconds=60)) == 0


def test_the_rate_a_fleet_needs_and_the_advice_when_configured_lower() -> None:
    # 10,000 companies x 30 daily data types: 600,000 changes a day, 2 requests each.
    needed = steady_rate(10_000, 300_000, poll_interval=60, full_sweep_interval=21600)
    # Listing, sweeps every 6 h, sync settings once a day, and the changes.
    assert needed == pytest.approx(1 + 10_000 * 60 / 21600 + 10_000 / 1440 + 300_000 * 2 / 1440)
    advice = rate_advice(needed, 300)
    assert advice is not None
    assert "set it to" in advice
    assert rate_advice(needed, 1000) is None
    beyond = rate_advice(steady_rate(50_000, 1_500_000, poll_interval=60, full_sweep_interval=21600), 1000)
    assert beyond is not None
    assert "shards" in beyond
    assert rate_advice(10, 300) is None
