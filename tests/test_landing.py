"""The landing page's pure parts: which pairs are stalest, how ages read, what is escaped."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exporter.http.landing import LandingData, format_age, render_landing, stalest_pairs
from tests.support.snapshots import T0, company, demo_snapshot, rich_snapshot, snapshot

NOW = T0.timestamp()


def test_stalest_pairs_put_never_synced_first_then_oldest_sync() -> None:
    pairs = stalest_pairs(rich_snapshot(), NOW)
    assert [(p.company_id, p.data_type) for p in pairs] == [
        ("c-acme", "balanceSheet"),  # never synced
        ("c-beta", "invoices"),  # 9 days + 3 hours
        ("c-acme", "bills"),  # 2 days
        ("c-acme", "bankAccounts"),  # 3 hours, same as the next two: ordered by name, then type
        ("c-acme", "invoices"),
        ("c-beta", "customers"),
    ]
    assert pairs[0].age_seconds is None
    assert pairs[1].age_seconds == timedelta(days=9, hours=3).total_seconds()


def test_stalest_pairs_leave_out_never_synced_unsupported_types() -> None:
    pairs = stalest_pairs(rich_snapshot(), NOW)
    assert ("c-acme", "orders") not in [(p.company_id, p.data_type) for p in pairs]


def test_stalest_pairs_are_capped() -> None:
    snap = demo_snapshot(companies=24)
    pairs = stalest_pairs(snap, NOW, limit=20)
    assert len(pairs) == 20
    synced = [p.last_successful_sync for p in pairs if p.last_successful_sync is not None]
    assert synced == sorted(synced)
    assert sum(len(cs.statuses) for cs in snap.companies.values()) > 20


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (-3, "0s"),
        (42.9, "42s"),
        (60, "1m"),
        (3599, "59m"),
        (5 * 3600 + 12 * 60, "5h 12m"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
    ],
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


def test_landing_page_escapes_company_names_and_data_types() -> None:
    snap = snapshot(
        company("c1", {"<b>type</b>": (None, None)}, name="<script>alert('x')</script> & Sons"),
    )
    page = render_landing(LandingData(snap), NOW)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Sons" in page
    assert "&lt;b&gt;type&lt;/b&gt;" in page


def test_landing_page_counts_companies_up_and_down() -> None:
    page = render_landing(LandingData(rich_snapshot(), ready=True, shard=1, total_shards=3), NOW + 90)
    assert '<div class="value" id="companies">3</div>' in page
    assert '<div class="value ok" id="up">2</div>' in page
    assert '<div class="value bad" id="down">1</div>' in page
    assert '<div class="value" id="shard">1 of 3</div>' in page
    assert ">1m ago<" in page
    assert ">ready<" in page


def test_landing_page_before_the_first_poll() -> None:
    page = render_landing(LandingData(snapshot(generated_at=None, ready=False)), NOW)
    assert "No data yet" in page
    assert ">not ready<" in page
    assert 'id="last-poll" title="never">never<' in page
