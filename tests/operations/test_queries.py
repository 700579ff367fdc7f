"""Run a query (operations.queries.run_query), as `logs query`, the SQL page and the API run it:
against a real chDB store holding a few audit events."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.sql_guard import QueryRefused
from kandji_bridge.logs.store import LogStore, open_log_store
from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled, QueryLimits
from kandji_bridge.operations.queries import QueryAnswer, run_query

NOW = datetime.now(UTC).replace(microsecond=0)


def audit_event(number: int) -> tuple[dict, str]:
    data = {
        "id": f"01JOPS{number:020d}",
        "action": "delete" if number % 2 else "update",
        "occurred_at": (NOW - timedelta(minutes=number)).isoformat(),
        "actor_id": "a1",
        "actor_type": "user",
        "target_id": f"bp-{number}",
        "target_type": "blueprint",
        "target_component": "",
        "new_state": {"name": f"Blueprint {number}"},
        "metadata": {},
    }
    return data, json.dumps(data)


@pytest.fixture
def store(log_store_url: str) -> Iterator[LogStore]:
    with open_log_store(log_store_url, QueryLimits(per_user=1, total=2)) as opened:
        opened.ensure_schema()
        ctx = NormalizeContext("ws-ops", "src-ops", 36500, received_at=NOW)
        opened.insert([normalize(data, raw, ctx) for data, raw in map(audit_event, range(1, 8))])
        yield opened


def test_a_query_answers_columns_types_and_rows(store: LogStore) -> None:
    answer = run_query(
        store, "SELECT action, count() AS events FROM kandji_logs GROUP BY action ORDER BY action"
    )
    assert answer == QueryAnswer(
        columns=["action", "events"],
        types=["String", "UInt64"],
        rows=[["delete", 4], ["update", 3]],
        truncated=False,
    )
    assert answer.records() == [
        {"action": "delete", "events": 4},
        {"action": "update", "events": 3},
    ]


def test_a_limit_cuts_the_rows_and_says_so(store: LogStore) -> None:
    sql = "SELECT targetId FROM kandji_logs ORDER BY targetId"
    cut = run_query(store, sql, limit=5)
    assert len(cut.rows) == 5 and cut.truncated
    whole = run_query(store, sql)
    assert len(whole.rows) == 7 and not whole.truncated


def test_a_statement_that_writes_is_refused_in_one_sentence_and_nothing_changes(
    store: LogStore,
) -> None:
    with pytest.raises(QueryRefused) as refused:
        run_query(store, "/* read */ TRUNCATE TABLE kandji_logs", user="ana")
    assert str(refused.value) == (
        "TRUNCATE statements cannot run here: queries here only read (SELECT, WITH, SHOW, "
        "DESCRIBE, EXPLAIN, EXISTS)."
    )
    assert store.count() == 7


def test_the_caps_count_queries_per_user(store: LogStore) -> None:
    with store.user_session("ana"):  # one query of ana's running: her cap here
        with pytest.raises(QueryBusy, match=r"^You have 1 queries running"):
            run_query(store, "SELECT 1", user="ana")
        assert run_query(store, "SELECT 1", user="bo").rows == [[1]]
    assert run_query(store, "SELECT 1", user="ana").rows == [[1]], "her place came back"
    store.cancel_user_queries()
    with pytest.raises(QueryCancelled):
        run_query(store, "SELECT 1", user="ana")
