"""Snapshot → exposition bytes: rendered once per snapshot, served from memory on every scrape.

This follows kube-state-metrics rather than a prometheus_client collector: a
scrape of a million series through ``generate_latest`` costs seconds, while
concatenating bytes rendered in the poll thread costs a memory copy.

* ``render_snapshot`` turns a ``Snapshot`` into the sample lines of every
  per-company family (both Prometheus text 0.0.4 and OpenMetrics 1.0.0 use the
  same sample lines; only the ``# HELP``/``# TYPE`` headers differ), plus a gzip
  member per family. Companies whose ``CompanySnapshot`` did not change since the
  previous render are copied from it instead of rendered again.
* ``codat_data_seconds_since_last_successful_sync`` must keep rising when
  polling stalls, so it cannot be rendered once per snapshot. Its lines are kept
  as ``%d`` templates (pieces of about 64 KiB) with the last-sync times beside
  them. Filled in for one wall-clock second they make an ``AgeBlock``, which is
  only ever served in that second. While scrapes arrive, ``AgeTicker`` builds the
  block of the next second ahead of time, so a scrape finds it ready; a scrape
  that finds none (the first after a quiet spell) builds it itself.
* A gzip stream may be several gzip members one after another (RFC 1952 §2.2;
  Go's ``compress/gzip`` and Python's ``gzip`` read them all), so a gzip body is
  the pre-compressed static members plus small members compressed per scrape.
* ``ExpositionCache`` holds the current rendering (swapped as one reference)
  and assembles bodies; the self-metrics registry is appended on each scrape.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import math
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, get_args

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter import metrics
from exporter.codat import statuses
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.metrics import MetricSpec

try:
    from isal.isal_zlib import compressobj
except ImportError:  # no ISA-L wheel for this platform: zlib is slower, its output the same format
    from zlib import compressobj  # type: ignore[assignment]

log = logging.getLogger(__name__)

StatusMode = Literal["default", "full", "sparse"]
STATUS_MODES: Final[tuple[str, ...]] = get_args(StatusMode)

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"

GZIP_LEVEL: Final = 1
"""Level of every gzip member. Exposition text is so repetitive that level 1 is within ~5 % of
level 6 in size at a third of the CPU (see bench/RESULTS.md)."""

AGE_CHUNK_BYTES: Final = 64 * 1024
"""Target size of one piece of the age template. Filling a piece is one C call that holds the GIL;
small pieces keep a scrape thread from waiting more than about 0.1 ms for it while the age ticker
builds (measured: 0.36 ms with 256 KiB pieces), for no measurable cost in total."""
AGE_TICKER_ACTIVE_SECONDS: Final = 300.0
"""The age ticker builds blocks ahead while the last scrape is at most this old (any Prometheus
scrape interval up to 5 minutes), and sleeps otherwise."""

SINCE_SPEC: Final = metrics.DATA_SECONDS_SINCE_SYNC
STATIC_SPECS: Final[tuple[MetricSpec, ...]] = tuple(
    s for s in metrics.SNAPSHOT_METRICS if s is not SINCE_SPEC
)
"""Families rendered ahead of scrapes, in output order; the scrape-time family follows them."""

(
    _F_LAST_SYNC,
    _F_STATUS,
    _F_PULL_OPS,
    _F_IN_PROGRESS,
    _F_INFO,
    _F_CONNECTION,
    _F_UP,
    _F_LAST_POLL,
    _F_REFRESH,
) = (
    STATIC_SPECS.index(s)
    for s in (
        metrics.DATA_LAST_SUCCESSFUL_SYNC,
        metrics.DATA_STATUS,
        metrics.PULL_OPERATIONS,
        metrics.PULL_OPERATIONS_IN_PROGRESS,
        metrics.COMPANY_INFO,
        metrics.CONNECTION_STATUS,
        metrics.COMPANY_UP,
        metrics.COMPANY_LAST_POLL_SUCCESS,
        metrics.REFRESH_LAST_ATTEMPT,
    )
)
_CONNECTION_STATES: Final = (*statuses.CONNECTION_STATUSES, statuses.OTHER)
_EOF: Final = b"# EOF\n"


def status_set(mode: str) -> tuple[str, ...]:
    """The ``status`` label values of ``codat_data_status`` in a status mode.

    ``default`` and ``full`` emit every value of the set (one-hot); ``sparse``
    emits only the active one, named from the full set.
    """
    if mode == "default":
        return (*statuses.SEED_STATUSES, statuses.OTHER)
    if mode in ("full", "sparse"):
        return (*statuses.ALL_STATUSES, statuses.OTHER)
    raise ValueError(f"unknown status mode {mode!r}; expected one of {', '.join(STATUS_MODES)}")


def escape_label_value(value: str) -> str:
    """Escape a label value for both exposition formats (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str, *, openmetrics: bool) -> str:
    """Escape HELP text: both formats escape backslash and newline, OpenMetrics also double quotes."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def family_header(spec: MetricSpec, *, openmetrics: bool) -> bytes:
    """The ``# HELP`` and ``# TYPE`` lines of a family (OpenMetrics names counters without ``_total``)."""
    name = spec.family if openmetrics else spec.name
    help_text = escape_help(spec.help, openmetrics=openmetrics)
    return f"# HELP {name} {help_text}\n# TYPE {name} {spec.type.value}\n".encode()


