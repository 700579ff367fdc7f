"""What both engines share, above three primitives each engine supplies (`_execute`, `_select`,
`_insert_json`): the DDL, inserts and their count confirmation, the quarantine, and the read
queries the collector, the explorer and detections use.

Rows are sent as one JSON array in `JSONEachRow`, one orjson call per batch: of the hand-overs
measured (JSON formats, Native, ArrowStream, chDB's `Python()` table function), it costs the least
in all once the Python side is counted (figures in docs/benchmarks-log.md). A column a row leaves
out (`normalize.OMITTED_DEFAULTS`) is stored as its type's default, on both engines. Each INSERT
makes a part, so the collector inserts a page at a time and bulk loads a few thousand rows at once.
An INSERT is all-or-nothing only within one partition: rows of two months make two parts,
committed one after the other. Rows older than their sourceTTL are dropped at the next merge.
"""

# Every value reaches SQL through sql_string / sql_time / int(), hence no S608 findings to act on.
# ruff: noqa: S608

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import orjson

from kandji_bridge.logs.normalize import Row
from kandji_bridge.logs.schema import (
    DDL,
    EXPLORER_PROJECTION,
    EXPLORER_PROJECTION_DDL,
    LOCAL_SUFFIX,
    LOGS_TABLE,
    LOGS_TTL,
    PROJECTION_SETTINGS,
    QUARANTINE_TABLE,
    RECEIVED_AT_INDEX,
    TTL_END,
    quote_name,
)
from kandji_bridge.logs.store.damage import DAMAGE_REASONS, DamagedPart, part_rows
from kandji_bridge.logs.store.interface import (
    Checkpoint,
    LogStoreError,
    QuarantineEntry,
    QueryResult,
    Select,
    StoreWriteError,
)
from kandji_bridge.logs.store.sql import sql_string, sql_time
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries

READ_ONLY_STATEMENTS = ("select", "with", "show", "describe", "desc", "explain", "exists")
_MAX_IN_LIST = 2_000  # keeps the IN list far below max_query_size (256 KiB)


