"""check-config warns when the discovery query hides companies the shipped alerts page on."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from exporter.config.check import check_config_command, query_warnings


@pytest.mark.parametrize(
    ("query", "hidden"),
    [
        ("dataConnections.status=Linked", "Deauthorized or Unlinked"),
        ("name~Ltd&&dataConnections.status = linked", "Deauthorized or Unlinked"),
        ("dataConnections.status!=Deauthorized", "Deauthorized"),
        ("dataConnections.status=Deauthorized", "Unlinked"),
    ],
)
def test_a_query_on_connection_status_that_hides_watched_states_warns(query: str, hidden: str) -> None:
    (warning,) = query_warnings(query)
    assert f"connection is {hidden}:" in warning


@pytest.mark.parametrize("query", [None, "", "name~Ltd", "dataConnections.status!=PendingAuth"])
def test_a_query_that_keeps_every_watched_state_does_not_warn(query: str | None) -> None:
    assert query_warnings(query) == []


def test_check_config_prints_the_warning_and_still_passes(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("companies:\n  query: dataConnections.status=Linked\n")
    out, err = io.StringIO(), io.StringIO()
    code = check_config_command(config, {"CODAT_API_KEY": "k"}, stdout=out, stderr=err)
    assert code == 0
    assert f"{config}: OK" in out.getvalue()
    assert err.getvalue().startswith("warning: companies.query hides companies whose connection is")


def test_the_example_config_does_not_warn() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.yaml"
    err = io.StringIO()
    assert check_config_command(example, {"CODAT_API_KEY": "k"}, stdout=io.StringIO(), stderr=err) == 0
    assert "warning" not in err.getvalue()
