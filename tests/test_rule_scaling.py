"""The time-compressed rule copy the incident replay runs on: what it scales, and that promtool accepts it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alertmanager import example_config
from tests.support.rule_scaling import (
    TUNING_GROUP,
    duration_ms,
    scale_duration,
    scale_groups,
    scale_windows,
    write_scaled_rules,
)
from tests.support.tools import REPO_ROOT, require_tool

RULES = REPO_ROOT / "prometheus" / "rules.yml"
ALERTS = REPO_ROOT / "prometheus" / "alerts.yml"


def _groups(path: Path) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["groups"]
    return groups


@pytest.mark.parametrize(
    ("text", "ms"), [("15m", 900_000), ("1h30m", 5_400_000), ("1d", 86_400_000), ("250ms", 250)]
)
def test_durations_are_read_like_prometheus(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "15", "1x", "m15", "1h 30m"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_ms(text)


def test_durations_scale_to_whole_milliseconds() -> None:
    assert scale_duration("30m", 80) == "22500ms"
    assert scale_duration("1ms", 80) == "1ms"


def test_range_selectors_and_subqueries_scale_and_label_values_do_not() -> None:
    expr = 'max_over_time(timestamp(x{status="1h"} == 1)[1h:]) + increase(y[15m]) + z[1d:1m]'
    assert scale_windows(expr, 60) == (
        'max_over_time(timestamp(x{status="1h"} == 1)[60000ms:]) + increase(y[15000ms]) + z[1440000ms:1000ms]'
    )


def test_only_the_tuning_group_changes_thresholds_and_every_for_and_window_scales() -> None:
    original = _groups(RULES) + _groups(ALERTS)
    scaled = scale_groups(original, 80)
    assert [g["name"] for g in scaled] == [g["name"] for g in original]
    for before_group, after_group in zip(original, scaled, strict=True):
        for before, after in zip(before_group["rules"], after_group["rules"], strict=True):
            if before_group["name"] == TUNING_GROUP:
                value = float(before["expr"].split("(")[1].split(")")[0])
                assert after["expr"] == f"vector({value / 80!r})"
            else:
                # numbers outside windows (e.g. a 43200 s constant) are left alone
                assert after["expr"] == scale_windows(before["expr"], 80)
            for key in ("for", "keep_firing_for"):
                if key in before:
                    assert duration_ms(after[key]) == round(duration_ms(before[key]) / 80)
            assert {k: v for k, v in after.items() if k not in ("expr", "for", "keep_firing_for")} == {
                k: v for k, v in before.items() if k not in ("expr", "for", "keep_firing_for")
            }
    assert original == _groups(RULES) + _groups(ALERTS), "the source groups were modified"


def test_the_scaled_copy_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    written = write_scaled_rules([RULES, ALERTS], tmp_path, 80)
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, written)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    stale = next(r for g in _groups(written[1]) for r in g["rules"] if r.get("alert") == "CodatDataStale")
    assert stale["for"] == "11250ms"


def test_the_replay_alertmanager_config_changes_only_receiver_urls_and_timers() -> None:
    shipped = yaml.safe_load((REPO_ROOT / "prometheus" / "alertmanager.example.yml").read_text())
    scaled = example_config("http://127.0.0.1:1234", 80)
    assert scaled["route"]["group_wait"] == "750ms"
    pager = next(r for r in scaled["route"]["routes"] if r["matchers"] == ['severity="critical"'])
    assert pager["repeat_interval"] == "180000ms"
    assert scaled["inhibit_rules"] == shipped["inhibit_rules"]
    for key in ("receiver", "group_by"):
        assert scaled["route"][key] == shipped["route"][key]
    matchers = [r["matchers"] for r in scaled["route"]["routes"]]
    assert matchers == [r["matchers"] for r in shipped["route"]["routes"]]
    urls = {w["url"] for r in scaled["receivers"] for w in r["webhook_configs"]}
    assert urls == {f"http://127.0.0.1:1234/{r['name']}" for r in shipped["receivers"]}
    assert {"http://127.0.0.1:1234/codat-pager", "http://127.0.0.1:1234/codat-tickets"} <= urls
