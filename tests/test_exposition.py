"""Exposition rendering: what series a snapshot becomes, in both formats, parsed back by real parsers."""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import exposition
from exporter.codat import statuses
from exporter.codat.models import Connection
from exporter.collector.snapshot import CompanySnapshot
from exporter.exposition import ExpositionCache, families, render_snapshot
from exporter.exposition.selfmetrics import Telemetry
from tests.support.snapshots import T0, company, rich_snapshot, snapshot

NOW = T0.timestamp()
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series_of(body: bytes, *, openmetrics: bool = False) -> Series:
    """Every sample of a body, parsed by prometheus_client's own parser, keyed by name and labels."""
    parse = parse_openmetrics if openmetrics else parse_text
    out: Series = {}
    for family in parse(body.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def select(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The series of one metric whose labels include ``labels``."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in series.items() if n == name and want <= lbl}


def body(cache: ExpositionCache, *, openmetrics: bool = False, now: float = NOW) -> bytes:
    return cache.body(openmetrics, False, now)


def cache_for(snap_mode: str = "default", snap: object = None) -> ExpositionCache:
    cache = ExpositionCache(snap_mode)
    cache.update(rich_snapshot() if snap is None else snap)  # type: ignore[arg-type]
    return cache


def status_values(series: Series, company_id: str, data_type: str) -> dict[str, float]:
    found = select(series, families.DATA_STATUS.name, company_id=company_id, data_type=data_type)
    return {dict(lbl)["status"]: v for lbl, v in found.items()}


def test_one_hot_sums_to_one_for_unknown_status() -> None:
    series = series_of(body(cache_for()))
    values = status_values(series, "c-acme", "bankAccounts")
    assert set(values) == {*statuses.SEED_STATUSES, "Other"}
    assert values["Other"] == 1
    assert sum(values.values()) == 1


def test_one_hot_sums_to_one_for_every_pair_in_default_and_full_modes() -> None:
    for mode, expected in (("default", statuses.SEED_STATUSES), ("full", statuses.ALL_STATUSES)):
        series = series_of(body(cache_for(mode)))
        pairs = Counter[tuple[str, str]]()
        for (name, lbl), value in series.items():
            if name == families.DATA_STATUS.name:
                labels = dict(lbl)
                pairs[(labels["company_id"], labels["data_type"])] += int(value)
                assert labels["status"] in (*statuses.ALL_STATUSES, "Other", "NeverSynced")
        always = Counter(dict(lbl)["status"] for (name, lbl) in series if name == families.DATA_STATUS.name)
        assert all(always[s] == 7 for s in (*expected, "Other")), mode
        assert always["NeverSynced"] == 1, mode  # c-acme's balanceSheet only
        assert len(pairs) == 7
        assert set(pairs.values()) == {1}, mode


def test_never_synced_pair_is_named_so_and_has_no_timestamp_or_age() -> None:
    # Codat's docs show a never-synced type with no currentStatus at all: not "Other", which
    # means only a status this exporter does not know (issue 12.5).
    series = series_of(body(cache_for()))
    values = status_values(series, "c-acme", "balanceSheet")
    assert values == {**dict.fromkeys((*statuses.SEED_STATUSES, "Other"), 0), "NeverSynced": 1}
    sparse = series_of(body(cache_for("sparse")))
    assert status_values(sparse, "c-acme", "balanceSheet") == {"NeverSynced": 1}
    for spec in (families.DATA_LAST_SUCCESSFUL_SYNC, families.DATA_SECONDS_SINCE_SYNC):
        assert select(series, spec.name, company_id="c-acme", data_type="balanceSheet") == {}
        assert select(series, spec.name, company_id="c-acme", data_type="orders") == {}
        assert select(series, spec.name, company_id="c-acme", data_type="invoices") != {}


def test_sparse_mode_emits_only_the_active_status() -> None:
    series = series_of(body(cache_for("sparse")))
    assert status_values(series, "c-acme", "invoices") == {"Complete": 1}
    assert status_values(series, "c-acme", "bankAccounts") == {"Other": 1}
    assert status_values(series, "c-beta", "invoices") == {"Processing": 1}
    # In sparse mode a status outside the seed set keeps its own name.
    sparse_full = series_of(body(cache_for("sparse", snapshot(company("x", {"a": ("MapQueued", None)})))))
    assert status_values(sparse_full, "x", "a") == {"MapQueued": 1}


def test_full_mode_names_statuses_outside_the_seed_set() -> None:
    snap = snapshot(company("x", {"a": ("MapQueued", T0)}))
    assert status_values(series_of(body(cache_for("full", snap))), "x", "a")["MapQueued"] == 1
    # Issue 12.5: the default mode names it too (an eighth series while current); Other stays 0.
    default = status_values(series_of(body(cache_for("default", snap))), "x", "a")
    assert default == {**dict.fromkeys((*statuses.SEED_STATUSES, "Other"), 0), "MapQueued": 1}


def test_default_mode_other_means_only_an_unknown_status() -> None:
    snap = snapshot(company("x", {dt: (dt, T0) for dt in (*statuses.ALL_STATUSES, "BrandNew")}))
    series = series_of(body(cache_for("default", snap)))
    for status in statuses.ALL_STATUSES:
        values = status_values(series, "x", status)
        assert values[status] == 1
        assert values["Other"] == 0
        assert len(values) == 8 + (status not in statuses.SEED_STATUSES)
    assert status_values(series, "x", "BrandNew")["Other"] == 1


def test_unknown_status_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown status mode 'dense'"):
        ExpositionCache("dense")


def test_seconds_since_last_sync_is_computed_at_scrape_time() -> None:
    cache = cache_for()
    first = series_of(body(cache, now=NOW + 10))
    later = series_of(body(cache, now=NOW + 3610.7))  # no new snapshot: polling stalled
    key = {"company_id": "c-acme", "data_type": "invoices"}
    (age_first,) = select(first, families.DATA_SECONDS_SINCE_SYNC.name, **key).values()
    (age_later,) = select(later, families.DATA_SECONDS_SINCE_SYNC.name, **key).values()
    assert age_first == 3 * 3600 + 10
    assert age_later == 3 * 3600 + 3610
    (synced,) = select(first, families.DATA_LAST_SUCCESSFUL_SYNC.name, **key).values()
    assert synced == (T0 - timedelta(hours=3)).timestamp()


def test_label_values_are_escaped_and_parse_back_unchanged() -> None:
    series = series_of(body(cache_for()))
    (info,) = select(series, families.COMPANY_INFO.name, company_id="c-acme")
    labels = dict(info)
    assert labels["company_name"] == 'Acme "Widgets" \\ Ltd\nUK & <Co> 100%'
    assert labels["platform"] == "QuickBooks Online,Xero"
    assert labels["tags"] == "region=eu,tier=gold"
    assert b'company_name="Acme \\"Widgets\\" \\\\ Ltd\\nUK & <Co> 100%"' in body(cache_for())


def test_percent_signs_in_labels_survive_the_scrape_time_template() -> None:
    snap = snapshot(company("100%d-co", {"%s%%": ("Complete", T0)}))
    series = series_of(body(cache_for("default", snap), now=NOW + 5))
    assert select(series, families.DATA_SECONDS_SINCE_SYNC.name, company_id="100%d-co", data_type="%s%%") == {
        frozenset({("company_id", "100%d-co"), ("data_type", "%s%%")}): 5
    }


def test_connection_status_is_one_hot_with_other_for_unknown_states() -> None:
    series = series_of(body(cache_for()))
    by_connection: dict[str, dict[str, float]] = {}
    for lbl, value in select(series, families.CONNECTION_STATUS.name, company_id="c-acme").items():
        labels = dict(lbl)
        by_connection.setdefault(labels["connection_id"], {})[labels["status"]] = value
    assert {c: [s for s, v in states.items() if v == 1] for c, states in by_connection.items()} == {
        "conn-1": ["Linked"],
        "conn-2": ["Deauthorized"],
        "conn-3": ["Other"],
    }
    assert all(len(states) == 5 for states in by_connection.values())


def test_counters_in_progress_up_and_timestamps() -> None:
    series = series_of(body(cache_for()))
    pulls = select(series, families.PULL_OPERATIONS.name, company_id="c-acme")
    assert {(dict(lbl)["data_type"], dict(lbl)["status"]): v for lbl, v in pulls.items()} == {
        ("invoices", "Complete"): 12,
        ("bills", "FetchError"): 3,
    }
    in_progress = select(series, families.PULL_OPERATIONS_IN_PROGRESS.name, company_id="c-acme")
    assert {dict(lbl)["data_type"]: v for lbl, v in in_progress.items()} == {
        "invoices": 1,
        "bills": 0,
        "balanceSheet": 0,
        "bankAccounts": 0,
        "orders": 0,
    }
    up = {dict(lbl)["company_id"]: v for lbl, v in select(series, families.COMPANY_UP.name).items()}
    assert up == {"c-acme": 1, "c-beta": 0, "c-empty": 1}
    polled = select(series, families.COMPANY_LAST_POLL_SUCCESS.name)
    assert {dict(lbl)["company_id"] for lbl in polled} == {"c-acme", "c-beta"}
    refresh = select(series, families.REFRESH_LAST_ATTEMPT.name, company_id="c-acme")
    assert {dict(lbl)["data_type"]: v for lbl, v in refresh.items()} == {
        "bills": (T0 - timedelta(minutes=5)).timestamp(),
        "all": (T0 - timedelta(hours=1)).timestamp(),
    }


def test_removed_company_has_no_series() -> None:
    cache = cache_for()
    assert b'company_id="c-beta"' in body(cache)
    full = rich_snapshot()
    cache.update(snapshot(*(cs for cid, cs in full.companies.items() if cid != "c-beta")))
    text = body(cache)
    assert b'company_id="c-beta"' not in text
    assert select(series_of(text), families.COMPANY_UP.name, company_id="c-acme")


def test_unchanged_companies_are_copied_and_render_identically() -> None:
    base = rich_snapshot()
    changed = company("c-beta", {"invoices": ("Complete", T0)}, name="Beta GmbH")
    nxt = snapshot(*(changed if cid == "c-beta" else cs for cid, cs in base.companies.items()))
    cache = cache_for("default", base)
    cache.update(nxt)
    assert cache.rendered.rendered_companies == 1
    fresh = ExpositionCache("default")
    fresh.update(nxt)
    assert fresh.rendered.rendered_companies == 3
    for openmetrics in (False, True):
        assert body(cache, openmetrics=openmetrics) == body(fresh, openmetrics=openmetrics)


def test_a_publication_where_nothing_changed_keeps_the_rendering_and_its_age_blocks() -> None:
    base = rich_snapshot()
    cache = cache_for("default", base)
    before = cache.rendered
    now = T0.timestamp() + 30
    served = cache.body(False, True, now)
    block = cache.age_block(int(now))
    assert block is not None
    # Same company objects, a later generated_at and the ready flag changed: the same bytes.
    cache.update(snapshot(*base.companies.values(), generated_at=T0 + timedelta(minutes=1), ready=False))
    assert cache.rendered is before
    assert cache.age_block(int(now)) is block
    assert cache.body(False, True, now) == served
    # One equal but new object is enough to render again (only that company).
    acme = base.companies["c-acme"]
    cache.update(snapshot(*(replace(cs) if cs is acme else cs for cs in base.companies.values())))
    assert cache.rendered is not before
    assert cache.rendered.rendered_companies == 0  # equal: copied, not rendered


def test_text_and_openmetrics_carry_the_same_samples() -> None:
    cache = cache_for()
    text = series_of(body(cache))
    om = series_of(body(cache, openmetrics=True), openmetrics=True)
    assert text == om
    assert len(text) == cache.rendered.series


def test_every_family_has_help_and_type_exactly_once() -> None:
    for openmetrics in (False, True):
        lines = body(cache_for(), openmetrics=openmetrics).decode().splitlines()
        for spec in families.SNAPSHOT_METRICS:
            name = spec.family if openmetrics else spec.name
            assert lines.count(f"# TYPE {name} {spec.type.value}") == 1, (name, openmetrics)
            assert sum(line.startswith(f"# HELP {name} ") for line in lines) == 1


def test_openmetrics_names_counter_family_without_total_and_ends_with_one_eof() -> None:
    registry = CollectorRegistry()
    Gauge("codat_test_self_metric", "A self-metric.", registry=registry).set(7)
    cache = ExpositionCache("default", registry)
    cache.update(rich_snapshot())
    om = body(cache, openmetrics=True).decode()
    assert "# TYPE codat_pull_operations counter\n" in om
    assert 'codat_pull_operations_total{company_id="c-acme"' in om
    assert om.endswith("codat_test_self_metric 7.0\n# EOF\n")
    assert om.count("# EOF") == 1
    text = body(cache).decode()
    assert "# TYPE codat_pull_operations_total counter\n" in text
    assert "# EOF" not in text
    assert "codat_test_self_metric 7.0\n" in text
    # HELP texts with double quotes are escaped in OpenMetrics only.
    assert 'status=\\"Other\\" is a status this exporter does not know' in om
    assert 'status="Other" is a status this exporter does not know' in text


def test_self_metrics_are_appended_per_scrape() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("codat_test_self_metric", "A self-metric.", registry=registry)
    cache = ExpositionCache("default", registry)
    gauge.set(1)
    assert b"codat_test_self_metric 1.0\n" in body(cache)
    gauge.set(2)
    assert b"codat_test_self_metric 2.0\n" in body(cache)


def test_gzip_body_is_several_members_that_decode_to_the_plain_body() -> None:
    cache = cache_for()
    for openmetrics in (False, True):
        compressed = cache.body(openmetrics, True, NOW + 1)
        assert gzip.decompress(compressed) == cache.body(openmetrics, False, NOW + 1)
        members = 0
        rest = compressed
        while rest:
            d = zlib.decompressobj(31)
            d.decompress(rest)
            rest = d.unused_data
            members += 1
        assert members > 2


def test_empty_snapshot_renders_headers_only_and_is_valid() -> None:
    cache = ExpositionCache("default")
    assert series_of(body(cache)) == {}
    assert series_of(body(cache, openmetrics=True), openmetrics=True) == {}
    assert cache.rendered.series == 0


def test_lone_surrogate_in_a_name_does_not_break_rendering() -> None:
    snap = snapshot(company("c1", {"invoices": ("Complete", T0)}, name="bad \ud800 name"))
    series = series_of(body(cache_for("default", snap)))
    (info,) = select(series, families.COMPANY_INFO.name, company_id="c1")
    assert dict(info)["company_name"] == "bad ? name"


_label_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.dictionaries(
        _label_text,
        st.tuples(st.sampled_from([*statuses.ALL_STATUSES, None, "Unheard", 'x\\y"z']), st.booleans()),
        max_size=5,
    ),
    name=_label_text,
    mode=st.sampled_from(exposition.STATUS_MODES),
)
def test_any_snapshot_parses_back_with_one_active_status_per_pair(
    entries: dict[str, tuple[str | None, bool]], name: str, mode: str
) -> None:
    snap = snapshot(
        company(
            "c1",
            {dt: (status, T0 if synced else None) for dt, (status, synced) in entries.items()},
            name=name,
            connections=(Connection("k", name, "Linked"),),
        )
    )
    rendered = render_snapshot(snap, mode)
    cache = ExpositionCache(mode)
    cache.update(snap)
    series = series_of(body(cache))
    assert series == series_of(body(cache, openmetrics=True), openmetrics=True)
    assert len(series) == rendered.series
    for data_type in entries:
        values = status_values(series, "c1", data_type)
        assert sum(values.values()) == 1
        state_set = exposition.status_set(mode)
        status = entries[data_type][0]
        named_extra = status is None or (status in statuses.ALL_STATUSES and status not in state_set)
        assert len(values) == (1 if mode == "sparse" else len(state_set) + named_extra)
        assert values.get("NeverSynced", 0) == (status is None)
    (info,) = select(series, families.COMPANY_INFO.name, company_id="c1")
    assert dict(info)["company_name"] == name


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["keep", "change", "drop"])), max_size=10),
        min_size=1,
        max_size=4,
    )
)
def test_incremental_renders_match_a_fresh_render(steps: list[list[tuple[int, str]]]) -> None:
    def make(i: int, version: int) -> CompanySnapshot:
        return company(
            f"c{i}",
            {"invoices": ("Complete", T0 - timedelta(seconds=version)), "bills": (None, None)},
            pull_operations_total={("invoices", "Complete"): version},
        )

    current = {f"c{i}": make(i, 0) for i in range(0, 10, 2)}
    cache = ExpositionCache("default")
    cache.update(snapshot(*current.values()))
    for step_number, edits in enumerate(steps, start=1):
        touched: set[str] = set()
        for i, action in edits:
            if action == "drop":
                current.pop(f"c{i}", None)
                touched.discard(f"c{i}")
            elif action == "change" or f"c{i}" not in current:
                current[f"c{i}"] = make(i, step_number)
                touched.add(f"c{i}")
        snap = snapshot(*current.values())
        before = cache.rendered
        cache.update(snap)
        if not touched and set(current) == set(before.company_ids):
            assert cache.rendered is before  # nothing changed: nothing spliced again
        else:
            assert cache.rendered.rendered_companies == len(touched)
        fresh = ExpositionCache("default")
        fresh.update(snap)
        assert cache.body(True, False, NOW) == fresh.body(True, False, NOW)
        assert cache.body(False, True, NOW) == fresh.body(False, True, NOW)


