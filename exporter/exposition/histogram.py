"""A labelled histogram that renders its own exposition, re-rendering only the children that changed.

``codat_pull_operation_duration_seconds{data_type,status}`` grows to every data type × terminal
status (over a thousand lines once a day of syncs has happened). prometheus_client's
``generate_latest`` re-renders all of them, tens of milliseconds, although a finished pull
operation changes one child. Here each child keeps its own sample lines, rendered again only after
it was observed, and the family is their concatenation (the same lines serve the text format and
OpenMetrics). ``collect`` still yields an ordinary ``HistogramMetricFamily``, so the registry's
``get_sample_value`` and ``generate_latest`` see it like any other histogram.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.exposition.spec import MetricSpec
from exporter.exposition.textformat import encode, escape_label_value, family_header


@dataclass(slots=True)
class _Child:
    """One label set: per-bucket (not cumulative) counts, the sum, and its lines once rendered."""

    labels: str
    """``name="value",…`` of its label values, escaped, followed by a comma when not empty."""
    counts: list[int]
    total: float = 0.0
    lines: bytes | None = None


class LabelledHistogram(Collector):
    """A histogram family with labels; thread-safe; its exposition costs only the changed children."""

    def __init__(self, spec: MetricSpec) -> None:
        """An empty family of ``spec`` (its ``buckets`` are the upper bounds; ``+Inf`` is added)."""
        self.spec = spec
        self._bounds = (*spec.buckets, math.inf)
        self._le = [_go_float(b) for b in self._bounds]
        self._children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()
        self._headers = {om: family_header(spec, openmetrics=om) for om in (False, True)}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Observe ``value`` for the child of ``labels`` (one value per label name, in order)."""
        if len(labels) != len(self.spec.labels):
            raise ValueError(f"{self.spec.name} takes labels {self.spec.labels}, got {labels}")
        # NaN fits no bound: counted in +Inf, as it is in the count.
        bucket = next((i for i, bound in enumerate(self._bounds) if value <= bound), len(self._bounds) - 1)
        with self._lock:
            child = self._children.get(labels)
            if child is None:
                pairs = "".join(
                    f'{n}="{escape_label_value(v)}",' for n, v in zip(self.spec.labels, labels, strict=True)
                )
                child = self._children[labels] = _Child(pairs, [0] * len(self._bounds))
            child.counts[bucket] += 1
            child.total += value
            child.lines = None

    def exposition(self, openmetrics: bool) -> bytes:
        """The family's ``# HELP``/``# TYPE`` lines and samples (no OpenMetrics ``# EOF``)."""
        with self._lock:
            parts = [self._headers[openmetrics]]
            for key in sorted(self._children):
                child = self._children[key]
                if child.lines is None:
                    child.lines = self._render(child)
                parts.append(child.lines)
        return b"".join(parts)

    def _render(self, child: _Child) -> bytes:
        name, labels = self.spec.name, child.labels
        lines = []
        cumulative = 0
        for le, count in zip(self._le, child.counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels}le="{le}"}} {float(cumulative)!r}\n')
        plain = labels.rstrip(",")
        lines.append(f"{name}_count{{{plain}}} {float(cumulative)!r}\n")
        lines.append(f"{name}_sum{{{plain}}} {_go_float(child.total)}\n")
        return encode("".join(lines))

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The family as prometheus_client sees it (for ``get_sample_value`` and ``generate_latest``)."""
        family = HistogramMetricFamily(self.spec.name, self.spec.help, labels=self.spec.labels)
        with self._lock:
            for key in sorted(self._children):
                child = self._children[key]
                cumulative = 0
                buckets = []
                for le, count in zip(self._le, child.counts, strict=True):
                    cumulative += count
                    buckets.append((le, float(cumulative)))
                family.add_metric(list(key), buckets, child.total)
        yield family


def _go_float(value: float) -> str:
    """A float as Prometheus' Go code writes it (``+Inf``, ``1e+10``), like prometheus_client."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]  # unannotated upstream
    return text
