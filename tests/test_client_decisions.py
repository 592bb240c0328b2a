"""Pure decisions of the Codat client: retries, backoff, pacing, paging, errors, queries, auth."""

from __future__ import annotations

import base64
import threading
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.codat.auth import REDACTED, authorization_header, redact
from exporter.codat.errors import (
    BadRequestError,
    CodatError,
    DatasetAlreadyInProgressError,
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    already_in_progress_details,
    error_from_response,
)
from exporter.codat.models import Page
from exporter.codat.paging import iterate_pages
from exporter.codat.query import all_of, any_of, clause, history_query
from exporter.codat.ratelimit import ConcurrencyLimit, TokenBucket, refill
from exporter.codat.retry import (
    Failure,
    GiveUp,
    GiveUpReason,
    Retry,
    RetryPolicy,
    backoff_delay,
    decide_retry,
    is_retryable,
)
from tests.support.waiting import wait_until

RUNNING = "31632c48-23dc-4cb1-b3ff-0829343c8e85"
IN_PROGRESS_TEXT = (
    f"DatasetAlreadyInProgressException: Cannot queue invoices sync for c1 as previous sync {RUNNING} "
    "is still in progress"
)


# --- retry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idempotent", "status", "failure", "expected"),
    [
        (True, 429, None, True),
        (True, 500, None, True),
        (True, 503, None, True),
        (True, 408, None, True),
        (True, 400, None, False),
        (True, 401, None, False),
        (True, 404, None, False),
        (True, None, Failure.CONNECT, True),
        (True, None, Failure.READ_TIMEOUT, True),
        (True, None, Failure.CONNECTION_LOST, True),
        (True, None, None, False),
        # A refresh may already be queued after a 5xx, a read timeout or a lost connection.
        (False, 429, None, True),
        (False, None, Failure.CONNECT, True),
        (False, 500, None, False),
        (False, 503, None, False),
        (False, 408, None, False),
        (False, None, Failure.READ_TIMEOUT, False),
        (False, None, Failure.CONNECTION_LOST, False),
    ],
)
def test_what_may_be_retried(
    idempotent: bool, status: int | None, failure: Failure | None, expected: bool
) -> None:
    assert is_retryable(idempotent=idempotent, status=status, failure=failure) is expected


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_multiplier=2.0, backoff_max=30.0)
    lows = [backoff_delay(n, policy, 0.0) for n in range(8)]
    highs = [backoff_delay(n, policy, 0.999999) for n in range(8)]
    assert lows == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert highs == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], rel=1e-5)


def _decide(**kwargs: object) -> Retry | GiveUp:
    args: dict[str, object] = {
        "idempotent": True,
        "status": 503,
        "failure": None,
        "retry_after": None,
        "retries_done": 0,
        "elapsed": 0.0,
        "policy": RetryPolicy(max_retries=4, max_elapsed=60.0),
        "jitter": 0.5,
    }
    args.update(kwargs)
    return decide_retry(**args)  # type: ignore[arg-type]


def test_retry_after_wins_over_backoff() -> None:
    assert _decide(status=429, retry_after=7.0) == Retry(7.0)


def test_retry_after_longer_than_the_remaining_budget_gives_up_at_once() -> None:
    assert _decide(status=429, retry_after=3600.0) == GiveUp(GiveUpReason.RETRY_AFTER_EXCEEDS_BUDGET)
    assert _decide(status=429, retry_after=30.0, elapsed=45.0) == GiveUp(
        GiveUpReason.RETRY_AFTER_EXCEEDS_BUDGET
    )


def test_retries_stop_after_max_retries() -> None:
    assert isinstance(_decide(retries_done=3), Retry)
    assert _decide(retries_done=4) == GiveUp(GiveUpReason.RETRIES_EXHAUSTED)


def test_backoff_that_overruns_the_budget_gives_up() -> None:
    assert _decide(retries_done=3, elapsed=59.0) == GiveUp(GiveUpReason.BUDGET_EXHAUSTED)


def test_refresh_is_not_retried_after_a_server_error() -> None:
    assert _decide(idempotent=False, status=500) == GiveUp(GiveUpReason.NOT_RETRYABLE)


