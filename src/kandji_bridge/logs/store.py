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

Rows are sent as one JSON array in `JSONEachRow`: one orjson call per batch serializes 2-4x faster
than one call per row, and the engine's insert cost was the same, within noise, for newline-
separated JSONEachRow, JSONCompactEachRow and JSONCompactColumns. A column a row leaves out
(`normalize.OMITTED_DEFAULTS`) is stored as its type's default, on both engines. Columnar hand-overs
do not pay either (5,000-row inserts into chDB, one core): the engine takes Native bytes for ~3 µs
less CPU per row than this JSON and ArrowStream for ~1 µs less, but building the Arrow arrays in
Python (Map, Array and Tuple columns included) costs ~5 µs per row against orjson's ~2, and chDB's
`Python()` table function on an Arrow table costs twice the JSON insert. Each INSERT has a fixed
cost of a new part (about 18 ms on the benchmark machine's disk, 2 ms on tmpfs), so larger batches
insert faster up to ~6,000 rows; from ~7,000 rows (10 MB of column data) a part is written wide, one
file per column stream, and costs more per row again. An INSERT is all-or-nothing only within one
partition: rows of two months make two parts, committed one after the other. Rows older than their
sourceTTL are dropped at the next merge.

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
Every session runs with `session_timezone = 'UTC'`: the seed's DateTime columns carry no zone,
and results must not depend on the machine's. That setting needs ClickHouse 23.6 or later, and
`print_pretty_type_names` 24.1 or later; older servers refuse them.
"""

# Every value reaches SQL through sql_string / sql_time / int(), hence no S608 findings to act on.
# ruff: noqa: S608

import contextlib
import fcntl
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import orjson

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.normalize import Row
from kandji_bridge.logs.schema import CHDB_DDL, DDL, LOGS_TABLE, QUARANTINE_TABLE
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries, query_limits

SESSION_SETTINGS = {
    "session_timezone": "UTC",
    "output_format_json_quote_64bit_integers": 0,  # counts as JSON numbers
    "output_format_json_named_tuples_as_objects": 1,  # enrichments as {"data": ..., "name": ...}
    "print_pretty_type_names": 0,  # DESCRIBE shows types on one line, as the seed writes them
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

    def _insert_json(self, table: str, body: bytes) -> None:
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

    def insert(self, rows: Sequence[Row]) -> int:
        """Append rows as given: the caller has dropped the event ids already stored."""
        if rows:
            self._insert_json(LOGS_TABLE, orjson.dumps(rows))
        return len(rows)

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
            self._insert_json(QUARANTINE_TABLE, body)
        return len(fresh)

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
        self._execute(CHDB_DDL)  # also brings a table created by an earlier version up to date

    def _execute(self, sql: str) -> None:
        try:
            with self._lock:
                self._open_session().query(sql)
        except RuntimeError as exc:
            raise _query_error(exc) from exc

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

    def _insert_json(self, table: str, body: bytes) -> None:
        try:
            with self._lock:
                session = self._open_session()
                prefix = self._insert_prefix.format(table=table)
                with session.send_insert(prefix, "JSONEachRow") as inserter:
                    inserter.append(body)
                    inserter.finish()
                self._release_freed_memory()
        except RuntimeError as exc:
            raise _query_error(exc) from exc

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

    def _insert_json(self, table: str, body: bytes) -> None:
        try:
            self._client.raw_insert(
                table, insert_block=body, settings=INSERT_SETTINGS, fmt="JSONEachRow"
            )
        except Exception as exc:
            raise _query_error(exc) from exc

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
