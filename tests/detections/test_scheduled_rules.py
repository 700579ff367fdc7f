"""An enabled rule's tick (operations.detections.run_due_windows) on real stores: how far its
windows may go while sources are polled, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import JobStatus
from kandji_bridge.detections.windows import last_window_end
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import detections as ops

RULE = "kandji-api-token-created"


def set_status(state: StateDB, job: str, **values: object) -> None:
    with state.session() as session:
        session.merge(JobStatus(job=job, runs=1, failures=0, **values))


def test_a_source_that_cannot_poll_holds_no_rule_back(state: StateDB, store: ChdbLogStore) -> None:
    broken = sources.add_source(state, "no-audit", "https://acme.api.kandji.io", "token-1")
    now = datetime.now(UTC).replace(microsecond=0)
    # Its passes fail (a token without "List audit events"): it never stored anything.
    set_status(
        state,
        jobs.source_job(broken.id),
        last_started_at=now - timedelta(minutes=1),
        last_finished_at=now - timedelta(seconds=55),
        last_error="The API token lacks the List audit events permission.",
    )
    ops.set_enabled(state, store, RULE, True)
    ran = ops.run_due_windows(state.settings, state, store, RULE, now)
    assert ran, "the rule ran its window"
    assert last_window_end(state, RULE) == ran[-1].end


def test_a_running_pass_holds_windows_back_to_its_start(
    state: StateDB, store: ChdbLogStore
) -> None:
    polled = sources.add_source(state, "acme", "https://acme.api.kandji.io", "token-1")
    now = datetime(2026, 12, 6, 10, 7, 30, tzinfo=UTC)
    set_status(state, jobs.source_job(polled.id), last_started_at=now - timedelta(minutes=20))
    ops.set_enabled(state, store, RULE, True)
    ran = ops.run_due_windows(state.settings, state, store, RULE, now)
    # */15: the pass that started at 09:47:30 may still store rows received after 09:45.
    assert ran and ran[-1].end == datetime(2026, 12, 6, 9, 45, tzinfo=UTC)

    finished = now + timedelta(minutes=1)
    set_status(
        state,
        jobs.source_job(polled.id),
        last_started_at=now - timedelta(minutes=20),
        last_finished_at=finished,
        last_success_at=finished,
    )
    ran = ops.run_due_windows(state.settings, state, store, RULE, finished)
    assert [w.start for w in ran] == [datetime(2026, 12, 6, 9, 45, tzinfo=UTC)]
    assert ran[-1].end == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_a_disabled_rule_runs_nothing(state: StateDB, store: ChdbLogStore) -> None:
    now = datetime.now(UTC)
    assert ops.run_due_windows(state.settings, state, store, RULE, now) == []
    assert last_window_end(state, RULE) is None
