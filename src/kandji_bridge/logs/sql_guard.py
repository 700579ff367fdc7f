"""Read-only SQL for every front end that runs SQL a person typed (`logs query`, the SQL page,
its CSV download, `POST /api/logs/query`), applied by `operations.queries.run_query`:
ClickHouse's own parser decides.

A prefix check is not enough: comments, case, whitespace, a second statement after `;` (chDB
runs every statement of a multi-statement text), `INTO OUTFILE`, or a table function that reads
a file, a URL or another server all hide behind a leading SELECT. So the engine parses the text
(`formatQuerySingleLine`, which refuses more than one statement), the parsed statement is checked
through `EXPLAIN AST`, and what runs is the engine's own rendering of that one parsed statement,
never the raw text. Needs ClickHouse 23.10 or later (formatQuerySingleLine).

A SETTINGS clause is refused wherever it stands: the session's limits (user_queries) are the
query's, and the engine (readonly = 1) would refuse to change them anyway. System tables are
refused but for a few that list rows, tables, columns and functions: the others show other
queries' text, the server's settings and paths.
"""

# The statement reaches SQL as a sql_string literal, or as the engine's own rendering of it.
# ruff: noqa: S608

import re
from dataclasses import dataclass

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.store import LogStoreError, QueryResult, Select, sql_string
from kandji_bridge.logs.user_queries import STOPPED, QueryCancelled, QueryLimits

# Root nodes of EXPLAIN AST for statements that only read (and every Exists* node).
READ_ROOTS = {
    "SelectWithUnionQuery": "SELECT",
    "SelectIntersectExceptQuery": "SELECT",
    "DescribeQuery": "DESCRIBE",
    "Explain": "EXPLAIN",
    # SHOW TABLES (and DATABASES, SETTINGS), SHOW COLUMNS, SHOW CREATE TABLE; not SHOW
    # PROCESSLIST, GRANTS or USERS.
    "ShowTables": "SHOW",
    "ShowColumns": "SHOW",
    "ShowCreateTableQuery": "SHOW",
}
# The system tables a query may read: generators of rows, and what the log store holds.
SAFE_SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "tables",
        "columns",
        "databases",
        "functions",
        "table_functions",
        "data_type_families",
        "time_zones",
    }
)
# Table functions that read nothing outside the query: generators of rows.
SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateSeries"}
)
# Ordinary (not table) functions that read outside the query: file('/path') returns a server
# file's contents, the secret key file in the home included.
OUTSIDE_READING_FUNCTIONS = frozenset({"file", "catboostEvaluate"})
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
# The rows of a whole result (a CSV download, `logs query`); time and memory: QueryLimits.
MAX_ROWS = 1_000_000
READ_ONLY_HINT = "queries here only read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS)"
NARROW = "narrow it with WHERE on eventTime, or aggregate"


class QueryRefused(BridgeError):
    """A statement that would write, or that reads outside the log store."""


@dataclass(frozen=True)
class CheckedStatement:
    sql: str  # the engine's rendering of the one parsed statement: what runs
    kind: str  # SELECT, SHOW, DESCRIBE, EXPLAIN or EXISTS


def check_read_only(select: Select, sql: str) -> CheckedStatement:
    """The one statement in `sql`, as the engine parsed it, if it only reads; else QueryRefused.

    SQL with `{name:Type}` placeholders (detections) needs a `select` that binds their values:
    the engine's AST of such a statement holds them. The rendering keeps the placeholders.
    """
    if not sql.strip():
        raise QueryRefused("Write a query first, for example SELECT count() FROM kandji_logs.")
    try:
        result = select(f"SELECT formatQuerySingleLine({sql_string(sql)})")
    except LogStoreError as exc:
        if "QUERY_WAS_CANCELLED" in str(exc):
            raise QueryCancelled(STOPPED) from None
        message = engine_sentence(str(exc))
        if "Multi-statements" in message:
            raise QueryRefused(
                "The text holds more than one statement; run one statement at a time."
            ) from None
        raise QueryRefused(f"The query is not valid SQL: {message}") from None
    statement = str(result.rows[0][0]).strip()
    # Before EXPLAIN: it applies the statement's top-level SETTINGS.
    if _SETTINGS.search(_STRINGS.sub("''", statement)):
        raise QueryRefused(_NO_SETTINGS)
    try:
        lines = [row[0] for row in select(f"EXPLAIN AST {statement}").rows]
    except LogStoreError as exc:
        if "QUERY_WAS_CANCELLED" in str(exc):
            raise QueryCancelled(STOPPED) from None
        raise QueryRefused(f"The query is not valid SQL: {engine_sentence(str(exc))}") from None
    kind = _check_tree(statement, lines)
    return CheckedStatement(statement, kind)


