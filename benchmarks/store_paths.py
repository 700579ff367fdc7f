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
from contextlib import contextmanager, suppress
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


# --- inserts while a user query runs -------------------------------------------------------------

HEAVY = "SELECT count() FROM numbers_mt(10000000000000) WHERE sipHash64(number) % 7 = 1"


def insert_seconds_while_querying(kind: str, folder: Path, inserts: int = 5) -> list[float]:
    """Seconds of each 5,000-row insert while a user query runs for 3 s on the same store: the
    embedded store runs user queries on a chDB session of their own; on clickhouse-connect's
    chdb:// backend every client of a path shares one connection and its lock."""
    import json
    import threading
    import time
    from datetime import UTC, datetime

    from kandji_bridge.logs.normalize import NormalizeContext, normalize

    ctx = NormalizeContext("ws-bench", "src-bench", 36500, received_at=datetime.now(UTC))
    path = str(folder / "logs")
    if kind == "embedded":
        store: SqlLogStore = ChdbLogStore(path, QueryLimits(seconds=3))
    else:
        store = open_one_path(path)
    store.ensure_schema()
    try:
        if kind == "embedded":

            def heavy() -> None:
                with store.user_session("bench") as select, suppress(Exception):
                    select(HEAVY)  # stopped by its time limit, as meant
        else:
            import clickhouse_connect

            other = clickhouse_connect.get_client(interface="chdb", path=path)

            def heavy() -> None:
                with suppress(Exception):  # stopped by its time limit, as meant
                    other.command(f"{HEAVY} SETTINGS max_execution_time = 3")

        times = []
        for batch in range(inserts):
            events = [
                {"id": f"01JH{batch:04d}{i:018d}", "occurred_at": "2025-03-04T10:00:00Z"}
                for i in range(5000)
            ]
            rows = [normalize(e, json.dumps(e), ctx) for e in events]
            running = threading.Thread(target=heavy)
            running.start()
            time.sleep(0.3)  # the query is running
            began = time.perf_counter()
            store.insert(rows)
            times.append(time.perf_counter() - began)
            running.join()
        return times
    finally:
        store.close()


if __name__ == "__main__":
    import statistics
    import tempfile

    print("| store | 5,000-row insert while a 3 s user query runs (median of 5) |")
    print("|---|---:|")
    for kind in ("embedded", "one-path"):
        with tempfile.TemporaryDirectory() as folder:
            seconds = insert_seconds_while_querying(kind, Path(folder))
        each = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"| {kind} | {statistics.median(seconds):.2f} s ({each}) |")
