"""The duplicate filter: each webhook id is accepted once within its TTL, and memory stays bounded."""

from __future__ import annotations

import threading

import pytest

from exporter.webhooks.dedupe import SeenIds


def test_first_delivery_is_new_and_a_redelivery_is_not() -> None:
    seen = SeenIds(ttl=60)
    assert seen.add("msg_1", now=0.0)
    assert not seen.add("msg_1", now=10.0)
    assert seen.add("msg_2", now=10.0)


def test_id_is_accepted_again_after_its_ttl() -> None:
    seen = SeenIds(ttl=60)
    assert seen.add("msg_1", now=0.0)
    assert not seen.add("msg_1", now=59.9)
    assert seen.add("msg_1", now=60.0)


def test_oldest_ids_are_evicted_beyond_the_bound() -> None:
    seen = SeenIds(ttl=3600, max_entries=3)
    for i in range(5):
        assert seen.add(f"msg_{i}", now=float(i))
    assert len(seen) == 3
    assert seen.add("msg_0", now=5.0)  # evicted, so new again
    assert not seen.add("msg_4", now=5.0)


def test_expired_ids_are_dropped_when_new_ones_arrive() -> None:
    seen = SeenIds(ttl=10)
    for i in range(100):
        seen.add(f"msg_{i}", now=0.0)
    seen.add("late", now=11.0)
    assert len(seen) == 1


def test_forgotten_id_is_accepted_again() -> None:
    seen = SeenIds(ttl=60)
    seen.add("msg_1", now=0.0)
    seen.forget("msg_1")
    assert seen.add("msg_1", now=1.0)


def test_clock_stepping_back_does_not_forget_everything() -> None:
    seen = SeenIds(ttl=60)
    seen.add("msg_1", now=100.0)
    assert not seen.add("msg_1", now=50.0)


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 10), (10, 0)])
def test_non_positive_bounds_are_refused(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        SeenIds(ttl=ttl, max_entries=max_entries)


def test_concurrent_deliveries_of_one_id_are_accepted_exactly_once() -> None:
    seen = SeenIds(ttl=60)
    accepted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        result = seen.add("msg_same", now=1.0)
        with lock:
            accepted.append(result)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(accepted) == [False] * 7 + [True]
