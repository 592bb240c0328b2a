"""Company polls on a bounded thread pool, and a cycle's bounded wait for them.

A cycle waits for its polls at most ``cycle_wait``: a slow company finishes on its own and is
applied when it does, so it never holds back the others' freshness or the snapshot. While it
waits, the cycle publishes what it has read so far whenever a publication is due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from typing import Final

from exporter.collector.poll import PollResult

log = logging.getLogger("exporter.collector.scheduler")

PollJob = Callable[[], PollResult | None]
Polls = dict[Future[PollResult | None], str]


class PollPool:
    """A thread pool for company polls that can be closed without working through its queue."""

    def __init__(self, max_workers: int) -> None:
        """Start no thread yet: the pool grows as polls are submitted."""
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="codat-poll")
        self.closing = threading.Event()

    def submit(self, jobs: Mapping[str, PollJob]) -> tuple[Polls, list[str]]:
        """Queue every job; the futures by company id, and the ids refused by a closed pool."""
        futures: Polls = {}
        refused: list[str] = []
        for company_id, job in jobs.items():
            try:
                futures[self._pool.submit(job)] = company_id
            except RuntimeError:  # the pool was shut down under us (stop)
                refused.append(company_id)
        return futures, refused

    def close(self, *, wait: bool = True) -> None:
        """Drop polls not started yet; ``wait`` for those in flight.

        Without this a shutdown would first work through every poll the current cycle queued
        (the pool's threads are joined at interpreter exit), spending minutes and quota.
        """
        self.closing.set()
        self._pool.shutdown(wait=wait)


RECHECK_SECONDS: Final = 1.0
"""How often a waiting cycle looks for results it did not submit (an earlier cycle's late polls)."""


def collect(
    futures: Polls,
    deadline: float,
    on_result: Callable[[str, PollResult | None], None],
    next_publish: Callable[[], float],
    publish: Callable[[], None],
    clock: Callable[[], float],
    closing: threading.Event,
    unpublished: Callable[[], bool],
) -> set[Future[PollResult | None]]:
    """Apply results as they come and ``publish`` whenever ``unpublished()`` and ``next_publish()``
    has passed, until every poll is done or ``deadline`` (monotonic) passes; return the polls
    still running.

    ``unpublished`` is the company table's: polls an earlier cycle stopped waiting for finish on
    their own, and a cycle whose own polls are queued behind them must publish those too, or a
    large first sweep shows nothing new until this cycle's first own result.
    """
    waiting = set(futures)
    while waiting:
        due = next_publish()
        until = min(deadline, due if due > clock() else clock() + RECHECK_SECONDS)
        done, waiting = wait(waiting, timeout=max(0.0, until - clock()), return_when=FIRST_COMPLETED)
        for future in done:
            on_result(futures[future], result_of(future))
        if waiting and unpublished() and clock() >= next_publish():
            publish()  # what has been read so far
        if clock() >= deadline or closing.is_set():
            break
    return waiting


def result_of(future: Future[PollResult | None]) -> PollResult | None:
    """A finished poll's result; None if it was cancelled or failed in an unexpected way."""
    try:
        return future.result()
    except CancelledError:
        return None
    except Exception:
        # poll_company turns API failures into results; anything else is a bug in one poll.
        log.exception("company poll failed unexpectedly")
        return None
