"""The Codat client against a hostile API over real sockets: each fault ends in a typed, bounded, clean error.

The server is ``tests.support.hostile_codat``, the same one the exporter-level
fault suite uses. Each test asserts what the client does (which error, what it
says, what it leaves out), not how fast: a trickle is shown to end by the
deadline because without one the same answer would complete successfully.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.codat.client import CodatClient
from exporter.codat.errors import (
    CodatConnectionError,
    CodatError,
    MalformedResponseError,
    PagingError,
    ResponseTooLargeError,
    clean_text,
)
from exporter.codat.models import Page
from exporter.codat.paging import iterate_pages
from tests.support.hostile_codat import (
    HEALTHY_IDS,
    HUGE_BODY_BYTES,
    VICTIM_ID,
    HostileCodat,
    running_hostile_codat,
)
from tests.support.tls import make_pki

KEY = "sk-hostile-test-0123456789abcdef"
TOKEN = base64.b64encode(KEY.encode()).decode()


@pytest.fixture
def hostile() -> Iterator[HostileCodat]:
    with running_hostile_codat(KEY) as server:
        yield server


def _client(hostile: HostileCodat, **kwargs: float) -> CodatClient:
    options: dict[str, float] = {"max_retries": 0, "read_timeout": 5.0, **kwargs}
    return CodatClient(KEY, hostile.url, sleep=lambda _s: None, **options)  # type: ignore[arg-type]


def _victim_error(hostile: HostileCodat, fault: str, **kwargs: float) -> CodatError:
    hostile.fault = fault
    with _client(hostile, **kwargs) as client, pytest.raises(CodatError) as caught:
        client.get_data_status(VICTIM_ID)
    return caught.value


@pytest.mark.parametrize("fault", ["trickle", "trickle_headers"])
def test_a_trickling_answer_ends_at_the_request_deadline(hostile: HostileCodat, fault: str) -> None:
    # One byte every 50 ms: each read is quick, so only a total deadline can end it.
    hostile.trickle_interval = 0.05
    error = _victim_error(hostile, fault, request_timeout=1.0)
    assert isinstance(error, CodatConnectionError)
    assert "within the request deadline of 1s" in str(error)


def test_the_request_deadline_is_a_setting_with_a_sane_default(hostile: HostileCodat) -> None:
    with CodatClient(KEY, hostile.url) as client:
        assert 30 <= client.request_timeout <= 120
    with pytest.raises(ValueError, match="request_timeout"):
        CodatClient(KEY, hostile.url, request_timeout=0)


@pytest.mark.parametrize("fault", ["huge_body", "huge_declared", "many_data_types"])
def test_a_body_past_what_codat_sends_is_abandoned_with_a_reason(hostile: HostileCodat, fault: str) -> None:
    error = _victim_error(hostile, fault)
    assert isinstance(error, ResponseTooLargeError)
    assert isinstance(error, MalformedResponseError), "counted as a malformed response"
    assert "larger than 1.0 MiB" in str(error)
    assert hostile.bytes_streamed < HUGE_BODY_BYTES / 4, "the client stopped reading"


def test_one_bad_company_record_fails_that_company_only(hostile: HostileCodat) -> None:
    hostile.fault = "bad_record"
    with _client(hostile) as client:
        listing = client.list_all_companies(page_size=100)
    assert [c.id for c in listing.companies] == list(HEALTHY_IDS)
    assert len(listing.failures) == 1
    failure = listing.failures[0]
    assert failure.id == VICTIM_ID
    assert "lastSync" in failure.reason
    assert "not-a-date" in failure.reason
    assert listing.pages == 1


def test_a_page_that_repeats_itself_stops_the_walk_after_two_requests(hostile: HostileCodat) -> None:
    hostile.fault = "paging_loop"
    with _client(hostile) as client, pytest.raises(PagingError, match="paging loop") as caught:
        client.list_all_companies(page_size=100)
    assert hostile.count("companies") <= 2
    assert caught.value.endpoint == "companies"


def test_pages_beyond_what_total_results_justifies_stop_the_walk() -> None:
    fetched: list[int] = []

    def fetch(number: int) -> Page[str]:
        # Fresh ids on every page, a next link every time, and a total that fits one page.
        fetched.append(number)
        return Page(
            results=(f"id-{number}",),
            page_number=number,
            page_size=10,
            total_results=3,
            next_href=f"/x?page={number + 1}",
        )

    with pytest.raises(PagingError, match="more pages than totalResults justifies"):
        list(iterate_pages(fetch, page_size=10, key=str, endpoint="companies"))
    assert fetched == [1, 2], "one page justified, plus one of slack"


def test_a_page_whose_records_repeat_an_earlier_page_stops_the_walk() -> None:
    def fetch(number: int) -> Page[str]:
        # A server that ignores the page number, with honest-looking links and totals.
        return Page(
            results=("a", "b"),
            page_number=number,
            page_size=2,
            total_results=100,
            next_href=f"/x?page={number + 1}",
        )

    with pytest.raises(PagingError, match="page 2 holds the same 2 records as page 1"):
        list(iterate_pages(fetch, page_size=2, key=str))


def test_a_next_link_seen_before_stops_the_walk() -> None:
    def fetch(number: int) -> Page[str]:
        return Page(
            results=(f"id-{number}",),
            page_number=number,
            page_size=1,
            total_results=0,
            next_href="/x?page=2",
        )

    with pytest.raises(PagingError, match="next link repeats page 1"):
        list(iterate_pages(fetch, key=str))


def test_a_key_echoed_in_any_error_field_never_leaves_the_client(hostile: HostileCodat) -> None:
    error = _victim_error(hostile, "secret_echo")
    texts = [
        str(error),
        repr(error),
        error.error,
        error.service or "",
        error.correlation_id or "",
        error.can_be_retried or "",
        repr(error.validation),
    ]
    for text in texts:
        assert KEY not in text
        assert TOKEN not in text
    assert error.service is not None
    assert "[REDACTED]" in error.service


def test_error_text_cannot_forge_log_lines_or_flood_them(hostile: HostileCodat) -> None:
    forged = _victim_error(hostile, "forged_log_lines")
    for text in (str(forged), forged.error, forged.service or ""):
        assert not any(c in text for c in "\n\r\u2028\u2029\x00")
    assert "CRITICAL" in forged.error, "the text is kept, on one line"
    flood = _victim_error(hostile, "flood_error_text")
    assert len(str(flood)) < 1000


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("deep_json", "nested too deeply"),
        ("overflow_date", "out of range"),
        ("future_date", "in the future (malformed data)"),
        ("malformed_json", "not JSON"),
        ("wrong_types", "expected"),
    ],
)
def test_unreadable_answers_are_malformed_responses(hostile: HostileCodat, fault: str, said: str) -> None:
    error = _victim_error(hostile, fault)
    assert isinstance(error, MalformedResponseError)
    assert said in str(error)


def test_a_redirect_is_not_followed(hostile: HostileCodat) -> None:
    error = _victim_error(hostile, "redirect")
    assert error.status_code == 302
    assert "not followed" in str(error)


def test_a_reset_connection_is_a_connection_error(hostile: HostileCodat) -> None:
    error = _victim_error(hostile, "reset")
    assert isinstance(error, CodatConnectionError)


def test_lone_surrogates_in_a_body_are_read_and_never_break_an_error_line(hostile: HostileCodat) -> None:
    hostile.fault = "lone_surrogates"
    with _client(hostile) as client:
        statuses = client.get_data_status(VICTIM_ID)
    assert "\udfffodd" in statuses
    assert statuses["invoices"].current_status == "Complete"


def test_text_from_a_response_becomes_one_printable_bounded_line() -> None:
    assert clean_text("a\ud800b\nc\r\n\x1b[31md\u2028e") == "a\ufffdb c [31md e"
    assert len(clean_text("x" * 10_000)) == 300


def test_over_tls_with_keep_alive_answers_are_read_whole_and_a_trickle_still_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.path("ca.crt")))
    with running_hostile_codat(KEY, tls=pki.pair("server")) as hostile, _client(hostile) as client:
        for _ in range(20):
            assert set(client.get_data_status(HEALTHY_IDS[0])) == {"invoices", "bills", "customers"}
        hostile.trickle_interval = 0.05
        hostile.fault = "trickle"
        slow = CodatClient(KEY, hostile.url, max_retries=0, request_timeout=1.0)
        with slow, pytest.raises(CodatConnectionError, match="within the request deadline of 1s"):
            slow.get_data_status(VICTIM_ID)
