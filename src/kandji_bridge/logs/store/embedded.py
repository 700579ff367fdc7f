"""The embedded store (`chdb://<path>`, the default): ClickHouse in this process through chDB.

Only one process may own a path: chDB holds an flock on `<path>/status` while open, and a second
process fails with a bare "Error initializing EmbeddedServer" (the reason, "Cannot lock file",
goes to stderr). So the store probes that lock first and raises StoreBusy with a sentence that
says what to do. Within one process, sessions on the same path share one engine, and a process
can hold only one path at a time (chDB refuses another path while one is open; once every session
of it is closed, another path opens fine, and the same path reopens with its data). A store
killed with -9 leaves `status` unlocked; the next open takes it over.

One ChdbLogStore may be shared by threads (the service's collector job and its web requests):
chDB runs concurrent SELECTs on one session fine, but any query on a session with a streaming
insert open fails ("Cannot run a query while a streaming insert is active on this connection"),
so the store serializes its calls on the session with a lock. SQL that people type does not take
that lock: `user_session` runs it on sessions of its own (`user_queries`), which run alongside the
collector's session on the same engine (measured in benchmarks/heavy_queries.py).
"""

# Every value reaches SQL through sql_string or a table name of ours: no S608 findings to act on.
# ruff: noqa: S608

import contextlib
import ctypes
import fcntl
import mmap
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kandji_bridge.logs.schema import CHDB_DDL, CHDB_TABLE_SETTINGS, LOGS_TABLE
from kandji_bridge.logs.store.disk import DISK_MARKERS, FULL_BELOW, RUN_AGAIN, disk_state
from kandji_bridge.logs.store.interface import (
    LogStoreError,
    QueryResult,
    StoreBusy,
    StoreWriteError,
)
from kandji_bridge.logs.store.sql import (
    INSERT_SETTINGS,
    SESSION_SETTINGS,
    escaped,
    first_line,
    parse_json_compact,
    query_error,
    settings_clause,
    sql_string,
)
from kandji_bridge.logs.store.sql_store import SqlLogStore
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries

# The engine's own settings, given when it starts (the first session on a path). The
# uncompressed cache is ClickHouse's, off unless sized: queries that ask for it
# (`use_uncompressed_cache`, the detections do) decompress a block once, not once per query. The
# pack's rules read the same window: measured on 5M events, 765 -> 475 ms of CPU for the pack with
# 128 MiB. 32 MiB keeps most of that (the pack 245-322 ms against 228-253 ms) and holds ~90 MB
# less after a year's catch-up, whose windows fill whatever size is given.
UNCOMPRESSED_CACHE_BYTES = 32 * 1024 * 1024
ENGINE_OPTIONS = f"uncompressed_cache_size={UNCOMPRESSED_CACHE_BYTES}"

_PURGE_INTERVAL = 1.0  # seconds between two purges of the engine's freed pages
# Paths this process has open: its own flock on <path>/status must not read as another owner's.
_open_here: Counter[str] = Counter()
_MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)  # Linux's value; Python 3.11 does not name it


