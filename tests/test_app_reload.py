"""The pieces of a live reload and of start-up visibility: kept settings, data types known early, progress."""

from __future__ import annotations

from exporter.app import DataTypeLearner, configured_data_types
from exporter.codat.models import Company, DataTypeStatus
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.config import Config
from exporter.config.reload import plan_reload
from exporter.exposition import Telemetry
from exporter.http.landing import LandingData, render_landing, sweep_progress

REFRESH = "codat_refresh_requests_total"


def test_a_setting_that_needs_a_restart_keeps_its_running_value_and_is_named_again() -> None:
    running = Config.model_validate(
        {"server": {"listen_address": "127.0.0.1:9000"}, "polling": {"interval": 60}}
    )
    wanted = Config.model_validate(
        {"server": {"listen_address": "127.0.0.1:9100"}, "polling": {"interval": 30}}
    )
    result = plan_reload(running, lambda: wanted)
    assert result.ok
    assert result.needs_restart == ("server.listen_address",)
    assert result.config.server.listen_address == "127.0.0.1:9000"  # still what the process serves on
    assert result.config.polling.interval == 30  # applied live
    again = plan_reload(result.config, lambda: wanted)
    assert again.changed == ("server.listen_address",)


def test_whole_sections_that_need_a_restart_are_kept_whole() -> None:
    running = Config.model_validate({"sharding": {"shard": 0, "total_shards": 2}})
    wanted = Config.model_validate(
        {"sharding": {"shard": 1, "total_shards": 2}, "data_types": {"exclude": ["bills"]}}
    )
    result = plan_reload(running, lambda: wanted)
    assert result.needs_restart == ("sharding.shard",)
    assert (result.config.sharding.shard, result.config.data_types.exclude) == (0, ["bills"])


def test_configured_data_types_are_the_literal_names_not_globs_nor_excluded() -> None:
    config = Config.model_validate(
        {
            "data_types": {"include": ["invoices", "bill*", "customers"], "exclude": ["customers"]},
            "auto_refresh": {"enabled": True, "rules": [{"data_types": ["suppliers", "*"]}]},
        }
    )
    assert configured_data_types(config) == {"invoices", "suppliers"}


def _company(cid: str, *types: str) -> CompanySnapshot:
    return CompanySnapshot(
        Company(id=cid, name=cid),
        statuses={t: DataTypeStatus(data_type=t, current_status="Complete") for t in types},
        up=True,
    )


def test_refresh_counters_exist_at_zero_for_every_data_type_a_snapshot_shows() -> None:
    telemetry = Telemetry(process_metrics=False)
    learner = DataTypeLearner(telemetry, known={"invoices"})
    value = telemetry.registry.get_sample_value
    assert value(REFRESH, {"data_type": "bills", "result": "error"}) is None
    first = _company("a", "bills", "invoices")
    learner.on_snapshot(Snapshot({"a": first}))
    assert value(REFRESH, {"data_type": "bills", "result": "error"}) == 0
    telemetry.count_refresh("bills", "error")
    learner.on_snapshot(Snapshot({"a": first, "b": _company("b", "bills", "payments")}))
    assert value(REFRESH, {"data_type": "bills", "result": "error"}) == 1  # not reset
    assert value(REFRESH, {"data_type": "payments", "result": "queued"}) == 0


def test_the_reload_gauges_tell_success_and_keep_the_last_success_time() -> None:
    telemetry = Telemetry(process_metrics=False)
    value = telemetry.registry.get_sample_value
    telemetry.set_config_reload(True, 100.0)
    telemetry.set_config_reload(False, 200.0)
    assert value("codat_exporter_config_last_reload_successful") == 0
    assert value("codat_exporter_config_last_reload_success_timestamp_seconds") == 100.0


def test_the_landing_page_shows_the_first_sweeps_progress_before_ready() -> None:
    empty = Snapshot()
    assert sweep_progress(LandingData(empty)) == "listing companies"
    halfway = LandingData(empty, companies_listed=2000, companies_polled=500)
    assert sweep_progress(halfway) == "500 of 2,000 (25%)"
    assert (
        sweep_progress(LandingData(empty, ready=True, companies_listed=2000, companies_polled=2000)) == "done"
    )
    page = render_landing(halfway, 0.0)
    assert 'id="progress"' in page
    assert "500 of 2,000 (25%)" in page
