"""The log store's two ways to the embedded engine, for benchmarks that compare them.

- `embedded`: the product's ChdbLogStore, a chDB session of its own (streaming inserts, each
  confirmed by the table's count).
- `one-path`: the server store's class, ClickHouseLogStore, over clickhouse-connect's `chdb://`
  backend (registered by chDB 4.4), with the embedded engine's table setting: the single code
  path from laptop to cluster. Two adjustments it needs on that backend are here: the backend
  ignores `default_format` (it hands its own `fmt` to chDB), and it returns no `written_rows`,
  so every insert is confirmed by looking its event ids up (the server store's fallback).
- `server`: the server store over HTTP to the ClickHouse HTTP test fixture (chDB's engine in
  another process, behind a Python HTTP server): it measures the client's side, not a server.

`patch_opening(kind)` makes `open_log_store("chdb://...")` open `kind` in this process, so a
real `kandji-bridge logs sync` can run on either (logs_backfill.py --store).
"""

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from kandji_bridge.logs.schema import CHDB_DDL
from kandji_bridge.logs.store import (
    SESSION_SETTINGS,
    ChdbLogStore,
    ClickHouseLogStore,
    QueryResult,
    SqlLogStore,
)
from kandji_bridge.logs.store.sql import escaped, parse_json_compact, query_error
from kandji_bridge.logs.user_queries import QueryLimits

ROOT = Path(__file__).resolve().parent.parent
STORES = ("embedded", "one-path", "server")


class OnePathStore(ClickHouseLogStore):
    """ClickHouseLogStore on clickhouse-connect's chdb:// backend."""

    def ensure_schema(self) -> None:
        super().ensure_schema()
        self._execute(CHDB_DDL)

    def _select(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        bound = {name: escaped(value) for name, value in (params or {}).items()}
        try:
            payload = self._client.raw_query(sql, parameters=bound, fmt="JSONCompact")
        except Exception as exc:
            raise query_error(exc) from exc
        return parse_json_compact(payload)


def open_one_path(path: str, limits: QueryLimits | None = None) -> OnePathStore:
    import clickhouse_connect

    client = clickhouse_connect.get_client(interface="chdb", path=path, settings=SESSION_SETTINGS)
    return OnePathStore(client, f"chdb://{path} (clickhouse-connect)", None, limits)


@contextmanager
def opened(kind: str, folder: Path) -> Iterator[SqlLogStore]:
    """An empty store of `kind` in `folder` (for `server`, a fixture process on it)."""
    if kind == "embedded":
        store: SqlLogStore = ChdbLogStore(str(folder / "logs"))
    elif kind == "one-path":
        store = open_one_path(str(folder / "logs"))
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from support.clickhouse_http import running

        with running(folder / "logs", {"kb": "bench"}) as fixture:
            fixture.execute("CREATE DATABASE bench")
            store = ClickHouseLogStore.from_url(fixture.log_store_url("bench"))
            try:
                store.ensure_schema()
                yield store
            finally:
                store.close()
        return
    try:
        store.ensure_schema()
        yield store
    finally:
        store.close()


def patch_opening(kind: str) -> None:
    """`chdb://` URLs open `kind` ("embedded" or "one-path") in this process."""
    from kandji_bridge.logs.store import opening

    factories: dict[str, Callable[..., SqlLogStore]] = {
        "embedded": ChdbLogStore,
        "one-path": open_one_path,
    }
    opening.ChdbLogStore = factories[kind]  # type: ignore[assignment,misc]
