"""A production ClickHouse: the URL forms, the schema on a cluster, an insert retried after its
answer was lost, and every refusal a user can cause as one sentence (exit 1 from the CLI).

They run over real HTTP against the ClickHouse HTTP test fixture (chDB's engine); a hostile
server in front of it fakes what chDB cannot be: an old version, a user without a grant. The
fixture has no cluster, so the cluster's DDL is checked as text and parsed by ClickHouse's own
parser, never run.
"""

# SQL here is built from the tests' own names.
# ruff: noqa: S608

import json
from pathlib import Path
from urllib.parse import quote

import clickhouse_connect
import pytest
from chdb import session as chdb_session

from kandji_bridge.cli import main
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.schema import COLUMNS, LOGS_DDL, cluster_ddl
from kandji_bridge.logs.store import ChdbLogStore, LogStoreError, QuarantineEntry, open_log_store
from kandji_bridge.operations.queries import run_query
from support.clickhouse_http import RunningFixture, as_parsed
from support.hostile_clickhouse import (
    drop_first,
    hostile_clickhouse,
    missing_grant,
    old_version,
)

from ..conftest import RECEIVED_AT, SOURCE_ID, WORKSPACE_ID

PASSWORD = "kb-test-password"


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def tables(fixture: RunningFixture, database: str) -> list[str]:
    listed = fixture.execute(
        f"SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name"
    )
    return listed.decode().split()


def rows(count: int) -> list[dict]:
    ctx = NormalizeContext(WORKSPACE_ID, SOURCE_ID, 36500, received_at=RECEIVED_AT)
    events = [
        {"id": f"01JRETRY{i:018d}", "occurred_at": "2025-03-04T10:00:00Z", "action": "update"}
        for i in range(count)
    ]
    return [normalize(event, json.dumps(event), ctx) for event in events]


# --- the schema on a cluster ---------------------------------------------------------------------


def test_the_cluster_schema_is_replicated_and_distributed(clickhouse_url: str) -> None:
    statements = cluster_ddl("prod", "kb")
    assert [s.split("\n")[0] for s in statements] == [
        "CREATE TABLE IF NOT EXISTS `kb`.kandji_logs_local ON CLUSTER `prod` (",
        "CREATE TABLE IF NOT EXISTS `kb`.kandji_logs ON CLUSTER `prod` AS `kb`.kandji_logs_local",
        "CREATE TABLE IF NOT EXISTS `kb`.kandji_logs_quarantine_local ON CLUSTER `prod` (",
        "CREATE TABLE IF NOT EXISTS `kb`.kandji_logs_quarantine ON CLUSTER `prod` "
        "AS `kb`.kandji_logs_quarantine_local",
    ]
    replicated = (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
    )
    assert replicated in statements[0] and replicated in statements[2]
    assert statements[1].endswith(
        "ENGINE = Distributed('prod', 'kb', 'kandji_logs_local', cityHash64(id))"
    )
    assert statements[3].endswith(
        "ENGINE = Distributed('prod', 'kb', 'kandji_logs_quarantine_local', cityHash64(rawLog))"
    )
    # The local table is the single server's table, columns, keys, TTL and settings alike.
    body = LOGS_DDL.split("(", 1)[1].split("ENGINE")[0]
    assert body in statements[0]
    assert LOGS_DDL.split("ENGINE = ReplacingMergeTree")[1] in statements[0]
    assert all(f"`{name}` {type_}" in statements[0] for name, type_ in COLUMNS)
    # ClickHouse's own parser reads each statement (the fixture cannot run a cluster).
    with open_log_store(clickhouse_url) as store:
        assert all("ON CLUSTER prod" in sql for sql in as_parsed(store, statements))


