"""The receivedAt index that lets a detection's window skip the rest of the table."""

from kandji_bridge.logs.schema import LOGS_DDL
from kandji_bridge.logs.store import ChdbLogStore


def skip_indexes(store: ChdbLogStore) -> list[str]:
    return [
        row[0]
        for row in store.query(
            "SELECT name FROM system.data_skipping_indices WHERE table = 'kandji_logs' "
            "ORDER BY name"
        ).rows
    ]


def test_a_window_on_received_at_uses_the_index(store: ChdbLogStore) -> None:
    assert skip_indexes(store) == ["kandji_event_id", "received_at"]
    store.query(
        "INSERT INTO kandji_logs (id, receivedAt, eventTime) "
        "VALUES ('a', '2025-03-06 09:05:00', '2025-03-06 09:04:00')",
        read_only=False,
    )
    plan = "\n".join(
        row[0]
        for row in store.query(
            "EXPLAIN indexes = 1 SELECT * FROM kandji_logs WHERE receivedAt >= "
            "toDateTime('2025-03-06 09:00:00') AND receivedAt < toDateTime('2025-03-06 09:15:00')"
        ).rows
    )
    store.query("TRUNCATE TABLE kandji_logs", read_only=False)
    assert "Name: received_at" in plan


def test_a_table_created_without_the_index_gets_it(store: ChdbLogStore) -> None:
    store.query("DROP TABLE kandji_logs", read_only=False)
    old = LOGS_DDL.replace(",\n    INDEX received_at receivedAt TYPE minmax GRANULARITY 1", "")
    assert old != LOGS_DDL
    store.query(old, read_only=False)
    assert skip_indexes(store) == ["kandji_event_id"]
    store.ensure_schema()
    assert skip_indexes(store) == ["kandji_event_id", "received_at"]