def test_refresh_is_retried_when_rate_limited() -> None:
    assert _decide(idempotent=False, status=429, retry_after=2.0) == Retry(2.0)


# --- pacing ---------------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock whose sleep advances it, so pacing is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_refill_is_capped_at_capacity() -> None:
    assert refill(0.0, 10.0, 1.0, 4.0) == 4.0
    assert refill(1.0, 0.5, 2.0, 4.0) == 2.0
    assert refill(1.0, -5.0, 2.0, 4.0) == 1.0


def test_token_bucket_lets_a_burst_through_then_paces_at_the_rate() -> None:
    fake = FakeTime()
    bucket = TokenBucket(60.0, burst=3, clock=fake.clock, sleep=fake.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([1.0, 1.0, 1.0])
    assert fake.now == pytest.approx(1003.0)


def test_token_bucket_sends_at_most_rate_per_minute_over_a_minute() -> None:
    fake = FakeTime()
    bucket = TokenBucket(300.0, clock=fake.clock, sleep=fake.sleep)
    sent = 0
    while fake.now < 1060.0:
        bucket.acquire()
        if fake.now < 1060.0:
            sent += 1
    # 300/min plus the initial burst of two seconds' worth (10).
    assert 300 <= sent <= 310


def test_token_bucket_queues_concurrent_callers_behind_each_other() -> None:
    fake = FakeTime()
    bucket = TokenBucket(60.0, burst=1, clock=fake.clock, sleep=lambda _s: None)
    # Without advancing time, each reservation must wait one second longer than the previous one.
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 1.0, 2.0, 3.0])


def test_token_bucket_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, clock=lambda: 0.0, sleep=lambda _s: None)


def test_concurrency_limit_refuses_a_slot_beyond_the_limit() -> None:
    limit = ConcurrencyLimit(2)
    assert limit.try_acquire()
    assert limit.try_acquire()
    assert not limit.try_acquire()
    assert limit.in_flight == 2
    limit.release()
    assert limit.try_acquire()


def test_concurrency_limit_blocks_a_waiter_until_a_slot_frees() -> None:
    limit = ConcurrencyLimit(1)
    limit.acquire()
    got_it = threading.Event()

    def waiter() -> None:
        with limit:
            got_it.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: limit.waiting == 1)
    assert not got_it.is_set()
    limit.release()
    thread.join(timeout=10)
    assert got_it.is_set()
    assert limit.in_flight == 0


# --- paging ---------------------------------------------------------------------------------------


