"""The explorer's queries and the SQL guard on a chDB store holding Kandji's example events."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.errors import NotFound
from kandji_bridge.logs import sql_guard
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.schema import COLUMN_NAMES
from kandji_bridge.logs.search import (
    SearchError,
    SearchQuery,
    bucket_seconds,
    contains_pattern,
    facets,
    get_event,
    histogram,
    search,
)
from kandji_bridge.logs.sql_guard import QueryRefused
from kandji_bridge.logs.store import open_log_store
from kandji_bridge.logs.user_queries import QueryLimits
from kandji_bridge.operations.queries import run_query

from .conftest import Event

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(log_store_url: str, postman_events: list[Event], ctx: NormalizeContext):
    """Kandji's example events, in the embedded store and on a ClickHouse server."""
    with open_log_store(log_store_url) as opened:
        opened.ensure_schema()
        opened.insert([normalize(event.data, event.raw, ctx) for event in postman_events])
        yield opened


def everything(**filters: str) -> SearchQuery:
    return SearchQuery(start=START, end=END, **filters)


def test_search_returns_every_event_newest_first(store, postman_events) -> None:
    page = search(store, everything())
    assert len(page.rows) == len(postman_events) == 10
    times = [row.event_time for row in page.rows]
    assert times == sorted(times, reverse=True)
    assert not page.has_more and page.next_cursor is None
    assert {row.event_name for row in page.rows} >= {"blueprint.update"}


def test_text_search_is_a_case_insensitive_substring_of_raw_log(store, postman_events) -> None:
    some = postman_events[0].data
    word = some["target_type"].upper()
    found = search(store, everything(text=word)).rows
    expected = [e for e in postman_events if word.lower() in e.raw.lower()]
    assert len(found) == len(expected) > 0
    assert search(store, everything(text="no such text anywhere")).rows == []
    # LIKE wildcards are taken literally
    assert search(store, everything(text="%")).rows == []
    assert contains_pattern("a_b%c\\") == "%a\\_b\\%c\\\\%"


@pytest.mark.parametrize("field", ["event_name", "action", "actor_type", "target_type"])
def test_each_filter_narrows_to_exactly_its_value(store, field: str) -> None:
    column = {"event_name": "eventName", "action": "action"}.get(field, field)
    values = facets(store, everything())[field]
    assert values
    for value in values:
        rows = search(store, everything(**{field: value})).rows
        assert rows
        attribute = {"actor_type": "actor_type", "target_type": "target_type"}.get(field, field)
        assert all(getattr(row, attribute) == value for row in rows), column


def test_source_and_target_filters(store, postman_events) -> None:
    target = postman_events[0].data["target_id"]
    rows = search(store, everything(target_id=target)).rows
    assert rows and all(row.target_id == target for row in rows)
    assert search(store, everything(source_id="another-source")).rows == []


def test_paging_by_offset_and_by_cursor_give_the_same_rows(store) -> None:
    all_ids = [row.id for row in search(store, everything()).rows]
    first = search(store, everything(), limit=4)
    assert first.has_more and len(first.rows) == 4
    by_offset = search(store, everything(), limit=4, offset=4)
    by_cursor = search(store, everything(), limit=4, cursor=first.next_cursor)
    assert [r.id for r in by_offset.rows] == [r.id for r in by_cursor.rows] == all_ids[4:8]
    with pytest.raises(SearchError, match="cursor"):
        search(store, everything(), cursor="nonsense")


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(SearchError, match="ends before it starts"):
        SearchQuery(start=END, end=START)


def test_histogram_counts_every_event_in_buckets_that_fit_the_range(store) -> None:
    first = min(row.event_time for row in search(store, everything()).rows)
    query = SearchQuery(start=first - timedelta(days=1), end=first + timedelta(days=29))
    buckets = histogram(store, query)
    assert 55 <= len(buckets) <= 61
    assert sum(count for _, count in buckets) == len(search(store, query).rows)
    sizes = {(b - a).total_seconds() for (a, _), (b, _) in itertools.pairwise(buckets)}
    assert sizes == {12 * 3600}
    assert bucket_seconds(START, START + timedelta(hours=1)) == 60
    assert bucket_seconds(START, START + timedelta(days=7)) == 3 * 3600
    narrowed = histogram(store, SearchQuery(start=query.start, end=query.end, text="zzz-none"))
    assert sum(count for _, count in narrowed) == 0


