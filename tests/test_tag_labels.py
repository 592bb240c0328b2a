"""Company tags as ``tag_<name>`` labels of ``codat_company_info``: naming, bounds, config, rendering."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.app import build_app
from exporter.codat.parsing import parse_company
from exporter.config.loading import ConfigError, load_config
from exporter.config.schema import Config
from exporter.exposition.cache import ExpositionCache
from exporter.exposition.families import COMPANY_FAMILIES, COMPANY_INFO, company_catalogue
from exporter.exposition.taglabels import (
    MAX_TAG_LABELS,
    MAX_TAG_NAME_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    TagLabelError,
    render_tag_labels,
    tag_label_name,
    tag_labels,
)
from tests.conftest import RunningSimulator
from tests.support.snapshots import T0, company, snapshot
from tests.support.tools import free_port
from tests.support.waiting import wait_until

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
NOW = T0.timestamp()


@pytest.mark.parametrize(
    ("tag", "label"),
    [
        ("team", "tag_team"),
        ("Team", "tag_Team"),
        ("cost-centre", "tag_cost_centre"),
        ("cost centre", "tag_cost_centre"),
        ("3rd.party", "tag_3rd_party"),
        ("région", "tag_r_gion"),
        ("__name__", "tag___name__"),
        ("company_id", "tag_company_id"),
    ],
)
def test_tag_names_become_valid_prefixed_label_names(tag: str, label: str) -> None:
    assert tag_label_name(tag) == label


@given(st.text(min_size=1, max_size=MAX_TAG_NAME_LENGTH))
def test_every_tag_name_becomes_a_valid_label_name_apart_from_the_family_labels(tag: str) -> None:
    label = tag_label_name(tag)
    assert LABEL_NAME.match(label)
    assert not label.startswith("__")
    assert label not in COMPANY_INFO.labels


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        (["team", "team"], "tag 'team' is listed twice"),
        (
            ["cost-centre", "cost_centre"],
            "tags 'cost-centre' and 'cost_centre' would both become label tag_cost_centre",
        ),
        ([""], "must be a non-empty tag name"),
        (["--"], "tag name '--' has no ASCII letter or digit to name a label after"),
        (
            ["x" * (MAX_TAG_NAME_LENGTH + 1)],
            f"tag name is 65 characters; at most {MAX_TAG_NAME_LENGTH} are allowed",
        ),
        ([f"t{i}" for i in range(MAX_TAG_LABELS + 1)], "11 tags listed; at most 10 may become labels"),
    ],
)
def test_unusable_allow_lists_are_refused_with_one_line(tags: list[str], reason: str) -> None:
    with pytest.raises(TagLabelError) as caught:
        tag_labels(tags)
    assert str(caught.value) == reason


def test_the_allow_list_keeps_its_order_and_its_bound() -> None:
    listed = [f"t{i}" for i in range(MAX_TAG_LABELS)]
    assert [label for _, label in tag_labels(listed)] == [f"tag_t{i}" for i in range(MAX_TAG_LABELS)]


def test_values_are_escaped_cut_to_the_bound_and_absent_tags_stay_absent() -> None:
    labels = tag_labels(["team", "note", "tier", "region"])
    tags = {"team": 'a"b\\c\nd', "note": "é" * (MAX_TAG_VALUE_LENGTH + 5), "tier": "", "other": "x"}
    rendered = render_tag_labels(tags, labels)
    assert rendered == f',tag_team="a\\"b\\\\c\\nd",tag_note="{"é" * MAX_TAG_VALUE_LENGTH}"'


def test_a_null_tag_value_is_no_value_and_a_number_keeps_its_digits() -> None:
    company = parse_company({"id": "c-1", "name": "Acme", "tags": {"team": None, "tier": 3, "region": "uk"}})
    assert company.tags == {"tier": "3", "region": "uk"}
    assert render_tag_labels(company.tags, tag_labels(["team", "tier"])) == ',tag_tier="3"'


def _config_problem(tmp_path: Path, body: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text("codat:\n  api_key: k\nmetrics:\n" + body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    problems = caught.value.problems
    assert len(problems) == 1
    return f"{problems[0][0]}: {problems[0][1]}"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "  company_tag_labels: [team, cost-centre, cost_centre]\n",
            "metrics.company_tag_labels: tags 'cost-centre' and 'cost_centre' would both become label "
            "tag_cost_centre",
        ),
        (
            "  company_tag_labels: [team, '']\n",
            "metrics.company_tag_labels[1]: String should have at least 1 character",
        ),
        ("  company_tag_labels: team\n", "metrics.company_tag_labels: must be a list (got string)"),
        (
            f"  company_tag_labels: [{', '.join(f't{i}' for i in range(11))}]\n",
            "metrics.company_tag_labels: List should have at most 10 items after validation, not 11",
        ),
    ],
)
def test_bad_allow_lists_in_the_config_name_the_field(tmp_path: Path, body: str, problem: str) -> None:
    assert _config_problem(tmp_path, body) == problem


def _info_series(body: bytes, *, openmetrics: bool) -> dict[str, dict[str, str]]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {
        sample.labels["company_id"]: dict(sample.labels)
        for family in parse(body.decode())
        for sample in family.samples
        if sample.name == "codat_company_info"
    }


def test_the_catalogue_renders_the_listed_tags_in_both_formats() -> None:
    catalogue = company_catalogue(["team", "cost-centre"])
    assert company_catalogue(["team", "cost-centre"]) == catalogue  # an unchanged list renders incrementally
    assert company_catalogue([]) is COMPANY_FAMILIES
    info = next(f for f in catalogue if f.name == "codat_company_info")
    assert info.labels == ("company_id", "company_name", "platform", "tags", "tag_team", "tag_cost_centre")
    cache = ExpositionCache("default", catalogue=catalogue)
    cache.update(
        snapshot(
            company("c-1", {}, tags={"team": 'pay"ments', "cost-centre": "cc\n42", "tier": "gold"}),
            company("c-2", {}, tags={"tier": "silver"}),
        )
    )
    for openmetrics in (False, True):
        series = _info_series(cache.body(openmetrics, False, NOW), openmetrics=openmetrics)
        assert series["c-1"]["tag_team"] == 'pay"ments'
        assert series["c-1"]["tag_cost_centre"] == "cc\n42"
        assert "tag_tier" not in series["c-1"]  # not listed
        assert series["c-1"]["tags"] == 'cost-centre=cc\n42,team=pay"ments,tier=gold'
        assert not any(k.startswith("tag_") for k in series["c-2"])


# Lone surrogates cannot be encoded, so no HTTP request could carry them.
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)


@given(
    st.dictionaries(
        st.sampled_from(["team", "tier", "cost-centre", "other"]),
        st.text(st.characters(exclude_categories=SURROGATES), max_size=MAX_TAG_VALUE_LENGTH + 20),
    )
)
def test_any_tag_value_parses_back_as_its_bounded_self(tags: dict[str, str]) -> None:
    cache = ExpositionCache("default", catalogue=company_catalogue(["team", "tier", "cost-centre"]))
    cache.update(snapshot(company("c-1", {}, tags=tags)))
    labels = _info_series(cache.body(False, False, NOW), openmetrics=False)["c-1"]
    expected = {
        label: tags[tag][:MAX_TAG_VALUE_LENGTH]
        for tag, label in (("team", "tag_team"), ("tier", "tag_tier"), ("cost-centre", "tag_cost_centre"))
        if tags.get(tag)
    }
    assert {k: v for k, v in labels.items() if k.startswith("tag_")} == expected


def test_the_exporter_labels_simulator_companies_with_their_listed_tags(simulator: RunningSimulator) -> None:
    long_value = "x" * (MAX_TAG_VALUE_LENGTH + 50)
    added = simulator.sim.add_company(
        "Tagged Ltd", tags={"team": "platform", "cost-centre": long_value, "secret": "not listed"}
    )
    config = Config.model_validate(
        {
            "codat": {"base_url": simulator.url, "api_key": simulator.api_key, "max_retries": 0},
            "budget": {"daily_quota_share": 1.0, "max_requests_per_minute": 1000},
            "server": {"listen_address": f"127.0.0.1:{free_port()}"},
            "metrics": {"company_tag_labels": ["team", "tier", "cost-centre"]},
        }
    )
    app = build_app(config)
    app.start()
    try:
        wait_until(lambda: requests.get(app.url + "/readyz", timeout=5).status_code == 200, "exporter ready")
        series = _info_series(requests.get(app.url + "/metrics", timeout=10).content, openmetrics=False)
    finally:
        app.stop()
    assert series[added]["tag_team"] == "platform"
    assert series[added]["tag_cost_centre"] == "x" * MAX_TAG_VALUE_LENGTH
    assert "tag_secret" not in series[added]
    demo = {labels["company_name"]: labels for labels in series.values()}
    assert demo["Acme Trading Ltd"]["tag_team"] == "wholesale"
    assert demo["Acme Trading Ltd"]["tag_tier"] == "gold"
    assert "tag_team" not in demo["Bluebird Bakery"]  # no team tag in Codat: no label
    assert demo["Bluebird Bakery"]["tag_tier"] == "silver"
