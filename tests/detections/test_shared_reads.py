"""The rules of a pack read the same window one after the other: what one run decompressed, the
next reads from the engine's uncompressed cache instead of decompressing it again."""

from datetime import timedelta

from kandji_bridge.detections import KANDJI_PACK
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
