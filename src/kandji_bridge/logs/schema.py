"""The `kandji_logs` table: RunReveal's 46 columns in its order, and the DDL both stores run.

The names and ClickHouse types are those of RunReveal's Kandji source table, exactly; a test
compares this list with RunReveal's page (tests/data/vendor-docs) and with `DESCRIBE TABLE`
on a table created from this DDL.
"""

LOGS_TABLE = "kandji_logs"
QUARANTINE_TABLE = "kandji_logs_quarantine"

ENRICHMENTS_TYPE = (
    "Array(Tuple(data Map(String, String), name String, provider String, type String, "
    "value String))"
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("workspaceID", "String"),
    ("sourceID", "String"),
    ("sourceType", "String"),
    ("sourceTTL", "UInt32"),
    ("receivedAt", "DateTime"),
    ("id", "String"),
    ("eventTime", "DateTime"),
    ("eventName", "String"),
    ("eventID", "String"),
    ("srcIP", "String"),
    ("srcASCountryCode", "String"),
    ("srcASNumber", "UInt32"),
    ("srcASOrganization", "String"),
    ("srcCity", "String"),
    ("srcConnectionType", "String"),
    ("srcISP", "String"),
    ("srcLatitude", "Float64"),
    ("srcLongitude", "Float64"),
    ("srcUserType", "String"),
    ("dstIP", "String"),
    ("dstASCountryCode", "String"),
    ("dstASNumber", "UInt32"),
    ("dstASOrganization", "String"),
    ("dstCity", "String"),
    ("dstConnectionType", "String"),
    ("dstISP", "String"),
    ("dstLatitude", "Float64"),
    ("dstLongitude", "Float64"),
    ("dstUserType", "String"),
    ("actor", "Map(String, String)"),
    ("tags", "Map(String, String)"),
    ("resources", "Array(String)"),
    ("serviceName", "String"),
    ("enrichments", ENRICHMENTS_TYPE),
    ("readOnly", "Bool"),
    ("rawLog", "String"),
    ("kandjiEventId", "String"),
    ("action", "String"),
    ("actorId", "String"),
    ("actorType", "String"),
    ("occurredAt", "String"),
    ("targetType", "String"),
    ("targetId", "String"),
    ("targetComponent", "String"),
    ("newState", "String"),
    ("metadata", "String"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)

# Memory of the embedded store: these keep a backfill's memory flat in the size of the history
# (figures in docs/benchmarks-log.md).
# - Background merges dominate the working memory, and with 46 columns (the Map, Array and Tuple
#   ones are several streams each) it is per stream. A merge into a wide part holds a compression
#   buffer of max_compress_block_size (1 MiB by default) for every stream at once: 64 KiB blocks
#   shrink that (LZ4 only finds matches within 64 KiB anyway, so compression is about the same).
#   And merges are vertical for every part (ClickHouse's default: from 131,072 rows and 11
#   columns), so a merge writes the sorting key first, then one column at a time.
# - Every insert and merge leaves parts that are outdated, in memory until the cleanup thread
#   removes them; by default it runs every 30-40 s and grows slower when idle, so during a
#   backfill (15 parts a second) thousands piled up and memory grew with the size of the history.
#   Cleaning every 1-2 s (at most every 10 s when idle) keeps that to a few dozen parts.
LOGS_TABLE_SETTINGS = {
    "max_compress_block_size": 65536,
    "vertical_merge_algorithm_min_rows_to_activate": 1,
    "vertical_merge_algorithm_min_columns_to_activate": 1,
    "cleanup_delay_period": 1,
    "cleanup_delay_period_random_add": 1,
    "max_cleanup_delay_period": 10,
}

# Background merges were a quarter of the CPU of a bulk load into chDB. A merge selector base of
# 10 instead of 5 merges parts when more of them have piled up, so each row is rewritten fewer
# times; a partition keeps a few more parts (about 10 per size level).
# The embedded engine only: the setting is recent (ClickHouse 25), older servers refuse it.
CHDB_TABLE_SETTINGS = {"merge_selector_base": 10}
CHDB_DDL = f"ALTER TABLE {LOGS_TABLE} MODIFY SETTING " + ", ".join(
    f"{key} = {value}" for key, value in CHDB_TABLE_SETTINGS.items()
)

# ReplacingMergeTree keyed by the stable `id` is a second line of defence against duplicates only:
# exactly-once never waits for a merge, because the collector drops already-stored event ids
# before it inserts. ORDER BY serves time-range queries per source; the month partition lets TTL
# drop whole parts; the TTL is LOGS_TTL (below). The bloom filter makes the collector's "which
# of these event ids are stored?" check cheap.
# Detections select their window on receivedAt, which the sorting key does not hold; receivedAt
# follows eventTime closely (a late or backfilled event is the exception), so a minmax index lets a
# 15-minute window skip almost every granule. Measured with the Kandji pack on 1M events (chDB,
# 2 shared cores): 1.38 s for the pack without the index, 0.48 s with it.
RECEIVED_AT_INDEX = "received_at receivedAt TYPE minmax GRANULARITY 1"

# A row expires sourceTTL days after its eventTime; sourceTTL 0 means "keep forever" (a zero-day
# TTL would delete at once). DateTime ends in 2106 and `eventTime + toIntervalDay(n)` wraps past it
# (to 1983-1990 for events of 2020-2026: expired at once), so the expiry is computed in seconds
# and held at DateTime's last second, which is also the "forever" of sourceTTL 0. The store
# brings a table made with an older TTL to this one (TTL_END marks it).
TTL_END = 4294967295  # DateTime's last second, 2106-02-07 06:28:15 UTC
LOGS_TTL = (
    f"toDateTime(least(if(sourceTTL = 0, {TTL_END}, toUInt32(eventTime) + (sourceTTL * 86400)), "
    f"{TTL_END}))"
)

# The explorer's facets, its Source select and its histogram count events per hour and per
# value of the filter columns; over a year of 50M events reading the table took seconds. This
# aggregate projection holds those counts (a few rows per hour and value combination), so the
# explorer reads whole hours from it and only the range's partial first and last hour from the
# rows (`logs.search`). ClickHouse keeps it in step on every insert, merge, TTL and mutation; a part
# without it yet is read from its rows, so results never depend on it. A ReplacingMergeTree only
# takes a projection with deduplicate_merge_projection_mode, and `rebuild` recounts it when a merge
# folds duplicates; lightweight_mutation_projection_mode keeps a `DELETE FROM` (someone cleaning
# up by hand) allowed, rebuilding it too. Added by ALTER (SqlLogStore.ensure_schema) to new and
# existing tables alike: the settings are unknown before ClickHouse 24.8, whose tables take the
# projection without them.
EXPLORER_PROJECTION = "explorer_hours"
EXPLORER_KEYS = "sourceID, toStartOfHour(eventTime), eventName, action, actorType, targetType"
EXPLORER_PROJECTION_DDL = (
    f"{EXPLORER_PROJECTION} (SELECT {EXPLORER_KEYS}, count() GROUP BY {EXPLORER_KEYS})"
)
PROJECTION_SETTINGS = ("deduplicate_merge_projection_mode", "lightweight_mutation_projection_mode")


def _logs_table(name: str, engine: str, on_cluster: str = "") -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster} (\n"
        + ",\n".join(f"    `{column}` {type_}" for column, type_ in COLUMNS)
        + ",\n    INDEX kandji_event_id kandjiEventId TYPE bloom_filter GRANULARITY 4"
        + f",\n    INDEX {RECEIVED_AT_INDEX}"
        + f"\n)\nENGINE = {engine}\n"
        "PARTITION BY toYYYYMM(eventTime)\n"
        "ORDER BY (sourceID, eventTime, id)\n"
        f"TTL {LOGS_TTL}\n"
        f"SETTINGS {', '.join(f'{key} = {value}' for key, value in LOGS_TABLE_SETTINGS.items())}"
    )


