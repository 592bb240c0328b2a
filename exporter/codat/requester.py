"""Sending one logical Codat request: pacing, a deadline per attempt, bounded retries, typed errors.

The ``Requester`` is the I/O half of the client: it owns the pooled session,
the token bucket and the concurrency cap, sends attempts through
``transport.exchange`` (total deadline, size limit), asks ``retry.decide_retry``
whether to try again, and turns the outcome into a body or a typed error
with ``answers`` (every field redacted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import requests

from exporter.codat import limits
from exporter.codat.answers import (
    Answer,
    Call,
    decode_json,
    error_from_answer,
    no_answer_error,
    too_large_error,
)
from exporter.codat.errors import CodatError
from exporter.codat.headers import parse_rate_limit, parse_retry_after
from exporter.codat.models import RateLimitInfo
from exporter.codat.observer import RequestObserver
from exporter.codat.ratelimit import ConcurrencyLimit, TokenBucket
from exporter.codat.retry import Failure, GiveUp, RetryPolicy, decide_retry
from exporter.codat.transport import (
    DeadlineAdapter,
    DeadlineExceededError,
    Timeouts,
    classify_exception,
    deadline_passed,
    exchange,
)

log = logging.getLogger(__name__)


def new_session(max_concurrency: int) -> requests.Session:
    """A session whose connections honour the total deadline, pooled for ``max_concurrency`` requests."""
    session = requests.Session()
    # One pool per host, as many kept-alive connections as requests may be in flight;
    # urllib3 retries off: retrying is decided here, where POSTs are told apart.
    adapter = DeadlineAdapter(pool_connections=2, pool_maxsize=max(1, max_concurrency), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Requester:
    """Sends the client's requests; shared by every thread (the session pool and the pacing are)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        secrets: tuple[str, ...],
        timeouts: Timeouts,
        policy: RetryPolicy,
        pacer: TokenBucket,
        concurrency: ConcurrencyLimit,
        observer: RequestObserver,
        session: requests.Session | None,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        jitter: Callable[[], float],
    ) -> None:
        self.base_url = base_url
        self.timeouts = timeouts
        self.pacer = pacer
        self.concurrency = concurrency
        self._headers = dict(headers)
        self._secrets = secrets
        self._policy = policy
        self._observer = observer
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._jitter = jitter
        self._owns_session = session is None
        self._session = session if session is not None else new_session(concurrency.limit)
        self._rate_limit: RateLimitInfo | None = None
        self._rate_limit_lock = threading.Lock()

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """The ``X-Rate-Limit-*`` figures of the most recent response that carried them."""
        with self._rate_limit_lock:
            return self._rate_limit

    def close(self) -> None:
        """Close the session's pooled connections (a session passed in by the caller is left open)."""
        if self._owns_session:
            self._session.close()

    def request(
        self,
        method: str,
        path: str,
        endpoint: str,
        company_id: str | None,
        params: Mapping[str, Any] | None,
        *,
        idempotent: bool,
        want_json: bool = True,
        limit: int = limits.SINGLE_OBJECT,
    ) -> tuple[int, object]:
        """Send one logical request with pacing and retries; return (status, decoded JSON body).

        ``path`` is appended to the base URL; ``limit`` caps a 2xx body in bytes.

        Each attempt ends by its deadline (``request_timeout``), and the whole
        call by ``max(retry_max_elapsed, request_timeout)``.
        """
        url = self.base_url + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        call = Call(endpoint, company_id, self._secrets)
        started = self._clock()
        call_deadline = time.monotonic() + max(self._policy.max_elapsed, self.timeouts.total)
        retries_done = 0
        while True:
            deadline = min(time.monotonic() + self.timeouts.total, call_deadline)
            answer, failure, error = self._attempt(method, url, query, call, deadline, limit)
            if error is None and answer is not None:
                return answer.status, decode_json(answer, call) if want_json else None
            if error is None:  # pragma: no cover - _attempt returns an error for every failed outcome
                raise AssertionError("no error for a failed attempt")
            status = answer.status if answer is not None else None
            retry_after = (
                parse_retry_after(answer.headers.get("Retry-After"), self._wall_clock())
                if answer is not None
                else None
            )
            decision = decide_retry(
                idempotent=idempotent,
                status=status,
                failure=failure,
                retry_after=retry_after,
                retries_done=retries_done,
                elapsed=self._clock() - started,
                policy=self._policy,
                jitter=self._jitter(),
            )
            if isinstance(decision, GiveUp):
                if retries_done:
                    log.info("giving up on %s %s after %d retries: %s", method, endpoint, retries_done, error)
                raise error
            what = f"HTTP {status}" if status is not None else (failure or "failure")
            self._log_retry(method, endpoint, company_id, what, retries_done + 1, decision.delay)
            self._sleep(decision.delay)
            retries_done += 1

    def _log_retry(
        self, method: str, endpoint: str, company_id: str | None, what: str, retry: int, delay: float
    ) -> None:
        log.info(
            "Codat %s %s%s: %s; retry %d of %d in %.2fs",
            method,
            endpoint,
            f" (company {company_id})" if company_id else "",
            what,
            retry,
            self._policy.max_retries,
            delay,
        )

    def _attempt(
        self, method: str, url: str, query: Mapping[str, Any], call: Call, deadline: float, limit: int
    ) -> tuple[Answer | None, Failure | None, CodatError | None]:
        """One HTTP attempt: (answer, no-answer failure kind, error to raise if this is the last)."""
        self.pacer.acquire()
        with self.concurrency:
            began = self._clock()
            try:
                answer = exchange(
                    self._session,
                    method,
                    url,
                    params=query,
                    headers=self._headers,
                    timeouts=self.timeouts,
                    deadline=deadline,
                    limit=limit,
                )
            except (requests.RequestException, DeadlineExceededError) as exc:
                self._observer.on_request(call.endpoint, "error", self._clock() - began)
                failure = Failure.DEADLINE if deadline_passed(deadline) else classify_exception(exc)
                error = no_answer_error(failure, type(exc).__name__, self.base_url, self.timeouts.total, call)
                return None, failure, error
            self._observer.on_request(call.endpoint, str(answer.status), self._clock() - began)
        self._remember_rate_limit(answer.headers)
        if not 200 <= answer.status < 300:
            return answer, None, error_from_answer(answer, call, self._wall_clock())
        if answer.truncated:
            return None, None, too_large_error(answer, limit, call)
        return answer, None, None

    def _remember_rate_limit(self, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit(headers, self._wall_clock())
        if info is None:
            return
        with self._rate_limit_lock:
            self._rate_limit = info
        self._observer.on_rate_limit(info)
