"""The self-metrics' exposition: each group of collectors rendered again only when it may have changed.

``generate_latest`` over a registry that a day of syncs has filled (``codat_pull_operation_duration_seconds``
for every data type and status) costs tens of milliseconds, which would dominate a scrape of the
pre-rendered per-company families. So ``Telemetry`` keeps its collectors in groups
(``GroupedRegistry``), each rendered on its own, kept, and rendered again by its ``Refresh`` rule:

* ``ON_CHANGE``: after ``touch()`` said it changed (groups whose writers all go through
  ``Telemetry``: a scrape always shows every write made before it, and a scrape after a quiet
  spell renders only what changed);
* ``ON_CHANGE_PER_SECOND``: after a change, but at most once per wall-clock second (the Codat API
  request metrics, written on every request: a scrape may show them up to a second old);
* ``PER_SECOND``: at most once per wall-clock second (the process collectors, whose values move
  all the time).

A group may bring its own renderer: the pull-operation histogram (the largest family once syncs
have happened) re-renders only its changed children (``histogram.LabelledHistogram``).

The age ticker renders the groups ahead of scrapes each second while scrapes arrive
(``SelfMetricsExposition.prebuild``), so a scrape normally finds them ready. A plain
``CollectorRegistry`` (no groups) is rendered on every scrape, as prometheus_client would.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.exposition.textformat import EOF_LINE, gzip_member


def registry_exposition(registry: CollectorRegistry, *, openmetrics: bool) -> bytes:
    """A registry's exposition without the OpenMetrics ``# EOF`` (the body adds one at its very end)."""
    if not openmetrics:
        text: bytes = generate_text(registry)
        return text
    om: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return om.removesuffix(EOF_LINE)


class Refresh(Enum):
    """When a kept group rendering is rendered again (see the module docstring)."""

    ALWAYS = "always"
    PER_SECOND = "per_second"
    ON_CHANGE = "on_change"
    ON_CHANGE_PER_SECOND = "on_change_per_second"


class RegistryGroup:
    """Collectors rendered together, and when to render them again."""

    def __init__(self, refresh: Refresh, render: Callable[[bool], bytes] | None = None) -> None:
        """An empty group; an ``ON_CHANGE`` one is told of changes by ``touch``.

        ``render(openmetrics)``, if given, renders the group instead of ``generate_latest`` (without
        the OpenMetrics ``# EOF``).
        """
        self.registry = CollectorRegistry(auto_describe=True)
        self.refresh = refresh
        self.render = render
        self._counter = itertools.count(1)
        self.version = 0
        """Bumped by ``touch``; ``next`` on a counter is atomic, so concurrent touches all count."""

    def touch(self) -> None:
        """Note that a collector of this group changed (cheap: call it on every write)."""
        self.version = next(self._counter)


class GroupedRegistry(CollectorRegistry):
    """A registry whose collectors are also kept in groups rendered on their own.

    A collector registered the usual way (``registry=`` of a metric, or ``register``) joins the
    ``PER_SECOND`` live group; inside ``with registry.grouped(group)`` it joins ``group`` instead.
    The registry itself still serves every collector (``get_sample_value``, ``generate_latest``).
    """

    def __init__(self) -> None:
        """An empty registry with one live group."""
        super().__init__(auto_describe=True)
        self.live = RegistryGroup(Refresh.PER_SECOND)
        self.groups: tuple[RegistryGroup, ...] = (self.live,)
        self._joining = self.live

    def register(self, collector: Collector) -> None:
        """Register ``collector`` here and in the group being filled (the live one by default)."""
        super().register(collector)
        self._joining.registry.register(collector)

    def unregister(self, collector: Collector) -> None:
        """Remove ``collector`` from the registry and from its group."""
        super().unregister(collector)
        for group in self.groups:
            with contextlib.suppress(KeyError):
                group.registry.unregister(collector)

    def add_group(self, refresh: Refresh, render: Callable[[bool], bytes] | None = None) -> RegistryGroup:
        """A new group (fill it inside ``grouped``), rendered after the existing ones."""
        group = RegistryGroup(refresh, render)
        self.groups = (*self.groups, group)
        return group

    @contextlib.contextmanager
    def grouped(self, group: RegistryGroup) -> Iterator[None]:
        """Collectors registered inside this block join ``group``."""
        self._joining = group
        try:
            yield
        finally:
            self._joining = self.live


