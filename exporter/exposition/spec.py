"""What every metric family is: name, type, HELP text, label names (and buckets for histograms)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class MetricType(StrEnum):
    """Prometheus metric types used by the catalogue."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


CACHED: Final = " Cached from background polls of the Codat API, not read at scrape time."
"""HELP suffix of the per-company families whose values come from polls, not from the scrape."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Name, type, HELP text and label names of one metric family."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def family(self) -> str:
        """The family name: the name without ``_total`` for counters (OpenMetrics TYPE line)."""
        if self.type is MetricType.COUNTER and self.name.endswith("_total"):
            return self.name.removesuffix("_total")
        return self.name
