"""Sink: the log store, behind one interface, with the same DDL and SQL on both engines.

- `chdb://<path>` (the default): ClickHouse embedded in this process through chDB. Only one process
  may own a path: chDB holds an flock on `<path>/status` while open, and a second process fails
  with a bare "Error initializing EmbeddedServer" (the reason, "Cannot lock file", goes to stderr).
  So the store probes that lock first and raises StoreBusy with a sentence that says what to do.
  Within one process, sessions on the same path share one engine, and a process can hold only one
  path at a time (chDB refuses another path while one is open; once every session of it is
  closed, another path opens fine, and the same path reopens with its data). A store killed with
  -9 leaves `status` unlocked; the next open takes it over.
- `clickhouse://user:password@host:8123/database` (or `clickhouses://` for HTTPS): a ClickHouse
  server through clickhouse-connect.

Rows are sent as one JSON array in `JSONEachRow`, one orjson call per batch: of the hand-overs
measured (JSON formats, Native, ArrowStream, chDB's `Python()` table function), it costs the least
in all once the Python side is counted (figures in docs/benchmarks-log.md). A column a row leaves
out (`normalize.OMITTED_DEFAULTS`) is stored as its type's default, on both engines. Each INSERT
makes a part, so the collector inserts a page at a time and bulk loads a few thousand rows at once.
An INSERT is all-or-nothing only within one partition: rows of two months make two parts,
committed one after the other. Rows older than their sourceTTL are dropped at the next merge.

One ChdbLogStore may be shared by threads (the service's collector job and its web requests):
chDB runs concurrent SELECTs on one session fine, but any query on a session with a streaming
insert open fails ("Cannot run a query while a streaming insert is active on this connection"),
so the store serializes its calls on the session with a lock. SQL that people type does not take
that lock: `user_query` runs it on sessions of its own (`user_queries`), which run alongside the
collector's session on the same engine (measured in benchmarks/heavy_queries.py).

Values in SQL are quoted literals built by `sql_string` rather than engine-side parameters (chDB
passes parameters through unquoted), so both engines receive the exact same text. The exception is
`query(sql, params=...)`, for SQL written with ClickHouse's typed placeholders (`{name:Type}`,
detections): both engines bind those natively, and a value is text the engine parses as its type.
chDB hands the value over as-is in ClickHouse's escaped text format (a backslash starts an escape,
a tab or newline ends the value), so the store escapes it first; clickhouse-connect escapes its own.
Every session runs with `session_timezone = 'UTC'`: the table's DateTime columns carry no zone,
and results must not depend on the machine's. That setting needs ClickHouse 23.6 or later, and
`print_pretty_type_names` 24.1 or later; older servers refuse them.
"""

# Every value reaches SQL through sql_string / sql_time / int(), hence no S608 findings to act on.
# ruff: noqa: S608

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.normalize import Row
from kandji_bridge.logs.schema import (
    ADD_RECEIVED_AT_INDEX,
    CHDB_DDL,
    CHDB_TABLE_SETTINGS,
    DDL,
    LOGS_TABLE,
    QUARANTINE_TABLE,
)
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries, query_limits

SESSION_SETTINGS = {
    "session_timezone": "UTC",
    "output_format_json_quote_64bit_integers": 0,  # counts as JSON numbers
    "output_format_json_named_tuples_as_objects": 1,  # enrichments as {"data": ..., "name": ...}
    "print_pretty_type_names": 0,  # DESCRIBE: types on one line, as RunReveal writes them
}
INSERT_SETTINGS = {
    "input_format_json_named_tuples_as_objects": 0,  # enrichments are [data, name, ...] arrays
    "date_time_input_format": "best_effort",  # orjson writes "2025-03-04T16:29:55+00:00"
}
READ_ONLY_STATEMENTS = ("select", "with", "show", "describe", "desc", "explain", "exists")
_MAX_IN_LIST = 2_000  # keeps the IN list far below max_query_size (256 KiB)
_PURGE_INTERVAL = 1.0  # seconds between two purges of the embedded engine's freed pages


class LogStoreError(BridgeError):
    """The log store cannot be opened or refused an operation."""


class StoreBusy(LogStoreError):
    """Another process owns the embedded store."""


class StoreWriteError(LogStoreError):
    """An insert the engine did not store (a full disk, a read-only folder, a refusal)."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a source's stored history ends: the latest eventTime and the events stored at it."""

    event_time: datetime
    event_ids: frozenset[str]


