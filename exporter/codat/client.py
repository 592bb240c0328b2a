"""The Codat Platform API client: the DataStatus operations and company listing, done carefully.

One ``CodatClient`` is shared by every thread of the exporter. It owns a pooled
``requests.Session``, paces requests (token bucket + concurrency cap), retries
what is safe to retry within a bounded time, remembers the last
``X-Rate-Limit-*`` reading, reports every attempt to a ``RequestObserver``, and
turns every failure into a typed ``CodatError``. It returns typed models.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from exporter import __version__
from exporter.codat.auth import REDACTED, authorization_header, redact
from exporter.codat.errors import (
    CodatConnectionError,
    CodatError,
    MalformedResponseError,
    NotFoundError,
    error_from_response,
)
from exporter.codat.models import Company, DataTypeStatus, Page, PullOperation, RateLimitInfo
from exporter.codat.observer import NullObserver, RequestObserver
from exporter.codat.paging import iterate_pages
from exporter.codat.parsing import (
    ShapeError,
    parse_company,
    parse_data_statuses,
    parse_page,
    parse_pull_operation,
    parse_rate_limit,
    parse_retry_after,
)
from exporter.codat.ratelimit import ConcurrencyLimit, TokenBucket
from exporter.codat.retry import Failure, GiveUp, RetryPolicy, decide_retry

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://api.codat.io"
USER_AGENT: Final = f"codat-exporter/{__version__}"
MAX_PAGE_SIZE: Final = 5000

# Endpoint label values (a bounded set: they become the `endpoint` label of self-metrics).
COMPANIES: Final = "companies"
DATA_STATUS: Final = "dataStatus"
HISTORY: Final = "history"
PULL_OPERATION: Final = "pullOperation"
REFRESH_DATA_TYPE: Final = "refreshDataType"
REFRESH_ALL: Final = "refreshAll"

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def classify_exception(exc: requests.RequestException) -> Failure | None:
    """Which kind of no-response failure an exception from ``requests`` is (None: not a network failure).

    Only a failure to connect proves the request was never sent; that
    distinction decides whether a refresh may be retried.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Failure.CONNECT
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Failure.READ_TIMEOUT
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason: object = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return Failure.CONNECT
        return Failure.CONNECTION_LOST
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return Failure.CONNECTION_LOST
    return None


_FAILURE_TEXT: Final[Mapping[Failure | None, str]] = {
    Failure.CONNECT: "could not connect",
    Failure.READ_TIMEOUT: "no answer within the read timeout",
    Failure.CONNECTION_LOST: "connection lost before a complete response",
    None: "request failed",
}


def _segment(value: str) -> str:
    """One URL path segment, fully escaped (an id with ``/`` or ``..`` must not change the path)."""
    return quote(value, safe="")


def _check_paging(page: int, page_size: int) -> None:
    if page < 1:
        raise ValueError(f"page must be at least 1, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")