def test_facets_list_the_distinct_values_within_the_range(store, postman_events) -> None:
    found = facets(store, everything())
    assert found["action"] == sorted({e.data["action"] for e in postman_events})
    assert found["target_type"] == sorted({e.data["target_type"] for e in postman_events})
    assert all(found[name] == sorted(set(found[name])) for name in found)
    later = SearchQuery(start=datetime(2030, 1, 1, tzinfo=UTC), end=datetime(2031, 1, 1))
    assert facets(store, later) == {name: [] for name in found}


def test_get_event_returns_every_column(store, postman_events) -> None:
    row_id = search(store, everything()).rows[0].id
    event = get_event(store, row_id)
    assert list(event) == list(COLUMN_NAMES)
    assert event["id"] == row_id
    assert event["rawLog"] in {e.raw for e in postman_events}
    assert isinstance(event["actor"], dict) and isinstance(event["resources"], list)
    with pytest.raises(NotFound):
        get_event(store, "no-such-id")


WRITES = [
    "INSERT INTO kandji_logs (id) VALUES ('x')",
    "insert into function file('out.csv') select 1",
    "ALTER TABLE kandji_logs DELETE WHERE 1",
    "DROP TABLE kandji_logs",
    "  drop /* quiet */ TABLE\n kandji_logs",
    "-- a comment first\nDrop Table kandji_logs",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "TRUNCATE TABLE kandji_logs",
    "DELETE FROM kandji_logs WHERE 1",
    "OPTIMIZE TABLE kandji_logs FINAL",
    "SYSTEM DROP MARK CACHE",
    "KILL QUERY WHERE 1",
    "GRANT SELECT ON kandji_logs TO someone",
    "SET max_threads = 1",
    "SELECT 1; DROP TABLE kandji_logs",
    "SELECT 1 # comment '\n; DROP TABLE kandji_logs",
    "SELECT * FROM kandji_logs INTO OUTFILE '/tmp/out.csv'",
    "SELECT * FROM file('/etc/passwd')",
    "SELECT * FROM url('http://example.com/x.csv', CSV)",
    "SELECT * FROM remote('127.0.0.1', default.kandji_logs)",
    "SELECT * FROM s3('https://bucket/x.csv')",
    "SELECT count() FROM kandji_logs WHERE id IN (SELECT c1 FROM file('ids.csv'))",
    "EXPLAIN AST DROP TABLE kandji_logs",
    # Found by the security audit: the ordinary function file() read any file of the server.
    "SELECT file('/etc/passwd')",
    "SELECT length(file('/etc/passwd')) FROM kandji_logs",
    "SELECT arrayMap(x -> file(x), ['/etc/passwd'])",
    "SELECT count() FROM kandji_logs WHERE file('/etc/hostname') != ''",
    # Every other kind of write or DDL, and a second statement of any kind.
    "INSERT INTO kandji_logs SELECT * FROM kandji_logs",
    "ALTER TABLE kandji_logs UPDATE eventName = 'x' WHERE 1",
    "ALTER TABLE kandji_logs DROP COLUMN eventName",
    "CREATE DATABASE other",
    "CREATE TEMPORARY TABLE t (a Int8)",
    "CREATE VIEW v AS SELECT 1",
    "ATTACH TABLE x",
    "DETACH TABLE kandji_logs",
    "RENAME TABLE kandji_logs TO gone",
    "EXCHANGE TABLES kandji_logs AND kandji_logs_quarantine",
    "UNDROP TABLE x",
    "TRUNCATE kandji_logs",
    "OPTIMIZE TABLE kandji_logs FINAL DEDUPLICATE",
    "SYSTEM SHUTDOWN",
    "SYSTEM FLUSH LOGS",
    "SYSTEM RELOAD CONFIG",
    "BACKUP TABLE kandji_logs TO Disk('backups', '1.zip')",
    "KILL MUTATION WHERE 1",
    "SELECT 1; SELECT 2",
    "SELECT 1;SELECT 2;",
    "SELECT * FROM executable('ls', TabSeparated, 'x String')",
    "SELECT * FROM postgresql('127.0.0.1:5432', 'd', 't', 'u', 'p')",
    "SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))",
]