@dataclass(frozen=True)
class QuarantineEntry:
    """An event that could not be normalized, kept whole with the reason."""

    source_id: str
    reason: str
    raw_log: str
    kandji_event_id: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class DamagedPart:
    """A part of a table the engine could not read and moved aside (into `detached/`): its rows
    are missing from every query until it is restored or its events are collected again."""

    table: str
    name: str  # as moved, e.g. broken-on-start_202610_1_1_1
    reason: str  # the engine's prefix: broken-on-start, unexpected, ...
    path: str
    partition: str  # kandji_logs: the month, YYYYMM
    rows: int | None  # from the part's count.txt, when the store is on this machine


# Why the engine moves a part aside that are damage; a part detached by hand has no reason.
DAMAGE_REASONS = ("broken", "unexpected", "covered-by-broken", "noquorum")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]


class LogStore(Protocol):
    """What the collector, the CLI and the service use; both engines implement it."""

    display_url: str

    def ensure_schema(self) -> None: ...

    def insert(self, rows: Sequence[Row]) -> int: ...

    def insert_quarantine(self, entries: Sequence[QuarantineEntry]) -> int: ...

    def existing_event_ids(
        self,
        source_id: str,
        event_ids: Iterable[str],
        between: tuple[datetime, datetime] | None = None,
    ) -> set[str]: ...

    def latest_checkpoint(
        self, source_id: str, not_after: datetime | None = None
    ) -> Checkpoint | None: ...

    def damaged_parts(self) -> list[DamagedPart]: ...

    def count(self, source_id: str | None = None) -> int: ...

    def quarantine_count(self, source_id: str | None = None) -> int: ...

    def quarantined(
        self, source_id: str | None = None, limit: int = 100
    ) -> list[QuarantineEntry]: ...

    def query(
        self, sql: str, *, read_only: bool = True, params: Mapping[str, str] | None = None
    ) -> QueryResult: ...

    def user_query(
        self, sql: str, *, limit: int | None = None, user: str = ""
    ) -> tuple[QueryResult, bool]: ...

    def cancel_user_queries(self) -> None: ...

    def user_queries_running(self) -> int: ...

    def close(self) -> None: ...


def open_log_store(url: str) -> LogStore:
    """The store a `chdb://` or `clickhouse://` URL names, schema not yet ensured."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "chdb" and rest:
        return ChdbLogStore(rest)
    if scheme in ("clickhouse", "clickhouses") and rest:
        return ClickHouseLogStore.from_url(url)
    raise LogStoreError(
        f"The log store URL {mask_url(url)!r} is not usable; write chdb://<folder> or "
        "clickhouse://user:password@host:8123/database."
    )


def mask_url(url: str) -> str:
    """The URL with its password replaced, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


