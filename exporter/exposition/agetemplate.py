"""The scrape-time age family kept as ``%d`` templates, cut into pieces of about 64 KiB.

``codat_data_seconds_since_last_successful_sync`` must keep rising when polling stalls, so it
cannot be rendered once per snapshot. Its lines are kept as templates with the last-sync seconds
beside them, and filled in for one wall-clock second at a time (see ``ages``).

The template is cut at company boundaries chosen by content (a hash of the company id, once a
piece is long enough), not by position: a company that changes moves the cuts of its own piece
only. A piece whose companies all came unchanged from the previous rendering is carried over as
the same ``AgeChunk`` object, and so are its filled-in lines of the current second: a new
snapshot in which a few companies changed costs a few pieces, not the whole block.
"""

from __future__ import annotations

import itertools
import math
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

AGE_CHUNK_BYTES: Final = 64 * 1024
"""Target size of one piece of the age template. Filling a piece is one C call that holds the GIL;
small pieces keep a scrape thread from waiting more than about 0.1 ms for it while the age ticker
builds (measured: 0.36 ms with 256 KiB pieces), for no measurable cost in total."""


@dataclass(frozen=True, slots=True, eq=False)
class AgeChunk:
    """Whole lines of the age template, and the Unix seconds their values count from (immutable)."""

    template: bytes
    seconds: array[int]

    def fill(self, now_seconds: int) -> bytes:
        """The lines with each value set to ``now_seconds`` minus its last-sync second."""
        return self.template % tuple([now_seconds - t for t in self.seconds])


@dataclass(frozen=True, slots=True)
class AgeChunks:
    """The pieces of one rendering's age template, and the companies ``[first[i], stop[i])`` of each."""

    chunks: tuple[AgeChunk, ...]
    first: array[int]
    stop: array[int]


NO_CHUNKS: Final = AgeChunks((), array("q"), array("q"))


def cuts(ids: Sequence[str], offsets: array[int]) -> list[int]:
    """Company indexes where pieces start (and the end), chosen by content.

    A piece ends before a company whose id hashes to 0 modulo a power of two (chosen so pieces
    average ``AGE_CHUNK_BYTES``) once it holds a quarter of that, or at 4× that whatever the hash.
    """
    count = len(ids)
    average = offsets[count] / count if count else 0
    divisor = 1 << max(0, round(math.log2(AGE_CHUNK_BYTES / average))) if average else 1
    low, high = AGE_CHUNK_BYTES // 4, AGE_CHUNK_BYTES * 4
    out = [0]
    for i in range(1, count):
        size = offsets[i] - offsets[out[-1]]
        if size >= high or (size >= low and zlib.crc32(ids[i].encode("utf-8", "replace")) % divisor == 0):
            out.append(i)
    out.append(count)
    return out


def age_chunks(
    template: bytes,
    offsets: array[int],
    seconds: array[int],
    counts: array[int],
    ids: Sequence[str],
    origin: array[int],
    previous: AgeChunks,
) -> AgeChunks:
    """Cut the age template into pieces, carrying over ``previous`` pieces whose companies are unchanged.

    ``offsets[i]`` is where company ``i`` starts in ``template``, ``counts[i]`` how many values
    come before it; ``origin[i]`` is its index in the previous rendering if it was copied
    unchanged, else -1.
    """
    earlier = {p: (i, s) for i, (p, s) in enumerate(zip(previous.first, previous.stop, strict=True))}
    chunks: list[AgeChunk] = []
    first, stop = array("q"), array("q")
    bounds = cuts(ids, offsets)
    for a, b in itertools.pairwise(bounds):
        if counts[b] == counts[a]:
            continue  # no company here has a synced pair: no lines
        chunk = _carried(a, b, origin, earlier, previous.chunks)
        if chunk is None:
            chunk = AgeChunk(template[offsets[a] : offsets[b]], seconds[counts[a] : counts[b]])
        chunks.append(chunk)
        first.append(a)
        stop.append(b)
    return AgeChunks(tuple(chunks), first, stop)


def _carried(
    a: int, b: int, origin: array[int], earlier: dict[int, tuple[int, int]], chunks: tuple[AgeChunk, ...]
) -> AgeChunk | None:
    """The previous piece of exactly companies ``[a, b)`` if they were all copied unchanged."""
    p = origin[a]
    found = earlier.get(p) if p >= 0 else None
    if found is None or found[1] - p != b - a:
        return None
    if any(origin[a + k] != p + k for k in range(1, b - a)):
        return None
    return chunks[found[0]]