def run_read_only(
    select: Select, sql: str, limit: int | None, limits: QueryLimits
) -> tuple[QueryResult, bool]:
    """Run a read-only statement; with `limit`, at most that many rows and whether there were more.

    `select` runs on a session that holds the time and memory `limits` (LogStore.user_session).
    A SELECT runs inside the engine as a subquery bounded, with a `limit`, in rows; without one
    (the CSV download, `logs query`) a result of more than MAX_ROWS rows is refused, so
    `SELECT * FROM system.numbers` cannot fill the memory. Other statements (SHOW, DESCRIBE,
    EXPLAIN) return short results and are cut here.
    """
    checked = check_read_only(select, sql)
    statement = checked.sql
    if checked.kind == "SELECT":
        rows = MAX_ROWS + 1 if limit is None else int(limit) + 1
        statement = f"SELECT * FROM ({statement}) LIMIT {rows}"
    try:
        result = select(statement)
    except LogStoreError as exc:
        raise _failure(str(exc), limits) from None
    if limit is None and len(result.rows) > MAX_ROWS:
        raise QueryRefused(
            f"The result has more than {MAX_ROWS:,} rows, too many at once; {NARROW}."
        )
    if limit is None or len(result.rows) <= limit:
        return result, False
    return QueryResult(result.columns, result.types, result.rows[:limit]), True


def timed_out(engine_message: str) -> bool:
    """Whether the engine stopped a query at its time limit (max_execution_time)."""
    return "TIMEOUT_EXCEEDED" in engine_message or "Timeout exceeded" in engine_message


def _failure(engine_message: str, limits: QueryLimits) -> BridgeError:
    """The sentence for a query the engine stopped or refused."""
    if timed_out(engine_message):
        return QueryRefused(
            f"The query took longer than {limits.seconds:,} s, the most a query may run, and was "
            f"stopped; {NARROW}."
        )
    if "MEMORY_LIMIT_EXCEEDED" in engine_message or "memory limit exceeded" in engine_message:
        return QueryRefused(
            f"The query needed more than {limits.memory_mb:,} MB of memory, the most a query may "
            f"use, and was stopped; {NARROW}, or select fewer columns."
        )
    if "QUERY_WAS_CANCELLED" in engine_message:
        return QueryCancelled(STOPPED)
    return QueryRefused(f"The query failed: {engine_sentence(engine_message)}")


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
        if words == ["Set"]:
            raise QueryRefused(_NO_SETTINGS)
        if len(words) >= 2 and words[0] in ("TableIdentifier", "Identifier"):
            database, _, table = words[1].partition(".")
            if database == "system" and table not in SAFE_SYSTEM_TABLES:
                raise QueryRefused(
                    f"The table system.{table} shows the server's own workings and cannot be "
                    "read here; query kandji_logs instead."
                )
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
    if root.startswith("Exists"):
        return "EXISTS"
    return READ_ROOTS.get(root)


def _word(node: str) -> str:
    if node.startswith("Show"):  # ShowProcesslistQuery: SHOW PROCESSLIST
        return "SHOW " + node.removeprefix("Show").removesuffix("Query").upper()
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
_SETTINGS = re.compile(r"\sSETTINGS\s")
_NO_SETTINGS = (
    "Leave out the SETTINGS clause: every query runs with the service's own time and memory limits."
)
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