def sql_string(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, everything else verbatim."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_time(value: datetime) -> str:
    return f"toDateTime({int(value.timestamp())}, 'UTC')"


class SqlLogStore:
    """Everything above three primitives; the engine classes supply the primitives."""

    display_url: str

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
        for statement in DDL:
            self._execute(statement)
        # An ALTER rewrites the table's metadata even when it changes nothing, and on a full disk
        # chDB left that file empty and the store unable to open again: only when it is needed.
        index = self._select(
            "SELECT count() FROM system.data_skipping_indices WHERE database = currentDatabase() "
            f"AND table = {sql_string(LOGS_TABLE)} AND name = 'received_at'"
        )
        if not int(index.rows[0][0]):
            self._execute(ADD_RECEIVED_AT_INDEX)

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
        tables = ", ".join(map(sql_string, (LOGS_TABLE, QUARANTINE_TABLE)))
        result = self._select(
            "SELECT table, name, reason, path, partition_id FROM system.detached_parts "
            f"WHERE database = currentDatabase() AND table IN ({tables}) ORDER BY table, name"
        )
        return [
            DamagedPart(table, name, reason, path, partition or "", _part_rows(path))
            for table, name, reason, path, partition in result.rows
            if reason.startswith(DAMAGE_REASONS)
        ]

    def count(self, source_id: str | None = None) -> int:
        return self._count(LOGS_TABLE, source_id)

    def quarantine_count(self, source_id: str | None = None) -> int:
        return self._count(QUARANTINE_TABLE, source_id)

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
        are accepted. SQL that a person typed goes through `user_query` instead.

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

    def user_query(
        self, sql: str, *, limit: int | None = None, user: str = ""
    ) -> tuple[QueryResult, bool]:
        """SQL a person typed, from any front end: the one way such SQL reaches the engine.

        It runs only if `sql_guard` finds it reads and stays inside the log store, on a read-only
        session of its own under the time and memory limits, and only while `user` (and everyone)
        has fewer queries running than the caps allow. With `limit`: at most that many rows, and
        whether there were more.
        """
        from kandji_bridge.logs import sql_guard  # the guard imports this module

        with self._user_queries.session(user) as select:
            return sql_guard.run_read_only(select, sql, limit, self._user_queries.limits)

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


def _part_rows(path: str) -> int | None:
    try:
        return int((Path(path) / "count.txt").read_text())
    except (OSError, ValueError):
        return None


def open_ready_store(url: str) -> tuple[LogStore, str | None]:
    """The log store at `url`, its schema ensured, and a sentence on the damaged parts the engine
    moved aside when it opened (None when there are none): the caller says it to the user."""
    store = open_log_store(url)
    try:
        store.ensure_schema()
        return store, describe_damage(store.damaged_parts())
    except BaseException:
        store.close()
        raise


def describe_damage(parts: Sequence[DamagedPart]) -> str | None:
    """One sentence for the user: which parts were moved aside, where, and how to recover."""
    if not parts:
        return None
    described = []
    for part in parts:
        rows = f"{part.rows:,} rows" if part.rows is not None else "rows not known"
        month = part.partition
        period = ""
        if part.table == LOGS_TABLE and len(month) == 6 and month.isdigit():
            first = datetime(int(month[:4]), int(month[4:]), 1)
            last = datetime(first.year + first.month // 12, first.month % 12 + 1, 1) - timedelta(
                days=1
            )
            period = f" of {first:%Y-%m} (--from {first:%Y-%m-%d} --to {last:%Y-%m-%d})"
        described.append(f"{part.table}{period}, {rows}, moved to {part.path}")
    return (
        f"The log store found {len(parts)} damaged part{'s' if len(parts) > 1 else ''} it could "
        f"not read and moved aside, so their events are missing from queries: "
        f"{'; '.join(described)}; restore the store from a backup, or collect that period again "
        "with `kandji-bridge logs resync SOURCE --from ... --to ...`, then delete the moved "
        "folder to clear this notice."
    )


def _settings_clause(settings: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} = {sql_string(value) if isinstance(value, str) else value}"
        for key, value in settings.items()
    )


