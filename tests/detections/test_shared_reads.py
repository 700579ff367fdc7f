"""What a detection run reads: the rules of a pack read the same window one after the other, so
what one run decompressed the next reads from the engine's uncompressed cache; a window with
more matches than a run keeps reads the wide columns of the rows it keeps only; and a scheduled
run does not read the columns its stored record never keeps (rawLog, newState, ...)."""

# The statements are the test's own and the pack's; values are bound parameters.
# ruff: noqa: S608

from datetime import timedelta

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.results import UNUSED_COLUMNS
from kandji_bridge.detections.rules import load_rule
from kandji_bridge.detections.run import run_detection
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore

from .test_results import WINDOW_FROM, WINDOW_TO, ingest, token_created


def cache_events(store: ChdbLogStore) -> dict[str, int]:
    rows = store.query(
        "SELECT event, value FROM system.events WHERE event LIKE 'UncompressedCache%'"
    ).rows
    return {str(name): int(value) for name, value in rows}


def test_a_second_rule_over_the_same_window_reads_the_decompressed_blocks_again(
    store: ChdbLogStore,
) -> None:
    store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    ingest(
        store,
        [token_created(f"01JSHAREDREAD0000000000{n:03d}", WINDOW_FROM) for n in range(50)],
        WINDOW_FROM + timedelta(minutes=1),
    )
    created = load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store)
    deleted = load_rule(KANDJI_PACK / "kandji-api-token-deleted.yaml", store)

    assert len(run_detection(store, created, WINDOW_FROM, WINDOW_TO).rows) == 50
    before = cache_events(store)
    assert run_detection(store, deleted, WINDOW_FROM, WINDOW_TO).rows == []
    after = cache_events(store)

    hits = after.get("UncompressedCacheHits", 0) - before.get("UncompressedCacheHits", 0)
    assert hits > 0, "the second rule decompressed the window's blocks again"


def decompressed(store: ChdbLogStore, event: str = "CompressedReadBufferBytes") -> int:
    rows = store.query(
        "SELECT value FROM system.events WHERE event = {event:String}", params={"event": event}
    ).rows
    return int(rows[0][0]) if rows else 0


def insert_tokens_created(store: ChdbLogStore, count: int) -> None:
    """`count` API tokens created, received in the window, with a 1 KiB rawLog each."""
    store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    received = int(WINDOW_FROM.timestamp()) + 60
    store.query(
        f"INSERT INTO {LOGS_TABLE} (sourceID, receivedAt, id, eventTime, targetType, action, "
        "resources, rawLog) SELECT 'src-1', toDateTime({received:UInt32}, 'UTC'), "
        "toString(number), toDateTime({received:UInt32} - 86400 * 300 + number * 400, 'UTC'), "
        "'api_token', 'create', [concat('token-', toString(number))], "
        "repeat(toString(cityHash64(number)), 60) FROM numbers({count:UInt32})",
        read_only=False,
        params={"received": str(received), "count": str(count)},
    )


def test_a_window_of_a_backfill_reads_the_wide_columns_of_the_matches_it_keeps_only(
    store: ChdbLogStore,
) -> None:
    """A first backfill puts a year of events in one window: a rule that matches more than it
    keeps (10,000) sorts them on eventTime and reads rawLog and the rest for the rows kept."""
    insert_tokens_created(store, 60_000)
    created = load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store)

    before = decompressed(store)
    matches = run_detection(store, created, WINDOW_FROM, WINDOW_TO)
    kept = decompressed(store) - before
    assert matches.truncated and len(matches.rows) == 10_000

    before = decompressed(store)
    store.query(
        f"SELECT * FROM ({created.statement}) LIMIT 10001",
        params={"from": f"{WINDOW_FROM:%Y-%m-%d %H:%M:%S}", "to": f"{WINDOW_TO:%Y-%m-%d %H:%M:%S}"},
    )
    every = decompressed(store) - before
    assert kept < every / 2, (kept, every)


def test_a_scheduled_run_does_not_read_the_columns_its_record_never_keeps(
    store: ChdbLogStore,
) -> None:
    insert_tokens_created(store, 2_000)
    created = load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store)

    before = decompressed(store, "SelectedBytes")
    whole = run_detection(store, created, WINDOW_FROM, WINDOW_TO)
    every = decompressed(store, "SelectedBytes") - before
    before = decompressed(store, "SelectedBytes")
    kept = run_detection(store, created, WINDOW_FROM, WINDOW_TO, omit=UNUSED_COLUMNS)
    read = decompressed(store, "SelectedBytes") - before

    assert read < every / 4, (read, every)
    assert kept.columns == whole.columns  # the rule's columns, as the detections table lists them
    assert "rawLog" in whole.rows[0] and "rawLog" not in kept.rows[0]
    assert [row["id"] for row in kept.rows] == [row["id"] for row in whole.rows]
    assert kept.rows[0]["resources"] == ["token-0"] and "actor" in kept.rows[0]
