"""``ExpositionCache``: the /metrics body source, the current rendering swapped as one reference.

``update`` renders a new snapshot in the poll thread (only changed companies afresh) and swaps one
reference; ``parts``/``body`` run on scrapes and only read it, so a scrape never waits for a
render. The age family's block is kept per second; the self-metrics registry is appended.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from prometheus_client import CollectorRegistry

from exporter.collector.snapshot import Snapshot
from exporter.exposition.ages import AgeBlock, build_age_block
from exporter.exposition.families import AGE_FAMILY, COMPANY_FAMILIES, CompanyFamily, status_set
from exporter.exposition.memory import release_free_heap, tune_malloc
from exporter.exposition.registry import SelfMetricsExposition
from exporter.exposition.render import RenderedExposition, render_snapshot
from exporter.exposition.textformat import EOF_LINE, family_header, gzip_member

_AGE_HEADER: Final = {om: family_header(AGE_FAMILY, openmetrics=om) for om in (False, True)}
_AGE_HEADER_GZ: Final = {om: gzip_member(_AGE_HEADER[om]) for om in (False, True)}
_EOF_GZ: Final = gzip_member(EOF_LINE)
WARM_SECONDS: Final = 3600.0
"""How long after the last gzip scrape the age block (and the self-metrics of each format scraped)
keep being built ahead: an hour, not a scrape interval, so that the first scrape after a quiet
spell (a second Prometheus, a federation, a manual ``curl --compressed``) is as fast as a warm one.
Keeping warm costs what being scraped costs, ~1 % of a core at 1,000 companies and ~7 % at 10,000
(see bench/RESULTS.md), and stops after an hour without scrapes."""


def _headers(catalogue: tuple[CompanyFamily, ...]) -> dict[tuple[bool, bool], tuple[bytes, ...]]:
    """The ``# HELP``/``# TYPE`` lines of each family, by (openmetrics, gzip)."""
    plain = {om: tuple(family_header(f, openmetrics=om) for f in catalogue) for om in (False, True)}
    return {
        (om, gz): tuple(map(gzip_member, h)) if gz else h for om, h in plain.items() for gz in (False, True)
    }


