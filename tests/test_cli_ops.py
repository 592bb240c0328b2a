"""The operator commands (companies, status, history, operation, refresh) run in-process on the simulator."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.cli.render import Output, format_age, format_duration, plural, progress_printer, render_table
from exporter.codat.models import Page
from tests.conftest import RunningSimulator

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def sim_env(simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> RunningSimulator:
    monkeypatch.setenv("CODAT_API_KEY", simulator.api_key)
    monkeypatch.setenv("CODAT_BASE_URL", simulator.url)
    monkeypatch.delenv("CODAT_API_KEY_FILE", raising=False)
    return simulator


def _run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _acme(running: RunningSimulator) -> str:
    return running.sim.company_id_by_name("Acme Trading Ltd")


# --- pure formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-5, "future"),
        (0, "0s"),
        (45.9, "45s"),
        (60, "1m"),
        (12 * 60 + 59, "12m"),
        (3 * 3600 + 12 * 60 + 5, "3h12m"),
        (2 * 86400 + 4 * 3600 + 59, "2d4h"),
    ],
)
def test_age_is_compact(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (5, "5s"), (90, "1m30s"), (7500, "2h5m")])
def test_duration_is_compact(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_table_columns_are_aligned_and_missing_values_shown_as_dash() -> None:
    table = render_table(("A", "LONG HEADER"), [("x", None), ("longer value", 3)])
    lines = table.splitlines()
    assert lines == ["A             LONG HEADER", "x             -", "longer value  3"]


# --- companies ------------------------------------------------------------------------------------


def test_companies_table_lists_every_company(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, err = _run(capsys, "companies")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["COMPANY", "ID", "NAME"]
    assert len(lines) == 1 + len(sim_env.sim.company_ids)
    name_column = lines[0].index("NAME")
    assert lines[1][name_column:].startswith("Acme Trading Ltd")


def test_companies_json_reads_every_page(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, err = _run(capsys, "companies", "--json", "--page-size", "3")
    assert code == 0
    assert err == ""  # no progress output when stderr is not a terminal
    companies = json.loads(out)
    assert [c["id"] for c in companies] == sim_env.sim.company_ids
    assert sim_env.sim.count_requests("companies") == -(-len(companies) // 3)
    assert companies[0]["dataConnections"][0]["status"] == "Linked"


def test_companies_with_a_query(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, _ = _run(capsys, "companies", "--json", "--query", "dataConnections.status=Deauthorized")
    assert code == 0
    for company in json.loads(out):
        assert "Deauthorized" in {c["status"] for c in company["dataConnections"]}


# --- status ---------------------------------------------------------------------------------------


def test_status_table_shows_every_data_type(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, _ = _run(capsys, "status", _acme(sim_env))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "DATA",
        "TYPE",
        "STATUS",
        "LAST",
        "SUCCESSFUL",
        "SYNC",
        "AGE",
        "LATEST",
        "SYNC",
        "ID",
    ]
    body = {line.split()[0]: line for line in lines[1:]}
    assert set(body) == set(sim_env.sim.data_status(_acme(sim_env)))
    invoices = sim_env.sim.data_status(_acme(sim_env))["invoices"]
    assert invoices["latestSyncId"] in body["invoices"]
    assert "Complete" in body["invoices"]


def test_status_of_a_never_synced_company_says_so(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, _ = _run(capsys, "status", sim_env.sim.company_id_by_name("Granite Builders"))
    assert code == 0
    assert all("never synced" in line for line in out.splitlines()[1:])


def test_status_json_for_one_data_type(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, _ = _run(capsys, "status", _acme(sim_env), "--data-type", "invoices", "--json")
    assert code == 0
    status = json.loads(out)
    expected = sim_env.sim.data_status(_acme(sim_env))["invoices"]
    assert status["dataType"] == "invoices"
    assert status["currentStatus"] == expected["currentStatus"]
    assert status["latestSyncId"] == expected["latestSyncId"]
    assert status["lastSuccessfulSync"].endswith("Z")
    assert status["secondsSinceLastSuccessfulSync"] > 0


def test_status_of_an_unknown_company_exits_1_with_one_line(
    sim_env: RunningSimulator, capsys: Capture
) -> None:
    code, out, err = _run(capsys, "status", "00000000-0000-0000-0000-000000000000")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("codat-exporter: error: unknown company 00000000-0000-0000-0000-000000000000")


def test_status_of_an_unknown_data_type_exits_1(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, _, err = _run(capsys, "status", _acme(sim_env), "--data-type", "spaceships")
    assert code == 1
    assert f"company {_acme(sim_env)} has no data type 'spaceships' (it has: " in err
    assert "invoices" in err
    assert "dataStatus" not in err  # a local filter, not a fault of Codat's


def test_counts_are_in_the_right_number() -> None:
    assert (plural(1, "operation"), plural(2, "operation"), plural(0, "operation")) == (
        "1 operation",
        "2 operations",
        "0 operations",
    )


# --- history --------------------------------------------------------------------------------------


def test_history_table_shows_one_page_and_says_how_to_get_more(
    sim_env: RunningSimulator, capsys: Capture
) -> None:
    total = len(sim_env.sim.operations(_acme(sim_env)))
    code, out, _ = _run(capsys, "history", _acme(sim_env), "--page-size", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["DATASET", "ID", "DATA", "TYPE"]
    assert len(lines) == 1 + 5 + 1
    assert lines[-1] == f"page 1 of {-(-total // 5)} ({total} operations); --page N for more, or --all-pages"


def test_history_all_pages_as_json_newest_first(sim_env: RunningSimulator, capsys: Capture) -> None:
    total = len(sim_env.sim.operations(_acme(sim_env)))
    code, out, _ = _run(
        capsys,
        "history",
        _acme(sim_env),
        "--all-pages",
        "--page-size",
        "7",
        "--order-by=-requested",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    requested = [op["requested"] for op in payload["results"]]
    assert len(requested) == total == payload["totalResults"]
    assert requested == sorted(requested, reverse=True)
    assert len({op["id"] for op in payload["results"]}) == total


def test_history_with_a_query(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, out, _ = _run(
        capsys, "history", _acme(sim_env), "--query", "dataType=invoices&&status!=Complete", "--json"
    )
    assert code == 0
    for op in json.loads(out)["results"]:
        assert op["dataType"] == "invoices"
        assert op["status"] != "Complete"


def test_history_with_a_malformed_query_exits_1(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, _, err = _run(capsys, "history", _acme(sim_env), "--query", "isCompleted=true")
    assert code == 1
    assert "Error parsing query" in err


# --- operation ------------------------------------------------------------------------------------


def test_operation_table_and_json(sim_env: RunningSimulator, capsys: Capture) -> None:
    op = sim_env.sim.operations(_acme(sim_env))[-1]
    code, out, _ = _run(capsys, "operation", _acme(sim_env), op["id"])
    assert code == 0
    fields = {line[:20].strip(): line[20:].strip() for line in out.splitlines()[1:]}
    assert fields["dataset id"] == op["id"]
    assert fields["status"] == op["status"]
    code, out, _ = _run(capsys, "operation", _acme(sim_env), op["id"], "--json")
    assert code == 0
    assert json.loads(out)["id"] == op["id"]


def test_unknown_operation_exits_1(sim_env: RunningSimulator, capsys: Capture) -> None:
    code, _, err = _run(capsys, "operation", _acme(sim_env), "00000000-0000-0000-0000-000000000000")
    assert code == 1
    assert "No dataset found" in err


# --- sync-settings and connections ---------------------------------------------------------------


def test_sync_settings_table_shows_each_types_schedule(sim_env: RunningSimulator, capsys: Capture) -> None:
    weekly = sim_env.sim.company_id_by_name("Kestrel Farms")
    code, out, err = _run(capsys, "sync-settings", weekly)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["DATA", "TYPE", "SCHEDULE", "FETCH", "ON", "FIRST", "LINK", "LOCKED"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows["invoices"] == "7d"
    # No automatic syncs is shown in words, not as a zero duration.
    stale = sim_env.sim.company_id_by_name("Driftwood Outfitters")
    code, out, _ = _run(capsys, "sync-settings", stale)
    assert code == 0
    assert {line.split()[1] for line in out.splitlines()[1:]} == {"none"}


def test_sync_settings_json_keeps_codats_hours_and_adds_seconds(
    sim_env: RunningSimulator, capsys: Capture
) -> None:
    hourly = sim_env.sim.company_id_by_name("Juniper Analytics")
    code, out, _ = _run(capsys, "sync-settings", hourly, "--json")
    assert code == 0
    body = json.loads(out)
    assert body["companyId"] == hourly
    bills = next(s for s in body["settings"] if s["dataType"] == "bills")
    assert (bills["syncSchedule"], bills["syncScheduleSeconds"]) == (1, 3600)


def test_connections_table_counts_active_errors(sim_env: RunningSimulator, capsys: Capture) -> None:
    failing = sim_env.sim.company_id_by_name("Evergreen Logistics")
    [connection] = sim_env.sim.company(failing)["dataConnections"]
    code, out, err = _run(capsys, "connections", failing)
    assert (code, err) == (0, "")
    header, row = out.splitlines()
    assert header.split()[-2:] == ["ACTIVE", "ERRORS"]
    assert row.split()[0] == connection["id"]
    assert row.split()[-1] == "1"


def test_connections_json_has_codats_error_fields(sim_env: RunningSimulator, capsys: Capture) -> None:
    failing = sim_env.sim.company_id_by_name("Evergreen Logistics")
    code, out, _ = _run(capsys, "connections", failing, "--json")
    assert code == 0
    [connection] = json.loads(out)
    assert connection["activeErrors"] == 1
    [error] = [e for e in connection["dataConnectionErrors"] if e["status"] == "Active"]
    fields = {"statusCode", "statusText", "errorMessage", "erroredOnUtc", "status", "resolvedOnUtc"}
    assert set(error) == fields
    assert error["erroredOnUtc"].endswith("Z")


@pytest.mark.parametrize("command", ["sync-settings", "connections"])
def test_codat_settings_of_an_unknown_company_exit_1_with_one_line(
    sim_env: RunningSimulator, capsys: Capture, command: str
) -> None:
    code, out, err = _run(capsys, command, "00000000-0000-0000-0000-000000000000")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("codat-exporter: error: unknown company 00000000-0000-0000-0000-000000000000")


# --- refresh --------------------------------------------------------------------------------------


def test_refresh_queues_then_reports_the_running_dataset(sim_env: RunningSimulator, capsys: Capture) -> None:
    acme = _acme(sim_env)
    sim_env.sim.complete_syncs_now(acme)
    code, out, err = _run(capsys, "refresh", acme, "invoices", "--json")
    assert (code, err) == (0, "")
    queued = json.loads(out)
    assert queued["result"] == "queued"
    assert queued["datasetId"]
    code, out, err = _run(capsys, "refresh", acme, "invoices")
    assert code == 1
    assert out == ""
    assert "already in progress" in err
    assert queued["datasetId"] in err


def test_refresh_all(sim_env: RunningSimulator, capsys: Capture) -> None:
    acme = _acme(sim_env)
    sim_env.sim.complete_syncs_now(acme)
    code, out, _ = _run(capsys, "refresh", acme, "--all")
    assert code == 0
    assert "queued a sync of all data types" in out
    assert sim_env.sim.running_operations(acme) > 0


@pytest.mark.parametrize(
    "argv",
    [
        ("refresh", "c1"),
        ("refresh", "c1", "invoices", "--all"),
        ("refresh", "c1", "--all", "--connection-id", "x"),
    ],
)
def test_refresh_usage_errors_exit_2_before_calling_codat(
    sim_env: RunningSimulator, capsys: Capture, argv: tuple[str, ...]
) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.startswith("codat-exporter: error: ")
    assert sim_env.sim.count_requests() == 0


# --- keys, base URL, connectivity -----------------------------------------------------------------


def test_bad_key_exits_1_saying_codat_rejected_it(
    sim_env: RunningSimulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODAT_API_KEY", "not-the-key")
    code, _, err = _run(capsys, "companies")
    assert code == 1
    assert err.startswith("codat-exporter: error: Codat rejected the API key (401 Unauthorized)")
    assert "not-the-key" not in err


def test_missing_key_exits_2_naming_the_variables(
    sim_env: RunningSimulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODAT_API_KEY")
    code, _, err = _run(capsys, "companies")
    assert code == 2
    assert "CODAT_API_KEY" in err
    assert "CODAT_API_KEY_FILE" in err


def test_key_file_flag_is_used(
    sim_env: RunningSimulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODAT_API_KEY", "not-the-key")
    key_file = tmp_path / "key"
    key_file.write_text(sim_env.api_key + "\n")
    code, _, _ = _run(capsys, "companies", "--api-key-file", str(key_file))
    assert code == 0


def test_base_url_flag_beats_the_environment(
    sim_env: RunningSimulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODAT_BASE_URL", "http://127.0.0.1:9")
    code, _, _ = _run(capsys, "companies", "--base-url", sim_env.url)
    assert code == 0


def test_unreachable_codat_exits_1(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CODAT_API_KEY", "demo")
    code, _, err = _run(capsys, "companies", "--base-url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert err.startswith("codat-exporter: error: cannot reach Codat: could not connect")


@pytest.mark.parametrize(
    "argv", [("history",), ("history", "c1", "--page-size", "0"), ("history", "c1", "--page-size", "5001")]
)
def test_bad_arguments_exit_2(capsys: Capture, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    assert caught.value.code == 2


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, to see the progress line an operator would see."""

    def isatty(self) -> bool:
        return True


