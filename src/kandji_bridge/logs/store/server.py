"""The server store: a ClickHouse server through clickhouse-connect, an optional dependency
(`pip install 'kandji-bridge[clickhouse]'`) imported only when such a URL is opened.

    clickhouse://user:password@host:8123/database        HTTP
    clickhouses://user:password@host:8443/database       HTTPS (https:// is the same; http:// is
                                                         clickhouse://), e.g. ClickHouse Cloud
    ...?cluster=NAME                                     the schema made ON CLUSTER NAME
    ...?reader=USER:PASSWORD                             SQL people type runs as this user

Opening checks what a user can get wrong, each as one sentence: the server unreachable, the
credentials refused, a version too old for the schema and its settings (MIN_VERSION), and a grant
the user lacks (named from the server's refusal). The schema's first statement is the one a
missing grant refuses, so nothing is half-created. A page insert carries an
insert_deduplication_token derived from its content: when the connection breaks before the
server answers, the store sends it once more, and the server stores it once.

One store is shared by serve's job threads (several sources polled at once) and its web
requests, and its client holds one server session, in which ClickHouse runs one query at a time
(clickhouse-connect refuses a second at once): so the store serializes its calls on that client
with a lock, as the embedded store does on its session. SQL that people type runs on clients of
its own (`user_session`).
"""

# Every value reaches SQL through sql_string or a table name of ours: no S608 findings to act on.
# ruff: noqa: S608

import hashlib
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from kandji_bridge.logs.schema import (
    DDL,
    LOGS_TABLE,
    QUARANTINE_TABLE,
    SERVER_TABLE_SETTINGS,
    cluster_ddl,
)
from kandji_bridge.logs.store.disk import RUN_AGAIN
from kandji_bridge.logs.store.interface import LogStoreError, QueryResult, StoreWriteError
from kandji_bridge.logs.store.sql import (
    INSERT_SETTINGS,
    SESSION_SETTINGS,
    escaped,
    first_line,
    parse_json_compact,
    query_error,
    sql_string,
)
from kandji_bridge.logs.store.sql_store import SqlLogStore
from kandji_bridge.logs.user_queries import QueryLimits, UserQueries

# The answer's format as a setting, not the FORMAT clause clickhouse-connect's `fmt` appends: in
# `EXPLAIN AST <query> FORMAT JSONCompact` the clause belongs to the explained query, and the
# server answered the EXPLAIN in its default TabSeparated (the SQL guard reads EXPLAIN AST).
JSON_COMPACT = {"default_format": "JSONCompact"}
# session_timezone needs 23.6, print_pretty_type_names 24.1 (sql.SESSION_SETTINGS).
MIN_VERSION = (24, 1)
SCHEMES = {"clickhouse": False, "http": False, "clickhouses": True, "https": True}  # -> TLS
URL_FORM = "clickhouse://user:password@host:8123/database (clickhouses:// or https:// for TLS)"
AUTH_CODES = frozenset({192, 193, 194, 516})  # UNKNOWN_USER ... AUTHENTICATION_FAILED
ACCESS_DENIED = 497
# "...it's necessary to have the grant CREATE TABLE ON kb.kandji_logs. (ACCESS_DENIED)"
_GRANT = re.compile(
    r"necessary to have (?:the )?grant (.+?)(?: WITH GRANT OPTION)?(?:\. |\.$|$| \()"
)


