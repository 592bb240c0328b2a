"""How a simulated company comes to be: its connections, the history it had before the
simulation started, and each sync's drawn timeline and outcome.

Everything is drawn from random streams seeded per company, so the same scenario gives the
same account every time and seeded history can be regenerated instead of stored.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import datetime, timedelta

from exporter.simulator.records import (
    CONNECTION_ERRORS,
    ERROR_MESSAGES,
    FAILS_AFTER,
    INTEGRATION_KEYS,
    MAX_CONNECTION_ERRORS,
    NAMESPACE,
    CompanyState,
    ConnectionErrorState,
    ConnectionState,
    DataTypeState,
    Operation,
    bump_last_sync,
    integration_key_for,
    new_uuid,
    type_matches,
)
from exporter.simulator.scenario import ConnectionSpec, SyncSettings


def make_connection(
    spec: ConnectionSpec, company_id: str, created: datetime, rng: random.Random
) -> ConnectionState:
    """A connection built from its scenario spec, with ids derived from the platform name."""
    key = spec.integration_key or INTEGRATION_KEYS.get(spec.platform) or integration_key_for(spec.platform)
    return ConnectionState(
        id=spec.id or new_uuid(rng),
        integration_id=str(uuid.uuid5(NAMESPACE, spec.platform)),
        integration_key=key,
        source_id=str(uuid.uuid5(NAMESPACE, spec.platform + ":source")),
        source_type=spec.source_type,
        platform_name=spec.platform,
        status=spec.status,
        created=created + timedelta(minutes=5),
        info=dict(spec.connection_info) if spec.connection_info is not None else None,
    )


def seed_history(company: CompanyState, sync: SyncSettings) -> tuple[list[Operation], list[Operation]]:
    """Operations that finished before the simulation began, and those running at its start.

    Deterministic from the company's seed, so it can be regenerated instead of stored.
    """
    profile = company.profile
    rng = random.Random(company.seed_key * 7 + 1)
    now = company.seeded_at
    finished: list[Operation] = []
    running: list[Operation] = []
    for data_type, state in company.types.items():
        if not state.connection_id or type_matches(profile.never_synced, data_type):
            continue
        interval = 3600 * (profile.history_interval_hours or state.schedule_hours or 24)
        if profile.last_success_hours_ago is not None:
            last_success_age = 3600 * profile.last_success_hours_ago + rng.uniform(0, 600)
        else:
            last_success_age = rng.uniform(0.05, 0.95) * interval
        ops_for_type: list[Operation] = []
        failing_now = profile.latest_status not in (None, "Complete")
        for k in range(profile.history if state.supported else min(profile.history, 1)):
            if not state.supported:
                status = "NotSupported"
            elif k == 0 and profile.latest_status is not None:
                status = profile.latest_status
            elif profile.last_success_hours_ago is not None and k == (1 if failing_now else 0):
                status = "Complete"
            else:
                # Older history predates any loss of authorization.
                status = draw_outcome(company, state, rng, linked=True)
            if k == 0 and failing_now and state.supported:
                # The failure came after the last success.
                age = min(last_success_age / 2, rng.uniform(0.05, 0.5) * interval)
            else:
                steps = k - 1 if failing_now and state.supported else k
                age = last_success_age + steps * interval * rng.uniform(0.97, 1.03)
            ops_for_type.append(past_op(sync, company, state, now - timedelta(seconds=age), status, rng))
        ops_for_type.reverse()
        ops_for_type = [op for op in ops_for_type if op.requested > company.created]
        finished.extend(ops_for_type)
        if state.supported and type_matches(profile.stuck, data_type):
            op = make_op(sync, company, state, now, None, rng, False)
            op.requested = now - timedelta(hours=profile.stuck_since_hours)
            running.append(op)
        elif state.supported and rng.random() < profile.in_progress_probability:
            op = make_op(sync, company, state, now, None, rng, False)
            op.requested = now - timedelta(seconds=rng.uniform(0, min(op.duration, 30)))
            running.append(op)
    finished.sort(key=lambda op: op.requested)
    return finished, running


def apply_seed(company: CompanyState, ops: list[Operation], now: datetime) -> None:
    """Make the company show its seeded history: latest statuses, last syncs, connection errors."""
    latest_per_connection: dict[str, datetime] = {}
    for op in ops:
        state = company.types[op.data_type]
        done = op.completed_at()
        assert done is not None
        state.latest_sync_id = op.id
        state.latest_status = op.final_status
        state.last_completed = done
        if op.final_status == "Complete":
            state.last_success = done
            state.latest_success_id = op.id
        latest_per_connection[op.connection_id] = max(done, latest_per_connection.get(op.connection_id, done))
        # A company failing at the start already shows the platform error on its connection.
        record_connection_errors(company, op, done)
    for connection_id, done in latest_per_connection.items():
        bump_last_sync(company, connection_id, done)


def draw_outcome(
    company: CompanyState,
    state: DataTypeState,
    rng: random.Random,
    connection_id: str | None = None,
    *,
    linked: bool = False,
) -> str:
    """The final status of a new sync: forced, AuthError off a link, NotSupported, or drawn."""
    if state.forced_outcome is not None:
        return state.forced_outcome
    if not linked:
        conn = company.connection(connection_id or state.connection_id)
        if conn is None or conn.status != "Linked":
            return "AuthError"
    if not state.supported:
        return "NotSupported"
    roll = rng.random()
    for status, rate in company.profile.error_rates.items():
        if roll < rate:
            return status
        roll -= rate
    return "Complete"


def past_op(
    sync: SyncSettings,
    company: CompanyState,
    state: DataTypeState,
    end: datetime,
    status: str,
    rng: random.Random,
) -> Operation:
    """A finished operation ending at ``end``; its stages no longer matter, only its length."""
    mean_duration = sum(stage.seconds for stage in sync.stages)
    duration = mean_duration * rng.uniform(1 - sync.jitter, 1 + sync.jitter)
    return Operation(
        id=new_uuid(rng),
        company_id=company.id,
        connection_id=state.connection_id,
        data_type=state.data_type,
        requested=end - timedelta(seconds=duration),
        stages=(),
        final_status=status,
        duration=duration,
        error_message=ERROR_MESSAGES.get(status),
    )


def make_op(
    sync: SyncSettings,
    company: CompanyState,
    state: DataTypeState,
    end_or_start: datetime,
    outcome: str | None,
    rng: random.Random,
    ends_at: bool,
    connection_id: str | None = None,
) -> Operation:
    """An operation with a drawn timeline; ``ends_at`` says whether the time given is its end."""
    if outcome is None and type_matches(company.profile.stuck, state.data_type):
        # Held open for good: Codat waits for the connector that never answers.
        return Operation(
            id=new_uuid(rng),
            company_id=company.id,
            connection_id=connection_id or state.connection_id,
            data_type=state.data_type,
            requested=end_or_start,
            stages=((0.0, "Queued"), (sync.stages[0].seconds, company.profile.stuck_status)),
            final_status="Complete",
            duration=math.inf,
        )
    final = outcome or draw_outcome(company, state, rng, connection_id)
    jitter = sync.jitter
    stop_after = FAILS_AFTER.get(final)
    stages: list[tuple[float, str]] = []
    offset = 0.0
    for stage in sync.stages:
        status, mean = stage.status, stage.seconds
        stages.append((offset, status))
        offset += mean * rng.uniform(1 - jitter, 1 + jitter)
        if status == stop_after or (final == "InternalError" and rng.random() < 0.3):
            break
    op_id = new_uuid(rng)
    requested = end_or_start - timedelta(seconds=offset) if ends_at else end_or_start
    return Operation(
        id=op_id,
        company_id=company.id,
        connection_id=connection_id or state.connection_id,
        data_type=state.data_type,
        requested=requested,
        stages=tuple(stages),
        final_status=final,
        duration=offset,
        error_message=ERROR_MESSAGES.get(final),
    )


def record_connection_errors(company: CompanyState, op: Operation, at: datetime) -> None:
    """Raise an Active dataConnectionError on failures that come from the platform; a
    successful sync on the connection resolves them."""
    conn = company.connection(op.connection_id)
    if conn is None:
        return
    if op.final_status == "Complete":
        for error in conn.errors:
            if error.status == "Active":
                error.status = "Resolved"
                error.resolved_on = at
    elif op.final_status in company.profile.connection_errors_on and conn.active_errors() == 0:
        code, text = CONNECTION_ERRORS.get(op.final_status, ("500", "Internal Server Error"))
        message = ERROR_MESSAGES.get(op.final_status, "The source platform returned an error.")
        conn.errors.append(ConnectionErrorState(code, text, message, at))
        del conn.errors[:-MAX_CONNECTION_ERRORS]