def gzip_member(data: bytes | memoryview, level: int = GZIP_LEVEL) -> bytes:
    """``data`` compressed as one complete gzip member (ISA-L when installed, else zlib)."""
    compressor = compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    return compressor.compress(data) + compressor.flush()


def _encode(text: str) -> bytes:
    # Codat data is JSON, which can carry lone surrogates: replace them rather than fail a render.
    return text.encode("utf-8", "replace")


def _ts(value: float) -> str:
    return repr(float(value))


_HEADERS: Final = {om: tuple(family_header(s, openmetrics=om) for s in STATIC_SPECS) for om in (False, True)}
_HEADERS_GZ: Final = {om: tuple(gzip_member(h) for h in _HEADERS[om]) for om in (False, True)}
_SINCE_HEADER: Final = {om: family_header(SINCE_SPEC, openmetrics=om) for om in (False, True)}
_SINCE_HEADER_GZ: Final = {om: gzip_member(_SINCE_HEADER[om]) for om in (False, True)}
_EOF_GZ: Final = gzip_member(_EOF)


@dataclass(frozen=True, slots=True)
class _CompanyRender:
    """One company's lines: sample bytes per static family, and its scrape-time template."""

    families: tuple[bytes, ...]
    since_template: bytes
    last_sync_seconds: Sequence[int]


