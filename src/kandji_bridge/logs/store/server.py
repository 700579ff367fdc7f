"""The server store (`clickhouse://user:password@host:8123/database`, or `clickhouses://` for
HTTPS): a ClickHouse server through clickhouse-connect, an optional dependency
(`pip install 'kandji-bridge[clickhouse]'`) imported only when such a URL is opened.

One store is shared by serve's job threads (several sources polled at once) and its web
requests, and its client holds one server session, in which ClickHouse runs one query at a time
(clickhouse-connect refuses a second at once): so the store serializes its calls on that client
with a lock, as the embedded store does on its session. SQL that people type runs on clients of
its own (`user_session`).
"""

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from kandji_bridge.logs.store.disk import RUN_AGAIN
from kandji_bridge.logs.store.interface import LogStoreError, QueryResult, StoreWriteError
from kandji_bridge.logs.store.sql import (
    INSERT_SETTINGS,
    SESSION_SETTINGS,
    escaped,
    first_line,
    parse_json_compact,
    query_error,
)
from kandji_bridge.logs.store.sql_store import SqlLogStore
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries

# The answer's format as a setting, not the FORMAT clause clickhouse-connect's `fmt` appends: in
# `EXPLAIN AST <query> FORMAT JSONCompact` the clause belongs to the explained query, and the
# server answered the EXPLAIN in its default TabSeparated (the SQL guard reads EXPLAIN AST).
JSON_COMPACT = {"default_format": "JSONCompact"}


class _Verbatim:
    """A bound value clickhouse-connect sends as it is: it formats an object it does not know
    with str(), and escapes a str itself."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def mask_url(url: str) -> str:
    """The URL with its password replaced, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


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
        self._lock = threading.Lock()  # see the module docstring: one call at a time
        self.display_url = display_url
        self._connect = connect  # settings -> a new client: one per user-query session
        self._user_queries = UserQueries(
            limits or QueryLimits(), self._open_user_session, self._kill_user_queries
        )

    @classmethod
    def from_url(cls, url: str, limits: QueryLimits | None = None) -> "ClickHouseLogStore":
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
        try:  # an extra: `pip install 'kandji-bridge[clickhouse]'`; the embedded store needs none
            import clickhouse_connect
        except ImportError:
            raise LogStoreError(
                f"The log store {masked} is a ClickHouse server, which needs clickhouse-connect; "
                "install it with pip install 'kandji-bridge[clickhouse]', or set "
                "KANDJI_BRIDGE_LOG_STORE to chdb://<folder> for the embedded store."
            ) from None

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
                    f"{first_line(exc)}; check the host, port, user and password."
                ) from exc

        return cls(connect(SESSION_SETTINGS), masked, connect, limits)

    def _execute(self, sql: str) -> None:
        try:
            with self._lock:
                self._client.command(sql)
        except Exception as exc:
            raise query_error(exc) from exc

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        try:
            bound = {name: _Verbatim(escaped(value)) for name, value in (params or {}).items()}
            with self._lock:
                payload = self._client.raw_query(sql, parameters=bound, settings=JSON_COMPACT)
        except Exception as exc:
            raise query_error(exc) from exc
        return parse_json_compact(payload)

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert; True when the server's summary counts every row written (a server reports
        a full disk as an error, and the summary otherwise)."""
        try:
            with self._lock:
                summary = self._client.raw_insert(
                    table, insert_block=body, settings=INSERT_SETTINGS, fmt="JSONEachRow"
                )
        except Exception as exc:
            raise query_error(exc) from exc
        return getattr(summary, "written_rows", None) == rows

    def _write_error(self, table: str, missing: int, rows: int) -> StoreWriteError:
        return StoreWriteError(
            f"The ClickHouse log store at {self.display_url} did not store {missing:,} of the "
            f"{rows:,} rows written to {table}; check the server's disk and log, then run the "
            f"command again; {RUN_AGAIN}"
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
            payload = self._client.raw_query(sql, settings=JSON_COMPACT)
        except Exception as exc:
            raise query_error(exc) from exc
        return parse_json_compact(payload)

    def close(self) -> None:
        self._client.close()
