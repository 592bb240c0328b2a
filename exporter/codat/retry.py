"""When to retry a Codat request and how long to wait: pure decisions, no clock, no sleeping.

Two rules matter more than the backoff curve:

* **Never block for long.** Codat's own SDK retries for up to an hour by
  default. Here every call has a total elapsed budget; a ``Retry-After`` that
  does not fit into what is left ends the call at once, and the caller learns
  the wait from ``RateLimitedError.retry_after``.
* **Never queue a sync twice.** A refresh (POST) that timed out or lost its
  connection after sending may already be queued, and a 5xx may have been
  raised after queueing. A POST is retried only when Codat certainly did not
  act on it: a 429 (rejected before processing) or a failure to connect at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Failure(StrEnum):
    """Why an attempt got no HTTP response."""

    CONNECT = "connect"  # refused or connect timeout: nothing was sent
    READ_TIMEOUT = "read_timeout"  # sent, no answer in time: may have been processed
    CONNECTION_LOST = "connection_lost"  # reset or closed after sending: may have been processed
    DEADLINE = (
        "deadline"  # sent, answer not complete by the request's total deadline: may have been processed
    )


class GiveUpReason(StrEnum):
    """Why the client stops retrying."""

    NOT_RETRYABLE = "not_retryable"
    RETRIES_EXHAUSTED = "retries_exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    RETRY_AFTER_EXCEEDS_BUDGET = "retry_after_exceeds_budget"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and backoff curve of the retries of one call."""

    max_retries: int = 4
    max_elapsed: float = 60.0
    backoff_initial: float = 0.5
    backoff_multiplier: float = 2.0
    backoff_max: float = 30.0


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop and raise the error of the last attempt."""

    reason: GiveUpReason


RETRYABLE_STATUSES = frozenset({408, 429})


def is_retryable(*, idempotent: bool, status: int | None, failure: Failure | None) -> bool:
    """Whether an attempt's outcome may be retried at all (ignoring counts and budgets).

    ``idempotent`` is True for reads (GET) and False for refreshes (POST).
    """
    if status is not None:
        if status == 429:
            return True
        return idempotent and (status in RETRYABLE_STATUSES or status >= 500)
    if failure is Failure.CONNECT:
        return True
    return idempotent and failure is not None


def backoff_delay(retries_done: int, policy: RetryPolicy, jitter: float) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    ``jitter`` is a number in [0, 1) (``random.random()`` in production) so the
    curve is testable. Keeping half of the step fixed guarantees growth, while
    the random half spreads concurrent clients apart.
    """
    step = min(policy.backoff_max, policy.backoff_initial * policy.backoff_multiplier**retries_done)
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)


def decide_retry(
    *,
    idempotent: bool,
    status: int | None,
    failure: Failure | None,
    retry_after: float | None,
    retries_done: int,
    elapsed: float,
    policy: RetryPolicy,
    jitter: float,
) -> Retry | GiveUp:
    """Decide what to do after a failed attempt.

    ``retries_done`` counts retries already made (0 after the first attempt);
    ``elapsed`` is the seconds since the call started. A ``Retry-After`` wins
    over the backoff curve but must fit into the remaining budget.
    """
    if not is_retryable(idempotent=idempotent, status=status, failure=failure):
        return GiveUp(GiveUpReason.NOT_RETRYABLE)
    remaining = policy.max_elapsed - elapsed
    if retry_after is not None and retry_after > remaining:
        return GiveUp(GiveUpReason.RETRY_AFTER_EXCEEDS_BUDGET)
    if retries_done >= policy.max_retries:
        return GiveUp(GiveUpReason.RETRIES_EXHAUSTED)
    delay = retry_after if retry_after is not None else backoff_delay(retries_done, policy, jitter)
    if delay > remaining:
        return GiveUp(GiveUpReason.BUDGET_EXHAUSTED)
    return Retry(delay)