class SqlLogStore:
    """Everything above three primitives; the engine classes supply the primitives."""

    display_url: str
    _user_queries: UserQueries
    # A ClickHouse cluster's name: the schema is made ON CLUSTER (schema.cluster_ddl), and the
    # rows live in each node's `<table>_local`, which is what DDL and mutations then name.
    cluster: str | None = None
    database: str = "default"

    def _ddl(self) -> tuple[str, ...]:
        return DDL

    def _data_table(self, table: str) -> str:
        """The table that holds the rows: `table` itself, or on a cluster each node's own."""
        return f"{table}{LOCAL_SUFFIX}" if self.cluster else table

    def _altered(self, table: str) -> str:
        """`table`'s rows as an ALTER names them (ON CLUSTER on a cluster)."""
        on = f" ON CLUSTER {quote_name(self.cluster)}" if self.cluster else ""
        return f"{self._data_table(table)}{on}"

    def _execute(self, sql: str) -> None:
        raise NotImplementedError

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        raise NotImplementedError

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert `rows` rows; True when the engine confirmed that many are now stored."""
        raise NotImplementedError

    def _write_error(self, table: str, missing: int, rows: int) -> StoreWriteError:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "SqlLogStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_schema(self) -> None:
        for statement in self._ddl():
            self._execute(statement)
        # An ALTER rewrites the table's metadata even when it changes nothing, and on a full disk
        # chDB left that file empty and the store unable to open again: only when it is needed.
        index = self._select(
            "SELECT count() FROM system.data_skipping_indices WHERE database = currentDatabase() "
            f"AND table = {sql_string(self._data_table(LOGS_TABLE))} AND name = 'received_at'"
        )
        if not int(index.rows[0][0]):
            self._execute(
                f"ALTER TABLE {self._altered(LOGS_TABLE)} "
                f"ADD INDEX IF NOT EXISTS {RECEIVED_AT_INDEX}"
            )
        created = self._select(
            "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
            f"AND name = {sql_string(self._data_table(LOGS_TABLE))}"
        ).rows[0][0]
        # A table made with the TTL that wrapped past 2106 (it deleted rows kept forever, or
        # for decades, at their first merge) gets the one that cannot wrap; the engine then
        # recomputes its parts' expiry.
        if str(TTL_END) not in created:
            self._execute(f"ALTER TABLE {self._altered(LOGS_TABLE)} MODIFY TTL {LOGS_TTL}")
        if f"PROJECTION {EXPLORER_PROJECTION} " not in created:
            self._add_explorer_projection()

    def _add_explorer_projection(self) -> None:
        """Add the explorer's projection (schema.EXPLORER_PROJECTION) and build it for the rows
        already stored: a background mutation, so a store of a year opens at once and the
        explorer reads the parts not built yet from their rows meanwhile."""
        altered = self._altered(LOGS_TABLE)
        known = self._select(
            "SELECT name FROM system.merge_tree_settings "
            f"WHERE name IN ({', '.join(map(sql_string, PROJECTION_SETTINGS))}) ORDER BY name"
        )
        if known.rows:
            modes = ", ".join(f"{name} = 'rebuild'" for (name,) in known.rows)
            self._execute(f"ALTER TABLE {altered} MODIFY SETTING {modes}")
        self._execute(
            f"ALTER TABLE {altered} ADD PROJECTION IF NOT EXISTS {EXPLORER_PROJECTION_DDL}"
        )
        self._execute(f"ALTER TABLE {altered} MATERIALIZE PROJECTION {EXPLORER_PROJECTION}")

    def insert(self, rows: Sequence[Row]) -> int:
        """Append rows as given: the caller has dropped the event ids already stored.

        Returns only once the rows are confirmed stored; otherwise raises StoreWriteError, so no
        checkpoint (derived from what is stored) ever moves past rows that are not there.
        """
        if rows and not self._insert_json(LOGS_TABLE, orjson.dumps(rows), len(rows)):
            self._confirm(LOGS_TABLE, len(rows), self._logs_held(rows))
        return len(rows)

    def _logs_held(self, rows: Sequence[Row]) -> int:
        """How many of these rows' event ids the store holds (rows are unique per source), plus
        the rows already past their sourceTTL: the engine may drop those as soon as they land."""
        soon = datetime.now(UTC) + timedelta(minutes=1)
        held = sum(
            1
            for row in rows
            if row.get("sourceTTL") and row["eventTime"] + timedelta(days=row["sourceTTL"]) <= soon
        )
        for source_id in {row["sourceID"] for row in rows}:
            mine = [row for row in rows if row["sourceID"] == source_id]
            times = [row["eventTime"] for row in mine]
            held += len(
                self.existing_event_ids(
                    source_id, (row["kandjiEventId"] for row in mine), (min(times), max(times))
                )
            )
        return held

    def _confirm(self, table: str, rows: int, held: int) -> None:
        if held < rows:
            raise self._write_error(table, rows - held, rows)

    def insert_quarantine(self, entries: Sequence[QuarantineEntry]) -> int:
        """Store new quarantine entries; an entry already held (same source and raw) is skipped."""
        fresh: dict[tuple[str, str], QuarantineEntry] = {}
        for entry in entries:
            fresh.setdefault((entry.source_id, entry.raw_log), entry)
        for source_id in {source for source, _ in fresh}:
            ids = {e.kandji_event_id for (s, _), e in fresh.items() if s == source_id}
            held = self._select(
                f"SELECT rawLog FROM {QUARANTINE_TABLE} WHERE sourceID = {sql_string(source_id)} "
                f"AND kandjiEventId IN ({', '.join(map(sql_string, sorted(ids)))})"
            )
            for (raw,) in held.rows:
                fresh.pop((source_id, raw), None)
        if fresh:
            body = orjson.dumps(
                [
                    {
                        "sourceID": e.source_id,
                        "receivedAt": e.received_at.astimezone(UTC).replace(microsecond=0),
                        "kandjiEventId": e.kandji_event_id,
                        "reason": e.reason,
                        "rawLog": e.raw_log,
                    }
                    for e in fresh.values()
                ]
            )
            if not self._insert_json(QUARANTINE_TABLE, body, len(fresh)):
                self._confirm(QUARANTINE_TABLE, len(fresh), self._quarantine_held(fresh))
        return len(fresh)

    def _quarantine_held(self, entries: dict[tuple[str, str], QuarantineEntry]) -> int:
        held = 0
        for source_id in {source for source, _ in entries}:
            raws = [raw for source, raw in entries if source == source_id]
            result = self._select(
                f"SELECT uniqExact(rawLog) FROM {QUARANTINE_TABLE} "
                f"WHERE sourceID = {sql_string(source_id)} "
                f"AND rawLog IN ({', '.join(map(sql_string, raws))})"
            )
            held += int(result.rows[0][0])
        return held

    def existing_event_ids(
        self,
        source_id: str,
        event_ids: Iterable[str],
        between: tuple[datetime, datetime] | None = None,
    ) -> set[str]:
        """The given Kandji event ids this source already has stored (for exactly-once).

        `between` (the min and max eventTime of the candidates) lets the primary key skip
        everything outside that range; without it the bloom-filter index does the work.
        """
        wanted = sorted(set(event_ids))
        found: set[str] = set()
        time_filter = ""
        if between is not None:
            low, high = sql_time(between[0]), sql_time(between[1])
            time_filter = f" AND eventTime BETWEEN {low} AND {high}"
        for start in range(0, len(wanted), _MAX_IN_LIST):
            chunk = wanted[start : start + _MAX_IN_LIST]
            result = self._select(
                f"SELECT DISTINCT kandjiEventId FROM {LOGS_TABLE} "
                f"WHERE sourceID = {sql_string(source_id)}{time_filter} "
                f"AND kandjiEventId IN ({', '.join(map(sql_string, chunk))})"
            )
            found.update(row[0] for row in result.rows)
        return found

    def latest_checkpoint(
        self, source_id: str, not_after: datetime | None = None
    ) -> Checkpoint | None:
        """Where the source's stored history ends; events dated after `not_after` are left out."""
        source = sql_string(source_id)
        ceiling = f" AND eventTime <= {sql_time(not_after)}" if not_after is not None else ""
        result = self._select(
            f"SELECT toUnixTimestamp(eventTime), groupUniqArray(kandjiEventId) FROM {LOGS_TABLE} "
            f"WHERE sourceID = {source} AND eventTime = "
            f"(SELECT max(eventTime) FROM {LOGS_TABLE} WHERE sourceID = {source}{ceiling}) "
            "GROUP BY eventTime"
        )
        if not result.rows:
            return None
        seconds, ids = result.rows[0]
        return Checkpoint(datetime.fromtimestamp(int(seconds), UTC), frozenset(ids))

    def damaged_parts(self) -> list[DamagedPart]:
        """The parts of our tables the engine moved aside as damaged (on open, or on a read)."""
        tables = ", ".join(
            sql_string(self._data_table(table)) for table in (LOGS_TABLE, QUARANTINE_TABLE)
        )
        result = self._select(
            "SELECT table, name, reason, path, partition_id FROM system.detached_parts "
            f"WHERE database = currentDatabase() AND table IN ({tables}) ORDER BY table, name"
        )
        return [
            DamagedPart(table, name, reason, path, partition or "", part_rows(path))
            for table, name, reason, path, partition in result.rows
            if reason.startswith(DAMAGE_REASONS)
        ]

    def set_retention(self, source_id: str, days: int) -> None:
        """Keep the source's stored events `days` days: the table's TTL reads each row's
        sourceTTL, so the rows already stored get the new value too (waited for, so a pass
        that follows writes after it)."""
        self._execute(
            f"ALTER TABLE {self._altered(LOGS_TABLE)} UPDATE sourceTTL = {int(days)} "
            f"WHERE sourceID = {sql_string(source_id)} SETTINGS mutations_sync = 2"
        )

    def count(self, source_id: str | None = None) -> int:
        return self._count(LOGS_TABLE, source_id)

    def quarantine_count(self, source_id: str | None = None) -> int:
        return self._count(QUARANTINE_TABLE, source_id)

    def delete_source_events(self, source_id: str) -> int:
        """Delete a source's stored events and quarantine entries, returning once the engine
        has (mutations_sync); the number of events there were."""
        held = self.count(source_id)
        for table in (LOGS_TABLE, QUARANTINE_TABLE):
            self._execute(
                f"ALTER TABLE {self._altered(table)} "
                f"DELETE WHERE sourceID = {sql_string(source_id)} "
                "SETTINGS mutations_sync = 2"
            )
        return held

    def quarantined(self, source_id: str | None = None, limit: int = 100) -> list[QuarantineEntry]:
        where = f" WHERE sourceID = {sql_string(source_id)}" if source_id is not None else ""
        result = self._select(
            "SELECT sourceID, toUnixTimestamp(receivedAt), kandjiEventId, reason, rawLog "
            f"FROM {QUARANTINE_TABLE}{where} ORDER BY receivedAt DESC LIMIT {int(limit)}"
        )
        return [
            QuarantineEntry(
                source_id=source,
                reason=reason,
                raw_log=raw,
                kandji_event_id=event_id,
                received_at=datetime.fromtimestamp(int(received), UTC),
            )
            for source, received, event_id, reason, raw in result.rows
        ]

    def query(
        self, sql: str, *, read_only: bool = True, params: Mapping[str, str] | None = None
    ) -> QueryResult:
        """Run the product's own SQL on the store's session; by default only statements that read
        are accepted. SQL that a person typed goes through `user_session` instead.

        `params` bind the SQL's `{name:Type}` placeholders, each value as text of its type.
        """
        statement = sql.strip().rstrip(";").strip()
        first_word = statement.split(None, 1)[0].lower() if statement else ""
        if read_only and first_word not in READ_ONLY_STATEMENTS:
            raise LogStoreError(
                "Only queries that read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) can run "
                f"here; this one starts with {first_word.upper() or 'nothing'}."
            )
        return self._select(statement, params)

    @property
    def query_limits(self) -> QueryLimits:
        """The time and memory limits and the caps every user query runs under."""
        return self._user_queries.limits

    def user_session(self, user: str) -> AbstractContextManager[Select]:
        """How to run the statements of one query `user` typed, or asked for (the explorer's
        count of a text over a whole range): on a read-only session of its own, under the time
        and memory limits, and only while `user` (and everyone) has fewer queries running than
        the caps allow (else QueryBusy at once). Typed SQL reaches the engine only this way,
        through `operations.queries.run_query` and its guard."""
        return self._user_queries.session(user)

    def cancel_user_queries(self) -> None:
        """Stop the running user queries and refuse new ones: the service is stopping."""
        self._user_queries.cancel_all()

    def user_queries_running(self) -> int:
        return self._user_queries.running()

    def _kill_user_queries(self, comment_prefix: str) -> None:
        self._execute(
            "KILL QUERY WHERE startsWith(Settings['log_comment'], "
            f"{sql_string(comment_prefix)}) ASYNC"
        )

    def _count(self, table: str, source_id: str | None) -> int:
        where = f" WHERE sourceID = {sql_string(source_id)}" if source_id is not None else ""
        return int(self._select(f"SELECT count() FROM {table}{where}").rows[0][0])
