"""The explorer over long ranges, on both engines: a store made before the explorer projection
gets it (built for the rows it holds) and answers the same, facets, sources and histograms read
whole hours from the projection and their partial edges from the rows, and a search looked for
in newest-first windows pages exactly as one query over the range would."""

# The SQL here names only the product's own tables, hence no S608 findings to act on.
# ruff: noqa: S608

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.schema import (
    DDL,
    EXPLORER_PROJECTION,
    EXPLORER_PROJECTION_DDL,
    LOGS_DDL,
    LOGS_TABLE,
)
from kandji_bridge.logs.search import (
    SearchError,
    SearchQuery,
    bucket_seconds,
    facets,
    histogram,
    newest_histogram,
    next_window,
    search,
    source_ids,
)
from kandji_bridge.logs.store import LogStore, open_log_store
from kandji_bridge.logs.user_queries import QueryBusy, QueryLimits
from support.clickhouse_http import as_parsed

from .conftest import RECEIVED_AT, RETENTION_DAYS, WORKSPACE_ID

FIRST = datetime(2025, 6, 1, tzinfo=UTC)
EVENTS = 300
SPAN = timedelta(days=40)  # long enough for several of the search's windows
SOURCES = ("src-a", "src-b")
ACTIONS = ("update", "lock", "delete", "view_recovery_key")
TARGETS = ("device", "blueprint", "library_item")
ACTORS = ("user", "api_token", "system")


def audit_event(number: int) -> tuple[str, str]:
    """A Kandji audit event (its source and its JSON text), at an uneven second of the span."""
    at = FIRST + SPAN * number / EVENTS + timedelta(seconds=number * 37 % 3600)
    event = {
        "id": f"01J{number:023d}",
        "action": ACTIONS[number % 4],
        "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "actor_id": f"admin-{number % 5}",
        "actor_type": ACTORS[number % 3],
        "target_id": f"dev-{number % 7}",
        "target_type": TARGETS[number % 3 if number % 10 else 0],
        "target_component": "",
        "new_state": {"device_name": f"Mac-{number % 11}"},
        "metadata": {},
    }
    return SOURCES[number % 2], json.dumps(event)


def fill(store: LogStore) -> None:
    rows = []
    for number in range(EVENTS):
        source, raw = audit_event(number)
        ctx = NormalizeContext(WORKSPACE_ID, source, RETENTION_DAYS, received_at=RECEIVED_AT)
        rows.append(normalize(json.loads(raw), raw, ctx))
    store.insert(rows)


def stored_rows(store: LogStore) -> list[tuple[int, str, str, str, str, str, str, str]]:
    """Every stored event as the reference reads it, newest first as the explorer orders them."""
    return [
        tuple(row)
        for row in store.query(
            "SELECT toUnixTimestamp(eventTime), id, sourceID, eventName, action, actorType, "
            f"targetType, rawLog FROM {LOGS_TABLE} ORDER BY eventTime DESC, id DESC"
        ).rows
    ]


def wait_for_mutations(store: LogStore) -> None:
    for _ in range(300):
        pending = store.query(
            "SELECT count() FROM system.mutations WHERE database = currentDatabase() "
            f"AND table = '{LOGS_TABLE}' AND NOT is_done"
        )
        if not int(pending.rows[0][0]):
            return
        time.sleep(0.1)
    pytest.fail("The projection was not built within 30 s.")


# Ranges whose ends fall inside hours (and one within a single hour), so both the projection's
# hours and the rows' edges count.
RANGES = [
    (FIRST + timedelta(minutes=17, seconds=3), FIRST + timedelta(days=3, hours=5, minutes=2)),
    (FIRST - timedelta(days=1), FIRST + SPAN + timedelta(days=2)),
    (FIRST + timedelta(days=9, seconds=1), FIRST + timedelta(days=30, seconds=3599)),
    (FIRST + timedelta(days=2, minutes=5), FIRST + timedelta(days=2, minutes=55)),
]


