"""``AgeTicker``: builds the gzip age block of the coming second ahead of scrapes, while they arrive."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Final

from exporter.exposition.cache import WARM_SECONDS, ExpositionCache
from exporter.exposition.render import RenderedExposition

log = logging.getLogger(__name__)

AGE_TICKER_ACTIVE_SECONDS: Final = WARM_SECONDS
"""The age ticker builds blocks ahead while the last gzip scrape is at most this old (an hour:
much longer than any scrape interval, so a scrape after a quiet spell finds its block ready),
and sleeps otherwise."""


class AgeTicker:
    """Builds the gzip age block of the coming second (and the self-metrics of the current one)
    ahead of scrapes, while scrapes arrive.

    The server reports each /metrics scrape with ``scraped``. While the last gzip scrape (what
    Prometheus asks for) is at most ``active_seconds`` old, a daemon thread builds the gzip age
    block of the current and the next wall-clock second, then sleeps until the next second
    begins: a scrape then finds its block ready instead of formatting and compressing it. Plain
    scrapes (people, ``curl``) build their own block: that keeps them within 2× of sending the
    bytes (see bench/RESULTS.md) and a stray ``curl`` from costing an hour of ticking. While a
    scrape is being served (``serving``) the thread pauses between template pieces, as long as
    the block can still be ready in time, so it does not take CPU from the scrape. With no
    scrapes in the window the thread waits without a timeout (no CPU) until the next scrape.
    The served values never depend on the ticker: a block is served only in its own second.
    """

    def __init__(
        self,
        cache: ExpositionCache,
        clock: Callable[[], float] = time.time,
        *,
        active_seconds: float = AGE_TICKER_ACTIVE_SECONDS,
    ) -> None:
        """Tick ``cache`` by ``clock`` (Unix time); ``start()`` runs the thread."""
        self.cache = cache
        self.clock = clock
        self.active_seconds = active_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_gzip_scrape: float | None = None  # Unix time
        self._idle = True
        self._thread: threading.Thread | None = None
        self._build_seconds = 0.0  # how long the last block build took
        self._serving = threading.Condition()  # guards _in_flight; notified when it drops to 0
        self._in_flight = 0
        self.pauses = 0
        """Times a build paused for a scrape being served."""
        # Weak: a strong reference would free the previous rendering (100+ MB at 10,000 companies)
        # here, on the ticker's next tick, while the first scrape of the new one is being served.
        self._build_rendering: weakref.ref[RenderedExposition] | None = None
        cache.on_update(self._wake.set)  # a new rendering: build its blocks now, not next second

    @property
    def running(self) -> bool:
        """Whether the ticker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def idle(self) -> bool:
        """Whether the thread is waiting for a scrape (nothing scraped recently)."""
        with self._lock:
            return self._idle

    def start(self) -> None:
        """Run the ticker on a daemon thread (idle until the first scrape)."""
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="age-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one block build)."""
        self._stopping.set()
        self._wake.set()
        with self._serving:
            self._serving.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Mark a /metrics response in progress: the ticker pauses its builds meanwhile."""
        with self._serving:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._serving:
                self._in_flight -= 1
                if not self._in_flight:
                    self._serving.notify_all()

    def _pause_for_scrapes(self, until: float) -> None:
        """Wait while a scrape is served, but not past ``until`` (``time.monotonic`` time)."""
        with self._serving:
            if self._in_flight and not self._stopping.is_set() and until > time.monotonic():
                self.pauses += 1
            while self._in_flight and not self._stopping.is_set():
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return
                self._serving.wait(remaining)

    def scraped(self, *, gzip: bool, now: float) -> None:
        """Note a /metrics scrape at ``now``; a gzip scrape wakes the thread if it was idle."""
        if not gzip:
            return
        with self._lock:
            self._last_gzip_scrape = now
            wake = self._idle
            self._idle = False
        if wake:
            self._wake.set()

    def wanted(self, now: float) -> bool:
        """Whether a gzip scrape came within the active window before ``now``."""
        with self._lock:
            return self._in_window(now)

    def tick(self, now: float) -> int:
        """Build the gzip age blocks of ``now``'s second and the next if wanted; how many built."""
        if not self.wanted(now):
            return 0
        second = math.floor(now)
        rendered = self.cache.rendered
        if self._build_rendering is None or self._build_rendering() is not rendered:
            self._build_rendering, self._build_seconds = weakref.ref(rendered), 0.0
        built = 0
        for target in (second, second + 1):
            if self._stopping.is_set():
                break
            if self.clock() + self._build_seconds >= target + 1:
                continue  # it would be ready only once its second is over: leave it to scrapes
            started = time.monotonic()
            # Pausing for scrapes may use the slack before ``target`` begins, less a build's time.
            slack = target - self.clock() - self._build_seconds
            pause = functools.partial(self._pause_for_scrapes, started + max(0.0, slack))
            if self.cache.prebuild_ages(target, plain=False, gzip=True, between_pieces=pause):
                self._build_seconds = time.monotonic() - started
                built += 1
        return built

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            now = self.clock()
            with self._lock:
                # Decided under the lock ``scraped`` takes, so a scrape's wake-up cannot be missed.
                self._idle = not self._in_window(now)
                idle = self._idle
            if idle:
                self._wake.wait()
                continue
            try:
                self.tick(now)
                # The self-metrics of this second, so the scrapes in it find them rendered.
                self.cache.prebuild_self_metrics(self.clock())
            except Exception:  # never let a bad render stop the ticker: scrapes build their own
                log.exception("building the age block ahead of scrapes failed")
            # Sleep to just past the next second boundary; a new rendering or stop() wakes it early.
            self._wake.wait(min(1.0, max(0.0, math.floor(now) + 1.001 - self.clock())))

    def _in_window(self, now: float) -> bool:
        # ``wanted`` for a caller that holds ``_lock``.
        last = self._last_gzip_scrape
        return last is not None and now - last <= self.active_seconds
