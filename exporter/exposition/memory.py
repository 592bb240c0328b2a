"""Keep the process RSS near what it holds: glibc's ``malloc_trim`` after a render, and two settings.

A render allocates and frees tens of megabytes (each family's bytes are rebuilt whole), and every
server thread that serves a scrape would get its own malloc arena. With glibc's defaults the freed
memory stays mapped: measured at 1,000 companies × 30 data types, RSS grew from 91 to 167 MiB over
100 concurrent scrapes and 5 new snapshots, and stayed there. With allocations of 1 MiB and more
mapped on their own (returned to the OS when freed, and no "dynamic" threshold that moves them back
into the heap) and at most two arenas, it stayed at 99-102 MiB (see bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Final

M_MMAP_THRESHOLD: Final = -3
M_ARENA_MAX: Final = -8
MMAP_THRESHOLD_BYTES: Final = 1 << 20
ARENA_MAX: Final = 2


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  # raises AttributeError unless this is glibc
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    return libc


_LIBC: Final = _glibc()
_tuned = threading.Event()


def release_free_heap() -> None:
    """Hand freed heap memory back to the OS (glibc only; a no-op elsewhere).

    A render allocates and frees many megabytes of short-lived strings; glibc keeps that memory
    mapped, so without this the process RSS would stay at the render's peak, not at what it holds.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def tune_malloc() -> None:
    """Map allocations of 1 MiB and more on their own and cap malloc arenas at two (glibc only).

    Process-wide and idempotent; ``ExpositionCache`` calls it. An operator's
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_ARENA_MAX`` in the environment is left in force.
    """
    if _LIBC is None or _tuned.is_set():
        return
    _tuned.set()
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if "MALLOC_ARENA_MAX" not in os.environ:
        _LIBC.mallopt(M_ARENA_MAX, ARENA_MAX)