def test_sparse_mode_omits_pairs_with_nothing_in_progress() -> None:
    series = series_of(body(cache_for("sparse")))
    in_progress = select(series, families.PULL_OPERATIONS_IN_PROGRESS.name)
    assert {(dict(lbl)["company_id"], dict(lbl)["data_type"]): v for lbl, v in in_progress.items()} == {
        ("c-acme", "invoices"): 1
    }


def test_self_metric_groups_are_rendered_again_only_after_they_changed() -> None:
    telemetry = Telemetry(process_metrics=False)
    cache = ExpositionCache("default", telemetry.registry)
    telemetry.observe_pull_operation("invoices", "Complete", 30.0)
    first = gzip.decompress(cache.body(True, True, NOW)).decode()
    renders = cache.self_metrics.renders
    cache.body(True, True, NOW + 1)
    assert cache.self_metrics.renders == renders + 1  # only the per-second live group
    # A write shows at the next scrape, even within the same second; only its group is rendered.
    telemetry.observe_pull_operation("invoices", "Complete", 40.0)
    later = gzip.decompress(cache.body(True, True, NOW + 1.5)).decode()
    assert cache.self_metrics.renders == renders + 2
    count = 'codat_pull_operation_duration_seconds_count{data_type="invoices",status="Complete"}'
    assert f"{count} 1.0\n" in first
    assert f"{count} 2.0\n" in later
    telemetry.count_webhook("read.completed", "processed")
    processed = 'codat_exporter_webhooks_received_total{event_type="read.completed",result="processed"} 1.0'
    assert processed in cache.body(False, False, NOW + 1.6).decode()
    # Codat API requests (one per request made) are rendered at most once a second.
    requests = 'codat_exporter_api_requests_total{code="200",endpoint="companies"}'
    telemetry.on_request("companies", "200", 0.1)
    assert requests not in cache.body(False, False, NOW + 1.7).decode()
    assert f"{requests} 1.0\n" in cache.body(False, False, NOW + 2).decode()


def test_self_metrics_built_ahead_are_what_the_scrape_serves() -> None:
    telemetry = Telemetry(process_metrics=False)
    cache = ExpositionCache("default", telemetry.registry)
    assert cache.prebuild_self_metrics(NOW) == 0  # nothing scraped yet: nothing wanted
    cache.body(False, True, NOW)
    renders = cache.self_metrics.renders
    assert cache.prebuild_self_metrics(NOW + 1) == 1  # the live group, in the format scraped
    cache.body(False, True, NOW + 1.2)
    assert cache.self_metrics.renders == renders + 1
