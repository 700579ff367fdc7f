"""The detections job (operations.detections.run_due_detections): one tick runs the due windows of
every enabled rule on real stores, loads the rules once and again only when a rule file or a
switch changed, and a rule that fails is shown and retried without holding the others back."""

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from kandji_bridge.db import StateDB
from kandji_bridge.db.models import DetectionWindow
from kandji_bridge.detections.results import DETECTIONS_TABLE, ensure_detections_table
from kandji_bridge.detections.windows import Window, last_window_end, record_window
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import detections as ops

from .test_results import WINDOW_FROM, WINDOW_TO, ingest, token_created

WINDOW = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
QUARTER = timedelta(minutes=15)


class PlanCountingStore:
    """The real store, counting the query plans asked of it (each rule's validation is one)."""

    def __init__(self, store: ChdbLogStore) -> None:
        self.store = store
        self.plans = 0

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def query(self, sql: str, **kwargs):
        if sql.startswith("EXPLAIN PLAN"):
            self.plans += 1
        return self.store.query(sql, **kwargs)


@pytest.fixture
def clean_store(store: ChdbLogStore) -> PlanCountingStore:
    ensure_detections_table(store)
    for table in (LOGS_TABLE, DETECTIONS_TABLE):
        store.query(f"TRUNCATE TABLE {table}", read_only=False)
    return PlanCountingStore(store)


def write_rule(state: StateDB, name: str, where: str) -> Path:
    folder = ops.rules_folder(state.settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndisplayName: {name}\ndescription: A test rule.\n"
        "severity: High\nschedule: '@15m'\n"
    )
    sql = folder / f"{name}.sql"
    sql.write_text(f"SELECT * FROM kandji_logs WHERE {WINDOW} AND {where}")  # noqa: S608
    return sql


def enable_from(state: StateDB, store, name: str) -> None:
    """Enable `name` with its windows reached up to WINDOW_FROM."""
    ops.set_enabled(state, store, name, True)
    assert record_window(state, name, Window(WINDOW_FROM - QUARTER, WINDOW_FROM))


def rewind(state: StateDB, name: str, to: datetime) -> None:
    with state.session() as session:
        session.get(DetectionWindow, name).last_window_to = to


def matched(store: ChdbLogStore, name: str) -> list[tuple]:
    return store.query(
        "SELECT windowFrom, recordsReturned FROM detections FINAL "
        "WHERE detectionName = {name:String} ORDER BY windowFrom",
        params={"name": name},
    ).rows


def test_one_tick_runs_every_enabled_rule_and_loads_the_rules_only_when_they_change(
    state: StateDB, clean_store: PlanCountingStore
) -> None:
    ingest(
        clean_store.store,
        [
            token_created("01JDETJOB00000000000000AAA", WINDOW_FROM),
            token_created("01JDETJOB00000000000000BBB", WINDOW_FROM),
        ],
        WINDOW_FROM + timedelta(minutes=3),
    )
    ingest(
        clean_store.store,
        [token_created("01JDETJOB00000000000000CCC", WINDOW_TO)],
        WINDOW_TO + timedelta(minutes=3),
    )
    token_rule = write_rule(state, "job-token-a", "targetId = 'token-0AAA'")
    write_rule(state, "job-token-b", "targetId = 'token-0BBB'")
    for name in ("job-token-a", "job-token-b"):
        enable_from(state, clean_store.store, name)
    loaded = ops.LoadedRules()

    clean_store.plans = 0
    first = ops.run_due_detections(
        state.settings, state, clean_store, WINDOW_TO + timedelta(seconds=20), loaded
    )
    assert first.errors == {}
    assert {name: [w.start for w in ws] for name, ws in first.ran.items()} == {
        "job-token-a": [WINDOW_FROM],
        "job-token-b": [WINDOW_FROM],
    }
    assert clean_store.plans == 2, "each rule is validated once when the job loads it"
    for name in ("job-token-a", "job-token-b"):
        status = jobs.job_status(state, jobs.detection_job(name))
        assert status is not None and status.last_success_at and status.last_error is None

    clean_store.plans = 0
    ops.run_due_detections(
        state.settings, state, clean_store, WINDOW_TO + QUARTER + timedelta(seconds=20), loaded
    )
    assert clean_store.plans == 0, "nothing changed: no rule is validated again"
    assert last_window_end(state, "job-token-a") == WINDOW_TO + QUARTER

    # A rule file edited while the service runs: the next tick loads it again and runs it.
    token_rule.write_text(
        f"SELECT * FROM kandji_logs WHERE {WINDOW} AND targetId IN ('token-0AAA', 'token-0CCC')"  # noqa: S608
    )
    # Windows already run stay as they were; rewind rule a to see the edit on a window of events.
    rewind(state, "job-token-a", WINDOW_TO)
    clean_store.plans = 0
    third = ops.run_due_detections(
        state.settings, state, clean_store, WINDOW_TO + QUARTER + timedelta(seconds=30), loaded
    )
    assert clean_store.plans == 2, "a rule file changed: the rules are loaded again"
    assert [w.start for w in third.ran["job-token-a"]] == [WINDOW_TO]
    assert matched(clean_store.store, "job-token-a")[-1][1] == 1  # token-0CCC, in [09:15, 09:30)

    # Disabling a rule is a switch that changed: it no longer runs.
    ops.set_enabled(state, clean_store.store, "job-token-b", False)
    fourth = ops.run_due_detections(
        state.settings, state, clean_store, WINDOW_TO + 2 * QUARTER + timedelta(seconds=20), loaded
    )
    assert list(fourth.ran) == ["job-token-a"]


