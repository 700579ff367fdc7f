"""`kandji-bridge logs query` reads only, like the SQL page: what it refuses, and what it runs."""

# Hostile SQL is what these tests are made of.
# ruff: noqa: S608

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from kandji_bridge.cli import main
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.store import open_log_store

from .conftest import Event


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def stored(
    home: Path,
    log_store_url: str,
    postman_events: list[Event],
    ctx: NormalizeContext,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """The log store (embedded, or a ClickHouse server) holding Kandji's example events; how
    many."""
    monkeypatch.setenv("KANDJI_BRIDGE_LOG_STORE", log_store_url)
    with open_log_store(log_store_url) as store:
        store.ensure_schema()
        store.insert([normalize(event.data, event.raw, ctx) for event in postman_events])
        return store.count()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A server a query must never reach: it records every request."""

    hits: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"stolen\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def outside() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1: its host:port and the paths asked of it."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


SECRET = "kb-secret-file-content-7f3a"


def refused_queries(secret: Path, outfile: Path, host: str) -> list[str]:
    return [
        # More than one statement: chDB runs them all.
        "SELECT 1; DROP TABLE kandji_logs",
        "SELECT count() FROM kandji_logs;TRUNCATE TABLE kandji_logs;",
        # Writes and DDL behind comments, case and whitespace, or inside a CTE's statement.
        "/* just a read */ DROP TABLE kandji_logs",
        "\n-- SELECT\n  tRuNcAtE   TABLE kandji_logs",
        "WITH x AS (SELECT 1) SELECT * FROM x; ALTER TABLE kandji_logs DELETE WHERE 1",
        "INSERT INTO kandji_logs WITH x AS (SELECT 1) SELECT * FROM kandji_logs",
        "ALTER TABLE kandji_logs DELETE WHERE 1",
        "OPTIMIZE TABLE kandji_logs FINAL",
        "SET readonly = 0",
        # Files, URLs and other servers, as table functions and as the file() function.
        f"SELECT * FROM file('{secret}', 'LineAsString')",
        f"SELECT file('{secret}')",
        f"SELECT * FROM url('http://{host}/url', 'LineAsString')",
        f"SELECT * FROM remote('{host}', system.one)",
        "SELECT * FROM postgresql('127.0.0.1:5432', 'kb', 't', 'kb', 'kb')",
        "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')",
        f"SELECT * FROM s3('http://{host}/bucket/x.csv', 'CSV')",
        # Local files, HDFS and Python objects through table functions.
        f"SELECT * FROM sqlite('{secret}', 't')",
        f"SELECT * FROM hdfs('hdfs://{host}/x.csv', 'CSV')",
        "SELECT * FROM Python(kandji_logs)",
        # Settings that would lift the limits, at the top or in a subquery.
        "SELECT count() FROM kandji_logs SETTINGS readonly = 0",
        "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0",
        "SELECT * FROM (SELECT count() FROM numbers(10) SETTINGS max_memory_usage = 0)",
        # Results written to the server's disk.
        f"SELECT * FROM kandji_logs INTO OUTFILE '{outfile}'",
        # System tables that show other queries, the server's settings and users.
        "SELECT query FROM system.processes",
        "SELECT query FROM system.query_log",
        "SELECT * FROM system.users",
        "SHOW PROCESSLIST",
        "SHOW GRANTS",
    ]


def test_logs_query_refuses_what_does_not_only_read_in_one_sentence(
    stored: int,
    home: Path,
    tmp_path: Path,
    outside: tuple[str, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    outfile = tmp_path / "out.csv"
    host, hits = outside
    for sql in refused_queries(secret, outfile, host):
        code, out, error = run(["logs", "query", sql, "--format", "csv"], capsys)
        assert code == 1, f"ran: {sql!r}"
        assert error.startswith("Error: "), sql
        assert len(error.strip().splitlines()) == 1 and "Traceback" not in error, sql
        assert error.rstrip().endswith("."), sql
        assert SECRET not in out + error, sql
        code, out, _ = run(["logs", "query", "SELECT count() FROM kandji_logs"], capsys)
        assert code == 0 and f"│ {stored} " in out, f"the table changed after {sql!r}"
    assert hits == [], "a query reached a server outside the log store"
    assert not outfile.exists()


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT 1; DROP TABLE kandji_logs", "more than one statement"),
        ("/* read */ DROP TABLE kandji_logs", "DROP statements cannot run here"),
        ("SELECT file('/etc/hostname')", "The function file() reads files"),
        ("SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')", "The table function url()"),
        ("SELECT 1 SETTINGS max_memory_usage = 0", "Leave out the SETTINGS clause"),
        ("SELECT 1 INTO OUTFILE '/tmp/x.csv'", "INTO OUTFILE cannot run here"),
        ("SELECT * FROM system.processes", "The table system.processes"),
    ],
)
def test_each_refusal_says_what_to_do(
    stored: int, sql: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, error = run(["logs", "query", sql], capsys)
    assert code == 1
    assert says in error


def test_logs_query_still_runs_reads(stored: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "logs", "query", " -- by name\nSELECT eventName, count() AS n FROM kandji_logs "
            "GROUP BY eventName ORDER BY n DESC, eventName LIMIT 1;", "--format", "json",
        ],
        capsys,
    )  # fmt: skip
    assert code == 0
    row = json.loads(out.splitlines()[0])
    assert set(row) == {"eventName", "n"} and row["n"] >= 1
    for sql in (
        "SHOW TABLES",
        "DESCRIBE TABLE kandji_logs",
        "SELECT count() FROM numbers(10)",
        "SELECT name FROM system.tables WHERE database = currentDatabase()",
    ):
        code, _, error = run(["logs", "query", sql, "--format", "csv"], capsys)
        assert code == 0, f"{sql}: {error}"


def test_a_bad_query_limit_is_one_sentence_and_exit_1(
    stored: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KANDJI_BRIDGE_QUERIES_PER_USER", "two")
    code, out, error = run(["logs", "query", "SELECT count() FROM kandji_logs"], capsys)
    assert code == 1 and out == ""
    assert error.strip() == (
        "Error: KANDJI_BRIDGE_QUERIES_PER_USER must be a count from 1 to 1,000, not 'two'."
    )
