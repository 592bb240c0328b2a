"""The per-company family catalogue: each family is one value holding its metadata and its renderer.

Like kube-state-metrics' ``FamilyGenerator``, a ``CompanyFamily`` is a ``MetricSpec`` (name, type,
HELP, labels) that also knows how to turn one company into its sample lines. The rendering code
iterates ``COMPANY_FAMILIES`` and knows no family by name, so adding a per-company metric is one
entry here (the value and its place in ``COMPANY_FAMILIES``) plus its test.

Renderers are pure: ``CompanyView`` -> the family's sample lines for that company (``""`` for
none), in the Prometheus text format that OpenMetrics shares. Labels go through
``escape_label_value``; the renderers of a company's families run once per changed company.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from exporter.codat import statuses
from exporter.collector.snapshot import CompanySnapshot
from exporter.exposition.spec import CACHED, MetricSpec, MetricType
from exporter.exposition.taglabels import TagLabels, render_tag_labels, tag_labels
from exporter.exposition.textformat import escape_label_value, timestamp_value

StatusMode = Literal["default", "full", "sparse"]
STATUS_MODES: Final[tuple[str, ...]] = get_args(StatusMode)


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


@dataclass(frozen=True, slots=True)
class CompanyView:
    """One company as the renderers see it: its snapshot, its escaped labels, the status mode."""

    snapshot: CompanySnapshot
    company_label: str
    """``company_id="…"``, escaped: the first label of every per-company series."""
    pairs: tuple[tuple[str, str], ...]
    """``(data_type, 'company_id="…",data_type="…"')`` for each data type with a status, sorted."""
    status_mode: str
    state_set: tuple[str, ...]
    """``status_set(status_mode)``."""

    @classmethod
    def of(cls, cs: CompanySnapshot, status_mode: str, state_set: tuple[str, ...]) -> CompanyView:
        """Prepare ``cs`` for rendering in ``status_mode`` (``state_set`` is its status set)."""
        cid = f'company_id="{escape_label_value(cs.company.id)}"'
        pairs = tuple((dt, f'{cid},data_type="{escape_label_value(dt)}"') for dt in sorted(cs.statuses))
        return cls(cs, cid, pairs, status_mode, state_set)

    @property
    def sparse(self) -> bool:
        """Whether only what is non-zero or informative is emitted."""
        return self.status_mode == "sparse"

    def pair(self, data_type: str) -> str:
        """The ``company_id`` and ``data_type`` labels of ``data_type``, escaped."""
        return f'{self.company_label},data_type="{escape_label_value(data_type)}"'


@dataclass(frozen=True, slots=True)
class CompanyFamily(MetricSpec):
    """A per-company family: its ``MetricSpec`` and ``render``, one company's sample lines."""

    render: Callable[[CompanyView], str] = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class AgeFamily(MetricSpec):
    """The per-company family whose values are filled in at scrape time (see ``ages``).

    ``template`` gives one company's sample lines with ``%d`` for each value, and the Unix
    seconds each value counts from (a value is ``scrape second - those seconds``).
    """

    template: Callable[[CompanyView], tuple[str, list[int]]] = field(kw_only=True)


def _last_sync_lines(view: CompanyView) -> str:
    statuses_ = view.snapshot.statuses
    name = DATA_LAST_SUCCESSFUL_SYNC.name
    lines = []
    for data_type, pair in view.pairs:
        synced = statuses_[data_type].last_successful_sync
        if synced is not None:
            lines.append(f"{name}{{{pair}}} {timestamp_value(synced.timestamp())}\n")
    return "".join(lines)


def _since_template(view: CompanyView) -> tuple[str, list[int]]:
    statuses_ = view.snapshot.statuses
    # The template is filled with bytes %-formatting: a literal % in a label must be doubled.
    name = DATA_SECONDS_SINCE_SYNC.name.replace("%", "%%")
    lines: list[str] = []
    seconds: list[int] = []
    for data_type, pair in view.pairs:
        synced = statuses_[data_type].last_successful_sync
        if synced is not None:
            lines.append(f"{name}{{{pair.replace('%', '%%')}}} %d\n")
            seconds.append(math.floor(synced.timestamp()))
    return "".join(lines), seconds