class CodatClient:
    """A thread-safe client for the parts of Codat's Platform API the exporter uses."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_retries: int = 4,
        retry_max_elapsed: float = 60.0,
        requests_per_minute: float = 300.0,
        max_concurrency: int = 4,
        observer: RequestObserver | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.base_url = base_url.rstrip("/")
        self._timeout = (connect_timeout, read_timeout)
        self._policy = RetryPolicy(max_retries=max_retries, max_elapsed=retry_max_elapsed)
        self._observer: RequestObserver = observer if observer is not None else NullObserver()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._jitter = jitter
        self._auth = authorization_header(api_key)
        # Any of these could be echoed back in an error body; none may leave the client.
        self._secrets = (api_key, self._auth, self._auth.removeprefix("Basic "))
        self._headers = {"Authorization": self._auth, "User-Agent": USER_AGENT, "Accept": "application/json"}
        self.pacer = TokenBucket(requests_per_minute, clock=clock, sleep=sleep)
        self.concurrency = ConcurrencyLimit(max_concurrency)
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session(max_concurrency)
        self._rate_limit: RateLimitInfo | None = None
        self._rate_limit_lock = threading.Lock()

    @staticmethod
    def _new_session(max_concurrency: int) -> requests.Session:
        session = requests.Session()
        # One pool per host, as many kept-alive connections as requests may be in flight;
        # urllib3 retries off: retrying is decided here, where POSTs are told apart.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, max_concurrency), max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def __repr__(self) -> str:
        return f"CodatClient(base_url={self.base_url!r}, api_key={REDACTED!r})"

    def __enter__(self) -> CodatClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's pooled connections (a session passed in by the caller is left open)."""
        if self._owns_session:
            self._session.close()

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """The ``X-Rate-Limit-*`` figures of the most recent response that carried them."""
        with self._rate_limit_lock:
            return self._rate_limit

    # --- operations -------------------------------------------------------------------------------

    def list_companies(
        self, *, query: str | None = None, tags: str | None = None, page: int = 1, page_size: int = 100
    ) -> Page[Company]:
        """One page of ``GET /companies``, filtered by a Codat ``query`` and/or ``tags`` expression."""
        _check_paging(page, page_size)
        params = {"page": page, "pageSize": page_size, "query": query, "tags": tags}
        body = self._get_json("/companies", COMPANIES, None, params)
        return self._parse(COMPANIES, None, lambda: parse_page(body, _company_item, "companies"))

    def iter_companies(
        self,
        *,
        query: str | None = None,
        tags: str | None = None,
        page_size: int = 1000,
        on_page: Callable[[Page[Company]], None] | None = None,
    ) -> Iterator[Company]:
        """Every company, page after page (``on_page`` sees each page as it arrives)."""
        return iterate_pages(
            lambda n: self.list_companies(query=query, tags=tags, page=n, page_size=page_size),
            on_page=on_page,
        )

    def get_data_status(self, company_id: str) -> dict[str, DataTypeStatus]:
        """``GET /companies/{id}/dataStatus``: the sync status of every data type, keyed by data type."""
        body = self._get_json(f"/companies/{_segment(company_id)}/dataStatus", DATA_STATUS, company_id)
        return self._parse(DATA_STATUS, company_id, lambda: parse_data_statuses(body))

    def get_data_status_for_type(self, company_id: str, data_type: str) -> DataTypeStatus:
        """The status of one data type (picked from ``dataStatus``; ``NotFoundError`` if absent)."""
        statuses = self.get_data_status(company_id)
        try:
            return statuses[data_type]
        except KeyError:
            raise NotFoundError(
                f"data type {data_type!r} is not in the company's data status",
                endpoint=DATA_STATUS,
                company_id=company_id,
            ) from None

    def get_pull_operation(self, company_id: str, dataset_id: str) -> PullOperation:
        """``GET /companies/{id}/data/history/{datasetId}``: one pull operation."""
        path = f"/companies/{_segment(company_id)}/data/history/{_segment(dataset_id)}"
        body = self._get_json(path, PULL_OPERATION, company_id)
        return self._parse(
            PULL_OPERATION, company_id, lambda: parse_pull_operation(body, "pullOperation", company_id)
        )

    def list_pull_operations(
        self,
        company_id: str,
        *,
        page: int = 1,
        page_size: int = 100,
        query: str | None = None,
        order_by: str | None = None,
    ) -> Page[PullOperation]:
        """One page of ``GET /companies/{id}/data/history`` (e.g. ``order_by="-requested"``)."""
        _check_paging(page, page_size)
        params = {"page": page, "pageSize": page_size, "query": query, "orderBy": order_by}
        body = self._get_json(f"/companies/{_segment(company_id)}/data/history", HISTORY, company_id, params)

        def item(value: object, path: str) -> PullOperation:
            return parse_pull_operation(value, path, company_id)

        return self._parse(HISTORY, company_id, lambda: parse_page(body, item, "history"))

    def iter_pull_operations(
        self,
        company_id: str,
        *,
        query: str | None = None,
        order_by: str | None = None,
        page_size: int = 100,
        on_page: Callable[[Page[PullOperation]], None] | None = None,
    ) -> Iterator[PullOperation]:
        """Every pull operation matching ``query``, page after page."""
        return iterate_pages(
            lambda n: self.list_pull_operations(
                company_id, page=n, page_size=page_size, query=query, order_by=order_by
            ),
            on_page=on_page,
        )

    def refresh_data_type(
        self, company_id: str, data_type: str, *, connection_id: str | None = None
    ) -> PullOperation:
        """``POST /companies/{id}/data/queue/{dataType}``: queue a sync; returns the new pull operation.

        Raises ``DatasetAlreadyInProgressError`` (with the running dataset id)
        when a sync of that type is already running.
        """
        path = f"/companies/{_segment(company_id)}/data/queue/{_segment(data_type)}"
        params = {"connectionId": connection_id}
        _, body = self._request("POST", path, REFRESH_DATA_TYPE, company_id, params, idempotent=False)
        return self._parse(
            REFRESH_DATA_TYPE, company_id, lambda: parse_pull_operation(body, "pullOperation", company_id)
        )

    def refresh_all(self, company_id: str) -> None:
        """``POST /companies/{id}/data/all``: queue a sync of every "fetch on first link" data type."""
        path = f"/companies/{_segment(company_id)}/data/all"
        self._request("POST", path, REFRESH_ALL, company_id, None, idempotent=False, want_json=False)

    # --- plumbing ---------------------------------------------------------------------------------

    def _parse(self, endpoint: str, company_id: str | None, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ShapeError as exc:
            raise MalformedResponseError(
                f"unexpected response shape: {redact(str(exc), self._secrets)}",
                endpoint=endpoint,
                company_id=company_id,
            ) from None

    def _get_json(
        self, path: str, endpoint: str, company_id: str | None, params: Mapping[str, Any] | None = None
    ) -> object:
        _, body = self._request("GET", path, endpoint, company_id, params, idempotent=True)
        return body

    def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        company_id: str | None,
        params: Mapping[str, Any] | None,
        *,
        idempotent: bool,
        want_json: bool = True,
    ) -> tuple[int, object]:
        """Send one logical request with pacing and retries; return (status, decoded JSON body)."""
        url = self.base_url + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        started = self._clock()
        retries_done = 0
        while True:
            response, failure, error = self._attempt(method, url, query, endpoint, company_id)
            if response is not None and 200 <= response.status_code < 300:
                return response.status_code, self._decode_success(response, endpoint, company_id, want_json)
            if error is None:  # pragma: no cover - _attempt returns an error for every non-2xx outcome
                raise AssertionError("no error for a failed attempt")
            status = response.status_code if response is not None else None
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
                if response is not None
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
            log.info(
                "Codat %s %s%s: %s; retry %d of %d in %.2fs",
                method,
                endpoint,
                f" (company {company_id})" if company_id else "",
                f"HTTP {status}" if status is not None else (failure or "failure"),
                retries_done + 1,
                self._policy.max_retries,
                decision.delay,
            )
            self._sleep(decision.delay)
            retries_done += 1

    def _attempt(
        self, method: str, url: str, query: Mapping[str, Any], endpoint: str, company_id: str | None
    ) -> tuple[requests.Response | None, Failure | None, CodatError | None]:
        """One HTTP attempt: (response, no-response failure kind, error to raise if this is the last)."""
        self.pacer.acquire()
        with self.concurrency:
            began = self._clock()
            try:
                response = self._session.request(
                    method, url, params=query, headers=self._headers, timeout=self._timeout
                )
            except requests.RequestException as exc:
                self._observer.on_request(endpoint, "error", self._clock() - began)
                failure = classify_exception(exc)
                text = f"{_FAILURE_TEXT[failure]} ({self.base_url}, {type(exc).__name__})"
                return None, failure, CodatConnectionError(text, endpoint=endpoint, company_id=company_id)
            self._observer.on_request(endpoint, str(response.status_code), self._clock() - began)
        self._remember_rate_limit(response)
        if 200 <= response.status_code < 300:
            return response, None, None
        return response, None, self._error_from(response, endpoint, company_id)

    def _remember_rate_limit(self, response: requests.Response) -> None:
        info = parse_rate_limit(response.headers, self._wall_clock())
        if info is None:
            return
        with self._rate_limit_lock:
            self._rate_limit = info
        self._observer.on_rate_limit(info)

    def _error_from(self, response: requests.Response, endpoint: str, company_id: str | None) -> CodatError:
        text = redact(response.text, self._secrets)
        try:
            body: object = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            body = {**body, "error": redact(body["error"], self._secrets)}
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall_clock())
        return error_from_response(
            response.status_code,
            body,
            raw_text=text,
            endpoint=endpoint,
            company_id=company_id,
            retry_after=retry_after,
        )

    def _decode_success(
        self, response: requests.Response, endpoint: str, company_id: str | None, want_json: bool
    ) -> object:
        if not want_json:
            return None
        try:
            return response.json()
        except ValueError:
            content_type = response.headers.get("Content-Type", "no content type")
            raise MalformedResponseError(
                f"response is not JSON ({content_type}, {len(response.content)} bytes)",
                status_code=response.status_code,
                endpoint=endpoint,
                company_id=company_id,
            ) from None


def _company_item(value: object, path: str) -> Company:
    return parse_company(value, path)