def test_progress_is_written_per_page_only_to_a_terminal() -> None:
    page = Page(results=(1, 2, 3), page_number=2, page_size=3, total_results=9)
    terminal = _Terminal()
    output = Output(json=False, out=io.StringIO(), err=terminal)
    on_page = progress_printer(output, "companies")
    assert on_page is not None
    on_page(page)
    on_page(page)
    output.end_progress()
    output.end_progress()
    assert terminal.getvalue() == "\rcompanies: page 2, 3 of 9\rcompanies: page 2, 6 of 9\n"
    assert progress_printer(Output(json=False, out=io.StringIO(), err=io.StringIO()), "companies") is None


# --- settings come from the same config loading as `run` ------------------------------------------


def test_codat_settings_come_from_the_config_file_like_run(
    simulator: RunningSimulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("CODAT_API_KEY", "CODAT_API_KEY_FILE", "CODAT_BASE_URL", "CODAT_EXPORTER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"codat:\n  base_url: {simulator.url}\n  api_key: {simulator.api_key}\n")
    code, out, _ = _run(capsys, "companies", "--config", str(config))
    assert code == 0
    assert "Acme Trading Ltd" in out
    monkeypatch.setenv("CODAT_EXPORTER_CONFIG", str(config))
    code, out, _ = _run(capsys, "companies")
    assert (code, "Acme Trading Ltd" in out) == (0, True)


def test_an_invalid_config_file_is_a_usage_error_naming_the_field(
    capsys: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODAT_API_KEY", "demo")
    config = tmp_path / "config.yaml"
    config.write_text("polling: {intervl: 5}\n")
    code, _, err = _run(capsys, "companies", "--config", str(config))
    assert code == 2
    assert err == "codat-exporter: error: polling.intervl: unknown key (did you mean interval?)\n"


def test_no_api_key_anywhere_is_a_usage_error(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CODAT_API_KEY", "CODAT_API_KEY_FILE", "CODAT_EXPORTER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run(capsys, "companies")
    assert code == 2
    assert "no Codat API key: set CODAT_API_KEY, or CODAT_API_KEY_FILE" in err
