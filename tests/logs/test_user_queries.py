"""User SQL runs apart from the collector's store calls, within its memory limit and its caps,
and stops when the store is told to cancel it."""

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.sql_guard import QueryRefused
from kandji_bridge.logs.store import LogStore, open_log_store
from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled, QueryLimits
from kandji_bridge.operations.queries import run_query

from .conftest import Event

# Runs until its time limit (here: until cancelled); numbers_mt is a table function users may use.
HEAVY = "SELECT count() FROM numbers_mt(10000000000000) WHERE sipHash64(number) % 7 = 1"


class Running:
    """A user query in a thread; what it returned or raised."""

    def __init__(self, store: LogStore, user: str, sql: str = HEAVY) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(store, user, sql), daemon=True)
        self.thread.start()

    def _run(self, store: LogStore, user: str, sql: str) -> None:
        try:
            run_query(store, sql, user=user)
        except BaseException as exc:
            self.error = exc


def running_user_queries(store: LogStore) -> int:
    """How many user queries the engine runs now (past the guard's checks: the statement
    itself, in its row-limit wrapper), seen from the collector's session."""
    result = store.query(
        "SELECT count() FROM system.processes "
        "WHERE startsWith(Settings['log_comment'], 'kandji-bridge user query ') "
        "AND startsWith(query, 'SELECT * FROM (SELECT count() FROM numbers_mt')"
    )
    return int(result.rows[0][0])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """The timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.fixture
def limited(log_store_url: str) -> Iterator[LogStore]:
    store = open_log_store(log_store_url, QueryLimits(seconds=600, per_user=2, total=3))
    store.ensure_schema()
    yield store
    store.close()


def test_heavy_user_queries_leave_the_collector_alone_and_the_caps_answer_at_once(
    limited: LogStore, postman_events: list[Event], ctx: NormalizeContext
) -> None:
    heavy = [Running(limited, "alice"), Running(limited, "alice")]
    wait_for(lambda: running_user_queries(limited) == 2, "two heavy queries running")
    # What the collector does while they run: insert a page, read its checkpoint.
    rows = [normalize(event.data, event.raw, ctx) for event in postman_events]
    assert limited.insert(rows) == len(rows)
    assert limited.count() == len(rows)
    assert limited.latest_checkpoint(rows[0]["sourceID"]) is not None
    with pytest.raises(QueryBusy) as busy:
        run_query(limited, "SELECT 1", user="alice")
    assert str(busy.value).startswith("You have 2 queries running, the most one user may run")
    heavy.append(Running(limited, "bob"))
    wait_for(lambda: running_user_queries(limited) == 3, "bob's query running too")
    with pytest.raises(QueryBusy) as busy:
        run_query(limited, "SELECT 1", user="carol")
    assert str(busy.value).startswith("3 queries are running, the most this service runs at once")
    assert all(query.thread.is_alive() for query in heavy), "the heavy queries still run"
    limited.cancel_user_queries()
    for query in heavy:
        query.thread.join(timeout=30)
        assert not query.thread.is_alive(), "a cancelled query kept running"
        assert isinstance(query.error, QueryCancelled)
        assert str(query.error).startswith("The service is stopping and stopped the query")
    with pytest.raises(QueryCancelled):
        run_query(limited, "SELECT 1", user="dave")
    assert limited.count() == len(rows), "the collector's session still works"


def test_a_query_is_held_to_its_memory_limit(log_store_url: str) -> None:
    with open_log_store(log_store_url, QueryLimits(memory_mb=64)) as store:
        store.ensure_schema()
        with pytest.raises(QueryRefused) as refused:
            run_query(store, "SELECT groupArray(number) FROM numbers(100000000)")
        assert str(refused.value) == (
            "The query needed more than 64 MB of memory, the most a query may use, and was "
            "stopped; narrow it with WHERE on eventTime, or aggregate, or select fewer columns."
        )
        assert run_query(store, "SELECT count() FROM numbers(1000)").rows == [[1000]]