def _render_company(cs: CompanySnapshot, mode: str, state_set: tuple[str, ...]) -> _CompanyRender:
    """Render one company's series; pure."""
    company = cs.company
    cid = f'company_id="{escape_label_value(company.id)}"'
    last_sync: list[str] = []
    status: list[str] = []
    since: list[str] = []
    since_seconds: list[int] = []
    sparse = mode == "sparse"
    status_name = metrics.DATA_STATUS.name
    for data_type in sorted(cs.statuses):
        entry = cs.statuses[data_type]
        pair = f'{cid},data_type="{escape_label_value(data_type)}"'
        if entry.last_successful_sync is not None:
            synced = entry.last_successful_sync.timestamp()
            last_sync.append(f"{metrics.DATA_LAST_SUCCESSFUL_SYNC.name}{{{pair}}} {_ts(synced)}\n")
            # The template is filled with bytes %-formatting: a literal % must be doubled.
            since.append(f"{SINCE_SPEC.name}{{{pair}}} ".replace("%", "%%") + "%d\n")
            since_seconds.append(math.floor(synced))
        active = statuses.one_hot_label(entry.current_status, state_set)
        if sparse:
            status.append(f'{status_name}{{{pair},status="{active}"}} 1\n')
        else:
            status.extend(
                f'{status_name}{{{pair},status="{s}"}} {1 if s == active else 0}\n' for s in state_set
            )
    pull_ops = [
        f'{metrics.PULL_OPERATIONS.name}{{{cid},data_type="{escape_label_value(data_type)}",'
        f'status="{escape_label_value(op_status)}"}} {count}\n'
        for (data_type, op_status), count in sorted(cs.pull_operations_total.items())
    ]
    in_progress = [
        f'{metrics.PULL_OPERATIONS_IN_PROGRESS.name}{{{cid},data_type="{escape_label_value(data_type)}"}} '
        f"{cs.pull_operations_in_progress.get(data_type, 0)}\n"
        for data_type in sorted(set(cs.statuses) | set(cs.pull_operations_in_progress))
    ]
    tags = ",".join(f"{k}={v}" for k, v in sorted(company.tags.items()))
    info = (
        f'{metrics.COMPANY_INFO.name}{{{cid},company_name="{escape_label_value(company.name)}",'
        f'platform="{escape_label_value(company.platform)}",tags="{escape_label_value(tags)}"}} 1\n'
    )
    connections: list[str] = []
    for conn in sorted(company.connections, key=lambda c: c.id):
        active = statuses.connection_status_label(conn.status)
        labels = (
            f'{cid},connection_id="{escape_label_value(conn.id)}",'
            f'platform="{escape_label_value(conn.platform_name)}"'
        )
        connections.extend(
            f'{metrics.CONNECTION_STATUS.name}{{{labels},status="{s}"}} {1 if s == active else 0}\n'
            for s in _CONNECTION_STATES
        )
    up = f"{metrics.COMPANY_UP.name}{{{cid}}} {1 if cs.up else 0}\n"
    last_poll = (
        f"{metrics.COMPANY_LAST_POLL_SUCCESS.name}{{{cid}}} {_ts(cs.last_poll_success.timestamp())}\n"
        if cs.last_poll_success is not None
        else ""
    )
    refresh = [
        f'{metrics.REFRESH_LAST_ATTEMPT.name}{{{cid},data_type="{escape_label_value(data_type)}"}} '
        f"{_ts(when.timestamp())}\n"
        for data_type, when in sorted(cs.refresh_last_attempt.items())
    ]
    by_family: list[str] = [""] * len(STATIC_SPECS)
    by_family[_F_LAST_SYNC] = "".join(last_sync)
    by_family[_F_STATUS] = "".join(status)
    by_family[_F_PULL_OPS] = "".join(pull_ops)
    by_family[_F_IN_PROGRESS] = "".join(in_progress)
    by_family[_F_INFO] = info
    by_family[_F_CONNECTION] = "".join(connections)
    by_family[_F_UP] = up
    by_family[_F_LAST_POLL] = last_poll
    by_family[_F_REFRESH] = "".join(refresh)
    return _CompanyRender(tuple(_encode(t) for t in by_family), _encode("".join(since)), since_seconds)


def _unchanged(before: CompanySnapshot, now: CompanySnapshot) -> bool:
    # Identity first: the scheduler keeps the object of a company that did not change.
    return before is now or before == now


@dataclass(frozen=True, slots=True)
class _AgeChunk:
    """A piece of the age template: whole lines, filled with ``last_sync_seconds[start:stop]``."""

    template: bytes
    start: int
    stop: int


def _age_chunks(template: bytes, offsets: array[int], counts: array[int]) -> tuple[_AgeChunk, ...]:
    """Cut the age template at company boundaries into pieces of about ``AGE_CHUNK_BYTES``."""
    chunks: list[_AgeChunk] = []
    first = 0
    last = len(offsets) - 1
    for i in range(1, last + 1):
        if i == last or offsets[i] - offsets[first] >= AGE_CHUNK_BYTES:
            if counts[i] > counts[first]:
                chunks.append(_AgeChunk(template[offsets[first] : offsets[i]], counts[first], counts[i]))
            first = i
    return tuple(chunks)