def _pages(total: int, size: int, use_next_link: bool) -> tuple[list[int], list[int]]:
    items = list(range(total))
    fetched: list[int] = []

    def fetch(number: int) -> Page[int]:
        fetched.append(number)
        chunk = items[(number - 1) * size : number * size]
        more = number * size < total
        return Page(
            results=tuple(chunk),
            page_number=number,
            page_size=size,
            # Some servers only give the next link, some only totals; either must be enough.
            total_results=total if not use_next_link else 0,
            next_href=f"/x?page={number + 1}" if (use_next_link and more) else None,
        )

    return list(iterate_pages(fetch)), fetched


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(
    total=st.integers(min_value=0, max_value=500),
    size=st.integers(min_value=1, max_value=60),
    use_next_link=st.booleans(),
)
def test_paging_yields_every_item_exactly_once_in_order(total: int, size: int, use_next_link: bool) -> None:
    seen, fetched = _pages(total, size, use_next_link)
    assert seen == list(range(total))
    assert fetched == list(range(1, max(1, -(-total // size)) + 1))


def test_paging_stops_on_an_empty_page_even_if_the_server_claims_more() -> None:
    def fetch(number: int) -> Page[int]:
        return Page(results=(), page_number=number, page_size=10, total_results=999, next_href="/x?page=2")

    assert list(iterate_pages(fetch)) == []


def test_paging_stops_at_max_pages() -> None:
    def fetch(number: int) -> Page[int]:
        return Page(results=(number,), page_number=number, page_size=1, total_results=10**9)

    assert list(iterate_pages(fetch, max_pages=5)) == [1, 2, 3, 4, 5]


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, UnauthorizedError),
        (402, PaymentRequiredError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
        (418, CodatError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, cls: type[CodatError]) -> None:
    error = error_from_response(status, {"error": "boom"}, endpoint="dataStatus", company_id="c1")
    assert type(error) is cls
    assert error.status_code == status


def test_error_carries_codat_error_message_fields() -> None:
    body = {
        "statusCode": 404,
        "service": "ClientsApi",
        "error": "No company was found with ID c1",
        "correlationId": "corr-1",
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
        "validation": {"errors": [], "warnings": []},
    }
    error = error_from_response(404, body, endpoint="dataStatus", company_id="c1")
    assert (error.service, error.correlation_id, error.can_be_retried, error.detailed_error_code) == (
        "ClientsApi",
        "corr-1",
        "Unknown",
        0,
    )
    assert str(error) == (
        "Codat HTTP 404 on dataStatus for company c1: No company was found with ID c1 "
        "(service ClientsApi, correlation id corr-1)"
    )


@pytest.mark.parametrize("status", [400, 409, 422])
def test_already_in_progress_is_recognised_on_any_4xx(status: int) -> None:
    error = error_from_response(status, {"error": IN_PROGRESS_TEXT}, endpoint="refreshDataType")
    assert isinstance(error, DatasetAlreadyInProgressError)
    assert (error.dataset_id, error.data_type) == (RUNNING, "invoices")


def test_already_in_progress_text_on_a_5xx_is_a_server_error() -> None:
    error = error_from_response(500, {"error": IN_PROGRESS_TEXT}, endpoint="refreshDataType")
    assert type(error) is ServerError


def test_already_in_progress_details_without_an_id_still_recognised() -> None:
    assert already_in_progress_details("DatasetAlreadyInProgressException: busy") == (None, None)
    assert already_in_progress_details("Something else") is None


def test_non_json_error_body_becomes_the_error_text_on_one_line() -> None:
    error = error_from_response(502, None, raw_text="<html>\n  Bad   Gateway\n</html>", endpoint="companies")
    assert error.error == "<html> Bad Gateway </html>"


def test_rate_limited_error_reports_its_wait() -> None:
    error = error_from_response(429, {"error": "slow down"}, endpoint="companies", retry_after=12.0)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 12.0
    assert str(error).endswith("retry after 12s")


# --- queries --------------------------------------------------------------------------------------


def test_history_query_for_failed_invoice_syncs() -> None:
    assert history_query(
        data_type="invoices", status_not=["Complete", "NotSupported"], requested_after=date(2024, 1, 2)
    ) == ("dataType=invoices&&status!=Complete&&status!=NotSupported&&requested>2024-01-02")


def test_history_query_with_alternatives_groups_them() -> None:
    assert history_query(status_in=["FetchError", "AuthError"]) == "{status=FetchError||status=AuthError}"
    assert history_query() is None


def test_query_helpers_reject_unknown_operators_and_overlong_queries() -> None:
    with pytest.raises(ValueError, match="operator"):
        clause("a", "==", 1)
    with pytest.raises(ValueError, match="2047"):
        all_of(*(clause("status", "!=", "x" * 100) for _ in range(30)))
    assert any_of("a=1") == "a=1"


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(query=st.text(min_size=1, max_size=200).filter(lambda q: "\x00" not in q))
def test_any_query_survives_url_encoding_and_server_side_decoding(query: str) -> None:
    url = requests.Request("GET", "http://127.0.0.1/x", params={"query": query, "page": 1}).prepare().url
    assert url is not None
    decoded = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert decoded["query"] == [query]


# --- auth -----------------------------------------------------------------------------------------


def test_authorization_header_is_base64_of_the_raw_key_without_colon() -> None:
    header = authorization_header("abc123")
    assert header == "Basic " + base64.b64encode(b"abc123").decode()
    assert base64.b64decode(header.removeprefix("Basic ")) == b"abc123"


def test_redact_replaces_every_secret() -> None:
    assert redact("key k3y and k3y again", ["k3y", ""]) == f"key {REDACTED} and {REDACTED} again"
