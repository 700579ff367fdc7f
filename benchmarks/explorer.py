"""Benchmark the logs explorer's queries on a chDB store of 5,000,000 simulated events.

The events are generated inside ClickHouse (`INSERT INTO kandji_logs SELECT ... FROM numbers(N)`)
in the shapes the normalizer writes: rawLog JSON text like Kandji's, eventName "<target>.<action>",
a few sources, ~50 admins, API tokens and the system as actors, 5,000 devices, ~2,000 client IPs
in ten countries, spread evenly over a year ending now. Then each explorer query runs for each
range (the last 30 days by default), several times, and the medians of its wall time and of
this process's CPU time (chDB runs in it) are reported as Markdown, with the load average.

    python benchmarks/explorer.py                       # 5,000,000 events, 5 runs, temp store
    python benchmarks/explorer.py --store /tmp/kb-explorer --runs 7   # keep / reuse the store
    python benchmarks/explorer.py --events 50000000 --store /work/s5/explorer50m --range 30d,365d
"""

# Every value reaches SQL as an int or through sql_string, hence no S608 findings to act on.
# ruff: noqa: S608

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.search import (
    Histogram,
    SearchQuery,
    facets,
    get_event,
    histogram,
    last,
    newest_histogram,
    search,
    source_ids,
)
from kandji_bridge.logs.store import ChdbLogStore
from synthetic_logs import fill

# One generated row per `number`; h1..h4 are independent hashes of it. Columns not listed here
# take their defaults (empty strings, zeros, empty maps and arrays).
GENERATE = """
INSERT INTO kandji_logs ({columns})
WITH
    cityHash64(number, 1) AS h1, cityHash64(number, 2) AS h2,
    cityHash64(number, 3) AS h3, cityHash64(number, 4) AS h4,
    ['device', 'device', 'device', 'blueprint', 'library_item', 'user', 'api_token', 'tag']
        [h1 % 8 + 1] AS tt,
    multiIf(tt = 'device', ['update', 'lock', 'erase', 'restart', 'view_recovery_key',
        'assign_blueprint', 'check_in'][h2 % 7 + 1],
        ['create', 'update', 'delete', 'view'][h2 % 4 + 1]) AS act,
    ['user', 'user', 'user', 'api_token', 'system'][h3 % 5 + 1] AS at,
    if(at = 'system', '', concat('admin-', toString(h3 % 50))) AS aid,
    if(at = 'user', concat('admin', toString(h3 % 50), '@example.com'), '') AS email,
    if(tt = 'device', concat('dev-', leftPad(toString(h4 % 5000), 6, '0')),
        lower(hex(h4 % 100000))) AS tid,
    if(tt = 'device', concat('Mac-', toString(h4 % 5000)), '') AS tname,
    if(h2 % 3 = 0, IPv4NumToString(toUInt32(0x51000000 + (h1 % 2000) * 7919)), '') AS ip,
    if(ip = '', '', ['US', 'GB', 'DE', 'FR', 'SE', 'JP', 'AU', 'CA', 'BR', 'IN'][h1 % 10 + 1])
        AS cc,
    toDateTime({end} - intDiv(number * {span}, {total}), 'UTC') AS t,
    concat('01J', upper(substring(hex(h4), 1, 12)), upper(substring(hex(h3), 1, 11))) AS kid,
    if(ip = '', '{{}}', concat('{{"ip_address":"', ip,
        '","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"}}')) AS meta,
    if(tname = '', concat('{{"name":"', tt, ' ', toString(h4 % 100000), '"}}'),
        concat('{{"device_name":"', tname, '","blueprint_id":"', lower(hex(h2 % 40)), '"}}'))
        AS ns
SELECT
    'ws-bench' AS workspaceID,
    ['src-a', 'src-b', 'src-c'][number % 3 + 1] AS sourceID,
    'kandji' AS sourceType,
    0 AS sourceTTL,
    t + 3 AS receivedAt,
    toString(generateUUIDv4(number)) AS id,
    t AS eventTime,
    concat(tt, '.', act) AS eventName,
    kid AS eventID,
    ip AS srcIP,
    cc AS srcASCountryCode,
    map('id', aid, 'type', at, 'email', email) AS actor,
    if(tname = '', map(), map('target_name', tname)) AS tags,
    [tid] AS resources,
    'kandji' AS serviceName,
    act IN ('view', 'view_recovery_key') AS readOnly,
    concat('{{"id":"', kid, '","action":"', act, '","occurred_at":"',
        formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000000Z', 'UTC'), '","actor_id":"', aid,
        '","actor_type":"', at, '","target_id":"', tid, '","target_type":"', tt,
        '","target_component":"","new_state":', ns, ',"metadata":', meta, '}}') AS rawLog,
    kid AS kandjiEventId,
    act AS action,
    aid AS actorId,
    at AS actorType,
    formatDateTime(t, '%Y-%m-%dT%H:%i:%S.000000Z', 'UTC') AS occurredAt,
    tt AS targetType,
    tid AS targetId,
    ns AS newState,
    meta AS metadata
FROM numbers({first}, {count})
"""
GENERATED = [
    *("workspaceID", "sourceID", "sourceType", "sourceTTL", "receivedAt", "id", "eventTime"),
    *("eventName", "eventID", "srcIP", "srcASCountryCode", "actor", "tags", "resources"),
    *("serviceName", "readOnly", "rawLog", "kandjiEventId", "action", "actorId", "actorType"),
    *("occurredAt", "targetType", "targetId", "newState", "metadata"),
]


