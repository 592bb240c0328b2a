"""Age blocks: the age family's samples of one rendering, filled in for one wall-clock second.

An ``AgeBlock`` is only ever served in its own second, so its values are always the scrape
second minus the last-sync second. The age ticker builds the block of the coming second ahead of
the scrapes; a scrape that finds none builds it itself. Each piece of the template becomes its own
gzip member, so the pieces a new rendering carried over unchanged (see ``agetemplate``) lend their
lines and members of the same second to the new rendering's block (``Carry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from exporter.exposition.agetemplate import AgeChunk
from exporter.exposition.render import RenderedExposition
from exporter.exposition.textformat import gzip_member

Carry = Mapping[AgeChunk, tuple[bytes | None, bytes | None]]
"""Per piece carried into a new rendering: its filled-in lines and gzip member of one second."""


@dataclass(frozen=True, slots=True, eq=False)
class AgeBlock:
    """The ``codat_data_seconds_since_last_successful_sync`` samples of one rendering at one second.

    Its values are right only during ``second`` (Unix time, whole seconds), so it is served only
    then. ``plain`` (the sample lines, one buffer per template piece) or ``members`` (one gzip
    member per piece) is ``None`` when that variant was not built.
    """

    rendered: RenderedExposition
    second: int
    plain: tuple[bytes, ...] | None
    members: tuple[bytes, ...] | None

    @property
    def gzip(self) -> bytes | None:
        """The gzip variant as one stream of members (``b""`` when there are no lines)."""
        return None if self.members is None else b"".join(self.members)

    def has(self, *, plain: bool, gzip: bool) -> bool:
        """Whether the block holds every variant asked for."""
        return (not plain or self.plain is not None) and (not gzip or self.members is not None)

    def carry(self, chunks: Iterable[AgeChunk]) -> dict[AgeChunk, tuple[bytes | None, bytes | None]]:
        """What this block lends, for the same second, to a rendering holding ``chunks``."""
        index = {chunk: i for i, chunk in enumerate(self.rendered.since_chunks)}
        out: dict[AgeChunk, tuple[bytes | None, bytes | None]] = {}
        for chunk in chunks:
            i = index.get(chunk)
            if i is not None:
                out[chunk] = (
                    self.plain[i] if self.plain is not None else None,
                    self.members[i] if self.members is not None else None,
                )
        return out


def build_age_block(
    rendered: RenderedExposition,
    second: int,
    *,
    plain: bool,
    gzip: bool,
    base: AgeBlock | None = None,
    carry: Carry | None = None,
    between_pieces: Callable[[], None] | None = None,
) -> AgeBlock:
    """Fill the age template for ``second``; keep the plain lines and/or compress them.

    ``base`` (the same rendering and second) lends the variants it already has: its plain lines
    are compressed rather than formatted again. ``carry`` lends what the previous rendering built
    for ``second`` for the pieces it shares with this one. Pieces are formatted and compressed
    one after the other, so the whole plain block is never held unless it is asked for;
    ``between_pieces`` is called after each (the age ticker pauses there for scrapes).
    """
    if base is not None and (base.rendered is not rendered or base.second != second):
        raise ValueError("base is an age block of another rendering or second")
    carry = carry or {}
    have_plain = base.plain if base is not None else None
    members = base.members if base is not None else None
    if plain and have_plain is None:
        have_plain = tuple(_paced(_lines(rendered, second, carry), between_pieces))
    if gzip and members is None:
        members = tuple(_paced(_members(rendered, second, carry, have_plain), between_pieces))
    return AgeBlock(rendered, second, have_plain, members)


def _lines(rendered: RenderedExposition, second: int, carry: Carry) -> Iterator[bytes]:
    for chunk in rendered.since_chunks:
        lent = carry.get(chunk, (None, None))[0]
        yield lent if lent is not None else chunk.fill(second)


def _members(
    rendered: RenderedExposition, second: int, carry: Carry, plain: tuple[bytes, ...] | None
) -> Iterator[bytes]:
    for i, chunk in enumerate(rendered.since_chunks):
        lent_plain, lent_member = carry.get(chunk, (None, None))
        if lent_member is not None:
            yield lent_member
            continue
        lines = plain[i] if plain is not None else lent_plain
        yield gzip_member(lines if lines is not None else chunk.fill(second))  # releases the GIL


def _paced(pieces: Iterable[bytes], between: Callable[[], None] | None) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        if between is not None:
            between()
