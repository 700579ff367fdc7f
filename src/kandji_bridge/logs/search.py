"""The logs explorer's queries: search, histogram, facets and one event, over any LogStore.

Plain functions that build one SQL text, the same for chDB and ClickHouse. Every query bounds
`eventTime`, so the month partitions outside the range are skipped and the primary key
(sourceID, eventTime, id) narrows the granules read; a source filter narrows them further.
Results are newest first.

Full-text search is a case-insensitive substring of `rawLog` through `ILIKE '%text%'` (with `%`,
`_` and backslash escaped). On the 5M-event benchmark it ran within noise of
`positionCaseInsensitive` (no consistent winner over interleaved runs, see benchmarks/RESULTS.md),
and unlike it ILIKE also folds non-ASCII letters ("ZOË" finds "zoë");
`hasTokenCaseInsensitive` would only match whole tokens (no "recov" for "recovery").

Over long ranges (a year of 50M events) three things keep each query within a second:
- A page is looked for newest first, in time windows from one day, each sized by the rate the
  rows matched so far (`next_window`), so a text search stops reading once it has the page
  instead of matching the text in every event of the range. The rows are those one query over the
  range would give.
- Facets, the Source select and a histogram without text read whole hours from the table's
  aggregate projection (schema.EXPLORER_PROJECTION) and only the range's partial first and last
  hour from the rows.
- A histogram with text must match it in every event of its buckets, and a word found in every
  granule cannot be skipped by any index. The explorer's (`newest_histogram`) counts the newest
  buckets holding TEXT_HISTOGRAM_ROWS events and says how many older ones it left; `histogram`
  counts them all when the user asks.
"""

# Every value reaches SQL through sql_string / sql_time / int(), hence no S608 findings to act on.
# ruff: noqa: S608

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.logs import sql_guard
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import LogStore, LogStoreError, Select, sql_string, sql_time

# SearchQuery field -> column, for the exact-match filters.
FILTER_COLUMNS = {
    "event_name": "eventName",
    "action": "action",
    "actor_type": "actorType",
    "target_type": "targetType",
    "source_id": "sourceID",
    "target_id": "targetId",
    "actor_id": "actorId",
}
# The filters the explorer offers as selects, filled by `facets`.
FACET_FIELDS = ("event_name", "action", "actor_type", "target_type")
FACET_LIMIT = 500  # distinct values per select; more would not be usable in a select anyway
# Histogram bucket sizes (seconds): the smallest one that fits the range in the wanted count.
BUCKET_SECONDS = (
    1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
)  # fmt: skip
MAX_LIMIT = 1000
# The newest-first windows of a search: the first covers a day; while nothing matched, each next
# one four times more.
FIRST_WINDOW = timedelta(days=1)
WINDOW_GROWTH = 4
HOUR = 3600
# The filters the explorer projection holds (a histogram filtered on another reads the rows).
PROJECTED_FILTERS = frozenset({"source_id", *FACET_FIELDS})
# The events the explorer's histogram matches a text in before it leaves older buckets uncounted:
# about half a second on two cores (benchmarks/explorer.py).
TEXT_HISTOGRAM_ROWS = 2_000_000
_CURSOR = re.compile(r"^(\d{1,12})\.([0-9A-Za-z-]{1,64})$")

# The explorer's table: time, eventName, actor, target, srcIP, country (and what links a row).
SUMMARY_SQL = (
    "id, toUnixTimestamp(eventTime), eventName, action, actorType, actorId, "
    "actor['email'], actor['name'], targetType, targetId, tags['target_name'], "
    "srcIP, srcASCountryCode, sourceID, targetComponent"
)


class SearchError(BridgeError):
    """A search that cannot run as asked (a reversed range, a bad cursor)."""


@dataclass(frozen=True)
class SearchQuery:
    """What the explorer asks for: a time range (UTC) plus optional text and exact filters."""

    start: datetime
    end: datetime
    text: str = ""
    event_name: str = ""
    action: str = ""
    actor_type: str = ""
    target_type: str = ""
    source_id: str = ""
    target_id: str = ""
    actor_id: str = ""

    def __post_init__(self) -> None:
        if _utc(self.start) >= _utc(self.end):
            raise SearchError("The time range ends before it starts; pick a start before the end.")

    def filters(self) -> dict[str, str]:
        """The exact-match filters that are set, by SearchQuery field name."""
        return {name: getattr(self, name) for name in FILTER_COLUMNS if getattr(self, name)}