def test_a_cluster_the_server_does_not_have_is_one_sentence_and_creates_nothing(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    with pytest.raises(LogStoreError) as refused:
        open_log_store(clickhouse_url + "?cluster=prod")
    assert str(refused.value) == (
        f"The ClickHouse server at {clickhouse_url.replace(PASSWORD, '***')}?cluster=prod has no "
        "cluster "
        "'prod' (system.clusters lists those it has); correct ?cluster= in "
        "KANDJI_BRIDGE_LOG_STORE, or leave it out for a server without one."
    )
    assert tables(clickhouse_fixture, database_of(clickhouse_url)) == []


@pytest.mark.parametrize("query", ["?shard=2", "?cluster="])
def test_an_unknown_url_option_is_one_sentence(clickhouse_url: str, query: str) -> None:
    with pytest.raises(LogStoreError, match=r"the options are \?cluster=NAME"):
        open_log_store(clickhouse_url + query)


# --- an insert whose answer is lost --------------------------------------------------------------


def test_an_insert_whose_answer_was_lost_is_sent_again_and_stored_once(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    database = database_of(clickhouse_url)
    rule = drop_first(b"INSERT INTO KANDJI_LOGS ")
    with (
        hostile_clickhouse(clickhouse_fixture.url, rule) as h,
        open_log_store(h.url("kb", PASSWORD, database)) as store,
    ):
        store.ensure_schema()
        page = rows(500)
        assert store.insert(page) == 500
        sent = [body for body in h.seen if body.startswith(b"INSERT INTO kandji_logs ")]
        assert len(sent) == 2 and sent[0] == sent[1], "the same insert, sent twice"
        assert store.count() == 500
        stored = store.query("SELECT count(), uniqExact(kandjiEventId) FROM kandji_logs")
        assert stored.rows == [[500, 500]]


def test_the_same_insert_twice_is_stored_once_on_a_server(clickhouse_url: str) -> None:
    with open_log_store(clickhouse_url) as store:
        store.ensure_schema()
        page = rows(20)
        store.insert(page)
        store.insert(page)  # as a retry sends it: the same rows, the same token
        assert store.count() == 20
        again = [{**row, "receivedAt": row["receivedAt"].replace(hour=10)} for row in page]
        store.insert(again)  # a page fetched again later is a new insert
        assert store.count() == 40


# --- refusals, each one sentence -----------------------------------------------------------------


def test_refused_credentials_are_one_sentence(clickhouse_url: str) -> None:
    wrong = clickhouse_url.replace(PASSWORD, "not-the-password")
    with pytest.raises(LogStoreError) as refused:
        open_log_store(wrong)
    assert str(refused.value) == (
        f"The ClickHouse log store at {wrong.replace('not-the-password', '***')} refused the "
        "user 'kb' and its password; correct them in KANDJI_BRIDGE_LOG_STORE "
        "(user:password@host)."
    )


def test_a_server_too_old_names_the_version_needed(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    database = database_of(clickhouse_url)
    with (
        hostile_clickhouse(clickhouse_fixture.url, old_version("23.8.16.16")) as h,
        pytest.raises(LogStoreError) as refused,
    ):
        open_log_store(h.url("kb", PASSWORD, database))
    assert "runs version 23.8.16.16, and the log store needs 24.1 or later" in str(refused.value)
    assert tables(clickhouse_fixture, database) == []


def test_a_missing_grant_is_named_and_nothing_is_created(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    database = database_of(clickhouse_url)
    grant = f"CREATE TABLE ON {database}.kandji_logs"
    rule = missing_grant(b"CREATE TABLE", "kb", grant)
    with hostile_clickhouse(clickhouse_fixture.url, rule) as h:
        store = open_log_store(h.url("kb", PASSWORD, database))
        with pytest.raises(LogStoreError) as refused:
            store.ensure_schema()
        store.close()
    assert str(refused.value) == (
        f"The ClickHouse user 'kb' lacks the grant {grant} at "
        f"clickhouse://kb:***@127.0.0.1:{h.port}/{database}; have an admin run GRANT {grant} "
        "TO kb (docs/clickhouse.md lists the grants), then try again."
    )
    assert tables(clickhouse_fixture, database) == []


def test_https_to_a_server_without_tls_says_so(clickhouse_fixture: RunningFixture) -> None:
    with pytest.raises(LogStoreError) as refused:
        open_log_store(f"https://kb:{PASSWORD}@127.0.0.1:{clickhouse_fixture.port}/default")
    assert str(refused.value).startswith(
        f"Cannot reach the ClickHouse log store at https://kb:***@127.0.0.1:"
        f"{clickhouse_fixture.port}/default (TLS failed); check the host, the port and the "
        "scheme"
    )


@pytest.mark.parametrize("failure", ["unreachable", "credentials", "version", "grant"])
def test_logs_query_on_a_bad_server_exits_1_with_one_sentence(
    failure: str,
    home: Path,
    clickhouse_fixture: RunningFixture,
    clickhouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = database_of(clickhouse_url)
    rules = {
        "version": [old_version("22.3.1.1")],
        "grant": [missing_grant(b"CREATE TABLE", "kb", f"CREATE TABLE ON {database}.*")],
    }.get(failure, [])
    with hostile_clickhouse(clickhouse_fixture.url, *rules) as h:
        url = {
            "unreachable": f"clickhouse://kb:{PASSWORD}@127.0.0.1:1/{database}",
            "credentials": h.url("kb", "wrong-password", database),
        }.get(failure, h.url("kb", PASSWORD, database))
        monkeypatch.setenv("KANDJI_BRIDGE_LOG_STORE", url)
        with pytest.raises(SystemExit) as exited:
            main(["logs", "query", "SELECT 1"])
    captured = capsys.readouterr()
    assert exited.value.code == 1
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and lines[0].endswith("."), lines
    assert PASSWORD not in captured.err and "wrong-password" not in captured.err
    expected = {
        "unreachable": "(the connection was refused)",
        "credentials": "refused the user 'kb' and its password",
        "version": "needs 24.1 or later",
        "grant": f"lacks the grant CREATE TABLE ON {database}.*",
    }
    assert expected[failure] in lines[0]
    assert tables(clickhouse_fixture, database) == []


def test_an_http_url_opens_the_server_store_with_its_deduplication_window(
    clickhouse_url: str,
) -> None:
    """`http://` is `clickhouse://`: the same server, the same store."""
    url = clickhouse_url.replace("clickhouse://", "http://")
    with open_log_store(url) as store:
        store.ensure_schema()
        assert store.count() == 0
    client = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=int(url.split(":")[3].split("/")[0]),
        username="kb",
        password=PASSWORD,
        database=database_of(url),
    )
    settings = client.command(
        "SELECT engine_full FROM system.tables WHERE name = 'kandji_logs' "
        "AND database = currentDatabase()"
    )
    assert "non_replicated_deduplication_window = 1000" in str(settings)


def test_an_embedded_store_moves_to_a_server_as_docs_clickhouse_md_says(
    tmp_path: Path, clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    """The migration in docs/clickhouse.md: chDB reads the embedded store's folder and sends
    every row to the server over its HTTP interface, in Native format."""
    database = database_of(clickhouse_url)
    with ChdbLogStore(str(tmp_path / "logs")) as embedded:
        embedded.ensure_schema()
        embedded.insert(rows(1200))
        embedded.insert_quarantine([QuarantineEntry(SOURCE_ID, "not an object", "[1]")])
    with open_log_store(clickhouse_url) as server:
        server.ensure_schema()  # what the first `kandji-bridge logs query` on it does
    session = chdb_session.Session(str(tmp_path / "logs"))
    try:
        for table in ("kandji_logs", "kandji_logs_quarantine"):
            target = quote(f"INSERT INTO {table} FORMAT Native")
            session.query(
                f"INSERT INTO FUNCTION url('{clickhouse_fixture.url}/?database={database}"
                f"&query={target}', 'Native', headers('X-ClickHouse-User' = 'kb', "
                f"'X-ClickHouse-Key' = '{PASSWORD}')) SELECT * FROM {table}"
            )
    finally:
        session.close()
    with open_log_store(clickhouse_url) as server:
        assert server.count() == 1200
        assert server.quarantine_count() == 1
        assert server.existing_event_ids(SOURCE_ID, [r["kandjiEventId"] for r in rows(3)]) == {
            r["kandjiEventId"] for r in rows(3)
        }


def test_sql_people_type_runs_as_the_reader_the_url_names(clickhouse_url: str) -> None:
    reader = clickhouse_url + "?reader=kb_reader:kb-reader-password"
    with open_log_store(reader) as store:
        store.ensure_schema()
        assert run_query(store, "SELECT count() AS n FROM kandji_logs").rows == [[0]]
    wrong = clickhouse_url + "?reader=kb_reader:not-the-reader-password"
    with open_log_store(wrong) as store, pytest.raises(LogStoreError) as refused:
        run_query(store, "SELECT 1")
    assert "refused the user 'kb_reader' and its password" in str(refused.value)
    assert "not-the-reader-password" not in str(refused.value)
    assert "reader=kb_reader:***" in str(refused.value)
