"""What the exporter says at start-up about its request rate: how long the first sweep takes,
and whether the configured rate can keep up with the fleet once it is known."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from exporter.collector.progress import first_sweep_minutes, rate_advice, steady_rate
from exporter.collector.settings import CollectorSettings
from exporter.collector.state import CompanyState
from exporter.common.durations import format_duration

log = logging.getLogger("exporter.collector.scheduler")


class StartupAdvice:
    """Logs each piece of advice once: after the first listing, and after the first full sweep."""

    def __init__(self, settings: CollectorSettings) -> None:
        """Nothing said yet."""
        self._settings = settings
        self._listed = False
        self._swept = False

    def after_listing(self, companies: int) -> None:
        """Say how long the first sweep of ``companies`` takes at the configured rate (once)."""
        if self._listed:
            return
        self._listed = True
        rate = self._settings.requests_per_minute
        minutes = first_sweep_minutes(companies, rate)
        log.info(
            "first sweep: %d companies at up to %g requests a minute takes about %s; "
            "each company's series appear on /metrics as soon as it is read",
            companies,
            rate,
            format_duration(minutes * 60),
        )

    def after_first_sweep(self, states: Iterable[CompanyState]) -> None:
        """Warn (once) when the configured rate cannot keep up with the fleet just read."""
        if self._swept:
            return
        self._swept = True
        companies = 0
        data_types = 0
        for state in states:
            companies += 1
            data_types += len(state.statuses or {})
        needed = steady_rate(
            companies,
            data_types,
            poll_interval=self._settings.poll_interval,
            full_sweep_interval=self._settings.plan.full_sweep_interval,
        )
        advice = rate_advice(needed, self._settings.requests_per_minute)
        if advice is not None:
            log.warning("%s", advice)