@dataclass(frozen=True, slots=True, eq=False)
class RenderedExposition:
    """The pre-rendered exposition of one snapshot (read-only once built).

    Company ``i`` (in ``company_ids`` order) owns ``families[f][offsets[f][i]:offsets[f][i+1]]``
    of every static family, and the slices of the age template (the ``since_chunks`` joined) and
    of ``last_sync_seconds`` given by ``since_offsets`` / ``since_counts``, so the next render can
    copy unchanged companies.
    """

    status_mode: str
    company_ids: tuple[str, ...]
    companies: tuple[CompanySnapshot, ...]
    families: tuple[bytes, ...]
    offsets: tuple[array[int], ...]
    families_gzip: tuple[bytes, ...]
    since_chunks: tuple[_AgeChunk, ...]
    since_offsets: array[int]
    last_sync_seconds: array[int]
    since_counts: array[int]
    rendered_companies: int
    """Companies rendered afresh (the rest were copied from the previous rendering)."""

    @property
    def series(self) -> int:
        """Number of per-company series this rendering serves (static plus scrape-time)."""
        return sum(f.count(b"\n") for f in self.families) + len(self.last_sync_seconds)

    @property
    def since_template(self) -> bytes:
        """The whole age template (every company's ``%d`` lines, in order)."""
        return b"".join(c.template for c in self.since_chunks)

    def since_pieces(self, now_seconds: int) -> Iterator[bytes]:
        """The sample lines of ``codat_data_seconds_since_last_successful_sync`` at ``now_seconds``,
        one template piece at a time (the GIL is free between pieces)."""
        seconds = self.last_sync_seconds
        for chunk in self.since_chunks:
            yield chunk.template % tuple([now_seconds - t for t in seconds[chunk.start : chunk.stop]])

    def since_lines(self, now_seconds: int) -> bytes:
        """The sample lines of ``codat_data_seconds_since_last_successful_sync`` at ``now_seconds``."""
        return b"".join(self.since_pieces(now_seconds))


_Run = tuple[int, int]
"""Companies ``[j, k)`` of the previous rendering, copied unchanged as one slice."""


def _splice_bytes(
    segments: Sequence[_Run | _CompanyRender],
    old: bytes,
    old_offsets: array[int],
    column: Callable[[_CompanyRender], bytes],
) -> tuple[bytes, array[int]]:
    """One column (a family's samples, or the template) of the new rendering, and its offsets."""
    view = memoryview(old)
    pieces: list[bytes | memoryview] = []
    offsets = array("q", [0])
    total = 0
    for segment in segments:
        if isinstance(segment, tuple):
            j, k = segment
            base = old_offsets[j]
            pieces.append(view[base : old_offsets[k]])
            shift = total - base
            offsets.extend([o + shift for o in old_offsets[j + 1 : k + 1]])
            total += old_offsets[k] - base
        else:
            data = column(segment)
            pieces.append(data)
            total += len(data)
            offsets.append(total)
    return b"".join(pieces), offsets


def _splice_seconds(
    segments: Sequence[_Run | _CompanyRender], old: array[int], old_counts: array[int]
) -> tuple[array[int], array[int]]:
    """The last-sync seconds of the new rendering, and each company's offsets into them."""
    seconds = array("q")
    counts = array("q", [0])
    for segment in segments:
        if isinstance(segment, tuple):
            j, k = segment
            base = old_counts[j]
            shift = len(seconds) - base
            seconds.extend(old[base : old_counts[k]])
            counts.extend([c + shift for c in old_counts[j + 1 : k + 1]])
        else:
            seconds.extend(segment.last_sync_seconds)
            counts.append(len(seconds))
    return seconds, counts


def _family_column(f: int) -> Callable[[_CompanyRender], bytes]:
    return lambda company: company.families[f]


def render_snapshot(
    snapshot: Snapshot, status_mode: str = "default", *, previous: RenderedExposition | None = None
) -> RenderedExposition:
    """Render every per-company family of ``snapshot``; reuse ``previous`` for unchanged companies.

    A company is reused when its ``CompanySnapshot`` is the same object as (or equal to) the one
    ``previous`` rendered with the same status mode. Companies are ordered by id, so unchanged
    neighbours form runs that are copied with one slice per family.
    """
    state_set = status_set(status_mode)
    if previous is None or previous.status_mode != status_mode:
        previous = _EMPTY
    prev_index = {cid: i for i, cid in enumerate(previous.company_ids)}
    ids = tuple(sorted(snapshot.companies))
    companies = tuple(snapshot.companies[cid] for cid in ids)
    segments: list[_Run | _CompanyRender] = []
    for cid, cs in zip(ids, companies, strict=True):
        j = prev_index.get(cid)
        if j is None or not _unchanged(previous.companies[j], cs):
            segments.append(_render_company(cs, status_mode, state_set))
            continue
        last = segments[-1] if segments else None
        if isinstance(last, tuple) and last[1] == j:
            segments[-1] = (last[0], j + 1)
        else:
            segments.append((j, j + 1))
    columns = [
        _splice_bytes(segments, previous.families[f], previous.offsets[f], _family_column(f))
        for f in range(len(STATIC_SPECS))
    ]
    template, template_offsets = _splice_bytes(
        segments, previous.since_template, previous.since_offsets, lambda c: c.since_template
    )
    seconds, counts = _splice_seconds(segments, previous.last_sync_seconds, previous.since_counts)
    chunks = _age_chunks(template, template_offsets, counts)
    del template  # the chunks hold the same bytes
    families = tuple(data for data, _ in columns)
    return RenderedExposition(
        status_mode=status_mode,
        company_ids=ids,
        companies=companies,
        families=families,
        offsets=tuple(offsets for _, offsets in columns),
        families_gzip=tuple(gzip_member(f) for f in families),
        since_chunks=chunks,
        since_offsets=template_offsets,
        last_sync_seconds=seconds,
        since_counts=counts,
        rendered_companies=sum(1 for s in segments if not isinstance(s, tuple)),
    )


