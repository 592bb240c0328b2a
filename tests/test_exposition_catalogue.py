"""The family catalogue: a new per-company family is one ``CompanyFamily`` value, rendered everywhere."""

from __future__ import annotations

import gzip

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.exposition import families
from exporter.exposition.cache import ExpositionCache
from exporter.exposition.families import COMPANY_FAMILIES, CompanyFamily, CompanyView
from exporter.exposition.spec import MetricType
from exporter.exposition.textformat import escape_label_value
from tests.support.snapshots import T0, company, rich_snapshot, snapshot

NOW = T0.timestamp()


def _tag_lines(view: CompanyView) -> str:
    tags = view.snapshot.company.tags
    return "".join(
        f'{TAG_VALUE.name}{{{view.company_label},tag="{escape_label_value(k)}"}} {len(v)}\n'
        for k, v in sorted(tags.items())
    )


TAG_VALUE = CompanyFamily(
    "codat_test_tag_value_length_total",
    MetricType.COUNTER,
    'A throwaway family: the length of each tag\'s value ("for the test").',
    ("company_id", "tag"),
    render=_tag_lines,
)
"""What adding a family takes: this value (in ``families.py``, and its place in ``COMPANY_FAMILIES``)."""
CATALOGUE = (*COMPANY_FAMILIES, TAG_VALUE)


def _parsed(body: bytes, *, openmetrics: bool) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    parse = parse_openmetrics if openmetrics else parse_text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in parse(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_a_family_added_to_the_catalogue_is_rendered_in_both_formats_with_its_header() -> None:
    cache = ExpositionCache("default", catalogue=CATALOGUE)
    cache.update(rich_snapshot())
    for openmetrics in (False, True):
        text = cache.body(openmetrics, False, NOW)
        family_name = TAG_VALUE.family if openmetrics else TAG_VALUE.name
        assert text.count(f"# TYPE {family_name} counter\n".encode()) == 1
        series = _parsed(text, openmetrics=openmetrics)[TAG_VALUE.name]
        assert series == {
            (("company_id", "c-acme"), ("tag", "region")): 2,
            (("company_id", "c-acme"), ("tag", "tier")): 4,
        }
        assert gzip.decompress(cache.body(openmetrics, True, NOW)) == text
    # The HELP text is escaped per format like every catalogued family's.
    assert b'("for the test")' in cache.body(False, False, NOW)
    assert b'(\\"for the test\\")' in cache.body(True, False, NOW)


def test_the_added_family_is_spliced_for_unchanged_companies_like_the_others() -> None:
    base = rich_snapshot()
    changed = company("c-beta", {"invoices": ("Complete", T0)}, tags={"k": "12345"})
    cache = ExpositionCache("default", catalogue=CATALOGUE)
    cache.update(base)
    nxt = snapshot(*(changed if cid == "c-beta" else cs for cid, cs in base.companies.items()))
    cache.update(nxt)
    assert cache.rendered.rendered_companies == 1
    fresh = ExpositionCache("default", catalogue=CATALOGUE)
    fresh.update(nxt)
    assert cache.body(True, False, NOW) == fresh.body(True, False, NOW)
    line = b'codat_test_tag_value_length_total{company_id="c-beta",tag="k"} 5\n'
    assert line in cache.body(False, False, NOW)


def test_the_default_catalogue_is_every_company_family_and_nothing_is_listed_twice() -> None:
    declared = [v for v in vars(families).values() if isinstance(v, CompanyFamily)]
    assert sorted(f.name for f in declared) == sorted(f.name for f in COMPANY_FAMILIES)
    names = [f.name for f in families.SNAPSHOT_METRICS]
    assert len(names) == len(set(names))
    assert families.SNAPSHOT_METRICS[-1] is families.AGE_FAMILY
