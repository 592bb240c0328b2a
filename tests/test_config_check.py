"""``check-config``: exit 0 with a summary for a good file, exit 2 with every problem for a bad one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from exporter.config.check import check_config_command
from tests.support.tools import REPO_ROOT


def run_check(path: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_config_command(path, env or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_valid_example_prints_ok_and_summary() -> None:
    example = REPO_ROOT / "config.example.yaml"
    code, out, err = run_check(example)
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{example}: OK"
    assert "  companies: discover every company the API key sees" in lines
    assert "  poll interval: 1m (full sweep every 6h)" in lines
    assert "  status mode: default" in lines
    assert "  auto-refresh: off" in lines
    assert "  webhooks: off" in lines


def test_summary_reflects_settings_and_env(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "companies: {ids: [a, b], discover: false}\npolling: {interval: 5m}\nmetrics: {status_mode: sparse}\n"
        "auto_refresh: {enabled: true, dry_run: true, cooldown: 30m}\n",
        encoding="utf-8",
    )
    code, out, _ = run_check(path, {"CODAT_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    assert code == 0
    assert "  companies: 2 listed" in out
    assert "  poll interval: 5m (full sweep every 6h)" in out
    assert "  status mode: sparse" in out
    assert "  auto-refresh: on (dry run), 1 rule(s), cooldown 30m, at most 10/cycle and 500/day" in out
    assert "  webhooks: on at /webhooks/codat" in out


def test_invalid_file_prints_every_problem_on_stderr_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("budget: {max_concurrency: 0}\npolling: {intervl: 5m}\n", encoding="utf-8")
    code, out, err = run_check(path)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{path}: invalid configuration (2 problems)",
        "polling.intervl: unknown key (did you mean interval?)",
        "budget.max_concurrency: must be at least 1",
    ]


@pytest.mark.parametrize(("text", "expected"), [(None, "config file not found"), ("a: [1\n", "invalid YAML")])
def test_unreadable_file_exits_2(tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "c.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    code, _, err = run_check(path)
    assert code == 2
    assert expected in err


def test_cli_check_config_exit_codes_and_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.cli import main

    for name in ("CODAT_API_KEY", "CODAT_API_KEY_FILE", "CODAT_WEBHOOK_SECRET", "CODAT_WEBHOOK_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    good = REPO_ROOT / "config.example.yaml"
    assert main(["check-config", str(good)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: OK\n")
    assert captured.err == ""

    bad = tmp_path / "bad.yaml"
    bad.write_text("auto_refresh: {rules: [{max_staleness: 6 hours}]}\n", encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        'auto_refresh.rules[0].max_staleness: not a duration: "6 hours" (use e.g. 90s, 5m, 6h, 1d)'
        in captured.err.splitlines()
    )
