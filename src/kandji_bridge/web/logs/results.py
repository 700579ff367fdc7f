"""How a query's result leaves the web app: run as the signed-in user, cells as text, a CSV
download; shared by the SQL page and `POST /api/logs/query`."""

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled
from kandji_bridge.operations import queries
from kandji_bridge.operations.queries import QueryAnswer
from kandji_bridge.web.auth import Principal, runtime_of


def user_query(request: Request, principal: Principal, sql: str, limit: int | None) -> QueryAnswer:
    """The SQL a person typed, run as theirs: the caps count queries per user id."""
    return queries.run_query(runtime_of(request).store, sql, user=principal.user.id, limit=limit)


def query_error_status(exc: Exception) -> int:
    """429 past the caps, 503 while the service stops, 400 for the query itself."""
    return 429 if isinstance(exc, QueryBusy) else 503 if isinstance(exc, QueryCancelled) else 400


def cell_text(value: Any) -> str:
    """A cell as text: maps, arrays and tuples as JSON, None as empty, booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_response(result: QueryAnswer) -> StreamingResponse:
    """The whole result as CSV with a header row, as a download."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.columns)
        for index, row in enumerate(result.rows, 1):
            writer.writerow([cell_text(value) for value in row])
            if index % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kandji_logs-query.csv"'},
    )
