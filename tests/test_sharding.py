"""Shard ownership: stable, exclusive, and roughly even."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.collector.sharding import owns, phase

IDS = [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(4000)]


def test_single_shard_owns_everything() -> None:
    assert all(owns(cid, 0, 1) for cid in IDS[:50])


@given(st.text(min_size=1), st.integers(min_value=1, max_value=64))
def test_every_company_is_owned_by_exactly_one_shard(company_id: str, total: int) -> None:
    assert sum(owns(company_id, shard, total) for shard in range(total)) == 1


def test_ownership_is_the_documented_md5_rule() -> None:
    # Pinned so that replicas built from different versions agree on who owns what.
    for cid in IDS[:100]:
        expected = int.from_bytes(hashlib.md5(cid.encode(), usedforsecurity=False).digest()[:8], "big") % 5
        assert owns(cid, expected, 5)


def test_ownership_is_stable_for_a_known_id() -> None:
    # Pinned values: a change here would move companies between running replicas.
    assert [owns("8a210b68-6988-11ed-a1eb-0242ac120002", s, 3) for s in range(3)] == [False, False, True]
    assert [owns("acme", s, 2) for s in range(2)] == [True, False]


@pytest.mark.parametrize("total", [2, 3, 4, 8])
def test_companies_split_roughly_evenly(total: int) -> None:
    counts = Counter(next(s for s in range(total) if owns(cid, s, total)) for cid in IDS)
    expected = len(IDS) / total
    assert set(counts) == set(range(total))
    assert all(abs(n - expected) < 0.15 * expected for n in counts.values()), counts


def test_phase_spreads_over_the_unit_interval_independently_of_shard() -> None:
    phases = [phase(cid) for cid in IDS if owns(cid, 0, 4)]
    assert all(0.0 <= p < 1.0 for p in phases)
    quarters = Counter(int(p * 4) for p in phases)
    assert all(abs(n - len(phases) / 4) < 0.2 * len(phases) / 4 for n in quarters.values()), quarters