class ChdbLogStore(SqlLogStore):
    """The embedded store: one chDB session on a folder (or ":memory:")."""

    def __init__(self, path: str, limits: QueryLimits | None = None) -> None:
        from chdb import session  # imported here: loading the engine costs time and memory

        in_memory = path == ":memory:"
        self.path = path if in_memory else os.path.realpath(Path(path).expanduser())
        self.display_url = f"chdb://{self.path}"
        self._session = None
        self._user_queries = UserQueries(
            limits or QueryLimits(), self._open_user_session, self._kill_user_queries
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
            self._session = session.Session(f"{self.path}?{ENGINE_OPTIONS}")
        except RuntimeError as exc:
            if not in_memory and not _open_here[self.path] and _owned_elsewhere(self.path):
                raise _busy(self.path) from exc
            raise _open_error(self.path, exc) from exc
        _open_here[self.path] += 1
        self._session.query(f"SET {settings_clause(SESSION_SETTINGS)}")
        self._insert_prefix = f"INSERT INTO {{table}} SETTINGS {settings_clause(INSERT_SETTINGS)}"

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
        bound = {name: escaped(value) for name, value in params.items()} if params else None
        try:
            with self._lock:
                session = self._open_session()
                try:
                    payload = session.query(sql, "JSONCompact", params=bound).bytes()
                except RuntimeError:
                    _drain(session)
                    raise
        except RuntimeError as exc:
            raise query_error(exc) from exc
        return parse_json_compact(payload)

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert, then confirm by the table's row count: True when it grew by exactly `rows`.

        chDB 4.4's streaming insert reported success, and its `rows_written`, even when nothing
        reached the disk (measured on a full disk and on a folder remounted read-only: no error,
        rows_written 500, count() unchanged). count() without a filter is read from the parts'
        metadata, ~1.5 ms; the count after the previous insert stands for the count before this
        one, so confirming costs one query. Anything else that changed the count
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
            raise self._engine_error(exc, table) from exc
        return after == before + rows

    def _engine_error(self, exc: Exception, table: str | None = None) -> LogStoreError:
        """A full disk or a read-only folder said as such (of the folder of the table written
        to, which may be a mount of its own); other refusals as the engine put them."""
        message = str(exc)
        if any(marker in message for marker in DISK_MARKERS) and self.path != ":memory:":
            written = self._table_folder(table) if table else self.path
            return StoreWriteError(
                f"The log store could not write to {self.path}: {disk_state(self.path, written)}"
            )
        return query_error(exc)

    def _table_folder(self, table: str) -> str:
        with contextlib.suppress(LogStoreError, IndexError):
            return self._select(
                "SELECT data_paths[1] FROM system.tables "
                f"WHERE database = currentDatabase() AND name = {sql_string(table)}"
            ).rows[0][0]
        return self.path

    def _write_error(self, table: str, missing: int, rows: int) -> StoreWriteError:
        folder = self.path if self.path == ":memory:" else self._table_folder(table)
        lost = f"The log store did not store {missing:,} of the {rows:,} rows written to {table}"
        if folder == ":memory:":
            return StoreWriteError(f"{lost}, without an error; {RUN_AGAIN}")
        return StoreWriteError(f"{lost}: {disk_state(self.path, folder)}")

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
            raise query_error(exc) from exc
        settings = {**SESSION_SETTINGS, **self._user_queries.limits.engine_settings(comment)}
        try:
            opened.query(f"SET {settings_clause(settings)}")
            opened.query("SET readonly = 1")  # last: from here on no setting can change
        except RuntimeError as exc:
            opened.close()
            raise query_error(exc) from exc
        return _ChdbUserSession(opened)

    def close(self) -> None:
        self._user_queries.close()  # first: it stops running user queries through the session
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                _open_here[self.path] -= 1


def release_engine_pages() -> list[str]:
    """Hand back the resident pages of chDB's library and of the libraries it loads with it.

    Starting the engine reads about 200 MB of its library (static initialization, symbol
    tables; measured with chdb-core 26.9) that it does not read again; a backfill reads about
    100 MB more, a poll that stores events 20-60 MB (the insert, the merges), that an idle
    service does not need until its next write. chDB's Python layer also loads pyarrow and numpy
    (about 28 MB of their libraries resident), whose code serve never runs. These are clean file
    pages, which the kernel drops under memory pressure but which count in the process's
    resident memory until then, most of an idle serve's. MADV_PAGEOUT drops them now; what runs
    later reads its pages back from the file. For a process that stays up (serve), at start and
    when it goes idle after work; a command that runs one query would only read them back. The
    kernel keeps pages that another process also maps (another kandji-bridge process of the same
    installation), and a kernel before Linux 5.4 refuses the advice. Returns the library files
    advised.
    """
    folders = _engine_folders()
    if sys.platform != "linux" or not folders:
        return []
    try:
        with open("/proc/self/maps") as maps:
            ranges = [line.split() for line in maps]
    except OSError:
        return []
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = set()
    for fields in ranges:
        if len(fields) >= 6 and fields[5].startswith(folders):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            madvise(start, end - start, _MADV_PAGEOUT)  # advice: a refusal changes nothing
            advised.add(fields[5])
    return sorted(advised)


def _engine_folders() -> tuple[str, ...]:
    """The folders of chDB and of the packages its Python layer loads, once chDB is loaded.

    The wheels keep their bundled libraries in `NAME.libs` beside the package (chdb-core's in
    `chdb_core.libs`)."""
    chdb = sys.modules.get("chdb")
    if chdb is None or not chdb.__file__:
        return ()
    site = os.path.dirname(os.path.dirname(chdb.__file__))
    names = ("chdb", "chdb_core.libs", "pyarrow", "pyarrow.libs", "numpy", "numpy.libs")
    return tuple(os.path.join(site, name) + os.sep for name in names)


def _row_count(session: Any, table: str) -> int:
    return int(session.query(f"SELECT count() FROM {table}", "CSV").bytes())


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
        full = shutil.disk_usage(path).free < FULL_BELOW
    except OSError:
        unwritable = full = False
    if unwritable or full:  # chDB says only "Error initializing EmbeddedServer" then
        return StoreWriteError(f"Cannot open the log store {path}: {disk_state(path, path)}")
    return LogStoreError(f"Cannot open the log store {path}: {first_line(exc)}")


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
            raise query_error(exc) from exc
        return parse_json_compact(payload)

    def close(self) -> None:
        self._session.close()
