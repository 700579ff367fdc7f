"""The ClickHouse HTTP test fixture itself: what clickhouse-connect sends reaches chDB and comes
back as ClickHouse answers it, from several processes onto one engine."""

import subprocess
import sys
from datetime import datetime

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from support.clickhouse_http import REPO_ROOT, RunningFixture


def client(fixture: RunningFixture, database: str, **options: object):
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=fixture.port,
        username="kb",
        password=fixture.users["kb"],
        database=database,
        **options,
    )


@pytest.fixture
def database(clickhouse_url: str) -> str:
    return clickhouse_url.rsplit("/", 1)[1]


@pytest.mark.parametrize("compress", [True, "gzip", False])
def test_the_client_round_trips_through_the_fixture(
    clickhouse_fixture: RunningFixture, database: str, compress: object
) -> None:
    cc = client(clickhouse_fixture, database, compress=compress)
    cc.command(
        "CREATE TABLE t (a UInt32, s String, m Map(String, String), d DateTime) "
        "ENGINE = MergeTree ORDER BY a"
    )
    rows = [[1, "a\tb", {"k": "v"}, datetime(2025, 1, 1)], [2, "it's", {}, datetime(2025, 1, 2)]]
    cc.insert("t", rows, column_names=["a", "s", "m", "d"])  # Native, compressed when asked
    summary = cc.raw_insert("t", insert_block=b'{"a": 3, "s": "c"}', fmt="JSONEachRow")
    assert summary.written_rows == 1
    assert [list(r) for r in cc.query("SELECT * FROM t WHERE a < 3 ORDER BY a").result_rows] == rows
    bound = cc.query("SELECT {n:UInt32} + 1, {s:String}", parameters={"n": 41, "s": "x'\ty"})
    assert bound.result_rows == [(42, "x'\ty")]
    assert cc.command("SELECT currentDatabase()") == database
    cc.close()


def test_refusals_are_clickhouse_errors(clickhouse_fixture: RunningFixture, database: str) -> None:
    with pytest.raises(DatabaseError) as refused:
        clickhouse_connect.get_client(
            host="127.0.0.1", port=clickhouse_fixture.port, username="kb", password="wrong"
        )
    assert "Code: 516. DB::Exception: kb: Authentication failed" in str(refused.value)
    answer = httpx.post(
        clickhouse_fixture.url,
        params={"database": database},
        content=b"SELECT * FROM nosuch",
        auth=("kb", clickhouse_fixture.users["kb"]),
    )
    assert answer.status_code == 404
    assert answer.headers["X-ClickHouse-Exception-Code"] == "60"
    assert answer.text.startswith("Code: 60. DB::Exception: ")
    assert "(UNKNOWN_TABLE)" in answer.text


def test_a_session_keeps_its_settings_and_refuses_concurrent_use(
    clickhouse_fixture: RunningFixture, database: str
) -> None:
    auth = ("kb", clickhouse_fixture.users["kb"])
    session = {"session_id": "s1", "database": database}

    def run(sql: str, **params: str) -> httpx.Response:
        return httpx.post(clickhouse_fixture.url, params=params, content=sql.encode(), auth=auth)

    assert run("SET max_threads = 3", **session).status_code == 200
    kept = "SELECT value FROM system.settings WHERE name = 'max_threads'"
    assert run(kept, **session).text.strip() == "3"
    assert run(kept, database=database).text.strip() != "3"  # no session: none kept
    assert run(kept, max_threads="5", database=database).text.strip() == "5"  # URL setting


def test_processes_reach_one_engine(clickhouse_fixture: RunningFixture, database: str) -> None:
    client(clickhouse_fixture, database).command(
        "CREATE TABLE hits (n UInt32) ENGINE = MergeTree ORDER BY n"
    )
    script = (
        "import sys, clickhouse_connect\n"
        "cc = clickhouse_connect.get_client(host='127.0.0.1', port=int(sys.argv[1]), "
        "username='kb', password=sys.argv[2], database=sys.argv[3])\n"
        "cc.insert('hits', [[int(sys.argv[4])]], column_names=['n'])\n"
    )
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(clickhouse_fixture.port),
                clickhouse_fixture.users["kb"],
                database,
                str(n),
            ],
            cwd=REPO_ROOT,
        )
        for n in range(3)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0]
    stored = client(clickhouse_fixture, database).query("SELECT n FROM hits ORDER BY n")
    assert stored.result_rows == [(0,), (1,), (2,)]