def timed(action: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time of this process in ms over `runs` (after one
    warm-up run), and the last result."""
    result = action()
    walls, cpus = [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        result = action()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def wait_for_mutations(store: ChdbLogStore) -> None:
    """Wait for the background mutations ensure_schema started (building the explorer projection
    for the rows of a store made before it), so the queries are measured on the finished table."""
    started = time.perf_counter()
    while True:
        pending = store.query(
            "SELECT count() FROM system.mutations WHERE database = currentDatabase() "
            f"AND table = '{LOGS_TABLE}' AND NOT is_done"
        ).rows[0][0]
        if not int(pending):
            break
        time.sleep(1)
    if time.perf_counter() - started > 1:
        print(f"Mutations (the projection built) in {time.perf_counter() - started:.0f} s")


def parse_ranges(text: str) -> list[int]:
    """`30d,365d` -> [30, 365] (days)."""
    days = [int(part.strip().removesuffix("d")) for part in text.split(",") if part.strip()]
    if not days or min(days) < 1:
        raise argparse.ArgumentTypeError("--range takes days such as 30d,365d")
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", help="a folder to keep the store in (reused when it matches)")
    parser.add_argument(
        "--range",
        type=parse_ranges,
        default=[30],
        help="ranges ending at the newest event, in days: 30d,365d",
    )
    args = parser.parse_args()

    folder = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="kb-explorer-"))
    store = ChdbLogStore(str(folder))
    store.ensure_schema()
    try:
        held = store.count()
        if held != args.events:
            store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
            end = int(datetime.now(UTC).timestamp())
            print(f"Generating {args.events:,} events ...", flush=True)
            seconds = fill(store, GENERATE, GENERATED, args.events, end)
            print(f"Generated in {seconds:.1f} s", flush=True)
        wait_for_mutations(store)
        for days in args.range:
            report(store, args.runs, days, compare=days == args.range[0])
    finally:
        store.close()
        if not args.store:
            shutil.rmtree(folder, ignore_errors=True)


def report(store: ChdbLogStore, runs: int, days: int, *, compare: bool) -> None:
    """Each query over the last `days` days; `compare`: also ILIKE against
    positionCaseInsensitive (once is enough, on the first range)."""
    newest = store.query(f"SELECT toUnixTimestamp(max(eventTime)) FROM {LOGS_TABLE}").rows[0][0]
    start, end = last(timedelta(days=days), datetime.fromtimestamp(int(newest), UTC))
    base = SearchQuery(start=start, end=end)
    in_range = store.query(
        f"SELECT count() FROM {LOGS_TABLE} WHERE eventTime BETWEEN "
        f"toDateTime({int(start.timestamp())}, 'UTC') AND toDateTime({int(end.timestamp())}, 'UTC')"
    ).rows[0][0]
    first_page = search(store, base)
    some_id = first_page.rows[-1].id
    cases: list[tuple[str, Callable[[], object]]] = [
        ("search, no text (first page of 50)", lambda: search(store, base)),
        ("search, text `recovery` (common)", lambda: search(store, _with(base, text="recovery"))),
        ("search, text `mac-4242` (rare)", lambda: search(store, _with(base, text="mac-4242"))),
        (
            "search, text `81.0.` (IP prefix)",
            lambda: search(store, _with(base, text="81.0.")),
        ),
        (
            "filter eventName = device.lock",
            lambda: search(store, _with(base, event_name="device.lock")),
        ),
        ("filter action = delete", lambda: search(store, _with(base, action="delete"))),
        (
            "filter actorType = api_token",
            lambda: search(store, _with(base, actor_type="api_token")),
        ),
        (
            "filter targetType = blueprint",
            lambda: search(store, _with(base, target_type="blueprint")),
        ),
        ("filter sourceID = src-b", lambda: search(store, _with(base, source_id="src-b"))),
        (
            "text + all four filters",
            lambda: search(
                store,
                _with(
                    base,
                    text="mozilla",
                    event_name="device.lock",
                    action="lock",
                    actor_type="user",
                    target_type="device",
                ),
            ),
        ),
        ("page 20 by offset (rows 951-1000)", lambda: search(store, base, offset=950)),
        ("next page by cursor", lambda: search(store, base, cursor=first_page.next_cursor)),
        ("histogram (60 buckets)", lambda: histogram(store, base)),
        (
            "histogram with text `recovery`, as the explorer shows it (newest 2M events)",
            lambda: newest_histogram(store, _with(base, text="recovery")),
        ),
        (
            "histogram with text `recovery`, the whole range (Count the whole range)",
            lambda: histogram(store, _with(base, text="recovery")),
        ),
        ("facets (4 selects)", lambda: facets(store, base)),
        ("sources with events (Source select)", lambda: source_ids(store, base)),
        ("get_event by id", lambda: get_event(store, some_id)),
    ]
    print()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"Store: {store.count():,} events; {days}-day range {start:%Y-%m-%d} to {end:%Y-%m-%d}: "
        f"{int(in_range):,} events; median of {runs} runs after a warm-up; "
        f"load average {_load()} before"
    )
    print()
    print(f"| query ({days}-day range) | median wall ms | median CPU ms | rows |")
    print("|---|---:|---:|---:|")
    for name, action in cases:
        wall, cpu, result = timed(action, runs)
        print(f"| {name} | {wall:,.0f} | {cpu:,.0f} | {_size(result)} |", flush=True)
    print()
    print(f"Load average after: {_load()}")
    if not compare:
        return
    print()
    print("Text matching, one query over the range: ILIKE (used) against positionCaseInsensitive,")
    print("runs interleaved:")
    print()
    print("| text | ILIKE median ms | positionCaseInsensitive median ms | ratio |")
    print("|---|---:|---:|---:|")
    for text in ("recovery", "mac-4242", "81.0."):
        ilike, position = [], []
        for _ in range(runs):
            ilike.append(timed(lambda t=text: _first_page(store, base, t, "ILIKE"), 1)[0])
            position.append(timed(lambda t=text: _first_page(store, base, t, "position"), 1)[0])
        a, b = statistics.median(ilike), statistics.median(position)
        print(f"| `{text}` | {a:,.0f} | {b:,.0f} | {b / a:.1f}x |", flush=True)


def _with(base: SearchQuery, **changes: str) -> SearchQuery:
    return SearchQuery(**{**base.__dict__, **changes})


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def _first_page(store: ChdbLogStore, base: SearchQuery, text: str, how: str) -> object:
    """The first page of a text search as one query over the range (no windows), the text
    matched by ILIKE (as `search` does) or by positionCaseInsensitive."""
    from kandji_bridge.logs.search import SUMMARY_SQL, contains_pattern, where_clause
    from kandji_bridge.logs.store import sql_string

    if how == "ILIKE":
        match = f"rawLog ILIKE {sql_string(contains_pattern(text))}"
    else:
        match = f"positionCaseInsensitive(rawLog, {sql_string(text)}) > 0"
    return store.query(
        f"SELECT {SUMMARY_SQL} FROM {LOGS_TABLE} WHERE {where_clause(base)} AND {match} "
        "ORDER BY eventTime DESC, id DESC LIMIT 51"
    ).rows


def _size(result: object) -> str:
    if isinstance(result, Histogram):
        counted = f", from {result.counted_from:%Y-%m-%d}" if result.counted_from else ""
        return f"{len(result.buckets)} buckets, {result.total:,} events{counted}"
    rows = getattr(result, "rows", result)
    if isinstance(rows, dict):
        values = rows.values()
        if all(isinstance(v, list) for v in values):
            return f"{sum(len(v) for v in values)} values"
        return f"1 event, {len(rows)} columns"
    if isinstance(rows, list):
        if rows and isinstance(rows[0], tuple):
            return f"{len(rows)} buckets, {sum(n for _, n in rows):,} events"
        return str(len(rows))
    return "1"


if __name__ == "__main__":
    main()
