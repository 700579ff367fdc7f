"""Run a query: SQL a person typed, from `logs query`, the SQL page (and its CSV download) and
`POST /api/logs/query`.

The statement runs only if `logs.sql_guard` finds that it reads and stays inside the log store,
on a read-only session of its own that carries the time and memory limits, and only while its
user (and everyone) has fewer queries running than the caps allow (`logs.user_queries`).
"""

from dataclasses import dataclass
from typing import Any

from kandji_bridge.logs import sql_guard
from kandji_bridge.logs.store import LogStore


@dataclass(frozen=True)
class QueryAnswer:
    """A query's result: its columns, their ClickHouse types, the rows, and whether the result
    had more rows than the limit asked."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False

    def records(self) -> list[dict[str, Any]]:
        """Each row as {column: value}."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run_query(
    store: LogStore, sql: str, *, user: str = "", limit: int | None = None
) -> QueryAnswer:
    """Run one read-only statement as `user` (the caps count queries per user).

    With `limit`: at most that many rows, `truncated` when there were more. Without: the whole
    result, refused when it has more than `sql_guard.MAX_ROWS` rows. Raises QueryRefused for a
    statement that does not only read or that the engine refused or stopped, QueryBusy past the
    caps and QueryCancelled while the service stops, each with one sentence.
    """
    with store.user_session(user) as select:
        result, truncated = sql_guard.run_read_only(select, sql, limit, store.query_limits)
    return QueryAnswer(result.columns, result.types, result.rows, truncated)
