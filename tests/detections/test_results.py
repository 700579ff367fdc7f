"""The detections table on a real chDB store: what a run matched, as alerts and signals.

Kandji events go through the product's transform into kandji_logs, a pack rule runs over a
window, and its matches are stored through the store's public query method.
"""

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.results import (
    DETECTIONS_TABLE,
    ensure_detections_table,
    read_records,
    split_matches,
    store_records,
)
from kandji_bridge.detections.rules import Detection, load_rule
from kandji_bridge.detections.run import Matches, run_detection
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.logs.transform import transform

WINDOW_FROM = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
WINDOW_TO = WINDOW_FROM + timedelta(minutes=15)
WORKSPACE = "ws-test"


@dataclasses.dataclass(frozen=True)
class Event:
    data: dict
    raw: str


def token_created(event_id: str, occurred_at: datetime) -> Event:
    data = {
        "id": event_id,
        "action": "create",
        "occurred_at": occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "actor_id": "user-1",
        "actor_type": "user",
        "target_id": f"token-{event_id[-4:]}",
        "target_type": "api_token",
        "target_component": "",
        "new_state": {"name": "ci", "permissions": ["GET /api/v1/devices"]},
        "metadata": {},
    }
    return Event(data, json.dumps(data))


@pytest.fixture
def clean_store(store: ChdbLogStore) -> Iterator[ChdbLogStore]:
    ensure_detections_table(store)
    for table in (LOGS_TABLE, DETECTIONS_TABLE):
        store.query(f"TRUNCATE TABLE {table}", read_only=False)
    yield store


@pytest.fixture(scope="module")
def rule(store: ChdbLogStore) -> Detection:
    loaded = load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store)
    return dataclasses.replace(loaded, notification_names=("siem",))


def ingest(store: ChdbLogStore, events: list[Event], received: datetime) -> list[str]:
    ctx = NormalizeContext(WORKSPACE, "src-1", 0, received_at=received)
    out = transform(events, ctx, build_enricher([], None, env={}))
    store.insert(out.rows)
    return [row["id"] for row in out.rows]


def test_a_run_is_stored_as_one_alert_with_its_matched_rows(
    clean_store: ChdbLogStore, rule: Detection
) -> None:
    ids = ingest(
        clean_store,
        [
            token_created("01JDETECTTEST0000000000001", WINDOW_FROM + timedelta(minutes=1)),
            token_created("01JDETECTTEST0000000000002", WINDOW_FROM + timedelta(minutes=2)),
        ],
        WINDOW_FROM + timedelta(minutes=3),
    )
    matches = run_detection(clean_store, rule, WINDOW_FROM, WINDOW_TO)
    records = split_matches(rule, matches, now=WINDOW_TO, workspace_id=WORKSPACE, run_time_ns=1234)

    assert [r.kind for r in store_records(clean_store, records)] == ["alert"]

    [row] = read_records(clean_store)
    assert row["detectionName"] == "kandji-api-token-created"
    assert row["kind"] == "alert"
    assert (row["severity"], row["riskScore"]) == ("Medium", 50)
    assert (row["windowFrom"], row["windowTo"]) == ("2026-12-06 09:00:00", "2026-12-06 09:15:00")
    assert row["recordsReturned"] == 2
    assert sorted(row["matchedIds"]) == sorted(ids)
    assert row["notificationNames"] == ["siem"]
    assert row["actor"]["id"] == "user-1"
    assert row["runTime"] == 1234
    results = json.loads(row["results"])
    assert [r["action"] for r in results] == ["create", "create"]
    assert "rawLog" not in results[0] and "newState" not in results[0]
    assert [a["id"] for a in read_records(clean_store, kind="alert")] == [row["id"]]
    alerts = clean_store.query("SELECT count() FROM alerts").rows[0][0]
    signals = clean_store.query("SELECT count() FROM signals").rows[0][0]
    assert (int(alerts), int(signals)) == (1, 0)