_EMPTY: Final = RenderedExposition(
    status_mode="",
    company_ids=(),
    companies=(),
    families=tuple(b"" for _ in STATIC_SPECS),
    offsets=tuple(array("q", [0]) for _ in STATIC_SPECS),
    families_gzip=tuple(b"" for _ in STATIC_SPECS),
    since_chunks=(),
    since_offsets=array("q", [0]),
    last_sync_seconds=array("q"),
    since_counts=array("q", [0]),
    rendered_companies=0,
)
"""Nothing rendered yet: the "previous rendering" of a first render."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    return trim


_MALLOC_TRIM: Final = _malloc_trim()


def release_free_heap() -> None:
    """Hand freed heap memory back to the OS (glibc only; a no-op elsewhere).

    A render allocates and frees many megabytes of short-lived strings; glibc keeps that memory
    mapped, so without this the process RSS would stay at the render's peak, not at what it holds.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def registry_exposition(registry: CollectorRegistry, *, openmetrics: bool) -> bytes:
    """A registry's exposition without the OpenMetrics ``# EOF`` (the body adds one at its very end)."""
    if not openmetrics:
        text: bytes = generate_text(registry)
        return text
    om: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return om.removesuffix(_EOF)


@dataclass(frozen=True, slots=True, eq=False)
class AgeBlock:
    """The ``codat_data_seconds_since_last_successful_sync`` samples of one rendering at one second.

    Its values are right only during ``second`` (Unix time, whole seconds), so it is served only
    then. ``plain`` (the sample lines, in pieces) or ``gzip`` (one gzip member, or ``b""`` when
    there are no lines) is ``None`` when that variant was not built.
    """

    rendered: RenderedExposition
    second: int
    plain: tuple[bytes, ...] | None
    gzip: bytes | None

    def has(self, *, plain: bool, gzip: bool) -> bool:
        """Whether the block holds every variant asked for."""
        return (not plain or self.plain is not None) and (not gzip or self.gzip is not None)


def build_age_block(
    rendered: RenderedExposition,
    second: int,
    *,
    plain: bool,
    gzip: bool,
    base: AgeBlock | None = None,
    between_pieces: Callable[[], None] | None = None,
) -> AgeBlock:
    """Fill the age template for ``second``; keep the plain lines and/or compress them.

    ``base`` (the same rendering and second) lends the variants it already has: its plain lines
    are compressed rather than formatted again. Pieces are formatted and compressed one after
    the other, so the whole plain block is never held unless it is asked for;
    ``between_pieces`` is called after each (the age ticker pauses there for scrapes).
    """
    if base is not None and (base.rendered is not rendered or base.second != second):
        raise ValueError("base is an age block of another rendering or second")
    have_plain = base.plain if base is not None else None
    have_gzip = base.gzip if base is not None else None
    if plain and have_plain is None:
        have_plain = tuple(_paced(rendered.since_pieces(second), between_pieces))
    if gzip and have_gzip is None:
        pieces = have_plain if have_plain is not None else rendered.since_pieces(second)
        have_gzip = _gzip_stream(_paced(pieces, between_pieces))
    return AgeBlock(rendered, second, have_plain, have_gzip)


def _paced(pieces: Iterable[bytes], between: Callable[[], None] | None) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        if between is not None:
            between()


def _gzip_stream(pieces: Iterable[bytes]) -> bytes:
    """``pieces`` as one gzip member (``b""`` when there are none), compressed as they come."""
    compressor = compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    out = [compressor.compress(piece) for piece in pieces]  # ISA-L and zlib release the GIL here
    return b"".join([*out, compressor.flush()]) if out else b""


