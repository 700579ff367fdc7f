"""Read-only SQL for the SQL page and `POST /api/logs/query`: ClickHouse's own parser decides.

A prefix check is not enough: comments, case, whitespace, a second statement after `;` (chDB
runs every statement of a multi-statement text), `INTO OUTFILE`, or a table function that reads
a file, a URL or another server all hide behind a leading SELECT. So the engine parses the text
(`formatQuerySingleLine`, which refuses more than one statement), the parsed statement is checked
through `EXPLAIN AST`, and what runs is the engine's own rendering of that one parsed statement,
never the raw text. Needs ClickHouse 23.10 or later (formatQuerySingleLine).
"""

# The statement reaches SQL as a sql_string literal, or as the engine's own rendering of it.
# ruff: noqa: S608

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.store import LogStore, LogStoreError, QueryResult, sql_string

# Root nodes of EXPLAIN AST for statements that only read (and every Show*, Exists* node).
READ_ROOTS = {
    "SelectWithUnionQuery": "SELECT",
    "SelectIntersectExceptQuery": "SELECT",
    "DescribeQuery": "DESCRIBE",
    "Explain": "EXPLAIN",
}
# Table functions that read nothing outside the query: generators of rows.
SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateSeries"}
)
# Ordinary (not table) functions that read outside the query: file('/path') returns a server
# file's contents, the secret key file in the home included.
OUTSIDE_READING_FUNCTIONS = frozenset({"file"})
# Root node -> the statement word for the refusal sentence.
WRITE_WORDS = {
    "InsertQuery": "INSERT",
    "AlterQuery": "ALTER",
    "DropQuery": "DROP",
    "CreateQuery": "CREATE",
    "TruncateQuery": "TRUNCATE",
    "DeleteQuery": "DELETE",
    "UpdateQuery": "UPDATE",
    "OptimizeQuery": "OPTIMIZE",
    "SYSTEM": "SYSTEM",
    "KillQueryQuery": "KILL",
    "GrantQuery": "GRANT",
    "RevokeQuery": "REVOKE",
    "Set": "SET",
    "UseQuery": "USE",
    "RenameQuery": "RENAME",
}
# Bounds of one web query: its time in the engine, and the rows of a CSV download.
QUERY_SECONDS = 120
MAX_ROWS = 1_000_000
READ_ONLY_HINT = "this page only reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)"


class QueryRefused(BridgeError):
    """A statement that would write, or that reads outside the log store."""


@dataclass(frozen=True)
class CheckedStatement:
    sql: str  # the engine's rendering of the one parsed statement: what runs
    kind: str  # SELECT, SHOW, DESCRIBE, EXPLAIN or EXISTS


def check_read_only(
    store: LogStore, sql: str, params: Mapping[str, str] | None = None
) -> CheckedStatement:
    """The one statement in `sql`, as the engine parsed it, if it only reads; else QueryRefused.

    SQL with `{name:Type}` placeholders (detections) needs `params`: the engine's AST of such a
    statement holds the bound values. The rendering keeps the placeholders.
    """
    if not sql.strip():
        raise QueryRefused("Write a query first, for example SELECT count() FROM kandji_logs.")
    try:
        result = store.query(f"SELECT formatQuerySingleLine({sql_string(sql)})")
    except LogStoreError as exc:
        message = engine_sentence(str(exc))
        if "Multi-statements" in message:
            raise QueryRefused(
                "The text holds more than one statement; run one statement at a time."
            ) from None
        raise QueryRefused(f"The query is not valid SQL: {message}") from None
    statement = str(result.rows[0][0]).strip()
    lines = [row[0] for row in store.query(f"EXPLAIN AST {statement}", params=params).rows]
    kind = _check_tree(statement, lines)
    return CheckedStatement(statement, kind)


