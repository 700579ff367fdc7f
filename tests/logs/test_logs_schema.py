"""The kandji_logs table has exactly RunReveal's 46 columns: names, order and ClickHouse types."""

import re

from kandji_bridge.logs.schema import COLUMN_NAMES, COLUMNS, LOGS_DDL, LOGS_TTL, QUARANTINE_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from testdata import RUNREVEAL_KANDJI_SOURCE

# In RunReveal's page each table row reads "<name><Type>" with nothing between the two.
TABLE_ROW = re.compile(
    r"^([a-z][A-Za-z]*?)(String|UInt32|DateTime|Float64|Bool|Map\(.*\)|Array\(.*\))$"
)


def runreveal_columns() -> list[tuple[str, str]]:
    text = RUNREVEAL_KANDJI_SOURCE.read_text()
    table = text[text.index("Table: kandji_logs (46 columns)") :]
    columns = []
    for line in table.splitlines():
        match = TABLE_ROW.match(line.strip())
        if match:
            columns.append((match.group(1), match.group(2)))
    return columns


def test_schema_lists_runreveals_columns_exactly() -> None:
    expected = runreveal_columns()
    assert len(expected) == 46
    assert list(COLUMNS) == expected
    assert len(set(COLUMN_NAMES)) == 46


def test_created_table_describes_as_runreveals(chdb_store: ChdbLogStore) -> None:
    described = chdb_store.query("DESCRIBE TABLE kandji_logs")
    assert described.columns[:2] == ["name", "type"]
    assert [(row[0], row[1]) for row in described.rows] == runreveal_columns()


def test_engine_order_partition_and_ttl(chdb_store: ChdbLogStore) -> None:
    table = chdb_store.query(
        "SELECT engine, sorting_key, partition_key, create_table_query "
        "FROM system.tables WHERE name = 'kandji_logs'"
    )
    engine, sorting_key, partition_key, create = table.rows[0]
    assert engine == "ReplacingMergeTree"
    assert sorting_key == "sourceID, eventTime, id"
    assert partition_key == "toYYYYMM(eventTime)"
    assert f"TTL {LOGS_TTL}" in create
    assert "INDEX kandji_event_id kandjiEventId TYPE bloom_filter GRANULARITY 4" in create
    assert LOGS_DDL.startswith("CREATE TABLE IF NOT EXISTS kandji_logs (")


def test_quarantine_table(chdb_store: ChdbLogStore) -> None:
    described = chdb_store.query(f"DESCRIBE TABLE {QUARANTINE_TABLE}")
    assert [(row[0], row[1], row[2]) for row in described.rows] == [
        ("sourceID", "String", ""),
        ("receivedAt", "DateTime", ""),
        ("kandjiEventId", "String", ""),
        ("reason", "String", ""),
        ("rawLog", "String", ""),
        ("rawHash", "UInt64", "MATERIALIZED"),
    ]


def test_ensure_schema_twice_changes_nothing(chdb_store: ChdbLogStore) -> None:
    chdb_store.ensure_schema()
    assert chdb_store.count() == 0
    assert len(chdb_store.query("DESCRIBE TABLE kandji_logs").rows) == 46