class ExpositionCache:
    """The /metrics body source: the current rendering plus the scrape-time parts; thread-safe.

    ``update`` runs in the poll thread and swaps one reference; ``parts``/``body`` run on scrapes
    and only read that reference, so a scrape never waits for a render. Age blocks are kept by
    second for the current rendering: the one a scrape builds, and those ``prebuild_ages`` (the
    age ticker) builds ahead.
    """

    MAX_AGE_BLOCKS: Final = 2
    """Age blocks kept at once: the current second's and the next one's."""

    def __init__(self, status_mode: str = "default", registry: CollectorRegistry | None = None) -> None:
        """Start with an empty snapshot; ``registry`` (e.g. ``Telemetry.registry``) is appended per scrape."""
        status_set(status_mode)  # fail fast on a bad mode
        self.status_mode = status_mode
        self.registry = registry
        self._update_lock = threading.Lock()
        self._ages_lock = threading.Lock()  # guards _ages; held only to read or swap it
        self._scrape_build_lock = threading.Lock()  # scrapes in one second share one build
        self._rendered = render_snapshot(Snapshot(), status_mode)
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
            self._rendered = render_snapshot(snapshot, self.status_mode, previous=self._rendered)
            with self._ages_lock:
                self._ages = {}  # they belong to (and hold alive) the previous rendering
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
                    gzip=block.gzip if block.gzip is not None else kept.gzip,
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
                rendered, second, plain=plain, gzip=gzip, base=kept, between_pieces=between_pieces
            )
        )
        self.age_blocks_built_ahead += 1
        return True

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

        ``now`` is Unix time; ``registry`` overrides the cache's own self-metrics registry.
        """
        rendered = self._rendered
        headers = _HEADERS_GZ[openmetrics] if gzip else _HEADERS[openmetrics]
        families = rendered.families_gzip if gzip else rendered.families
        out: list[bytes] = []
        for header, samples in zip(headers, families, strict=True):
            out.append(header)
            if samples:
                out.append(samples)
        out.append(_SINCE_HEADER_GZ[openmetrics] if gzip else _SINCE_HEADER[openmetrics])
        ages = self._scrape_ages(rendered, math.floor(now), gzip=gzip)
        if gzip:
            if ages.gzip:
                out.append(ages.gzip)
        elif ages.plain:
            out.extend(ages.plain)
        registry = registry if registry is not None else self.registry
        if registry is not None:
            extra = registry_exposition(registry, openmetrics=openmetrics)
            out.append(gzip_member(extra) if gzip else extra)
        if openmetrics:
            out.append(_EOF_GZ if gzip else _EOF)
        return out

    def body(
        self, openmetrics: bool, gzip: bool, now: float, registry: CollectorRegistry | None = None
    ) -> bytes:
        """The whole /metrics body as one bytes object (see ``parts``)."""
        return b"".join(self.parts(openmetrics, gzip, now, registry))


class AgeTicker:
    """Builds the gzip age block of the coming second ahead of scrapes, while scrapes arrive.

    The server reports each /metrics scrape with ``scraped``. While the last gzip scrape (what
    Prometheus asks for) is at most ``active_seconds`` old, a daemon thread builds the gzip age
    block of the current and the next wall-clock second, then sleeps until the next second
    begins: a scrape then finds its block ready instead of formatting and compressing it. Plain
    scrapes (people, ``curl``) build their own block: that keeps them within 2× of sending the
    bytes (see bench/RESULTS.md) and a stray ``curl`` from costing minutes of ticking. While a
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
        self._build_rendering: RenderedExposition | None = None
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
        if self._build_rendering is not self.cache.rendered:
            self._build_rendering, self._build_seconds = self.cache.rendered, 0.0
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
            except Exception:  # never let a bad render stop the ticker: scrapes build their own
                log.exception("building the age block ahead of scrapes failed")
            # Sleep to just past the next second boundary; a new rendering or stop() wakes it early.
            self._wake.wait(min(1.0, max(0.0, math.floor(now) + 1.001 - self.clock())))

    def _in_window(self, now: float) -> bool:
        # ``wanted`` for a caller that holds ``_lock``.
        last = self._last_gzip_scrape
        return last is not None and now - last <= self.active_seconds