def _query_error(exc: Exception) -> LogStoreError:
    """One sentence from ClickHouse's message: its first line, without the stack trace."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LogStoreError(f"The log store refused the query: {message}")


# Paths this process has open: its own flock on <path>/status must not read as another owner's.
_open_here: Counter[str] = Counter()


class ChdbLogStore(SqlLogStore):
    """The embedded store: one chDB session on a folder (or ":memory:")."""

    def __init__(self, path: str, limits: QueryLimits | None = None) -> None:
        from chdb import session  # imported here: loading the engine costs time and memory

        in_memory = path == ":memory:"
        self.path = path if in_memory else os.path.realpath(Path(path).expanduser())
        self.display_url = f"chdb://{self.path}"
        self._session = None
        self._user_queries = UserQueries(
            limits or query_limits(), self._open_user_session, self._kill_user_queries
        )
        self._lock = threading.Lock()  # see the module docstring: one call at a time
        self._purge = True
        self._purged_at = float("-inf")
        self._rows_seen: dict[str, int] = {}  # each table's count() after this store's last insert
        if not in_memory:
            try:
                Path(self.path).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LogStoreError(
                    f"Cannot create the log store folder {self.path} ({exc.strerror}); "
                    "set KANDJI_BRIDGE_LOG_STORE to chdb://<a folder you can write to>."
                ) from exc
            if not _open_here[self.path] and _owned_elsewhere(self.path):
                raise _busy(self.path)
        try:
            self._session = session.Session(self.path)
        except RuntimeError as exc:
            if not in_memory and not _open_here[self.path] and _owned_elsewhere(self.path):
                raise _busy(self.path) from exc
            raise _open_error(self.path, exc) from exc
        _open_here[self.path] += 1
        self._session.query(f"SET {_settings_clause(SESSION_SETTINGS)}")
        self._insert_prefix = f"INSERT INTO {{table}} SETTINGS {_settings_clause(INSERT_SETTINGS)}"

    def ensure_schema(self) -> None:
        super().ensure_schema()
        # Brings a table created by an earlier version up to date, only when it needs it (as the
        # index above).
        engine = self._select(
            "SELECT engine_full FROM system.tables "
            f"WHERE database = currentDatabase() AND name = {sql_string(LOGS_TABLE)}"
        )
        if not all(
            f"{key} = {value}" in engine.rows[0][0] for key, value in CHDB_TABLE_SETTINGS.items()
        ):
            self._execute(CHDB_DDL)

    def _execute(self, sql: str) -> None:
        try:
            with self._lock:
                self._open_session().query(sql)
        except RuntimeError as exc:
            raise self._engine_error(exc) from exc

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        bound = {name: _escaped(value) for name, value in params.items()} if params else None
        try:
            with self._lock:
                session = self._open_session()
                try:
                    payload = session.query(sql, "JSONCompact", params=bound).bytes()
                except RuntimeError:
                    _drain(session)
                    raise
        except RuntimeError as exc:
            raise _query_error(exc) from exc
        return _parse_json_compact(payload)

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert, then confirm by the table's row count: True when it grew by exactly `rows`.

        The streaming insert reports success, and its `rows_written`, even when nothing reached
        the disk (measured with chDB 4.4 on a full disk and on a folder remounted read-only: no
        error, rows_written 500, count() unchanged). count() without a filter is read from the
        parts' metadata, ~1.5 ms; the count after the previous insert stands for the count
        before this one, so confirming costs one query. Anything else that changed the count
        meanwhile (a TTL or deduplicating merge, another session on this folder) reads as a
        mismatch, and the caller then checks the rows themselves.
        """
        try:
            with self._lock:
                session = self._open_session()
                before = self._rows_seen.pop(table, None)
                if before is None:
                    before = _row_count(session, table)
                prefix = self._insert_prefix.format(table=table)
                with session.send_insert(prefix, "JSONEachRow") as inserter:
                    inserter.append(body)
                    inserter.finish()
                after = _row_count(session, table)
                self._rows_seen[table] = after
                self._release_freed_memory()
        except RuntimeError as exc:
            raise self._engine_error(exc) from exc
        return after == before + rows

    def _engine_error(self, exc: Exception) -> LogStoreError:
        """A full disk or a read-only folder said as such; other refusals as the engine put them."""
        message = str(exc)
        if any(marker in message for marker in _DISK_MARKERS) and self.path != ":memory:":
            return StoreWriteError(
                f"The log store could not write to {self.path}: {_disk_state(self.path, self.path)}"
            )
        return _query_error(exc)

    def _write_error(self, table: str, missing: int, rows: int) -> StoreWriteError:
        folder = self.path
        if folder != ":memory:":
            with contextlib.suppress(LogStoreError, IndexError):
                folder = self._select(
                    "SELECT data_paths[1] FROM system.tables "
                    f"WHERE database = currentDatabase() AND name = {sql_string(table)}"
                ).rows[0][0]
        lost = f"The log store did not store {missing:,} of the {rows:,} rows written to {table}"
        if folder == ":memory:":
            return StoreWriteError(f"{lost}, without an error; {_RUN_AGAIN}")
        return StoreWriteError(f"{lost}: {_disk_state(self.path, folder)}")

    def _release_freed_memory(self) -> None:
        """Hand the pages the engine has freed back to the OS, at most once a second.

        chDB's allocator (jemalloc) keeps freed pages for reuse and returns them after a decay
        time; during a backfill, inserts and merges free memory faster than it decays, and those
        idle pages were 40-50 MB of the process's resident memory. The purge itself takes about
        0.1 ms, but the next insert then faults its pages in again (zeroed by the kernel): after
        every 5,000-row insert that was ~3 µs of CPU per row, 20% of the insert. Once a second
        keeps the memory bound and leaves most inserts the pages the previous one freed.
        Builds without jemalloc refuse the statement: then it is not tried again.
        """
        if self._purge and time.monotonic() - self._purged_at >= _PURGE_INTERVAL:
            try:
                self._session.query("SYSTEM JEMALLOC PURGE")
            except RuntimeError:
                self._purge = False
            self._purged_at = time.monotonic()

    def _open_session(self) -> Any:
        if self._session is None:
            raise LogStoreError("The log store is closed; open it again to run this.")
        return self._session

    def _open_user_session(self, comment: str) -> "_ChdbUserSession":
        """Another session on the same engine (and data), read-only, with the user limits."""
        from chdb import session

        self._open_session()  # the engine stays up only while the store's own session is open
        try:
            opened = session.Session(self.path)
        except RuntimeError as exc:
            raise _query_error(exc) from exc
        settings = {**SESSION_SETTINGS, **self._user_queries.limits.engine_settings(comment)}
        try:
            opened.query(f"SET {_settings_clause(settings)}")
            opened.query("SET readonly = 1")  # last: from here on no setting can change
        except RuntimeError as exc:
            opened.close()
            raise _query_error(exc) from exc
        return _ChdbUserSession(opened)

    def close(self) -> None:
        self._user_queries.close()  # first: it stops running user queries through the session
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                _open_here[self.path] -= 1


