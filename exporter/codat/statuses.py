"""Codat dataset statuses: the known values and pure classifications of them.

Codat reuses one enum (the pull-operation ``status``) for a data type's
``currentStatus``, for pull operations and for ``read.completed`` webhooks
(Platform API spec: ``PullOperation.status``, 21 values). Statuses are kept as
plain strings everywhere: a value Codat adds tomorrow must flow through the
exporter as "unknown", never crash it.

How ``codat_data_status`` names a pair's status (issue 12.5): every documented
status is visible by name in every mode, and ``Other`` means only that the
exporter does not know the status: a value outside the documented enum. A pair
with no status at all is ``NeverSynced``: Codat's docs show a data type that
never synced as ``{"dataType": "suppliers"}``, without the ``currentStatus`` the
spec marks required (docs: core-concepts/status.md, "Data type that has never
been synced"). The modes differ in which series are always present:

* ``default``: the seed's seven statuses and ``Other`` are always present (0 or
  1); a documented status outside those seven (Queued, Fetching, Mapping,
  Cancelled, PermissionsError, …) adds its own series, 1, while it is current,
  like kube-state-metrics' waiting ``reason``. 8 series per pair, 9 while a pair
  is in such a status; the one-hot sum stays 1.
* ``full``: all 21 documented statuses and ``Other``, always: 22 series per pair.
* ``sparse``: only the current status: 1 series per pair.

``NeverSynced`` is in no set: in every mode it adds its own series, 1, while the
pair has no status, as a documented status outside the default set does.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class StatusClass(StrEnum):
    """What a status means for freshness and for auto-refresh."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    ERROR = "error"
    TERMINAL_OTHER = "terminal_other"  # NotSupported, Cancelled: over, not an error
    UNKNOWN = "unknown"


OTHER: Final = "Other"
"""Catch-all one-hot label: a status outside Codat's documented enum, and nothing else."""
NEVER_SYNCED: Final = "NeverSynced"
"""The one-hot label of a pair Codat gives no ``currentStatus``: a data type that never synced."""

SEED_STATUSES: Final[tuple[str, ...]] = (
    "Complete",
    "FetchError",
    "NotSupported",
    "ProcessingQueued",
    "Processing",
    "ValidationError",
    "AuthError",
)
"""The seven statuses of the DataStatus seed document: the default one-hot set."""

IN_PROGRESS_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "Initial",
        "Queued",
        "Fetching",
        "MapQueued",
        "Mapping",
        "ValidationQueued",
        "Validating",
        "ProcessingQueued",
        "Processing",
    }
)
ERROR_STATUSES: Final[frozenset[str]] = frozenset(
    {
        "FetchError",
        "MapError",
        "InternalError",
        "ProcessingError",
        "ValidationError",
        "AuthError",
        "RateLimitError",
        "PermissionsError",
        "PrerequisiteNotMet",
    }
)
SUCCESS_STATUSES: Final[frozenset[str]] = frozenset({"Complete"})
TERMINAL_OTHER_STATUSES: Final[frozenset[str]] = frozenset({"NotSupported", "Cancelled"})

ALL_STATUSES: Final[tuple[str, ...]] = (
    "Initial",
    "Queued",
    "Fetching",
    "MapQueued",
    "Mapping",
    "Complete",
    "FetchError",
    "MapError",
    "InternalError",
    "ProcessingQueued",
    "Processing",
    "ProcessingError",
    "ValidationQueued",
    "Validating",
    "ValidationError",
    "AuthError",
    "Cancelled",
    "NotSupported",
    "RateLimitError",
    "PermissionsError",
    "PrerequisiteNotMet",
)
"""Every value of the spec's dataset status enum, in the spec's order."""

_DOCUMENTED: Final = frozenset(ALL_STATUSES)

CONNECTION_STATUSES: Final[tuple[str, ...]] = ("PendingAuth", "Linked", "Unlinked", "Deauthorized")
"""Every value of the spec's data connection status enum."""


def classify(status: str | None) -> StatusClass:
    """Classify a dataset status; ``None`` (never synced) and unknown strings are UNKNOWN."""
    if status is None:
        return StatusClass.UNKNOWN
    if status in IN_PROGRESS_STATUSES:
        return StatusClass.IN_PROGRESS
    if status in SUCCESS_STATUSES:
        return StatusClass.SUCCESS
    if status in ERROR_STATUSES:
        return StatusClass.ERROR
    if status in TERMINAL_OTHER_STATUSES:
        return StatusClass.TERMINAL_OTHER
    return StatusClass.UNKNOWN


def is_terminal(status: str) -> bool:
    """True when a pull operation in this status will not change again.

    Unknown statuses count as not terminal: counting an operation too early
    would double-count it if Codat later reports a terminal status for it.
    """
    return classify(status) in (StatusClass.SUCCESS, StatusClass.ERROR, StatusClass.TERMINAL_OTHER)


def is_in_progress(status: str | None) -> bool:
    """True while a sync of this status is queued or running."""
    return classify(status) is StatusClass.IN_PROGRESS


def one_hot_label(status: str | None, status_set: tuple[str, ...]) -> str:
    """The ``status`` label value a pair gets: itself if in the set or documented, ``NeverSynced``
    when there is none, else ``Other``."""
    if status is None:
        return NEVER_SYNCED
    if status in status_set or status in _DOCUMENTED:
        return status
    return OTHER


def one_hot_series(status: str | None, status_set: tuple[str, ...]) -> list[tuple[str, int]]:
    """The ``(status label, value)`` series of one pair: every status of ``status_set`` (1 for
    the current one, else 0), plus the current status with 1 when it is documented but outside
    the set, or ``NeverSynced``. Exactly one value is 1."""
    active = one_hot_label(status, status_set)
    series = [(s, 1 if s == active else 0) for s in status_set]
    if active not in status_set:
        series.append((active, 1))
    return series


def connection_status_label(status: str | None) -> str:
    """The ``status`` label of codat_connection_status: a known value, else ``Other``."""
    if status is not None and status in CONNECTION_STATUSES:
        return status
    return OTHER
