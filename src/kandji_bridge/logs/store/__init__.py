"""Sink: the log store, behind one interface, with the same DDL and SQL on both engines.

- `chdb://<path>` (the default): ClickHouse embedded in this process through chDB (`embedded`).
- `clickhouse://user:password@host:8123/database` (or `clickhouses://` for HTTPS): a ClickHouse
  server through clickhouse-connect (`server`).

`opening` turns a URL into a store; `interface` is what callers see (LogStore, its records and
errors); `sql_store` is what both engines share (the DDL, inserts and their confirmation, the
quarantine, the read queries); `sql` the SQL text and settings both receive; `disk` and `damage`
the sentences for a failed write and for damaged parts. Callers import from this package.
"""

from kandji_bridge.logs.store.damage import DamagedPart, describe_damage
from kandji_bridge.logs.store.embedded import ChdbLogStore, release_engine_pages
from kandji_bridge.logs.store.interface import (
    Checkpoint,
    LogStore,
    LogStoreError,
    QuarantineEntry,
    QueryResult,
    Select,
    StoreBusy,
    StoreWriteError,
)
from kandji_bridge.logs.store.opening import open_log_store, open_ready_store
from kandji_bridge.logs.store.server import ClickHouseLogStore, mask_url
from kandji_bridge.logs.store.sql import SESSION_SETTINGS, sql_string, sql_time
from kandji_bridge.logs.store.sql_store import SqlLogStore

__all__ = [
    "SESSION_SETTINGS",
    "ChdbLogStore",
    "Checkpoint",
    "ClickHouseLogStore",
    "DamagedPart",
    "LogStore",
    "LogStoreError",
    "QuarantineEntry",
    "QueryResult",
    "Select",
    "SqlLogStore",
    "StoreBusy",
    "StoreWriteError",
    "describe_damage",
    "mask_url",
    "open_log_store",
    "open_ready_store",
    "release_engine_pages",
    "sql_string",
    "sql_time",
]