def test_a_failing_rule_is_shown_and_retried_from_its_window_without_holding_others_back(
    state: StateDB, clean_store: PlanCountingStore
) -> None:
    ingest(
        clean_store.store,
        [token_created("01JDETJOB00000000000000DDD", WINDOW_FROM)],
        WINDOW_FROM + timedelta(minutes=3),
    )
    failing = write_rule(state, "job-fails", "throwIf(targetId = 'token-0DDD', 'boom') = 0")
    write_rule(state, "job-works", "targetId = 'token-0DDD'")
    # A third rule whose file is broken after it was enabled does not load: shown, others run.
    broken = write_rule(state, "job-broken", "targetId = 'nothing'")
    for name in ("job-fails", "job-works", "job-broken"):
        enable_from(state, clean_store.store, name)
    broken.with_suffix(".yaml").write_text("name: job-broken\nseverity: [\n")
    loaded = ops.LoadedRules()
    later = WINDOW_TO + QUARTER + timedelta(seconds=20)  # two windows due for each rule

    run = ops.run_due_detections(state.settings, state, clean_store, later, loaded)

    assert [w.start for w in run.ran["job-works"]] == [WINDOW_FROM, WINDOW_TO]
    assert "job-fails" not in run.ran
    assert "Detection job-fails failed to run" in run.errors["job-fails"]
    assert "not valid YAML" in run.errors["job-broken"]
    shown = jobs.job_status(state, jobs.detection_job("job-fails"))
    assert shown is not None and "boom" in (shown.last_error or "")
    assert shown.last_started_at is not None
    assert jobs.job_status(state, jobs.detection_job("job-broken")).last_error
    assert jobs.job_status(state, jobs.detection_job("job-works")).last_error is None
    assert last_window_end(state, "job-fails") == WINDOW_FROM, "its failed window waits"

    # Fixed: it is not run again at once (a failing rule waits RULE_RETRY, not a tick)...
    failing.write_text(f"SELECT * FROM kandji_logs WHERE {WINDOW} AND targetId = 'token-0DDD'")  # noqa: S608
    waited = ops.run_due_detections(state.settings, state, clean_store, later, loaded)
    assert "job-fails" not in waited.ran and "job-fails" not in waited.errors
    # ... and once that has passed, it runs from the window that failed and its error clears.
    again = ops.run_due_detections(
        state.settings, state, clean_store, later, loaded, retry=timedelta(0)
    )
    assert [w.start for w in again.ran["job-fails"]] == [WINDOW_FROM, WINDOW_TO]
    assert "job-works" not in again.ran  # nothing new is due for it
    assert jobs.job_status(state, jobs.detection_job("job-fails")).last_error is None
    assert matched(clean_store.store, "job-fails")[0][1] == 1


def test_a_restarted_job_goes_on_from_where_each_rule_reached(
    state: StateDB, clean_store: PlanCountingStore
) -> None:
    """A new process (a new LoadedRules) after a kill: the windows tile, none run twice."""
    write_rule(state, "job-restart", "targetId = 'token-none'")
    enable_from(state, clean_store.store, "job-restart")
    ran = []
    for minutes, loaded in ((20, ops.LoadedRules()), (50, ops.LoadedRules())):
        now = WINDOW_FROM + timedelta(minutes=minutes)
        tick = ops.run_due_detections(state.settings, state, clean_store, now, loaded)
        ran.extend(tick.ran.get("job-restart", []))
    starts = [w.start for w in ran]
    assert starts == [WINDOW_FROM + n * QUARTER for n in range(3)]
    assert all(a.end == b.start for a, b in pairwise(ran))
