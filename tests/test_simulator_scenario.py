"""Scenario files: loading, validation errors that name the field, the demo and generated scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.simulator import FakeClock, Scenario, ScenarioError, Simulator

GOOD = """
name: small
seed: 5
data_types: [invoices, bills]
profiles:
  calm: {sync_schedule_hours: 6, history: 2}
companies:
  - name: Alpha
    profile: calm
    tags: {region: uk}
  - name: Beta
    profile: calm
    count: 3
    error_rates: {FetchError: 0.5}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_load_builds_the_companies_it_describes(tmp_path: Path) -> None:
    scenario = Scenario.load(write(tmp_path, GOOD))
    assert scenario.seed == 5
    assert scenario.total_companies() == 4
    beta = scenario.companies[1]
    assert scenario.profile_for(beta).error_rates == {"FetchError": 0.5}
    assert scenario.profile_for(beta).sync_schedule_hours == 6
    sim = Simulator(scenario, clock=FakeClock())
    names = [sim.company(c)["name"] for c in sim.company_ids]
    assert names == ["Alpha", "Beta 1", "Beta 2", "Beta 3"]
    assert set(sim.data_status(sim.company_ids[0])) == {"invoices", "bills"}


def test_seed_argument_overrides_the_file(tmp_path: Path) -> None:
    assert Scenario.load(write(tmp_path, GOOD), seed=9).seed == 9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("companies: [{name: A, profile: nope}]", "companies.0.profile: unknown profile 'nope'"),
        (
            "companies: [{name: A, error_rates: {Broken: 0.1}}]",
            "'Broken' is not a terminal non-success status",
        ),
        ("companies: [{name: A, connection_status: Sideways}]", "'Sideways' is not one of PendingAuth"),
        ("sync: {stages: [[Complete, 3]]}", "sync.stages.0.status"),
        ("rate_limit: {daily_quota: 0}", "rate_limit.daily_quota"),
        ("profiles: {x: {history: -1}}", "profiles.x.history"),
        ("companies: [{name: A, colour: red}]", "companies.0.colour: Extra inputs are not permitted"),
        ("- just\n- a list", "a scenario must be a mapping"),
        ("companies: [{name: A\n", "not valid YAML"),
    ],
)
def test_bad_scenario_names_the_field_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        Scenario.load(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        Scenario.load(tmp_path / "absent.yaml")


def test_demo_has_every_kind_of_company() -> None:
    scenario = Scenario.demo(seed=1)
    assert scenario.name == "demo"
    assert scenario.total_companies() == 11
    assert {c.profile for c in scenario.companies} == {
        "healthy",
        "stale",
        "failing",
        "deauthorized",
        "never_synced",
        "hourly",
        "weekly",
        "stuck",
    }
    hours = {scenario.profiles[c.profile].sync_schedule_hours for c in scenario.companies}
    assert {1, 168} <= hours  # an hourly and a weekly company
    assert len(scenario.data_types) == 10


def test_generated_scales_to_ten_thousand_companies() -> None:
    clock = FakeClock()
    scenario = Scenario.generated(companies=10_000, data_types=10, seed=3)
    assert scenario.total_companies() == 10_000
    sim = Simulator(scenario, clock=clock)
    ids = sim.company_ids
    assert len(ids) == len(set(ids)) == 10_000
    assert len(sim.companies_with_tag("segment", "healthy")) == 8600
    assert len(sim.companies_with_tag("segment", "never_synced")) == 200
    some = ids[-1]
    assert len(sim.data_status(some)) == 10
    history = sim.operations(ids[0])
    assert history  # regenerated on demand
    assert sim.operations(ids[0]) == history


def test_generated_rejects_impossible_sizes() -> None:
    with pytest.raises(ScenarioError):
        Scenario.generated(companies=10, data_types=0)
    with pytest.raises(ScenarioError):
        Scenario.generated(companies=-1)