class _Verbatim:
    """A bound value clickhouse-connect sends as it is: it formats an object it does not know
    with str(), and escapes a str itself."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def mask_url(url: str) -> str:
    """The URL with its passwords (the user's, the reader's) replaced, for messages."""
    url = re.sub(r"([?&]reader=[^:&#]*)(?::|%3A)[^&#]*", r"\1:***", url, flags=re.I)
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
        *,
        user: str = "default",
        cluster: str | None = None,
    ) -> None:
        self._client = client
        self._lock = threading.Lock()  # see the module docstring: one call at a time
        self.display_url = display_url
        self._user = user
        self.cluster = cluster
        self.database = "default"
        # On a cluster an insert into the Distributed table returns once the shards hold it: the
        # collector's inserts and the detections' INSERT ... SELECT (sent as a query), which
        # reads its row back at once.
        self._insert_settings = {"distributed_foreground_insert": 1} if cluster else {}
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
                f"The log store URL {masked!r} has an invalid port; write {URL_FORM}."
            ) from None
        secure = SCHEMES[parts.scheme.lower()]
        database = unquote(parts.path.strip("/")) or "default"
        if not parts.hostname or "/" in database:
            raise LogStoreError(
                f"The log store URL {masked!r} needs a host and at most one database name; "
                f"write {URL_FORM}."
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        cluster = options.pop("cluster", None)
        reader_user, _, reader_password = options.pop("reader", "").partition(":")
        if options or cluster == "":
            raise LogStoreError(
                f"The log store URL {masked!r} has an option it does not know "
                f"({', '.join(sorted(options)) or 'cluster='}); the options are ?cluster=NAME, "
                "the ClickHouse cluster the schema is made on, and reader=USER:PASSWORD, the "
                "read-only user SQL queries run as."
            )
        try:  # an extra: `pip install 'kandji-bridge[clickhouse]'`; the embedded store needs none
            import clickhouse_connect
        except ImportError:
            raise LogStoreError(
                f"The log store {masked} is a ClickHouse server, which needs clickhouse-connect; "
                "install it with pip install 'kandji-bridge[clickhouse]', or set "
                "KANDJI_BRIDGE_LOG_STORE to chdb://<folder> for the embedded store."
            ) from None
        user = unquote(parts.username or "default")
        password = unquote(parts.password or "")

        def connect(settings: dict[str, Any], *, server_session: bool = True) -> Any:
            # A user query's client runs as the reader when the URL names one.
            name, secret = (
                (reader_user, reader_password)
                if reader_user and not server_session
                else (user, password)
            )
            try:
                return clickhouse_connect.get_client(
                    host=parts.hostname,
                    port=port or (8443 if secure else 8123),
                    username=name,
                    password=secret,
                    database=database,
                    secure=secure,
                    settings=settings,
                    # A user query's client runs one query at a time, in no server session.
                    autogenerate_session_id=server_session,
                )
            except Exception as exc:  # connect errors come in many classes
                raise refusal(exc, masked, name, connecting=True) from exc

        client = connect(SESSION_SETTINGS)
        try:
            check_version(client.server_version, masked)
            store = cls(client, masked, connect, limits, user=user, cluster=cluster)
            store.database = database
            if cluster is not None:
                store.check_cluster()
        except BaseException:
            client.close()
            raise
        return store

    def check_cluster(self) -> None:
        known = self._select(
            f"SELECT count() FROM system.clusters WHERE cluster = {sql_string(self.cluster or '')}"
        )
        if not int(known.rows[0][0]):
            raise LogStoreError(
                f"The ClickHouse server at {self.display_url} has no cluster {self.cluster!r} "
                "(system.clusters lists those it has); correct ?cluster= in "
                "KANDJI_BRIDGE_LOG_STORE, or leave it out for a server without one."
            )

    def _ddl(self) -> tuple[str, ...]:
        return cluster_ddl(self.cluster, self.database) if self.cluster else DDL

    def ensure_schema(self) -> None:
        super().ensure_schema()
        if self.cluster:
            return  # Replicated tables deduplicate inserts without a setting
        for table in (LOGS_TABLE, QUARANTINE_TABLE):
            engine = self._select(
                "SELECT engine_full FROM system.tables "
                f"WHERE database = currentDatabase() AND name = {sql_string(table)}"
            )
            wanted = [f"{key} = {value}" for key, value in SERVER_TABLE_SETTINGS.items()]
            if not all(setting in engine.rows[0][0] for setting in wanted):
                self._execute(f"ALTER TABLE {table} MODIFY SETTING {', '.join(wanted)}")

    def _execute(self, sql: str) -> None:
        try:
            with self._lock:
                self._client.command(sql)
        except Exception as exc:
            raise refusal(exc, self.display_url, self._user) from exc

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        try:
            bound = {name: _Verbatim(escaped(value)) for name, value in (params or {}).items()}
            with self._lock:
                payload = self._client.raw_query(
                    sql, parameters=bound, settings={**JSON_COMPACT, **self._insert_settings}
                )
        except Exception as exc:
            raise refusal(exc, self.display_url, self._user) from exc
        return parse_json_compact(payload)

    def _insert_json(self, table: str, body: bytes, rows: int) -> bool:
        """Insert; True when the server's summary counts every row written (a server reports
        a full disk as an error, and the summary otherwise; a retried insert the server
        deduplicated counts none, and the caller then looks the rows up).

        The token is the hash of what is sent, so only the very same rows match it: a page
        fetched again later (its receivedAt differs) is a new insert, and events deleted and
        collected again are stored again.
        """
        token = "kandji-bridge-" + hashlib.sha256(table.encode() + b"\0" + body).hexdigest()
        settings = {**INSERT_SETTINGS, **self._insert_settings, "insert_deduplication_token": token}
        for attempt in (1, 2):
            try:
                with self._lock:
                    summary = self._client.raw_insert(
                        table, insert_block=body, settings=settings, fmt="JSONEachRow"
                    )
                break
            except Exception as exc:
                # No ClickHouse error code: the answer was lost (a connection broken, a proxy's
                # 502), and the insert may have been stored; the token makes sending it again safe.
                if attempt == 1 and getattr(exc, "code", None) is None:
                    continue
                raise refusal(exc, self.display_url, self._user) from exc
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


def check_version(version: str | None, where: str) -> None:
    """Refuse a server older than MIN_VERSION, naming the version needed."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version or "")[:2])
    if len(numbers) == 2 and numbers < MIN_VERSION:
        needed = ".".join(map(str, MIN_VERSION))
        raise LogStoreError(
            f"The ClickHouse server at {where} runs version {version}, and the log store needs "
            f"{needed} or later (for the session_timezone and print_pretty_type_names settings); "
            "upgrade the server, or point KANDJI_BRIDGE_LOG_STORE at a newer one."
        )


