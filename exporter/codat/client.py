"""The Codat Platform API client: the DataStatus operations and company listing, done carefully.

One ``CodatClient`` is shared by every thread of the exporter. It owns a pooled
``requests.Session``, paces requests (token bucket + concurrency cap), gives
every attempt a total deadline and every body a size limit, retries what is
safe to retry within a bounded time, remembers the last ``X-Rate-Limit-*``
reading, reports every attempt to a ``RequestObserver``, and turns every
failure into a typed ``CodatError`` with every field redacted. It returns typed
models.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import quote

import requests

from exporter import __version__
from exporter.codat import limits
from exporter.codat.answers import clean_failure
from exporter.codat.auth import REDACTED, authorization_header, redact
from exporter.codat.defaults import DEFAULT_BASE_URL, DEFAULT_REQUEST_TIMEOUT
from exporter.codat.errors import MalformedResponseError, NotFoundError, clean_text
from exporter.codat.models import (
    Company,
    CompanyListing,
    Connection,
    DataTypeStatus,
    Page,
    PullOperation,
    RateLimitInfo,
    RecordFailure,
    SyncSettings,
)
from exporter.codat.observer import NullObserver, RequestObserver
from exporter.codat.paging import check_paging, iterate_pages
from exporter.codat.parsing import (
    ShapeError,
    parse_company,
    parse_connection,
    parse_data_statuses,
    parse_page,
    parse_pull_operation,
    parse_sync_settings,
)
from exporter.codat.ratelimit import ConcurrencyLimit, TokenBucket
from exporter.codat.requester import Requester
from exporter.codat.retry import RetryPolicy
from exporter.codat.transport import Timeouts
from exporter.common.clock import utc_now

T = TypeVar("T")

USER_AGENT: Final = f"codat-exporter/{__version__}"

# Endpoint label values (a bounded set: they become the `endpoint` label of self-metrics).
COMPANIES: Final = "companies"
DATA_STATUS: Final = "dataStatus"
HISTORY: Final = "history"
PULL_OPERATION: Final = "pullOperation"
REFRESH_DATA_TYPE: Final = "refreshDataType"
REFRESH_ALL: Final = "refreshAll"
COMPANY_SYNC_SETTINGS: Final = "companySyncSettings"
PROFILE_SYNC_SETTINGS: Final = "profileSyncSettings"
CONNECTIONS: Final = "connections"


def _segment(value: str) -> str:
    """One URL path segment, fully escaped (an id with ``/`` or ``..`` must not change the path)."""
    return quote(value, safe="")


class CodatClient:
    """A thread-safe client for the parts of Codat's Platform API the exporter uses."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_retries: int = 4,
        retry_max_elapsed: float = 60.0,
        requests_per_minute: float = 300.0,
        max_concurrency: int = 4,
        observer: RequestObserver | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.base_url = base_url.rstrip("/")
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, got {request_timeout}")
        auth = authorization_header(api_key)
        # Any of these could be echoed back in an error body; none may leave the client.
        self._secrets = (api_key, auth, auth.removeprefix("Basic "))
        self._wall_clock = wall_clock
        self._requester = Requester(
            self.base_url,
            headers={"Authorization": auth, "User-Agent": USER_AGENT, "Accept": "application/json"},
            secrets=self._secrets,
            timeouts=Timeouts(connect=connect_timeout, read=read_timeout, total=request_timeout),
            policy=RetryPolicy(max_retries=max_retries, max_elapsed=retry_max_elapsed),
            pacer=TokenBucket(requests_per_minute, clock=clock, sleep=sleep),
            concurrency=ConcurrencyLimit(max_concurrency),
            observer=observer if observer is not None else NullObserver(),
            session=session,
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
            jitter=jitter,
        )
        self.pacer = self._requester.pacer
        self.concurrency = self._requester.concurrency

    @property
    def request_timeout(self) -> float:
        """Seconds one attempt may take in total: connect, headers and body, however slowly they come."""
        return self._requester.timeouts.total

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
        self._requester.close()

    @property
    def rate_limit(self) -> RateLimitInfo | None:
        """The ``X-Rate-Limit-*`` figures of the most recent response that carried them."""
        return self._requester.rate_limit

    # --- operations -------------------------------------------------------------------------------

    def list_companies(
        self, *, query: str | None = None, tags: str | None = None, page: int = 1, page_size: int = 100
    ) -> Page[Company]:
        """One page of ``GET /companies``, filtered by a Codat ``query`` and/or ``tags`` expression.

        A company record that cannot be parsed does not fail the page: it is in
        ``Page.failures`` (its id when readable, and the reason), and every
        other company is in ``Page.results``.
        """
        check_paging(page, page_size)
        params = {"page": page, "pageSize": page_size, "query": query, "tags": tags}
        limit = limits.page_limit(page_size, limits.COMPANY_RECORD)
        body = self._get_json("/companies", COMPANIES, None, params, limit=limit)
        now = self._wall_clock()

        def item(value: object, path: str) -> Company:
            return parse_company(value, path, now)

        parsed = self._parse(COMPANIES, None, lambda: parse_page(body, item, "companies", per_record=True))
        if not parsed.failures:
            return parsed
        return replace(parsed, failures=tuple(clean_failure(f, self._secrets) for f in parsed.failures))

    def iter_companies(
        self,
        *,
        query: str | None = None,
        tags: str | None = None,
        page_size: int = 1000,
        on_page: Callable[[Page[Company]], None] | None = None,
    ) -> Iterator[Company]:
        """Every company, page after page (``on_page`` sees each page as it arrives).

        Records that did not parse are skipped here; ``on_page`` sees them in
        ``Page.failures`` (``list_all_companies`` collects them). A walk that
        loops raises ``PagingError``.
        """
        return iterate_pages(
            lambda n: self.list_companies(query=query, tags=tags, page=n, page_size=page_size),
            on_page=on_page,
            page_size=page_size,
            key=lambda company: company.id,
            endpoint=COMPANIES,
        )

    def list_all_companies(
        self,
        *,
        query: str | None = None,
        tags: str | None = None,
        page_size: int = 1000,
        on_page: Callable[[Page[Company]], None] | None = None,
    ) -> CompanyListing:
        """Every company of a complete listing walk, with the records that did not parse.

        Raises a ``CodatError`` when the listing itself fails (a page could not
        be read, or the walk looped: ``PagingError``); a bad record only lands
        in ``CompanyListing.failures``.
        """
        pages = 0
        failures: list[RecordFailure] = []

        def seen(page: Page[Company]) -> None:
            nonlocal pages
            pages += 1
            failures.extend(page.failures)
            if on_page is not None:
                on_page(page)

        companies = tuple(self.iter_companies(query=query, tags=tags, page_size=page_size, on_page=seen))
        return CompanyListing(companies=companies, failures=tuple(failures), pages=pages)

    def get_data_status(self, company_id: str) -> dict[str, DataTypeStatus]:
        """``GET /companies/{id}/dataStatus``: the sync status of every data type, keyed by data type."""
        path = f"/companies/{_segment(company_id)}/dataStatus"
        body = self._get_json(path, DATA_STATUS, company_id, limit=limits.DATA_STATUS)
        now = self._wall_clock()
        return self._parse(DATA_STATUS, company_id, lambda: parse_data_statuses(body, now))

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
        now = self._wall_clock()
        return self._parse(
            PULL_OPERATION, company_id, lambda: parse_pull_operation(body, "pullOperation", company_id, now)
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
        check_paging(page, page_size)
        params = {"page": page, "pageSize": page_size, "query": query, "orderBy": order_by}
        path = f"/companies/{_segment(company_id)}/data/history"
        limit = limits.page_limit(page_size, limits.PULL_OPERATION_RECORD)
        body = self._get_json(path, HISTORY, company_id, params, limit=limit)
        now = self._wall_clock()

        def item(value: object, path: str) -> PullOperation:
            return parse_pull_operation(value, path, company_id, now)

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
            page_size=page_size,
            key=lambda operation: operation.id,
            endpoint=HISTORY,
            company_id=company_id,
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
        _, body = self._requester.request(
            "POST", path, REFRESH_DATA_TYPE, company_id, params, idempotent=False
        )
        now = self._wall_clock()
        return self._parse(
            REFRESH_DATA_TYPE,
            company_id,
            lambda: parse_pull_operation(body, "pullOperation", company_id, now),
        )

    def refresh_all(self, company_id: str) -> None:
        """``POST /companies/{id}/data/all``: queue a sync of every "fetch on first link" data type."""
        path = f"/companies/{_segment(company_id)}/data/all"
        self._requester.request(
            "POST", path, REFRESH_ALL, company_id, None, idempotent=False, want_json=False
        )

    def get_company_sync_settings(self, company_id: str) -> SyncSettings:
        """``GET /companies/{id}/syncSettings`` (get-company-syncSettings): each data type's schedule
        (``syncSchedule``, hours), ``fetchOnFirstLink`` and lock, as the company overrides them."""
        path = f"/companies/{_segment(company_id)}/syncSettings"
        body = self._get_json(path, COMPANY_SYNC_SETTINGS, company_id)
        return self._parse(COMPANY_SYNC_SETTINGS, company_id, lambda: parse_sync_settings(body))

    def get_profile_sync_settings(self) -> SyncSettings:
        """``GET /profile/syncSettings`` (get-profile-syncSettings): the client-wide defaults."""
        body = self._get_json("/profile/syncSettings", PROFILE_SYNC_SETTINGS, None)
        return self._parse(PROFILE_SYNC_SETTINGS, None, lambda: parse_sync_settings(body))

    def list_connections(
        self, company_id: str, *, page: int = 1, page_size: int = 100, query: str | None = None
    ) -> Page[Connection]:
        """One page of ``GET /companies/{id}/connections`` (list-connections), each connection with
        its ``dataConnectionErrors``."""
        check_paging(page, page_size)
        params = {"page": page, "pageSize": page_size, "query": query}
        path = f"/companies/{_segment(company_id)}/connections"
        limit = limits.page_limit(page_size, limits.COMPANY_RECORD)
        body = self._get_json(path, CONNECTIONS, company_id, params, limit=limit)
        now = self._wall_clock()

        def item(value: object, path: str) -> Connection:
            return parse_connection(value, path, now)

        return self._parse(CONNECTIONS, company_id, lambda: parse_page(body, item, "connections"))

    def iter_connections(
        self, company_id: str, *, query: str | None = None, page_size: int = 100
    ) -> Iterator[Connection]:
        """Every connection of a company matching ``query``, page after page."""
        return iterate_pages(
            lambda n: self.list_connections(company_id, page=n, page_size=page_size, query=query),
            page_size=page_size,
            key=lambda c: c.id,
            endpoint=CONNECTIONS,
            company_id=company_id,
        )

    # --- plumbing ---------------------------------------------------------------------------------

    def _parse(self, endpoint: str, company_id: str | None, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ShapeError as exc:
            raise MalformedResponseError(
                f"unexpected response shape: {clean_text(redact(str(exc), self._secrets))}",
                endpoint=endpoint,
                company_id=company_id,
            ) from None
        except RecursionError:
            raise MalformedResponseError(
                "unexpected response shape: nested too deeply", endpoint=endpoint, company_id=company_id
            ) from None

    def _get_json(
        self,
        path: str,
        endpoint: str,
        company_id: str | None,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = limits.SINGLE_OBJECT,
    ) -> object:
        _, body = self._requester.request(
            "GET", path, endpoint, company_id, params, idempotent=True, limit=limit
        )
        return body
