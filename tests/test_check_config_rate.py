"""``check-config`` warns in one line (exit 0) when the request rate cannot keep up with the fleet."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from exporter.config.check import check_config_command


def _check(tmp_path: Path, settings: dict[str, object]) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    out, err = io.StringIO(), io.StringIO()
    code = check_config_command(path, {}, stdout=out, stderr=err)
    return code, err.getvalue()


def _ids(count: int) -> list[str]:
    return [f"{i:08d}-0000-4000-8000-000000000000" for i in range(count)]


def test_a_rate_too_low_for_the_listed_companies_is_one_warning_with_the_rate_that_suffices(
    tmp_path: Path,
) -> None:
    code, err = _check(tmp_path, {"companies": {"ids": _ids(10000)}})
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("warning: budget.max_requests_per_minute=300 is too low")
    assert "set it to 543 or more" in lines[0]


def test_shards_split_the_fleet_and_a_sufficient_rate_says_nothing(tmp_path: Path) -> None:
    assert _check(tmp_path, {"companies": {"ids": _ids(10000)}, "sharding": {"total_shards": 2}}) == (0, "")
    assert _check(
        tmp_path, {"companies": {"ids": _ids(10000)}, "budget": {"max_requests_per_minute": 600}}
    ) == (
        0,
        "",
    )


def test_a_fleet_beyond_one_ip_address_is_told_to_shard(tmp_path: Path) -> None:
    settings = {
        "companies": {"ids": _ids(20000)},
        "polling": {"full_sweep_interval": "1h"},
        "budget": {"max_requests_per_minute": 1000},
    }
    code, err = _check(tmp_path, settings)
    assert code == 0
    assert "split it into shards on separate IP addresses" in err