LOGS_DDL = _logs_table(LOGS_TABLE, "ReplacingMergeTree")


# Events that could not be normalized: kept whole with the reason, never dropped. `rawHash` makes a
# re-fetched bad event the same row (the store skips ones it already holds).
def _quarantine_table(name: str, engine: str, on_cluster: str = "") -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster} (\n"
        "    `sourceID` String,\n"
        "    `receivedAt` DateTime,\n"
        "    `kandjiEventId` String,\n"
        "    `reason` String,\n"
        "    `rawLog` String,\n"
        "    `rawHash` UInt64 MATERIALIZED cityHash64(rawLog)\n"
        f")\nENGINE = {engine}\n"
        "ORDER BY (sourceID, rawHash)"
    )


QUARANTINE_DDL = _quarantine_table(QUARANTINE_TABLE, "ReplacingMergeTree")

# A table created before the receivedAt index gets it (the store adds RECEIVED_AT_INDEX only when
# the index is missing); its older parts are indexed as they merge (until then a query reads them
# whole).

DDL: tuple[str, ...] = (LOGS_DDL, QUARANTINE_DDL)

# A server without replication keeps the hashes of its last inserts, so a page insert retried
# with the same insert_deduplication_token is stored once (replicated tables always do).
SERVER_TABLE_SETTINGS = {"non_replicated_deduplication_window": 1000}

# On a cluster each table is a Replicated table on every node (`<name>_local`, one replica path
# per shard) and a Distributed table of the product's own name over them, so every read, insert
# and user query keeps naming `kandji_logs`. Rows are sharded by their id's hash: a retried event
# lands on the shard already holding it, where ReplacingMergeTree can fold the two.
LOCAL_SUFFIX = "_local"
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def quote_name(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cluster_ddl(cluster: str, database: str) -> tuple[str, ...]:
    """The schema on a cluster, created ON CLUSTER: Replicated tables and Distributed ones."""
    on = f" ON CLUSTER {quote_name(cluster)}"
    db = quote_name(database)
    statements = []
    for table, create in ((LOGS_TABLE, _logs_table), (QUARANTINE_TABLE, _quarantine_table)):
        local = f"{table}{LOCAL_SUFFIX}"
        statements.append(
            create(f"{db}.{local}", f"ReplicatedReplacingMergeTree({REPLICA_PATH})", on)
        )
        statements.append(
            distributed_ddl(cluster, database, table, "id" if table == LOGS_TABLE else "rawLog")
        )
    return tuple(statements)


def distributed_ddl(cluster: str, database: str, table: str, sharded_by: str) -> str:
    """`table` ON CLUSTER as a Distributed table over every node's `<table>_local`, rows sharded
    by the hash of the column `sharded_by`."""
    db, local = quote_name(database), f"{table}{LOCAL_SUFFIX}"
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {quote_name(cluster)} "
        f"AS {db}.{local}\n"
        f"ENGINE = Distributed({_literal(cluster)}, {_literal(database)}, {_literal(local)}, "
        f"cityHash64({sharded_by}))"
    )