def test_running_the_same_window_again_stores_nothing_new(
    clean_store: ChdbLogStore, rule: Detection
) -> None:
    ingest(
        clean_store,
        [token_created("01JDETECTTEST0000000000003", WINDOW_FROM)],
        WINDOW_FROM + timedelta(minutes=1),
    )
    first = split_matches(
        rule,
        run_detection(clean_store, rule, WINDOW_FROM, WINDOW_TO),
        now=WINDOW_TO,
        workspace_id=WORKSPACE,
    )
    again = split_matches(
        rule,
        run_detection(clean_store, rule, WINDOW_FROM, WINDOW_TO),
        now=WINDOW_TO + timedelta(minutes=7),  # a restart, later
        workspace_id=WORKSPACE,
    )
    assert len(store_records(clean_store, first)) == 1
    assert store_records(clean_store, again) == []
    assert [r.id for r in again] == [r.id for r in first]  # the outbox's key: sent once
    assert len(read_records(clean_store)) == 1


def test_matches_on_events_older_than_a_day_are_signals_not_alerts(
    clean_store: ChdbLogStore, rule: Detection
) -> None:
    """A first backfill stores a year of history inside the current window: kept, not paged."""
    received = WINDOW_FROM + timedelta(minutes=5)
    old = ingest(
        clean_store,
        [token_created("01JDETECTTEST0000000000004", WINDOW_FROM - timedelta(days=40))],
        received,
    )
    new = ingest(
        clean_store,
        [token_created("01JDETECTTEST0000000000005", WINDOW_FROM + timedelta(minutes=4))],
        received,
    )
    records = split_matches(
        rule,
        run_detection(clean_store, rule, WINDOW_FROM, WINDOW_TO),
        now=WINDOW_TO,
        workspace_id=WORKSPACE,
    )
    store_records(clean_store, records)

    by_kind = {row["kind"]: row for row in read_records(clean_store)}
    assert set(by_kind) == {"alert", "signal"}
    assert by_kind["alert"]["matchedIds"] == new
    assert by_kind["signal"]["matchedIds"] == old
    assert [r.kind for r in records if r.kind == "alert"] == ["alert"]
    assert [m["id"] for m in records[0].alert().matches] == new


def test_a_rule_without_channels_only_makes_signals(
    clean_store: ChdbLogStore, rule: Detection
) -> None:
    silent = dataclasses.replace(rule, notification_names=())
    ingest(
        clean_store,
        [token_created("01JDETECTTEST0000000000006", WINDOW_FROM)],
        WINDOW_FROM + timedelta(minutes=1),
    )
    records = split_matches(
        silent,
        run_detection(clean_store, silent, WINDOW_FROM, WINDOW_TO),
        now=WINDOW_TO,
        workspace_id=WORKSPACE,
    )
    assert [r.kind for r in records] == ["signal"]


def test_a_window_with_no_match_stores_nothing(clean_store: ChdbLogStore, rule: Detection) -> None:
    records = split_matches(
        rule,
        run_detection(clean_store, rule, WINDOW_FROM, WINDOW_TO),
        now=WINDOW_TO,
        workspace_id=WORKSPACE,
    )
    assert records == []
    assert read_records(clean_store) == []


def test_a_run_with_thousands_of_targets_keeps_the_first_thousand_distinct_resources(
    clean_store: ChdbLogStore, rule: Detection
) -> None:
    """A window of a first backfill matches thousands of events on as many targets."""
    rows = [
        {
            "id": f"row-{n}",
            "eventTime": WINDOW_FROM - timedelta(days=40),
            "resources": [f"token-{n // 2}", "tenant"],
        }
        for n in range(10_000)
    ]
    matches = Matches(rule.name, WINDOW_FROM, WINDOW_TO, ["id", "eventTime"], rows, True)
    records = split_matches(rule, matches, now=WINDOW_TO, workspace_id=WORKSPACE)
    store_records(clean_store, records)

    [row] = read_records(clean_store)
    assert row["kind"] == "signal"
    assert (row["recordsReturned"], row["truncated"]) == (10_000, True)
    assert row["resources"][:3] == ["token-0", "tenant", "token-1"]
    assert len(row["resources"]) == len(set(row["resources"])) == 1000
    assert row["resources"][-1] == "token-998"