class ExpositionCache:
    """The /metrics body source: the current rendering plus the scrape-time parts; thread-safe.

    ``update`` runs in the poll thread and swaps one reference; ``parts``/``body`` run on scrapes
    and only read that reference, so a scrape never waits for a render. Age blocks are kept by
    second for the current rendering: the one a scrape builds, those ``prebuild_ages`` (the age
    ticker) builds ahead, and those ``update`` rebuilds for a new rendering before swapping it in.
    """

    MAX_AGE_BLOCKS: Final = 2
    """Age blocks kept at once: the current second's and the next one's."""

    def __init__(
        self,
        status_mode: str = "default",
        registry: CollectorRegistry | None = None,
        *,
        catalogue: tuple[CompanyFamily, ...] = COMPANY_FAMILIES,
    ) -> None:
        """Start with an empty snapshot of the families in ``catalogue``.

        ``registry`` (e.g. ``Telemetry.registry``) is appended to every body, rendered at most
        once per second (see ``registry.SelfMetricsExposition``).
        """
        status_set(status_mode)  # fail fast on a bad mode
        tune_malloc()  # before the first render: see ``memory``
        self.status_mode = status_mode
        self.registry = registry
        self.catalogue = catalogue
        self._headers = _headers(catalogue)
        self.self_metrics = SelfMetricsExposition()
        self._formats_scraped: dict[bool, float] = {}  # openmetrics -> Unix time of its last scrape
        self._last_registry: CollectorRegistry | None = registry  # the one the last scrape appended
        self._update_lock = threading.Lock()
        self._ages_lock = threading.Lock()  # guards _ages; held only to read or swap it
        self._scrape_build_lock = threading.Lock()  # scrapes in one second share one build
        self._rendered = render_snapshot(Snapshot(), status_mode, catalogue=catalogue)
        self._ages: dict[int, AgeBlock] = {}
        self._update_listeners: list[Callable[[], None]] = []
        self.age_blocks_built_on_scrape = 0
        """Age blocks a scrape had to build itself (none was ready for its second)."""
        self.age_blocks_built_ahead = 0
        """Age blocks ``prebuild_ages`` built before a scrape asked for them."""

    @property
    def rendered(self) -> RenderedExposition:
        """The current rendering."""
        return self._rendered

    def on_update(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (cheap, no arguments) after each new rendering is swapped in."""
        self._update_listeners.append(listener)

    def update(self, snapshot: Snapshot) -> None:
        """Render ``snapshot`` (reusing unchanged companies) and make it the one scrapes see."""
        with self._update_lock:
            rendered = render_snapshot(
                snapshot, self.status_mode, previous=self._rendered, catalogue=self.catalogue
            )
            if rendered is self._rendered:
                return  # nothing changed: the age blocks built for it stay good
            with self._ages_lock:
                old = self._ages
            # The blocks kept for the old rendering (this second's and the next, while scrapes
            # arrive) are rebuilt for the new one before it is swapped in, so the first scrape
            # after a publication finds its block ready. The pieces carried over unchanged lend
            # what they hold, so this costs only the changed pieces (~2 ms at 10,000 companies
            # when 0.1 % of them changed), paid here in the poll thread instead of by a scrape.
            ages = {
                second: build_age_block(
                    rendered,
                    second,
                    plain=block.plain is not None,
                    gzip=block.members is not None,
                    carry=block.carry(rendered.since_chunks),
                )
                for second, block in old.items()
            }
            with self._ages_lock:
                self._rendered = rendered
                self._ages = ages
            self.age_blocks_built_ahead += len(ages)
            del old
            release_free_heap()
        for listener in self._update_listeners:
            listener()

    def age_block(self, second: int) -> AgeBlock | None:
        """The age block kept for ``second`` of the current rendering, if any."""
        with self._ages_lock:
            block = self._ages.get(second)
        return block if block is not None and block.rendered is self._rendered else None

    def _keep(self, block: AgeBlock) -> AgeBlock:
        """Keep ``block`` (merged with what is kept for its second); drop blocks furthest from it."""
        with self._ages_lock:
            if block.rendered is not self._rendered:
                return block  # a new snapshot landed while it was built: serve it, keep nothing
            kept = self._ages.get(block.second)
            if kept is not None and kept.rendered is block.rendered:
                block = replace(
                    block,
                    plain=block.plain if block.plain is not None else kept.plain,
                    members=block.members if block.members is not None else kept.members,
                )
            ages = {**self._ages, block.second: block}
            while len(ages) > self.MAX_AGE_BLOCKS:
                del ages[max(ages, key=lambda s: abs(s - block.second))]
            self._ages = ages
            return block

    def prebuild_ages(
        self,
        second: int,
        *,
        plain: bool,
        gzip: bool,
        between_pieces: Callable[[], None] | None = None,
    ) -> bool:
        """Build the age block of ``second`` ahead of the scrapes that will ask for it.

        Returns whether anything was built (False when the variants asked for are there already).
        Runs outside every lock a scrape waits on; ``between_pieces`` as in ``build_age_block``.
        """
        rendered = self._rendered
        with self._ages_lock:
            kept = self._ages.get(second)
        if kept is not None and kept.rendered is not rendered:
            kept = None
        if kept is not None and kept.has(plain=plain, gzip=gzip):
            return False
        self._keep(
            build_age_block(
                rendered,
                second,
                plain=plain,
                gzip=gzip,
                base=kept,
                between_pieces=between_pieces,
            )
        )
        self.age_blocks_built_ahead += 1
        return True

    def prebuild_self_metrics(self, now: float, registry: CollectorRegistry | None = None) -> int:
        """Render the self-metrics for ``now``'s second ahead of scrapes, in each format scraped
        within ``WARM_SECONDS`` (as gzip, what Prometheus asks for); how many groups rendered."""
        registry = registry if registry is not None else self._last_registry
        if registry is None:
            return 0
        built = 0
        for openmetrics, last in list(self._formats_scraped.items()):
            if now - last <= WARM_SECONDS:
                built += self.self_metrics.prebuild(registry, openmetrics=openmetrics, gzip=True, now=now)
        return built

    def _scrape_ages(self, rendered: RenderedExposition, second: int, *, gzip: bool) -> AgeBlock:
        """The age block a scrape at ``second`` serves: the kept one, or one built now."""
        with self._ages_lock:
            kept = self._ages.get(second)
        if kept is not None and kept.rendered is rendered and kept.has(plain=not gzip, gzip=gzip):
            return kept
        with self._scrape_build_lock:
            with self._ages_lock:
                kept = self._ages.get(second)
            base = kept if kept is not None and kept.rendered is rendered else None
            if base is not None and base.has(plain=not gzip, gzip=gzip):
                return base
            block = build_age_block(rendered, second, plain=not gzip, gzip=gzip, base=base)
            self.age_blocks_built_on_scrape += 1
            return self._keep(block)

    def parts(
        self, openmetrics: bool, gzip: bool, now: float, registry: CollectorRegistry | None = None
    ) -> list[bytes]:
        """The body as a list of buffers to send in order (no copy of the large static parts).

        ``now`` is Unix time; ``registry`` overrides the cache's own self-metrics registry. The
        self-metrics are the ones kept for ``now``'s second (rendered now if none are).
        """
        rendered = self._rendered
        headers = self._headers[openmetrics, gzip]
        families = rendered.families_gzip if gzip else rendered.families
        out: list[bytes] = []
        for header, samples in zip(headers, families, strict=True):
            out.append(header)
            if samples:
                out.append(samples)
        out.append(_AGE_HEADER_GZ[openmetrics] if gzip else _AGE_HEADER[openmetrics])
        ages = self._scrape_ages(rendered, math.floor(now), gzip=gzip)
        if gzip:
            out.extend(ages.members or ())
        elif ages.plain:
            out.extend(ages.plain)
        registry = registry if registry is not None else self.registry
        if registry is not None:
            self._formats_scraped[openmetrics] = now
            self._last_registry = registry
            out.extend(self.self_metrics.parts(registry, openmetrics=openmetrics, gzip=gzip, now=now))
        if openmetrics:
            out.append(_EOF_GZ if gzip else EOF_LINE)
        return out

    def body(
        self, openmetrics: bool, gzip: bool, now: float, registry: CollectorRegistry | None = None
    ) -> bytes:
        """The whole /metrics body as one bytes object (see ``parts``)."""
        return b"".join(self.parts(openmetrics, gzip, now, registry))