@dataclass(frozen=True)
class EventSummary:
    """One row of the explorer's result table."""

    id: str
    event_time: datetime
    event_name: str
    action: str
    actor_type: str
    actor: str  # email, else name, else id, else type
    target_type: str
    target_id: str
    target: str  # the target's name when the event carries one, else its id
    src_ip: str
    country: str
    source_id: str
    actor_id: str
    target_component: str


@dataclass(frozen=True)
class Histogram:
    """Matching events per time bucket, oldest first. The buckets before `counted_from` were not
    counted (their count is 0): a text search over more events than the explorer matches at once.
    """

    bucket_seconds: int
    buckets: list[tuple[datetime, int]]
    counted_from: datetime | None = None  # None: every bucket counted
    skipped: int = 0  # the events in the buckets not counted, text aside

    @property
    def total(self) -> int:
        return sum(count for _, count in self.buckets)


@dataclass(frozen=True)
class SearchPage:
    rows: list[EventSummary]
    offset: int
    has_more: bool
    next_cursor: str | None  # pass back as `cursor` for the page after this one


def last(period: timedelta, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The range ending now (whole seconds) and starting `period` earlier."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return end - period, end


def search(
    store: LogStore,
    query: SearchQuery,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> SearchPage:
    """The matching events, newest first: `limit` of them after `offset` rows or after `cursor`.

    A cursor (the last row's time and id) pages without counting the rows before it, so deep
    pages cost the same as the first; offset paging is for the UI's page numbers.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    where = where_clause(query)
    newest = int(_utc(query.end).timestamp())
    if cursor:
        seconds, row_id = _parse_cursor(cursor)
        at = f"toDateTime({seconds}, 'UTC')"
        where += f" AND eventTime <= {at} AND (eventTime, id) < ({at}, {sql_string(row_id)})"
        offset = 0
        newest = min(newest, seconds)
    found: list[list[Any]] = []
    skip = offset  # rows still to pass over, in the windows after those read
    oldest, high = int(_utc(query.start).timestamp()), newest
    size = int(FIRST_WINDOW.total_seconds())
    while high >= oldest:
        low = max(oldest, high - size + 1)
        window = f"{where} AND eventTime >= {_at(low)} AND eventTime <= {_at(high)}"
        result = store.query(
            f"SELECT {SUMMARY_SQL} FROM {LOGS_TABLE} WHERE {window} "
            f"ORDER BY eventTime DESC, id DESC LIMIT {limit + 1 - len(found)} OFFSET {skip}"
        )
        found += result.rows
        if len(found) > limit:
            break
        if skip:
            # Rows came back only if the window held more than `skip`; else it held fewer.
            skip = 0 if result.rows else max(0, skip - _count(store, window))
        matched = offset - skip + len(found)
        size = next_window(size, newest - low + 1, matched, offset + limit + 1)
        high = low - 1
    rows = [_summary(row) for row in found[:limit]]
    has_more = len(found) > limit
    next_cursor = None
    if has_more and rows:
        next_cursor = f"{int(rows[-1].event_time.timestamp())}.{rows[-1].id}"
    return SearchPage(rows=rows, offset=offset, has_more=has_more, next_cursor=next_cursor)


def bucket_seconds(start: datetime, end: datetime, buckets: int = 60) -> int:
    """The smallest standard bucket size that covers the range in at most `buckets` bars."""
    span = (_utc(end) - _utc(start)).total_seconds()
    for size in BUCKET_SECONDS:
        if span / size <= buckets:
            return size
    return math.ceil(span / buckets)


def histogram(
    store: LogStore, query: SearchQuery, buckets: int = 60, *, user: str = ""
) -> list[tuple[datetime, int]]:
    """Events per time bucket over the whole range (empty buckets as 0), oldest first.

    A text is matched in every event of the range, a minute for a year of a big tenant: that
    count runs as a query of `user`'s (LogStore.user_session: a session of its own, under the
    query time limit and the per-user caps), so it holds up neither the collector nor the other
    pages, and a user cannot start more of them than the caps allow.
    """
    size = bucket_seconds(query.start, query.end, buckets)
    first = _first_bucket(query, size)
    if not query.text.strip():
        return _bucket_counts(store.query, query, size, first)
    with store.user_session(user) as select:
        try:
            return _bucket_counts(select, query, size, first)
        except LogStoreError as exc:
            if not sql_guard.timed_out(str(exc)):
                raise
            raise SearchError(
                "Counting the text in every event of the range took longer than "
                f"{store.query_limits.seconds:,} s, the most a query may run; pick a shorter "
                "range or one source."
            ) from None


def newest_histogram(
    store: LogStore, query: SearchQuery, buckets: int = 60, rows: int | None = None
) -> Histogram:
    """The explorer's histogram: as `histogram`, except that a text search over more than `rows`
    events (TEXT_HISTOGRAM_ROWS by default) counts only the newest buckets that hold about that
    many, and at least the newest one.

    Matching a text reads every event's rawLog, some 5 million a second on two cores, so a text
    over a year of a big tenant would take a minute; the older buckets are left for the user to
    ask for (`histogram`). The events per bucket come from the projection, the range and the
    source only: the text is matched in every one of them whatever the other filters.
    """
    rows = TEXT_HISTOGRAM_ROWS if rows is None else rows
    size = bucket_seconds(query.start, query.end, buckets)
    first = _first_bucket(query, size)
    if not query.text.strip():
        return Histogram(size, _bucket_counts(store.query, query, size, first))
    scope = SearchQuery(start=query.start, end=query.end, source_id=query.source_id)
    held = _bucket_counts(store.query, scope, size, first)
    counted, since = 0, None
    for start, events in reversed(held):
        counted += events
        if counted > rows and since is not None:
            break
        since = int(start.timestamp())
    if since is None or since == first:
        return Histogram(size, _bucket_counts(store.query, query, size, first))
    newest = _bucket_counts(store.query, query, size, since)
    older = [(start, n) for start, n in held if int(start.timestamp()) < since]
    return Histogram(
        size,
        [(start, 0) for start, _ in older] + newest,
        counted_from=datetime.fromtimestamp(since, UTC),
        skipped=sum(n for _, n in older),
    )


def _first_bucket(query: SearchQuery, size: int) -> int:
    return int(_utc(query.start).timestamp()) // size * size


def _bucket_counts(
    select: Select, query: SearchQuery, size: int, since: int
) -> list[tuple[datetime, int]]:
    """Matching events per bucket of `size` seconds, from the bucket starting at `since` (a
    bucket boundary) to the range's end."""
    interval = f"toIntervalSecond({size})"
    bucket = f"toUnixTimestamp(toStartOfInterval(eventTime, {interval})) AS b, count() AS n"
    later = since > int(_utc(query.start).timestamp())
    if later or size % HOUR or query.text.strip() or set(query.filters()) - PROJECTED_FILTERS:
        where = where_clause(query) + (f" AND eventTime >= {_at(since)}" if later else "")
        result = select(f"SELECT {bucket} FROM {LOGS_TABLE} WHERE {where} GROUP BY b ORDER BY b")
    else:
        # Buckets of whole hours: an hour's count from the projection falls in the same bucket.
        hourly = f"toUnixTimestamp(toStartOfInterval(toStartOfHour(eventTime), {interval})) AS b"
        hours, edges = _hours_and_edges(query)
        union = _union(hours, edges, f"{hourly}, count() AS n", "b", edge_select=bucket)
        result = select(f"SELECT b, sum(n) FROM ({union}) GROUP BY b ORDER BY b")
    counts = {int(b): int(n) for b, n in result.rows}
    last_start = int(_utc(query.end).timestamp())
    return [
        (datetime.fromtimestamp(b, UTC), counts.get(b, 0))
        for b in range(since, last_start + 1, size)
    ]


def facets(store: LogStore, query: SearchQuery) -> dict[str, list[str]]:
    """The distinct values of each filter select within the range (and source), sorted.

    Only the range and source narrow them: a select keeps offering its other values after one
    is picked.
    """
    scope = SearchQuery(start=query.start, end=query.end, source_id=query.source_id)
    keys = ", ".join(FILTER_COLUMNS[name] for name in FACET_FIELDS)
    columns = ", ".join(
        f"groupUniqArray({FACET_LIMIT})({FILTER_COLUMNS[name]})" for name in FACET_FIELDS
    )
    hours, edges = _hours_and_edges(scope)
    result = store.query(f"SELECT {columns} FROM ({_union(hours, edges, keys, keys)})")
    values = result.rows[0] if result.rows else [[] for _ in FACET_FIELDS]
    return {
        name: sorted(value for value in found if value)
        for name, found in zip(FACET_FIELDS, values, strict=True)
    }


def source_ids(store: LogStore, query: SearchQuery) -> list[str]:
    """The sources with events within the range, for the Source select: only the range narrows
    them, so the select keeps offering the other sources once one is picked."""
    hours, edges = _hours_and_edges(SearchQuery(start=query.start, end=query.end))
    result = store.query(
        f"SELECT groupUniqArray({FACET_LIMIT})(sourceID) "
        f"FROM ({_union(hours, edges, 'sourceID', 'sourceID')})"
    )
    return sorted(value for value in (result.rows[0][0] if result.rows else []) if value)


def get_event(store: LogStore, event_id: str) -> dict[str, Any]:
    """Every column of the stored event with this row `id`, in the table's column order."""
    result = store.query(f"SELECT * FROM {LOGS_TABLE} WHERE id = {sql_string(event_id)} LIMIT 1")
    if not result.rows:
        raise NotFound(
            f"No stored event has the id {event_id!r}; it may have passed its retention."
        )
    return dict(zip(result.columns, result.rows[0], strict=True))


def where_clause(query: SearchQuery) -> str:
    """The WHERE condition of a query: its range, filters and text."""
    conditions = [
        f"eventTime >= {sql_time(_utc(query.start))}",
        f"eventTime <= {sql_time(_utc(query.end))}",
        *_filter_conditions(query),
    ]
    if query.text.strip():
        conditions.append(f"rawLog ILIKE {sql_string(contains_pattern(query.text.strip()))}")
    return " AND ".join(conditions)


def next_window(size: int, covered: int, matched: int, wanted: int) -> int:
    """The next search window's length in seconds: long enough for the rows still wanted at the
    rate matched so far over `covered` seconds (a quarter to spare), and between twice and sixteen
    times the last one; four times the last one while nothing matched."""
    if not matched:
        return size * WINDOW_GROWTH
    needed = (wanted - matched) * covered / matched * 1.25
    return int(min(max(needed, 2 * size), 16 * size))


def _hours_and_edges(query: SearchQuery) -> tuple[str, str]:
    """The query's range as two WHERE conditions (each with its filters, no text): the whole
    hours within it, which the explorer projection answers, and the seconds before the first and
    after the last of them, read from the rows."""
    start, end = int(_utc(query.start).timestamp()), int(_utc(query.end).timestamp())
    first = -(-start // HOUR) * HOUR  # the first hour that starts within the range
    after = (end + 1) // HOUR * HOUR  # the end of the last hour that ends within it
    filters = "".join(f" AND {condition}" for condition in _filter_conditions(query))
    if first >= after:
        return "0", f"eventTime >= {_at(start)} AND eventTime <= {_at(end)}{filters}"
    hours = f"toStartOfHour(eventTime) >= {_at(first)} AND toStartOfHour(eventTime) < {_at(after)}"
    edges = (
        f"((eventTime >= {_at(start)} AND eventTime < {_at(first)}) "
        f"OR (eventTime >= {_at(after)} AND eventTime <= {_at(end)}))"
    )
    return hours + filters, edges + filters


def _union(hours: str, edges: str, select: str, group: str, edge_select: str = "") -> str:
    """One grouped SELECT over the hours and over the edges, as a UNION ALL of the two: each part
    alone, so ClickHouse can answer the first from the projection."""
    return (
        f"SELECT {select} FROM {LOGS_TABLE} WHERE {hours} GROUP BY {group} UNION ALL "
        f"SELECT {edge_select or select} FROM {LOGS_TABLE} WHERE {edges} GROUP BY {group}"
    )


def _filter_conditions(query: SearchQuery) -> list[str]:
    return [
        f"{FILTER_COLUMNS[name]} = {sql_string(value)}" for name, value in query.filters().items()
    ]


def _at(seconds: int) -> str:
    return f"toDateTime({int(seconds)}, 'UTC')"


def _count(store: LogStore, where: str) -> int:
    return int(store.query(f"SELECT count() FROM {LOGS_TABLE} WHERE {where}").rows[0][0])


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere: its wildcards and backslashes taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _summary(row: list[Any]) -> EventSummary:
    (row_id, seconds, event_name, action, actor_type, actor_id, email, name) = row[:8]
    (target_type, target_id, target_name, src_ip, country, source_id, component) = row[8:]
    return EventSummary(
        id=row_id,
        event_time=datetime.fromtimestamp(int(seconds), UTC),
        event_name=event_name,
        action=action,
        actor_type=actor_type,
        actor=email or name or actor_id or actor_type,
        target_type=target_type,
        target_id=target_id,
        target=target_name or target_id,
        src_ip=src_ip,
        country=country,
        source_id=source_id,
        actor_id=actor_id,
        target_component=component,
    )


def _parse_cursor(cursor: str) -> tuple[int, str]:
    match = _CURSOR.match(cursor)
    if not match:
        raise SearchError("The page cursor is not one this explorer gave out; start from page 1.")
    return int(match[1]), match[2]


def _utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC, as the table's DateTime columns are."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
