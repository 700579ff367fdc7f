"""The SQL text both engines receive: literals, the session and insert settings, and how an
engine's answer (JSONCompact) and its errors come back.

Values in SQL are quoted literals built by `sql_string` rather than engine-side parameters (chDB
passes parameters through unquoted), so both engines receive the exact same text. The exception is
`query(sql, params=...)`, for SQL written with ClickHouse's typed placeholders (`{name:Type}`,
detections): both engines bind those natively, and a value is text the engine parses as its type.
chDB hands the value over as-is in ClickHouse's escaped text format (a backslash starts an escape,
a tab or newline ends the value), so the store escapes it first (`escaped`); the server store
hands clickhouse-connect that same text to send verbatim, since its own escaping also escapes
quotes, which breaks the text of an Array or a Map.
Every session runs with `session_timezone = 'UTC'`: the table's DateTime columns carry no zone,
and results must not depend on the machine's. That setting needs ClickHouse 23.6 or later, and
`print_pretty_type_names` 24.1 or later; older servers refuse them.
"""

from datetime import datetime
from typing import Any

import orjson

from kandji_bridge.logs.store.interface import LogStoreError, QueryResult

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


def sql_string(value: str) -> str:
    """A ClickHouse string literal: backslash and quote escaped, everything else verbatim."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def escaped(value: str) -> str:
    """A parameter value in ClickHouse's escaped text format, as the engine reads it."""
    return value.translate(_ESCAPES)


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def sql_time(value: datetime) -> str:
    return f"toDateTime({int(value.timestamp())}, 'UTC')"


def settings_clause(settings: dict[str, Any]) -> str:
    return ", ".join(
        f"{key} = {sql_string(value) if isinstance(value, str) else value}"
        for key, value in settings.items()
    )


def query_error(exc: Exception) -> LogStoreError:
    """One sentence from ClickHouse's message: its first line, without the stack trace."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LogStoreError(f"The log store refused the query: {message}")


def parse_json_compact(payload: bytes) -> QueryResult:
    if not payload.strip():  # statements without a result set
        return QueryResult([], [], [])
    document = orjson.loads(payload)
    meta = document.get("meta", [])
    return QueryResult(
        columns=[column["name"] for column in meta],
        types=[column["type"] for column in meta],
        rows=document.get("data", []),
    )


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
