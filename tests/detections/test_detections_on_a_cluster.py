"""The detections table and its views on a ClickHouse cluster (`?cluster=NAME`): made ON CLUSTER
as kandji_logs is (a Replicated table on every node, a Distributed table that reads and inserts
name, the views over it), and a stored record waits for the shards, since it is read back at once.

The test fixture has no cluster (docs/clickhouse.md): the statements are checked as text and by
ClickHouse's own parser, and a hostile server in front of the fixture plays a server with the
cluster, answering the ON CLUSTER statements itself, so the test sees exactly what the store sends.
"""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.results import (
    DETECTIONS_DDL,
    VIEWS_DDL,
    detections_ddl,
    ensure_detections_table,
    read_records,
    split_matches,
    store_records,
)
from kandji_bridge.detections.rules import load_rule
from kandji_bridge.detections.run import Matches
from kandji_bridge.logs.store import open_log_store
from support.clickhouse_http import RunningFixture, as_parsed
from support.hostile_clickhouse import Answer, Rule, database_of, hostile_clickhouse

PASSWORD = "kb-test-password"
WINDOW_FROM = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def with_cluster(name: str) -> Rule:
    """A server that has the cluster `name`: system.clusters lists it, and each ON CLUSTER
    statement is accepted (not run: the fixture behind has no cluster)."""
    listed = {"meta": [{"name": "count()", "type": "UInt64"}], "data": [[1]], "rows": 1}

    def rule(body: bytes) -> Answer | None:
        if b"FROM system.clusters WHERE cluster = '" + name.encode() + b"'" in body:
            return Answer(200, json.dumps(listed).encode())
        if b" ON CLUSTER " in body:
            return Answer(200, b"")
        return None

    return rule


def tables(fixture: RunningFixture, database: str) -> list[str]:
    listed = fixture.execute(
        f"SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name"  # noqa: S608
    )
    return listed.decode().split()


def test_the_detections_schema_on_a_cluster_is_replicated_and_distributed(
    clickhouse_url: str,
) -> None:
    statements = detections_ddl("prod", "kb")
    assert [s.split("\n")[0] for s in statements] == [
        "CREATE TABLE IF NOT EXISTS `kb`.detections_local ON CLUSTER `prod` (",
        "CREATE TABLE IF NOT EXISTS `kb`.detections ON CLUSTER `prod` AS `kb`.detections_local",
        "CREATE VIEW IF NOT EXISTS `kb`.alerts ON CLUSTER `prod` AS "
        "SELECT * FROM `kb`.detections WHERE kind = 'alert'",
        "CREATE VIEW IF NOT EXISTS `kb`.signals ON CLUSTER `prod` AS "
        "SELECT * FROM `kb`.detections WHERE kind = 'signal'",
    ]
    assert (
        "ENGINE = ReplicatedReplacingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
    ) in statements[0]
    # Sharded by the row's id: a window run again lands where its row is, and is folded there.
    assert statements[1].endswith(
        "ENGINE = Distributed('prod', 'kb', 'detections_local', cityHash64(id))"
    )
    # The local table is the single server's: columns, partitions and keys alike.
    body = DETECTIONS_DDL.split("(", 1)[1].split("ENGINE")[0]
    assert body in statements[0]
    assert DETECTIONS_DDL.split("ENGINE = ReplacingMergeTree")[1] in statements[0]
    # On one server nothing changes.
    assert detections_ddl(None, "kb") == (DETECTIONS_DDL, *VIEWS_DDL)
    # ClickHouse's own parser reads each statement (the fixture cannot run a cluster).
    with open_log_store(clickhouse_url) as store:
        assert all("ON CLUSTER prod" in sql for sql in as_parsed(store, statements))


def test_a_store_on_a_cluster_makes_the_detections_table_and_views_on_cluster(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    database = database_of(clickhouse_url)
    with (
        hostile_clickhouse(clickhouse_fixture.url, with_cluster("prod")) as h,
        open_log_store(h.url("kb", PASSWORD, database) + "?cluster=prod") as store,
    ):
        h.seen.clear()
        ensure_detections_table(store)
        sent = [body.decode() for body in h.seen if body.lstrip().upper().startswith(b"CREATE")]
    assert sent == list(detections_ddl("prod", database))
    # Nothing was made on the one node the store reaches, as a single server's table would be.
    assert tables(clickhouse_fixture, database) == []


def test_a_detection_stored_on_a_cluster_waits_for_the_shards(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    """Its row is read back at once to confirm it; an insert the Distributed table sends to the
    shards later would not be there yet, and the window would fail and never send its alert."""
    database = database_of(clickhouse_url)
    with open_log_store(clickhouse_url) as single:  # the fixture's stand-in for the cluster's
        single.ensure_schema()
        ensure_detections_table(single)
        rule = load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", single)
    matches = Matches(
        rule.name,
        WINDOW_FROM,
        WINDOW_FROM + timedelta(minutes=15),
        ["id", "eventTime"],
        [{"id": "event-1", "eventTime": "2026-12-06 09:01:00"}],
        truncated=False,
    )
    records = split_matches(
        rule, matches, now=WINDOW_FROM + timedelta(minutes=16), workspace_id="ws"
    )
    with (
        hostile_clickhouse(clickhouse_fixture.url, with_cluster("prod")) as h,
        open_log_store(h.url("kb", PASSWORD, database) + "?cluster=prod") as store,
    ):
        assert store_records(store, records) == records
        inserts = [
            parse_qs(urlsplit(path).query)
            for path, body in zip(h.paths, h.seen, strict=True)
            if body.lstrip().startswith(b"INSERT INTO detections")
        ]
        assert [row["id"] for row in read_records(store)] == [records[0].id]
    assert len(inserts) == 1
    assert inserts[0].get("distributed_foreground_insert") == ["1"]


def test_a_detections_schema_already_there_is_not_made_again_on_a_cluster(
    clickhouse_fixture: RunningFixture, clickhouse_url: str
) -> None:
    """Each ON CLUSTER statement waits for every node: the detections job, which ensures the
    table on every tick with a window due, sends none once the tables are there."""
    database = database_of(clickhouse_url)
    with open_log_store(clickhouse_url) as single:  # what the cluster's statements would make
        ensure_detections_table(single)
    clickhouse_fixture.execute(f"CREATE TABLE {database}.detections_local AS {database}.detections")
    with (
        hostile_clickhouse(clickhouse_fixture.url, with_cluster("prod")) as h,
        open_log_store(h.url("kb", PASSWORD, database) + "?cluster=prod") as store,
    ):
        h.seen.clear()
        ensure_detections_table(store)
        ensure_detections_table(store)
    assert [body for body in h.seen if b" ON CLUSTER " in body] == []
