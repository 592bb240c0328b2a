"""Publishing snapshots: unchanged companies keep their objects, and an annotation is rendered once."""

from __future__ import annotations

from datetime import UTC, datetime

from exporter.codat.models import Company
from exporter.collector.publishing import SnapshotPublisher
from exporter.collector.snapshot import Snapshot
from exporter.collector.state import CompanyState, with_failure

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _states(*ids: str) -> dict[str, CompanyState]:
    return {cid: with_failure(CompanyState(Company(id=cid, name=cid)), "down", NOW) for cid in ids}


def test_a_listener_annotation_reaches_the_listeners_after_it_in_the_same_publication() -> None:
    publisher = SnapshotPublisher()
    before: list[Snapshot] = []
    after: list[Snapshot] = []
    publisher.subscribe(before.append)

    def refresher(snapshot: Snapshot) -> None:
        if snapshot.ready:
            publisher.set_refresh_attempts({("a", "invoices"): NOW})

    publisher.subscribe(refresher)
    publisher.subscribe(after.append)
    states = _states("a", "b")
    published = publisher.publish(states, NOW, ready=True, cycle=1)

    assert len(before) == len(after) == 2, "one publication each (after the start-up snapshot)"
    assert before[-1].companies["a"].refresh_last_attempt == {}
    assert after[-1] is published is publisher.snapshot
    assert published.companies["a"].refresh_last_attempt == {"invoices": NOW}
    assert published.companies["b"] is before[-1].companies["b"], "an unannotated company is reused"
    assert published.cycle == 1


def test_attempts_set_outside_a_publication_wait_for_the_next_one() -> None:
    publisher = SnapshotPublisher()
    states = _states("a")
    first = publisher.publish(states, NOW, ready=True, cycle=1)
    publisher.set_refresh_attempts({("a", "all"): NOW})
    assert publisher.snapshot is first
    second = publisher.publish(states, NOW, ready=True, cycle=2)
    assert second.companies["a"].refresh_last_attempt == {"all": NOW}