def refusal(exc: Exception, where: str, user: str, *, connecting: bool = False) -> LogStoreError:
    """One sentence for what the server (or the way to it) refused."""
    code = getattr(exc, "code", None)
    if code in AUTH_CODES:
        return LogStoreError(
            f"The ClickHouse log store at {where} refused the user {user!r} and its password; "
            "correct them in KANDJI_BRIDGE_LOG_STORE (user:password@host)."
        )
    if code == ACCESS_DENIED:
        found = _GRANT.search(str(exc))
        grant = found.group(1) if found else "a privilege the log store needs"
        return LogStoreError(
            f"The ClickHouse user {user!r} lacks the grant {grant} at {where}; have an admin run "
            f"GRANT {grant} TO {user} (docs/clickhouse.md lists the grants), then try again."
        )
    if connecting and code is None:
        return LogStoreError(
            f"Cannot reach the ClickHouse log store at {where} ({_unreachable(exc)}); check the "
            "host, the port and the scheme (clickhouses:// or https:// for TLS), and that the "
            "server runs."
        )
    return query_error(exc)


def _unreachable(exc: Exception) -> str:
    text = repr(exc) + repr(exc.__cause__) + repr(exc.__context__)
    for marker, reason in (
        ("Connection refused", "the connection was refused"),
        ("Name or service not known", "the host name does not resolve"),
        ("nodename nor servname", "the host name does not resolve"),
        ("Failed to resolve", "the host name does not resolve"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
        ("SSL", "TLS failed"),
        ("timed out", "it did not answer in time"),
        ("Timeout", "it did not answer in time"),
    ):
        if marker in text:
            return reason
    return first_line(exc)