def run_read_only(store: LogStore, sql: str, limit: int | None = None) -> tuple[QueryResult, bool]:
    """Run a read-only statement; with `limit`, at most that many rows and whether there were more.

    A SELECT runs inside the engine as a subquery, bounded in time (QUERY_SECONDS) and, with a
    `limit`, in rows; without one (the CSV download) a result of more than MAX_ROWS rows is
    refused, so `SELECT * FROM system.numbers` cannot fill the memory or hold a worker forever.
    The outer query's SETTINGS win over any the statement carries. Other statements (SHOW,
    DESCRIBE, EXPLAIN) return short results and are cut here.
    """
    checked = check_read_only(store, sql)
    statement = checked.sql
    if checked.kind == "SELECT":
        rows = MAX_ROWS + 1 if limit is None else int(limit) + 1
        statement = (
            f"SELECT * FROM ({statement}) LIMIT {rows} "
            f"SETTINGS max_execution_time = {QUERY_SECONDS}, timeout_overflow_mode = 'throw'"
        )
    try:
        result = store.query(statement)
    except LogStoreError as exc:
        message = engine_sentence(str(exc))
        if "Timeout exceeded" in message:
            raise QueryRefused(
                f"The query ran longer than {QUERY_SECONDS} s and was stopped; narrow it with "
                "WHERE on eventTime, or aggregate."
            ) from None
        raise QueryRefused(f"The query failed: {message}") from None
    if limit is None and len(result.rows) > MAX_ROWS:
        raise QueryRefused(
            f"The result has more than {MAX_ROWS:,} rows, too many to download at once; narrow "
            "it with WHERE on eventTime, or use `kandji-bridge logs query`."
        )
    if limit is None or len(result.rows) <= limit:
        return result, False
    return QueryResult(result.columns, result.types, result.rows[:limit]), True


def _check_tree(statement: str, lines: list[str]) -> str:
    """Check EXPLAIN AST's lines (one node a line, indented by depth); return the kind."""
    root = _node(lines[0]) if lines else ""
    kind = _kind(root)
    if kind is None:
        raise QueryRefused(f"{_word(root)} statements cannot run here: {READ_ONLY_HINT}.")
    depths = [len(line) - len(line.lstrip(" ")) for line in lines]
    top = [_node(line) for line, depth in zip(lines, depths, strict=True) if depth == 1]
    if kind == "EXPLAIN" and top and _kind(top[0]) is None:
        raise QueryRefused(f"{_word(top[0])} statements cannot run here, explained or not.")
    bare = _STRINGS.sub("''", statement)
    if "Literal" in top or _OUTFILE.search(bare):
        raise QueryRefused("INTO OUTFILE cannot run here; use the CSV download instead.")
    # A top-level identifier is a SELECT's or EXPLAIN's FORMAT name; SHOW CREATE and EXISTS
    # name their table there.
    if (kind not in ("EXISTS", "SHOW") and "Identifier" in top) or _FORMAT.search(bare):
        raise QueryRefused("Leave out the FORMAT clause; the CSV download gives the result as CSV.")
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "Function" and words[1] in OUTSIDE_READING_FUNCTIONS:
            raise QueryRefused(
                f"The function {words[1]}() reads files on the server and cannot run here; "
                "query kandji_logs instead."
            )
    for index in range(len(lines)):
        name = _table_function(lines, depths, index)
        if name and name not in SAFE_TABLE_FUNCTIONS:
            raise QueryRefused(
                f"The table function {name}() reads files, URLs or other servers and cannot run "
                "here; query kandji_logs instead."
            )
    return kind


def _kind(root: str) -> str | None:
    if root.startswith("Show"):
        return "SHOW"
    if root.startswith("Exists"):
        return "EXISTS"
    return READ_ROOTS.get(root)


def _word(node: str) -> str:
    return WRITE_WORDS.get(node, node.removesuffix("Query").upper() or "Such")


def _table_function(lines: list[str], depths: list[int], index: int) -> str:
    """The name of the table function at this line, if the line is one."""
    words = lines[index].split()
    if len(words) < 2 or words[0] != "Function":
        return ""
    for parent in range(index - 1, -1, -1):
        if depths[parent] < depths[index]:
            return words[1] if _node(lines[parent]) in ("TableExpression", "InsertQuery") else ""
    return ""


def _node(line: str) -> str:
    words = line.split()
    return words[0] if words else ""


# In the engine's rendering: string literals (to blank out), and clauses it writes in capitals.
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")
_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)
_FORMAT = re.compile(r"\sFORMAT\s+[A-Za-z]")
_CODE_PREFIX = re.compile(r"^.*?(?:Code: \d+\. )?(?:DB::Exception: )")
_NOISE = (". Expected one of", ": In scope", ". In scope", ". Stack trace", " (SYNTAX_ERROR)")


def engine_sentence(message: str) -> str:
    """ClickHouse's error as one short sentence: no code prefix, no expected-token list."""
    text = _CODE_PREFIX.sub("", message.strip().splitlines()[0] if message.strip() else "")
    for noise in _NOISE:
        text = text.split(noise, 1)[0]
    text = re.sub(r"\s*\([A-Z_]+\)\s*$", "", text).rstrip(". ")
    if len(text) > 300:
        text = text[:297] + "..."
    return (text or "the log store gave no reason") + "."