def _status_lines(view: CompanyView) -> str:
    statuses_ = view.snapshot.statuses
    name = DATA_STATUS.name
    lines: list[str] = []
    for data_type, pair in view.pairs:
        current = statuses_[data_type].current_status
        if view.sparse:
            active = statuses.one_hot_label(current, view.state_set)
            lines.append(f'{name}{{{pair},status="{active}"}} 1\n')
        else:
            # Issue 12.5: a documented status outside the set adds its own series (see statuses.py).
            series = statuses.one_hot_series(current, view.state_set)
            lines.extend(f'{name}{{{pair},status="{s}"}} {v}\n' for s, v in series)
    return "".join(lines)


def _pull_operation_lines(view: CompanyView) -> str:
    name = PULL_OPERATIONS.name
    return "".join(
        f'{name}{{{view.pair(data_type)},status="{escape_label_value(op_status)}"}} {count}\n'
        for (data_type, op_status), count in sorted(view.snapshot.pull_operations_total.items())
    )


def _in_progress_lines(view: CompanyView) -> str:
    cs = view.snapshot
    name = PULL_OPERATIONS_IN_PROGRESS.name
    running = cs.pull_operations_in_progress
    # Sparse mode emits only what is non-zero: an absent pair means none in progress.
    data_types = sorted(running) if view.sparse else sorted(set(cs.statuses) | set(running))
    return "".join(
        f"{name}{{{view.pair(data_type)}}} {running.get(data_type, 0)}\n"
        for data_type in data_types
        if running.get(data_type, 0) or not view.sparse
    )


@dataclass(frozen=True, slots=True)
class _InfoLines:
    """The ``codat_company_info`` renderer; compares by its tag labels, so an unchanged
    allow-list keeps the catalogue equal and the rendering incremental."""

    tag_labels: TagLabels = ()

    def __call__(self, view: CompanyView) -> str:
        company = view.snapshot.company
        tags = ",".join(f"{k}={v}" for k, v in sorted(company.tags.items()))
        return (
            f'{COMPANY_INFO.name}{{{view.company_label},company_name="{escape_label_value(company.name)}",'
            f'platform="{escape_label_value(company.platform)}",tags="{escape_label_value(tags)}"'
            f"{render_tag_labels(company.tags, self.tag_labels)}}} 1\n"
        )


_CONNECTION_STATES: Final = (*statuses.CONNECTION_STATUSES, statuses.OTHER)


def _connection_lines(view: CompanyView) -> str:
    name = CONNECTION_STATUS.name
    lines: list[str] = []
    for conn in sorted(view.snapshot.company.connections, key=lambda c: c.id):
        active = statuses.connection_status_label(conn.status)
        labels = (
            f'{view.company_label},connection_id="{escape_label_value(conn.id)}",'
            f'platform="{escape_label_value(conn.platform_name)}"'
        )
        lines.extend(
            f'{name}{{{labels},status="{s}"}} {1 if s == active else 0}\n' for s in _CONNECTION_STATES
        )
    return "".join(lines)


def _schedule_lines(view: CompanyView) -> str:
    # Only pairs the exporter reports (the data-type filter already applied to statuses).
    schedules = view.snapshot.sync_schedules
    name = DATA_SYNC_SCHEDULE.name
    return "".join(
        f"{name}{{{pair}}} {timestamp_value(schedules[data_type])}\n"
        for data_type, pair in view.pairs
        if data_type in schedules
    )


def _oldest_open_lines(view: CompanyView) -> str:
    name = PULL_OPERATION_OLDEST_OPEN.name
    return "".join(
        f"{name}{{{view.pair(data_type)}}} {timestamp_value(requested.timestamp())}\n"
        for data_type, requested in sorted(view.snapshot.oldest_open_requested.items())
    )


