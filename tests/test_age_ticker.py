"""The age block built ahead of scrapes: always the scrape's own second, never stale, stops cleanly."""

from __future__ import annotations

import gzip
import http.client
import math
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from exporter.collector.snapshot import CompanySnapshot
from exporter.exposition import AgeTicker, ExpositionCache, agetemplate, build_age_block, families
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from tests.support.snapshots import T0, company, rich_snapshot, snapshot

SYNCED = T0 - timedelta(hours=3)
"""When ``c-acme``'s invoices last synced in ``rich_snapshot`` (a whole second)."""
AGE = families.DATA_SECONDS_SINCE_SYNC.name


class FakeClock:
    """Unix time that moves only when a test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def age_of(body: bytes, company_id: str = "c-acme", data_type: str = "invoices") -> int:
    """The age value of one pair in a plain or gzip body."""
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    prefix = f'{AGE}{{company_id="{company_id}",data_type="{data_type}"}} '.encode()
    start = text.index(prefix) + len(prefix)
    return int(text[start : text.index(b"\n", start)])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (deadline ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def cache() -> ExpositionCache:
    cache = ExpositionCache("default")
    cache.update(rich_snapshot())
    return cache


@pytest.mark.parametrize("gzipped", [False, True])
def test_served_age_is_whole_seconds_since_the_sync_at_the_scrape_second(
    cache: ExpositionCache, gzipped: bool
) -> None:
    clock = FakeClock(T0.timestamp() + 125.9)
    ticker = AgeTicker(cache, clock)
    ticker.scraped(gzip=True, now=clock.now)
    assert ticker.tick(clock.now) == 2  # this second and the next
    for offset in (0.0, 0.99, 1.0, 1.5):
        now = clock.now + offset
        assert age_of(cache.body(False, gzipped, now)) == math.floor(now - SYNCED.timestamp())


def test_a_scrape_in_a_prebuilt_second_serves_the_prebuilt_block(cache: ExpositionCache) -> None:
    now = T0.timestamp() + 60.25
    ticker = AgeTicker(cache, FakeClock(now))
    ticker.scraped(gzip=True, now=now)
    ticker.tick(now)
    block = cache.age_block(math.floor(now) + 1)
    assert block is not None
    assert block.gzip
    parts = cache.parts(False, True, now + 1)
    assert any(part is block.gzip for part in parts)
    assert cache.age_blocks_built_on_scrape == 0


def test_a_stale_block_is_never_served_the_scrape_recomputes(cache: ExpositionCache) -> None:
    clock = FakeClock(T0.timestamp() + 10.5)
    ticker = AgeTicker(cache, clock)
    ticker.scraped(gzip=True, now=clock.now)
    ticker.tick(clock.now)
    prebuilt = {s: cache.age_block(s) for s in (math.floor(clock.now), math.floor(clock.now) + 1)}
    clock.now += 2  # the ticker fell behind (or stopped): no block for this second
    parts = cache.parts(False, True, clock.now)
    assert not any(b is not None and b.gzip in parts for b in prebuilt.values())
    assert age_of(b"".join(parts)) == math.floor(clock.now - SYNCED.timestamp())
    assert cache.age_blocks_built_on_scrape == 1


def test_a_new_snapshot_rebuilds_the_kept_blocks_for_itself_before_scrapes_see_it(
    cache: ExpositionCache,
) -> None:
    now = T0.timestamp() + 30.0
    ticker = AgeTicker(cache, FakeClock(now))
    ticker.scraped(gzip=True, now=now)
    ticker.tick(now)
    old = cache.age_block(math.floor(now))
    resynced = T0 - timedelta(seconds=5)
    cache.update(snapshot(company("c-acme", {"invoices": ("Complete", resynced)})))
    block = cache.age_block(math.floor(now))
    assert block is not None
    assert block is not old
    assert block.rendered is cache.rendered
    assert age_of(cache.body(False, True, now)) == 35
    assert cache.age_blocks_built_on_scrape == 0  # the first scrape after the update found it ready


def test_an_update_frees_the_previous_rendering_itself(cache: ExpositionCache) -> None:
    # Whoever drops the last reference frees the previous rendering (100+ MB at 10,000 companies).
    # That must be the update, in the poll thread, not the ticker while the first scrape of the
    # new rendering is being served.
    now = T0.timestamp() + 30.0
    ticker = AgeTicker(cache, FakeClock(now))
    ticker.scraped(gzip=True, now=now)
    ticker.tick(now)
    previous = weakref.ref(cache.rendered)
    cache.update(snapshot(company("c-acme", {"invoices": ("Complete", T0 - timedelta(seconds=5))})))
    assert previous() is None


def test_gzip_body_with_a_prebuilt_block_is_multi_member_and_decodes_to_the_plain_body(
    cache: ExpositionCache,
) -> None:
    now = T0.timestamp() + 7.0
    ticker = AgeTicker(cache, FakeClock(now))
    ticker.scraped(gzip=True, now=now)
    ticker.tick(now)
    for openmetrics in (False, True):
        compressed = cache.body(openmetrics, True, now)
        assert gzip.decompress(compressed) == cache.body(openmetrics, False, now)
        first = zlib.decompressobj(31)
        first.decompress(compressed)
        assert first.unused_data, "expected more than one gzip member"
    assert cache.age_blocks_built_on_scrape == 1  # the plain body: the ticker builds gzip only


def test_ticker_builds_gzip_blocks_only_while_gzip_scrapes_are_recent(cache: ExpositionCache) -> None:
    now = T0.timestamp() + 100.0
    ticker = AgeTicker(cache, FakeClock(now), active_seconds=300)
    assert ticker.tick(now) == 0  # never scraped: nothing to build
    ticker.scraped(gzip=False, now=now)
    assert ticker.tick(now) == 0  # a plain scrape (curl) builds its own block
    ticker.scraped(gzip=True, now=now)
    assert ticker.tick(now) == 2
    block = cache.age_block(math.floor(now))
    assert block is not None
    assert block.gzip is not None
    assert block.plain is None
    assert ticker.wanted(now + 300)
    assert not ticker.wanted(now + 301)
    assert ticker.tick(now + 301) == 0


def test_a_late_ticker_skips_a_second_that_is_already_over(cache: ExpositionCache) -> None:
    second = math.floor(T0.timestamp()) + 20
    clock = FakeClock(second + 1.5)  # the ticker woke for ``second`` but ran late
    ticker = AgeTicker(cache, clock)
    ticker.scraped(gzip=True, now=second + 0.5)
    assert ticker.tick(second + 0.5) == 1
    assert cache.age_block(second) is None
    assert cache.age_block(second + 1) is not None


def test_only_the_current_and_next_seconds_are_kept(cache: ExpositionCache) -> None:
    start = T0.timestamp() + 40.5
    ticker = AgeTicker(cache, FakeClock(start))
    ticker.scraped(gzip=True, now=start)
    for offset in range(4):
        ticker.clock = FakeClock(start + offset)
        ticker.tick(start + offset)
    now_second = math.floor(start) + 3
    kept = [s for s in range(now_second - 3, now_second + 3) if cache.age_block(s) is not None]
    assert kept == [now_second, now_second + 1]


def test_ticker_pauses_while_a_scrape_is_served(cache: ExpositionCache) -> None:
    second = math.floor(T0.timestamp()) + 70
    ticker = AgeTicker(cache, FakeClock(second - 1000))  # plenty of slack before its second
    ticker.scraped(gzip=True, now=second)
    builder = threading.Thread(target=ticker.tick, args=(second + 0.5,))
    with ticker.serving():
        builder.start()
        wait_for(lambda: ticker.pauses > 0, "the ticker to pause")
        assert cache.age_block(second + 1) is None
    builder.join(timeout=10)
    assert not builder.is_alive()
    assert cache.age_block(second + 1) is not None


def test_ticker_does_not_pause_once_its_slack_is_gone(cache: ExpositionCache) -> None:
    second = math.floor(T0.timestamp()) + 80
    ticker = AgeTicker(cache, FakeClock(second + 1.5))  # late: the block's second has begun
    ticker.scraped(gzip=True, now=second)
    with ticker.serving():
        assert ticker.tick(second + 0.5) == 1  # returns although the scrape is still served
    assert cache.age_block(second + 1) is not None
    assert ticker.pauses == 0


def test_age_block_from_plain_pieces_compresses_the_same_lines(cache: ExpositionCache) -> None:
    rendered = cache.rendered
    second = math.floor(T0.timestamp()) + 3
    plain = build_age_block(rendered, second, plain=True, gzip=False)
    both = build_age_block(rendered, second, plain=False, gzip=True, base=plain)
    assert both.plain == plain.plain
    assert both.gzip is not None
    assert gzip.decompress(both.gzip) == rendered.since_lines(second) == b"".join(plain.plain or ())
    with pytest.raises(ValueError, match="another rendering or second"):
        build_age_block(rendered, second + 1, plain=True, gzip=False, base=plain)


def test_age_template_is_cut_into_whole_line_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agetemplate, "AGE_CHUNK_BYTES", 100)
    cache = ExpositionCache("default")
    cache.update(rich_snapshot())
    rendered = cache.rendered
    assert len(rendered.since_chunks) > 1
    for chunk in rendered.since_chunks:
        assert chunk.template.endswith(b"%d\n")
        assert chunk.template.count(b"%d\n") == len(chunk.seconds)
    whole = ExpositionCache("default")
    monkeypatch.setattr(agetemplate, "AGE_CHUNK_BYTES", 1 << 30)
    whole.update(rich_snapshot())
    assert len(whole.rendered.since_chunks) == 1
    now = T0.timestamp() + 9
    assert cache.body(True, False, now) == whole.body(True, False, now)


# --- the ticker thread inside the server ---------------------------------------------------


@pytest.fixture
def served(cache: ExpositionCache) -> Iterator[tuple[ExporterServer, FakeClock]]:
    clock = FakeClock(T0.timestamp() + 50.5)
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        Telemetry(),
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        clock=clock,
    )
    server.start()
    try:
        yield server, clock
    finally:
        server.stop()


def scrape_gzip(server: ExporterServer) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        assert resp.getheader("Content-Encoding") == "gzip"
        return resp.read()
    finally:
        conn.close()


def test_ticker_stays_idle_until_the_first_scrape(served: tuple[ExporterServer, FakeClock]) -> None:
    server, clock = served
    ticker = server.age_ticker
    assert ticker is not None
    wait_for(lambda: ticker.running and ticker.idle, "the ticker to wait for scrapes")
    assert server.cache.age_blocks_built_ahead == 0
    assert server.cache.age_block(math.floor(clock.now) + 1) is None


def test_ticker_builds_the_next_second_after_a_scrape(served: tuple[ExporterServer, FakeClock]) -> None:
    server, clock = served
    body = scrape_gzip(server)
    assert age_of(body) == math.floor(clock.now - SYNCED.timestamp())
    next_second = math.floor(clock.now) + 1
    wait_for(lambda: server.cache.age_block(next_second) is not None, "the next second's block")
    clock.now += 1
    built_on_scrape = server.cache.age_blocks_built_on_scrape
    body = scrape_gzip(server)
    assert age_of(body) == math.floor(clock.now - SYNCED.timestamp())
    assert server.cache.age_blocks_built_on_scrape == built_on_scrape  # served the prebuilt block


def test_ticker_goes_idle_when_scrapes_stop(served: tuple[ExporterServer, FakeClock]) -> None:
    server, clock = served
    ticker = server.age_ticker
    assert ticker is not None
    scrape_gzip(server)
    wait_for(lambda: not ticker.idle, "the ticker to wake")
    clock.now += ticker.active_seconds + 1
    wait_for(lambda: ticker.idle, "the ticker to notice nobody scrapes")  # within one second
    assert ticker.running


def test_ticker_stops_with_the_server(cache: ExpositionCache) -> None:
    server = ExporterServer(
        "127.0.0.1:0", cache, None, ready=lambda: True, landing=lambda: LandingData(rich_snapshot())
    )
    server.start()
    ticker = server.age_ticker
    assert ticker is not None
    scrape_gzip(server)
    wait_for(lambda: cache.age_blocks_built_ahead > 0, "the ticker to build ahead")
    server.stop()
    assert not ticker.running


def test_server_without_prebuilt_ages_has_no_ticker(cache: ExpositionCache) -> None:
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        None,
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        clock=lambda: T0.timestamp() + 1,
        prebuild_ages=False,
    )
    with server:
        assert server.age_ticker is None
        assert age_of(scrape_gzip(server)) == 3 * 3600 + 1
    assert cache.age_blocks_built_ahead == 0


# --- pieces carried over to a new rendering ------------------------------------------------


def _fleet(changed: int | None = None, count: int = 300) -> list[CompanySnapshot]:
    """``count`` companies with ten synced data types each; company ``changed`` synced again."""
    out = []
    for i in range(count):
        synced = T0 - timedelta(hours=1 if i == changed else 2, seconds=i)
        out.append(company(f"c{i:04d}", {f"type{j}": ("Complete", synced) for j in range(10)}))
    return out


def test_a_changed_company_changes_only_the_age_pieces_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agetemplate, "AGE_CHUNK_BYTES", 4096)
    cache = ExpositionCache("default")
    cache.update(snapshot(*_fleet()))
    before = cache.rendered.since_chunks
    assert len(before) > 10
    cache.update(snapshot(*_fleet(changed=150)))
    after = cache.rendered.since_chunks
    kept = {id(c) for c in before} & {id(c) for c in after}
    assert len(kept) >= len(after) - 2  # the piece of company 150 (and at most one neighbour)
    fresh = ExpositionCache("default")
    fresh.update(snapshot(*_fleet(changed=150)))
    assert [c.template for c in after] == [c.template for c in fresh.rendered.since_chunks]


def test_a_new_snapshot_reuses_the_age_block_of_the_pieces_it_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agetemplate, "AGE_CHUNK_BYTES", 4096)
    cache = ExpositionCache("default")
    cache.update(snapshot(*_fleet()))
    second = math.floor(T0.timestamp()) + 30
    assert cache.prebuild_ages(second, plain=True, gzip=True)
    old = cache.age_block(second)
    assert old is not None
    assert old.members is not None
    cache.update(snapshot(*_fleet(changed=150)))
    now = second + 0.5
    for gzipped in (False, True):
        body = cache.body(True, gzipped, now)
        fresh = ExpositionCache("default")
        fresh.update(snapshot(*_fleet(changed=150)))
        assert body == fresh.body(True, gzipped, now)
    assert cache.age_blocks_built_on_scrape == 0  # the update rebuilt the block, both variants
    new = cache.age_block(second)
    assert new is not None
    assert new.rendered is cache.rendered
    assert new.members is not None
    shared = {id(m) for m in old.members} & {id(m) for m in new.members}
    assert len(shared) >= len(new.members) - 2  # only the changed pieces were compressed again
    assert age_of(cache.body(False, True, now), "c0150", "type0") == second - math.floor(
        (T0 - timedelta(hours=1, seconds=150)).timestamp()
    )
