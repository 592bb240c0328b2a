"""How large a Codat response may be, sized from what Codat can legitimately send.

A body past its limit is not read any further: the call fails with
``ResponseTooLargeError`` (that company, or that listing, is marked failed),
so a runaway or hostile answer costs at most its limit in memory, never the
whole body.
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

COMPANY_RECORD: Final = 8 * KIB
"""One company in a listing: a typical record with a few connections and ten tags is 1–2 KiB."""
PULL_OPERATION_RECORD: Final = 4 * KIB
"""One pull operation in a history page: typically under 1 KiB, more with a long error message."""
PAGE_OVERHEAD: Final = 64 * KIB
"""The page envelope (``pageNumber``, ``_links`` …), with room to spare."""
DATA_STATUS: Final = 1 * MIB
"""A ``dataStatus`` of every data type: Codat has under a hundred data types of a few hundred bytes each."""
SINGLE_OBJECT: Final = 256 * KIB
"""One pull operation, or any other single object (connections, sync settings)."""
ERROR_BODY: Final = 64 * KIB
"""An error body: only its first part is read; Codat's ``ErrorMessage`` is a few hundred bytes."""


def page_limit(page_size: int, per_record: int) -> int:
    """The largest acceptable body of a list page of ``page_size`` records of up to ``per_record`` bytes."""
    return PAGE_OVERHEAD + max(1, page_size) * per_record


def describe_size(size: int) -> str:
    """A byte count for humans: ``512 B``, ``64 KiB``, ``40.1 MiB``."""
    if size < KIB:
        return f"{size} B"
    if size < MIB:
        return f"{size / KIB:.0f} KiB"
    return f"{size / MIB:.1f} MiB"