@dataclass(frozen=True, slots=True)
class _Kept:
    """One group's exposition in one format, rendered during ``second`` at ``version``."""

    second: int
    version: int
    plain: bytes
    gzip: bytes | None
    """One gzip member of ``plain`` (``b""`` when ``plain`` is empty); ``None`` until asked for."""


@dataclass(frozen=True, slots=True)
class _Source:
    """What is rendered as one piece: a registry, its refresh rule, and its version now."""

    registry: CollectorRegistry
    refresh: Refresh
    version: int
    render: Callable[[bool], bytes] | None = None


class SelfMetricsExposition:
    """Renders and keeps a registry's exposition by group and format; thread-safe."""

    def __init__(self) -> None:
        """Nothing kept yet."""
        self._lock = threading.Lock()  # one render at a time; scrapes of one second share it
        self._kept: dict[tuple[CollectorRegistry, bool], _Kept] = {}
        self.renders = 0
        """Group renders so far (each is one ``generate_latest``)."""

    def parts(self, registry: CollectorRegistry, *, openmetrics: bool, gzip: bool, now: float) -> list[bytes]:
        """``registry``'s exposition at ``now`` (Unix time), one buffer (or gzip member) per group."""
        second = math.floor(now)
        out: list[bytes] = []
        for source in _sources(registry):
            kept = self._fresh(source, openmetrics, gzip, second) or self._render(
                source, openmetrics, gzip, second
            )
            data = kept.gzip if gzip else kept.plain
            if data:
                out.append(data)
        return out

    def prebuild(self, registry: CollectorRegistry, *, openmetrics: bool, gzip: bool, now: float) -> int:
        """Render the groups of ``registry`` not current at ``now``; how many were rendered."""
        second = math.floor(now)
        built = 0
        for source in _sources(registry):
            if (
                source.refresh is not Refresh.ALWAYS
                and self._fresh(source, openmetrics, gzip, second) is None
            ):
                self._render(source, openmetrics, gzip, second)
                built += 1
        return built

    def _fresh(self, source: _Source, openmetrics: bool, gzip: bool, second: int) -> _Kept | None:
        kept = self._kept.get((source.registry, openmetrics))
        if kept is None or (gzip and kept.gzip is None) or not _current(kept, source, second):
            return None
        return kept

    def _render(self, source: _Source, openmetrics: bool, gzip: bool, second: int) -> _Kept:
        with self._lock:
            kept = self._fresh(source, openmetrics, gzip, second)  # another scrape may have done it
            if kept is not None:
                return kept
            key = (source.registry, openmetrics)
            old = self._kept.get(key)
            if old is not None and _current(old, source, second):
                kept = old  # only the gzip variant is missing
            else:
                if source.render is not None:
                    plain = source.render(openmetrics)
                else:
                    plain = registry_exposition(source.registry, openmetrics=openmetrics)
                self.renders += 1
                kept = _Kept(second, source.version, plain, None)
            if gzip and kept.gzip is None:
                kept = _Kept(
                    kept.second, kept.version, kept.plain, gzip_member(kept.plain) if kept.plain else b""
                )
            self._kept[key] = kept
            return kept


def _current(kept: _Kept, source: _Source, second: int) -> bool:
    """Whether ``kept`` may still be served for ``source`` during ``second``."""
    refresh = source.refresh
    if refresh is Refresh.ON_CHANGE:
        return kept.version == source.version
    if refresh is Refresh.ON_CHANGE_PER_SECOND:
        return kept.version == source.version or kept.second == second
    return refresh is Refresh.PER_SECOND and kept.second == second


def _sources(registry: CollectorRegistry) -> list[_Source]:
    if isinstance(registry, GroupedRegistry):
        # The version is read before rendering: a touch during a render makes the next one render again.
        return [_Source(g.registry, g.refresh, g.version, g.render) for g in registry.groups]
    return [_Source(registry, Refresh.ALWAYS, 0)]