def expected_answers(rows, start: datetime, end: datetime, source_id: str = "", **filters: str):
    """Facets, sources and the histogram of a range, counted here from the rows."""
    low, high = int(start.timestamp()), int(end.timestamp())
    columns = {"event_name": 3, "action": 4, "actor_type": 5, "target_type": 6}
    within = [row for row in rows if low <= row[0] <= high]
    scoped = [row for row in within if not source_id or row[2] == source_id]
    chosen = [row for row in scoped if all(row[columns[k]] == v for k, v in filters.items())]
    size = bucket_seconds(start, end)
    counts = Counter(row[0] // size * size for row in chosen)
    buckets = [
        (datetime.fromtimestamp(b, UTC), counts.get(b, 0))
        for b in range(low // size * size, high + 1, size)
    ]
    found = {name: sorted({row[i] for row in scoped} - {""}) for name, i in columns.items()}
    return found, sorted({row[2] for row in within}), buckets


def answers(store: LogStore, start: datetime, end: datetime, source_id: str = "", **filters):
    query = SearchQuery(start=start, end=end, source_id=source_id, **filters)
    return facets(store, query), source_ids(store, query), histogram(store, query)


def test_a_store_made_before_the_projection_gets_it_and_answers_the_same(
    log_store_url: str,
) -> None:
    with open_log_store(log_store_url) as store:
        for statement in DDL:  # the tables as an earlier version made them
            store.query(statement, read_only=False)
        fill(store)
        before = [answers(store, start, end) for start, end in RANGES]

        store.ensure_schema()
        wait_for_mutations(store)

        table = store.query(
            "SELECT create_table_query FROM system.tables "
            f"WHERE database = currentDatabase() AND name = '{LOGS_TABLE}'"
        )
        assert f"PROJECTION {EXPLORER_PROJECTION} " in table.rows[0][0]
        unbuilt = store.query(
            "SELECT count() FROM system.parts WHERE database = currentDatabase() "
            f"AND table = '{LOGS_TABLE}' AND active AND NOT has(projections, "
            f"'{EXPLORER_PROJECTION}')"
        )
        assert int(unbuilt.rows[0][0]) == 0
        assert [answers(store, start, end) for start, end in RANGES] == before
        rows = stored_rows(store)
        assert before == [expected_answers(rows, start, end) for start, end in RANGES]
        store.ensure_schema()  # a second opening finds it and changes nothing
        assert store.count() == EVENTS
        # Deleting rows by hand keeps working, and the answers follow.
        store.query(f"DELETE FROM {LOGS_TABLE} WHERE sourceID = 'src-b'", read_only=False)
        rows = stored_rows(store)
        assert {row[2] for row in rows} == {"src-a"}
        start, end = RANGES[1]
        assert answers(store, start, end) == expected_answers(rows, start, end)


@pytest.fixture
def store(log_store_url: str):
    with open_log_store(log_store_url) as opened:
        opened.ensure_schema()
        fill(opened)
        yield opened


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_facets_sources_and_histogram_count_every_event_of_the_range(store, start, end) -> None:
    rows = stored_rows(store)
    assert answers(store, start, end) == expected_answers(rows, start, end)
    filtered = {"source_id": "src-b", "action": "lock", "target_type": "device"}
    assert answers(store, start, end, **filtered) == expected_answers(rows, start, end, **filtered)


def test_a_histogram_filtered_on_a_column_the_projection_lacks_reads_the_rows(store) -> None:
    start, end = RANGES[1]
    query = SearchQuery(start=start, end=end, target_id="dev-3")
    low, high = int(start.timestamp()), int(end.timestamp())
    size = bucket_seconds(start, end)
    mine = Counter(
        row[0] // size * size
        for row in stored_rows(store)
        if low <= row[0] <= high and '"target_id": "dev-3"' in row[7]
    )
    assert {int(b.timestamp()): n for b, n in histogram(store, query) if n} == dict(mine)


@pytest.mark.parametrize("budget", [0, 40, 150, EVENTS])
@pytest.mark.parametrize("source_id", ["", "src-b"])
def test_a_text_histogram_over_more_events_than_its_budget_counts_only_the_newest_buckets(
    store, budget: int, source_id: str
) -> None:
    start, end = RANGES[1]
    query = SearchQuery(start=start, end=end, text="MAC-1", action="lock", source_id=source_id)
    found = newest_histogram(store, query, rows=budget)
    size = bucket_seconds(start, end)
    low, high = int(start.timestamp()), int(end.timestamp())
    scoped = [
        row
        for row in stored_rows(store)
        if low <= row[0] <= high and (not source_id or row[2] == source_id)
    ]
    matching = Counter(
        row[0] // size * size for row in scoped if row[4] == "lock" and "mac-1" in row[7].lower()
    )
    assert [b for b, _ in found.buckets] == [b for b, _ in histogram(store, query)]
    if budget >= len(scoped):
        assert found.counted_from is None and found.skipped == 0
        assert found.buckets == histogram(store, query)
        return
    since = int(found.counted_from.timestamp())
    newest = [row for row in scoped if row[0] >= since]
    one_more = [row for row in scoped if row[0] >= since - size]
    # As many of the newest buckets as the budget holds, and at least the newest one.
    assert len(newest) <= budget or since == int(found.buckets[-1][0].timestamp())
    assert len(one_more) > budget
    assert found.skipped == len(scoped) - len(newest) > 0
    for bucket, count in found.buckets:
        at = int(bucket.timestamp())
        assert count == (matching.get(at, 0) if at >= since else 0)
    assert found.total == sum(n for b, n in matching.items() if b >= since)
    assert found.total < sum(matching.values())  # the older buckets held matches too


def test_a_text_counted_over_the_whole_range_is_a_query_of_its_user(
    store, log_store_url: str
) -> None:
    # Counting a text over a year reads every event: it must not run on the store's own session
    # (the collector would wait on it) nor more at once than a user may run.
    start, end = RANGES[1]
    query = SearchQuery(start=start, end=end, text="mac-1")
    whole = histogram(store, query, user="bob")
    assert sum(n for _, n in whole) == sum("mac-1" in row[7].lower() for row in stored_rows(store))
    with store.user_session("ana"), store.user_session("ana"):  # ana's two queries run
        with pytest.raises(QueryBusy, match=r"^You have 2 queries running"):
            histogram(store, query, user="ana")
        assert histogram(store, query, user="bob") == whole
        # What the explorer shows at once stays on the store's session, as do counts without text.
        assert newest_histogram(store, query).buckets == whole
        assert histogram(store, SearchQuery(start=start, end=end), user="ana")
    with (
        open_log_store(log_store_url, QueryLimits(seconds=0.0001)) as limited,
        pytest.raises(
            SearchError,
            match=r"^Counting the text in every event of the range took longer than 0\.0001 s, "
            r"the most a query may run; pick a shorter range or one source\.$",
        ),
    ):
        histogram(limited, query, user="ana")


def test_the_next_search_window_follows_the_rate_rows_matched() -> None:
    day = 86400
    # 10 rows matched in a day, 51 wanted: about 5 more days (a quarter to spare)
    assert next_window(day, day, 10, 51) == int(41 * day / 10 * 1.25)
    assert next_window(day, day, 0, 51) == 4 * day  # nothing yet: four times longer
    assert next_window(day, day, 50, 51) == 2 * day  # at least twice the last one
    assert next_window(day, day, 1, 1000) == 16 * day  # at most sixteen times


@pytest.mark.parametrize("text", ["", "mac-1", "LOCK"])
def test_pages_over_a_long_range_are_those_of_one_query(store, text: str) -> None:
    start, end = FIRST - timedelta(days=1), FIRST + SPAN + timedelta(days=1)
    query = SearchQuery(start=start, end=end, text=text)
    expected = [row[1] for row in stored_rows(store) if text.lower() in row[7].lower()]
    assert len(expected) > 30
    for offset in (0, 1, 6, 29, len(expected) - 3, len(expected) + 5):
        page = search(store, query, limit=7, offset=offset)
        assert [row.id for row in page.rows] == expected[offset : offset + 7], offset
        assert page.has_more == (offset + 7 < len(expected))
    paged, cursor = [], None
    while True:
        page = search(store, query, limit=13, cursor=cursor)
        paged += [row.id for row in page.rows]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert paged == expected


def test_on_a_cluster_the_projection_is_added_to_every_node_s_table(
    clickhouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture runs no cluster: the statements are recorded, and ClickHouse's parser reads
    them."""
    with open_log_store(clickhouse_url) as store:
        local = LOGS_DDL.replace(f"EXISTS {LOGS_TABLE} (", f"EXISTS {LOGS_TABLE}_local (")
        store.query(local, read_only=False)
        executed: list[str] = []
        monkeypatch.setattr(store, "_execute", executed.append)
        monkeypatch.setattr(store, "cluster", "prod")
        store.ensure_schema()
        projection = [sql for sql in executed if "PROJECTION" in sql or "projection" in sql]
        assert projection == [
            f"ALTER TABLE {LOGS_TABLE}_local ON CLUSTER `prod` MODIFY SETTING "
            "deduplicate_merge_projection_mode = 'rebuild', "
            "lightweight_mutation_projection_mode = 'rebuild'",
            f"ALTER TABLE {LOGS_TABLE}_local ON CLUSTER `prod` ADD PROJECTION IF NOT EXISTS "
            f"{EXPLORER_PROJECTION_DDL}",
            f"ALTER TABLE {LOGS_TABLE}_local ON CLUSTER `prod` MATERIALIZE PROJECTION "
            f"{EXPLORER_PROJECTION}",
        ]
        assert all("ON CLUSTER prod" in sql for sql in as_parsed(store, projection))
