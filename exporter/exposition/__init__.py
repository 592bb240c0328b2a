"""Snapshot -> exposition bytes: rendered once per snapshot, served from memory on every scrape.

This follows kube-state-metrics rather than a prometheus_client collector: a scrape of a million
series through ``generate_latest`` costs seconds, while joining bytes rendered in the poll thread
costs a memory copy. One job per module:

* ``spec``: ``MetricSpec``, what a family is (name, type, HELP, labels).
* ``textformat``: content types, escaping, ``# HELP``/``# TYPE`` headers, gzip members.
* ``families``: the per-company family catalogue; each family is one value holding its spec and
  its renderer. A new per-company metric is one entry there plus its test.
* ``render``: a snapshot through the catalogue into per-family bytes, copying unchanged companies.
* ``agetemplate``/``ages``: the age family, kept as templates in pieces carried over between
  renderings, and filled in per wall-clock second.
* ``cache``: ``ExpositionCache``, the current rendering and the body of a scrape.
* ``ticker``: ``AgeTicker``, which builds the coming second's age block (and the self-metrics)
  ahead of scrapes.
* ``selfspecs``/``selfmetrics``: the exporter's own metrics and ``Telemetry``; ``registry``: their
  exposition, by group, rendered only when changed; ``histogram``: a histogram that re-renders
  only its changed children.
* ``memory``: ``release_free_heap`` after a render, and the allocator settings that keep RSS down.
"""

from __future__ import annotations

from typing import Final

from exporter.exposition.ages import AgeBlock, build_age_block
from exporter.exposition.agetemplate import AGE_CHUNK_BYTES
from exporter.exposition.cache import ExpositionCache
from exporter.exposition.families import (
    AGE_FAMILY,
    COMPANY_FAMILIES,
    SNAPSHOT_METRICS,
    STATUS_MODES,
    AgeFamily,
    CompanyFamily,
    CompanyView,
    StatusMode,
    status_set,
)
from exporter.exposition.memory import release_free_heap
from exporter.exposition.registry import registry_exposition
from exporter.exposition.render import RenderedExposition, render_company, render_snapshot
from exporter.exposition.selfmetrics import TELEMETRY_METRICS, Telemetry
from exporter.exposition.spec import MetricSpec, MetricType
from exporter.exposition.textformat import (
    GZIP_LEVEL,
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    escape_help,
    escape_label_value,
    family_header,
    gzip_member,
)
from exporter.exposition.ticker import AGE_TICKER_ACTIVE_SECONDS, AgeTicker

ALL_METRICS: Final[tuple[MetricSpec, ...]] = (*SNAPSHOT_METRICS, *TELEMETRY_METRICS)
"""Every metric family the exporter serves (per-company, then its own)."""

SINCE_SPEC: Final = AGE_FAMILY
"""The scrape-time family (the name this module gave it before the catalogue was split out)."""
STATIC_SPECS: Final[tuple[MetricSpec, ...]] = COMPANY_FAMILIES
"""The families rendered ahead of scrapes, in output order."""

__all__ = [
    "AGE_CHUNK_BYTES",
    "AGE_FAMILY",
    "AGE_TICKER_ACTIVE_SECONDS",
    "ALL_METRICS",
    "COMPANY_FAMILIES",
    "GZIP_LEVEL",
    "OPENMETRICS_CONTENT_TYPE",
    "SINCE_SPEC",
    "SNAPSHOT_METRICS",
    "STATIC_SPECS",
    "STATUS_MODES",
    "TELEMETRY_METRICS",
    "TEXT_CONTENT_TYPE",
    "AgeBlock",
    "AgeFamily",
    "AgeTicker",
    "CompanyFamily",
    "CompanyView",
    "ExpositionCache",
    "MetricSpec",
    "MetricType",
    "RenderedExposition",
    "StatusMode",
    "Telemetry",
    "build_age_block",
    "escape_help",
    "escape_label_value",
    "family_header",
    "gzip_member",
    "registry_exposition",
    "release_free_heap",
    "render_company",
    "render_snapshot",
    "status_set",
]