_DISK_MARKERS = ("NOT_ENOUGH_SPACE", "No space left on device", "Read-only file system")
_FULL_BELOW = 64 * 1024 * 1024  # chDB reserves a few MB per insert and more per merge
_RUN_AGAIN = (
    "nothing already stored is lost, and the next run collects these events again "
    "(no checkpoint moved past them)."
)


def _row_count(session: Any, table: str) -> int:
    return int(session.query(f"SELECT count() FROM {table}", "CSV").bytes())


def _disk_state(folder: str, written: str) -> str:
    """The end of a write-failure sentence: what is wrong with the disk under `written` (the
    table's own folder, which may be a mount of its own), said of the store `folder`."""
    try:
        free = shutil.disk_usage(written).free
        read_only = bool(os.statvfs(written).f_flag & os.ST_RDONLY) or not os.access(
            written, os.W_OK
        )
    except OSError as exc:
        return (
            f"its folder {folder} cannot be read ({exc.strerror}); check the disk it is on, "
            f"then run the command again; {_RUN_AGAIN}"
        )
    if read_only:
        return (
            f"the folder {folder} is read-only ({_size(free)} free on its disk); make it "
            "writable (or point KANDJI_BRIDGE_LOG_STORE at a writable folder), then run the "
            f"command again; {_RUN_AGAIN}"
        )
    if free < _FULL_BELOW:
        return (
            f"the disk holding {folder} is full ({_size(free)} free); free some space there (or "
            "point KANDJI_BRIDGE_LOG_STORE at a bigger disk), then run the command again; "
            f"{_RUN_AGAIN}"
        )
    return (
        f"the engine accepted them but they are not there ({_size(free)} free on the disk "
        f"holding {folder}); check that disk and the folder's permissions, then run the command "
        f"again; {_RUN_AGAIN}"
    )


def _size(free: int) -> str:
    if free >= 1024**3:
        return f"{free / 1024**3:.1f} GB"
    if free >= 1024**2:
        return f"{free / 1024**2:.1f} MB"
    return f"{free / 1024:.0f} KB"