@pytest.mark.parametrize("sql", WRITES)
def test_the_guard_refuses_writes_and_outside_reads_in_one_sentence(store, sql: str) -> None:
    before = store.count()
    with pytest.raises(QueryRefused) as refused:
        run_query(store, sql)
    message = str(refused.value)
    assert message.endswith(".") and "\n" not in message
    assert store.count() == before
    assert store.query("EXISTS TABLE kandji_logs").rows == [[1]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM kandji_logs",
        "  -- how many\n select eventName, count() from kandji_logs group by eventName;",
        "WITH 2 AS two SELECT two",
        "SHOW TABLES",
        "DESCRIBE TABLE kandji_logs",
        "DESC kandji_logs",
        "EXPLAIN SELECT count() FROM kandji_logs",
        "EXISTS TABLE kandji_logs",
        "SHOW CREATE TABLE kandji_logs",  # was refused as a FORMAT clause
        "SELECT 1 AS file",
        "SELECT number FROM numbers(3)",
        "SELECT 'DROP TABLE kandji_logs; INTO OUTFILE' AS text",
    ],
)
def test_the_guard_accepts_reads(store, sql: str) -> None:
    result = run_query(store, sql, limit=100)
    assert result.columns and not result.truncated


def test_the_guard_names_the_statement_and_the_row_limit_truncates(store) -> None:
    with pytest.raises(QueryRefused, match=r"^DROP statements cannot run here"):
        run_query(store, "drop table kandji_logs")
    with pytest.raises(QueryRefused, match="not valid SQL"):
        run_query(store, "SELEC 1")
    result = run_query(store, "SELECT * FROM kandji_logs", limit=3)
    assert len(result.rows) == 3 and result.truncated
    assert len(result.columns) == len(COLUMN_NAMES)
    with pytest.raises(QueryRefused, match=r"^The query failed: .*nope"):
        run_query(store, "SELECT nope FROM kandji_logs")


def test_a_query_is_bounded_in_time_and_a_download_in_rows(
    store, log_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the security audit: `SELECT * FROM system.numbers` as a CSV download (no row
    # limit) filled the memory, and a long count held a worker for as long as it ran.
    monkeypatch.setattr(sql_guard, "MAX_ROWS", 10)
    with open_log_store(log_store_url, QueryLimits(seconds=1)) as limited:
        with pytest.raises(
            QueryRefused,
            match=r"^The query took longer than 1 s, the most a query may run, and was stopped; "
            r"narrow it with WHERE on eventTime, or aggregate\.$",
        ):
            run_query(limited, "SELECT count() FROM numbers(1000000000000)", limit=5)
        with pytest.raises(QueryRefused, match=r"^Leave out the SETTINGS clause"):
            run_query(
                limited,
                "SELECT count() FROM numbers(1000000000000) SETTINGS max_execution_time = 0",
            )
        assert run_query(limited, "SELECT 41 + 1").rows == [[42]], "the session still works"
    with pytest.raises(QueryRefused, match=r"^The result has more than 10 rows"):
        run_query(store, "SELECT * FROM system.numbers")
    result = run_query(store, "SELECT number FROM numbers(10)")
    assert len(result.rows) == 10 and not result.truncated
    result = run_query(store, "SELECT * FROM system.numbers", limit=3)
    assert result.rows == [[0], [1], [2]] and result.truncated