def _connection_error_lines(view: CompanyView) -> str:
    # Codat's Connection.dataConnectionErrors (status Active/Resolved); the free-text message is
    # never a label. Sparse mode leaves out connections without an active error.
    name = CONNECTION_ACTIVE_ERRORS.name
    lines: list[str] = []
    for conn in sorted(view.snapshot.company.connections, key=lambda c: c.id):
        active = conn.active_errors
        if active or not view.sparse:
            lines.append(
                f'{name}{{{view.company_label},connection_id="{escape_label_value(conn.id)}"}} {active}\n'
            )
    return "".join(lines)


def _up_lines(view: CompanyView) -> str:
    return f"{COMPANY_UP.name}{{{view.company_label}}} {1 if view.snapshot.up else 0}\n"


def _last_poll_lines(view: CompanyView) -> str:
    polled = view.snapshot.last_poll_success
    if polled is None:
        return ""
    return f"{COMPANY_LAST_POLL_SUCCESS.name}{{{view.company_label}}} {timestamp_value(polled.timestamp())}\n"


def _refresh_lines(view: CompanyView) -> str:
    name = REFRESH_LAST_ATTEMPT.name
    return "".join(
        f"{name}{{{view.pair(data_type)}}} {timestamp_value(when.timestamp())}\n"
        for data_type, when in sorted(view.snapshot.refresh_last_attempt.items())
    )


DATA_LAST_SUCCESSFUL_SYNC: Final = CompanyFamily(
    "codat_data_last_successful_sync_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last successful sync of a company's data type (absent if it never synced)." + CACHED,
    ("company_id", "data_type"),
    render=_last_sync_lines,
)
DATA_SECONDS_SINCE_SYNC: Final = AgeFamily(
    "codat_data_seconds_since_last_successful_sync",
    MetricType.GAUGE,
    "Seconds from the last successful sync of a company's data type to this scrape; keeps rising "
    "if polling stalls." + CACHED,
    ("company_id", "data_type"),
    template=_since_template,
)
DATA_STATUS: Final = CompanyFamily(
    "codat_data_status",
    MetricType.GAUGE,
    "Current sync status of a company's data type, one-hot: the series of the current status is 1; "
    "every documented Codat status is named (in the default mode one outside the seven always-present "
    'ones adds its own series while current); status="NeverSynced" is a type Codat gives no status '
    '(it never synced); status="Other" is a status this exporter does not know.' + CACHED,
    ("company_id", "data_type", "status"),
    render=_status_lines,
)
PULL_OPERATIONS: Final = CompanyFamily(
    "codat_pull_operations_total",
    MetricType.COUNTER,
    "Pull operations (syncs) that reached a terminal status, each counted once." + CACHED,
    ("company_id", "data_type", "status"),
    render=_pull_operation_lines,
)
PULL_OPERATIONS_IN_PROGRESS: Final = CompanyFamily(
    "codat_pull_operations_in_progress",
    MetricType.GAUGE,
    "Pull operations of a company's data type that are queued or running (in the sparse status mode "
    "only pairs with at least one)." + CACHED,
    ("company_id", "data_type"),
    render=_in_progress_lines,
)


def company_info_family(tags: Sequence[str] = ()) -> CompanyFamily:
    """``codat_company_info`` with a ``tag_<name>`` label for each Codat tag in ``tags``.

    The allow-list is checked by ``taglabels.tag_labels`` (``TagLabelError`` when unusable).
    """
    labels = tag_labels(tags)
    return CompanyFamily(
        "codat_company_info",
        MetricType.GAUGE,
        "Always 1; carries a company's name, platforms and tags (all as one label, and the "
        "configured ones as tag_<name> labels) for joins on company_id." + CACHED,
        ("company_id", "company_name", "platform", "tags", *(label for _, label in labels)),
        render=_InfoLines(labels),
    )