def _owned_elsewhere(path: str) -> bool:
    """Whether another process holds chDB's lock on <path>/status right now."""
    try:
        fd = os.open(Path(path) / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _busy(path: str) -> StoreBusy:
    return StoreBusy(
        f"The log store {path} is in use by another kandji-bridge process (is `serve` "
        "running?); stop it, or run the command through the running service."
    )


def _open_error(path: str, exc: Exception) -> LogStoreError:
    message = str(exc)
    if "already initialized with path" in message:
        return LogStoreError(
            f"This process already has another embedded log store open, so {path} cannot be "
            "opened too; close the other store first."
        )
    try:
        unwritable = bool(os.statvfs(path).f_flag & os.ST_RDONLY) or not os.access(path, os.W_OK)
        full = shutil.disk_usage(path).free < _FULL_BELOW
    except OSError:
        unwritable = full = False
    if unwritable or full:  # chDB says only "Error initializing EmbeddedServer" then
        return StoreWriteError(f"Cannot open the log store {path}: {_disk_state(path, path)}")
    return LogStoreError(f"Cannot open the log store {path}: {_first_line(exc)}")


def _escaped(value: str) -> str:
    """A parameter value in ClickHouse's escaped text format, as the engine reads it."""
    return value.translate(_ESCAPES)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def _drain(session: Any) -> None:
    """A query that fails while it runs (stopped by max_execution_time, or a value it cannot
    convert, such as toUInt32('abc')) leaves its partial output in the chDB session, in front of
    the next query's, which then cannot be parsed (seen with chDB 4.4): one throwaway query takes
    it. After a query that failed before running, it is just a SELECT 1."""
    with contextlib.suppress(RuntimeError):
        session.query("SELECT 1", "JSONCompact").bytes()


class _ChdbUserSession:
    """A user-query session: used by one query at a time (UserQueries hands it out)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def select(self, sql: str) -> QueryResult:
        try:
            payload = self._session.query(sql, "JSONCompact").bytes()
        except RuntimeError as exc:
            _drain(self._session)  # a stopped query's output must not reach the next one
            raise _query_error(exc) from exc
        return _parse_json_compact(payload)

    def close(self) -> None:
        self._session.close()


def _parse_json_compact(payload: bytes) -> QueryResult:
    if not payload.strip():  # statements without a result set
        return QueryResult([], [], [])
    document = orjson.loads(payload)
    meta = document.get("meta", [])
    return QueryResult(
        columns=[column["name"] for column in meta],
        types=[column["type"] for column in meta],
        rows=document.get("data", []),
    )


class ClickHouseLogStore(SqlLogStore):
    """A ClickHouse server over HTTP(S), through clickhouse-connect."""

    def __init__(
        self,
        client: Any,
        display_url: str,
        connect: Any = None,
        limits: QueryLimits | None = None,
    ) -> None:
        self._client = client
        self.display_url = display_url
        self._connect = connect  # settings -> a new client: one per user-query session
        self._user_queries = UserQueries(
            limits or query_limits(), self._open_user_session, self._kill_user_queries
        )

    @classmethod
    def from_url(cls, url: str) -> "ClickHouseLogStore":
        masked = mask_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise LogStoreError(
                f"The log store URL {masked!r} has an invalid port; "
                "write clickhouse://user:password@host:8123/database."
            ) from None
        secure = parts.scheme.lower() == "clickhouses"
        database = parts.path.strip("/") or "default"
        if not parts.hostname or "/" in database:
            raise LogStoreError(
                f"The log store URL {masked!r} needs a host and at most one database name; "
                "write clickhouse://user:password@host:8123/database."
            )
        import clickhouse_connect

        def connect(settings: dict[str, Any], *, server_session: bool = True) -> Any:
            try:
                return clickhouse_connect.get_client(
                    host=parts.hostname,
                    port=port or (8443 if secure else 8123),
                    username=unquote(parts.username or "default"),
                    password=unquote(parts.password or ""),
                    database=database,
                    secure=secure,
                    settings=settings,
                    # A user query's client runs one query at a time, in no server session.
                    autogenerate_session_id=server_session,
                )
            except Exception as exc:  # connect errors come in many classes; all mean the same
                raise LogStoreError(
                    f"Cannot reach the ClickHouse log store at {masked}: "
                    f"{_first_line(exc)}; check the host, port, user and password."
                ) from exc

        return cls(connect(SESSION_SETTINGS), masked, connect)

    def _execute(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as exc:
            raise _query_error(exc) from exc

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        try:
            payload = self._client.raw_query(sql, parameters=dict(params or {}), fmt="JSONCompact")
        except Exception as exc:
            raise _query_error(exc) from exc
        return _parse_json_compact(payload)

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert; True when the server's summary counts every row written (a server reports
        a full disk as an error, and the summary otherwise)."""
        try:
            summary = self._client.raw_insert(
                table, insert_block=body, settings=INSERT_SETTINGS, fmt="JSONEachRow"
            )
        except Exception as exc:
            raise _query_error(exc) from exc
        return getattr(summary, "written_rows", None) == rows

    def _write_error(self, table: str, missing: int, rows: int) -> StoreWriteError:
        return StoreWriteError(
            f"The ClickHouse log store at {self.display_url} did not store {missing:,} of the "
            f"{rows:,} rows written to {table}; check the server's disk and log, then run the "
            f"command again; {_RUN_AGAIN}"
        )

    def _open_user_session(self, comment: str) -> "_ClickHouseUserSession":
        """A client of its own, its settings sent with every query; the server's user decides
        what it may read, and the guard keeps it to statements that read."""
        if self._connect is None:
            raise LogStoreError("This log store cannot run user queries; open it from its URL.")
        settings = {**SESSION_SETTINGS, **self._user_queries.limits.engine_settings(comment)}
        return _ClickHouseUserSession(self._connect(settings, server_session=False))

    def close(self) -> None:
        self._user_queries.close()
        self._client.close()


class _ClickHouseUserSession:
    def __init__(self, client: Any) -> None:
        self._client = client

    def select(self, sql: str) -> QueryResult:
        try:
            payload = self._client.raw_query(sql, fmt="JSONCompact")
        except Exception as exc:
            raise _query_error(exc) from exc
        return _parse_json_compact(payload)

    def close(self) -> None:
        self._client.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