COMPANY_INFO: Final = company_info_family()
CONNECTION_STATUS: Final = CompanyFamily(
    "codat_connection_status",
    MetricType.GAUGE,
    "Status of a company's data connection, one-hot over PendingAuth, Linked, Unlinked, "
    "Deauthorized and Other." + CACHED,
    ("company_id", "connection_id", "platform", "status"),
    render=_connection_lines,
)
DATA_SYNC_SCHEDULE: Final = CompanyFamily(
    "codat_data_sync_schedule_seconds",
    MetricType.GAUGE,
    "Codat's sync schedule of a company's data type (syncSchedule, hours, in seconds); absent when "
    "Codat syncs it on no schedule or the settings could not be read." + CACHED,
    ("company_id", "data_type"),
    render=_schedule_lines,
)
PULL_OPERATION_OLDEST_OPEN: Final = CompanyFamily(
    "codat_pull_operation_oldest_open_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time the oldest still-open (queued or running) pull operation of a company's data type "
    "was requested; absent when none is open." + CACHED,
    ("company_id", "data_type"),
    render=_oldest_open_lines,
)
CONNECTION_ACTIVE_ERRORS: Final = CompanyFamily(
    "codat_connection_active_errors",
    MetricType.GAUGE,
    "Errors Codat reports as Active on a company's data connection (dataConnectionErrors): "
    "transient platform errors that warn before data goes stale (in the sparse status mode only "
    "connections with at least one)." + CACHED,
    ("company_id", "connection_id"),
    render=_connection_error_lines,
)
COMPANY_UP: Final = CompanyFamily(
    "codat_exporter_company_up",
    MetricType.GAUGE,
    "1 if the last poll of this company succeeded, 0 if it failed (its other values are then the "
    "last good ones).",
    ("company_id",),
    render=_up_lines,
)
COMPANY_LAST_POLL_SUCCESS: Final = CompanyFamily(
    "codat_exporter_last_poll_success_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last successful poll of this company: how old its cached values are.",
    ("company_id",),
    render=_last_poll_lines,
)
REFRESH_LAST_ATTEMPT: Final = CompanyFamily(
    "codat_refresh_last_attempt_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last auto-refresh attempt for a company's data type.",
    ("company_id", "data_type"),
    render=_refresh_lines,
)

COMPANY_FAMILIES: Final[tuple[CompanyFamily, ...]] = (
    DATA_LAST_SUCCESSFUL_SYNC,
    DATA_STATUS,
    PULL_OPERATIONS,
    PULL_OPERATIONS_IN_PROGRESS,
    PULL_OPERATION_OLDEST_OPEN,
    DATA_SYNC_SCHEDULE,
    COMPANY_INFO,
    CONNECTION_STATUS,
    CONNECTION_ACTIVE_ERRORS,
    COMPANY_UP,
    COMPANY_LAST_POLL_SUCCESS,
    REFRESH_LAST_ATTEMPT,
)
"""Families rendered once per snapshot, in output order; ``AGE_FAMILY`` follows them."""


def company_catalogue(tags: Sequence[str] = ()) -> tuple[CompanyFamily, ...]:
    """``COMPANY_FAMILIES`` with ``codat_company_info`` labelled by the Codat tags in ``tags``
    (the ``metrics.company_tag_labels`` allow-list); equal catalogues for equal lists."""
    if not tags:
        return COMPANY_FAMILIES
    info = company_info_family(tags)
    return tuple(info if family is COMPANY_INFO else family for family in COMPANY_FAMILIES)


AGE_FAMILY: Final = DATA_SECONDS_SINCE_SYNC
"""The family filled in at scrape time (it keeps rising when polling stalls)."""

SNAPSHOT_METRICS: Final[tuple[MetricSpec, ...]] = (*COMPANY_FAMILIES, AGE_FAMILY)
"""Every per-company family, in output order (derived: nothing to keep in sync)."""
