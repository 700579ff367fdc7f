"""The detection settings as a scheduled run meets them, on real stores: how old a match's event
may be and still be sent (KANDJI_BRIDGE_SIGNAL_AGE_HOURS), and how long a rule may run
(KANDJI_BRIDGE_DETECTION_SECONDS) before the engine stops it and the window waits for the next
round."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge.config import Settings, load_settings
from kandji_bridge.db import StateDB
from kandji_bridge.detections.channels import add_webhook
from kandji_bridge.detections.fixtures import FixtureEvent
from kandji_bridge.detections.limits import DetectionLimits
from kandji_bridge.detections.outbox import deliveries
from kandji_bridge.detections.results import DETECTIONS_TABLE, ensure_detections_table, read_records
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.detections.run import DetectionRunError
from kandji_bridge.detections.windows import last_window_end
from kandji_bridge.errors import ConfigError
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.logs.transform import transform
from kandji_bridge.operations import detections as ops

RULE = "kandji-api-token-created"
WINDOW = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
# Passes validation (EXPLAIN does not build the set) and reads 10^11 numbers when it runs.
HEAVY = (
    "kandjiEventId IN (SELECT toString(number) FROM numbers(100000000000) "
    "WHERE number % 1000000007 = 1234567)"
)


@pytest.fixture
def empty(store: ChdbLogStore) -> ChdbLogStore:
    ensure_detections_table(store)
    for table in (LOGS_TABLE, DETECTIONS_TABLE):
        store.query(f"TRUNCATE TABLE {table}", read_only=False)
    return store


def store_token_created(store: ChdbLogStore, occurred: datetime, received: datetime) -> None:
    event = {
        "id": "01JNQC00000000000000000001",
        "action": "create",
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "actor_id": "user-1",
        "actor_type": "user",
        "target_id": "token-1",
        "target_type": "api_token",
        "target_component": "",
        "new_state": {"name": "ci", "permissions": ["GET /api/v1/devices"]},
        "metadata": {},
    }
    context = NormalizeContext("ws", "src-limits", 0, received_at=received)
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        out = transform([FixtureEvent(timedelta(0), event, json.dumps(event))], context, enricher)
    finally:
        enricher.close()
    store.insert(out.rows)


def limited(settings: Settings, **limits: int) -> Settings:
    return dataclasses.replace(settings, detection_limits=DetectionLimits(**limits))


@pytest.mark.parametrize(("age_hours", "kind", "sent"), [(2, "signal", 0), (24, "alert", 1)])
def test_the_signal_age_setting_decides_what_is_sent(
    state: StateDB, empty: ChdbLogStore, age_hours: int, kind: str, sent: int
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    boundary = previous_run("*/15 * * * *", now)
    # Received in the last window; it happened three hours ago (Kandji reported it late).
    store_token_created(empty, boundary - timedelta(hours=3), boundary - timedelta(minutes=5))
    add_webhook(state, "siem", "https://siem.example.com/hooks", "a signing secret of the test")
    ops.set_enabled(state, empty, RULE, True, ("siem",))

    settings = limited(state.settings, signal_age_hours=age_hours)
    assert ops.run_due_windows(settings, state, empty, RULE, now)
    assert [row["kind"] for row in read_records(empty, detection=RULE)] == [kind]
    assert len(deliveries(state)) == sent


def write_rule(folder: Path, name: str, where: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndisplayName: {name}\ndescription: A test rule.\n"
        "severity: High\nschedule: '*/15 * * * *'\n"
    )
    sql = f"SELECT * FROM kandji_logs WHERE {WINDOW} AND {where}"  # noqa: S608 (a rule file)
    (folder / f"{name}.sql").write_text(sql)


def test_a_rule_over_its_time_limit_is_stopped_and_its_window_waits(
    state: StateDB, empty: ChdbLogStore
) -> None:
    rules = ops.rules_folder(state.settings)
    write_rule(rules, "too-heavy", HEAVY)
    write_rule(rules, "light", "eventName = 'never.happens'")
    for name in ("too-heavy", "light"):
        ops.set_enabled(state, empty, name, True)
    now = datetime.now(UTC).replace(microsecond=0)
    settings = limited(state.settings, run_seconds=1)

    with pytest.raises(DetectionRunError) as raised:
        ops.run_due_windows(settings, state, empty, "too-heavy", now)
    assert str(raised.value) == (
        "Detection too-heavy ran longer than the 1 s a rule may run and was stopped; make its "
        "SQL read less (a shorter lookback, fewer columns), raise "
        "KANDJI_BRIDGE_DETECTION_SECONDS, or disable it."
    )
    assert last_window_end(state, "too-heavy") is None, "the window runs again next round"
    assert ops.run_due_windows(settings, state, empty, "light", now), "the others still run"


def test_a_rule_that_fails_at_run_time_says_what_to_do(state: StateDB, empty: ChdbLogStore) -> None:
    write_rule(ops.rules_folder(state.settings), "fails", "throwIf(1, 'boom') = 0")
    ops.set_enabled(state, empty, "fails", True)
    now = datetime.now(UTC).replace(microsecond=0)
    boundary = previous_run("*/15 * * * *", now)
    store_token_created(empty, boundary, boundary - timedelta(minutes=5))
    with pytest.raises(DetectionRunError) as raised:
        ops.run_due_windows(state.settings, state, empty, "fails", now)
    sentence = str(raised.value)
    assert sentence.startswith("Detection fails failed to run: ") and "boom" in sentence
    assert sentence.endswith("; fix its SQL or parameters (or disable it).")
    assert "\n" not in sentence


def test_the_limits_default_and_come_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).detection_limits == DetectionLimits(24, 60)
    limits = load_settings(
        tmp_path,
        env={"KANDJI_BRIDGE_SIGNAL_AGE_HOURS": "168", "KANDJI_BRIDGE_DETECTION_SECONDS": "5"},
    ).detection_limits
    assert limits == DetectionLimits(signal_age_hours=168, run_seconds=5)
    assert limits.signal_age == timedelta(days=7) and limits.signal_age_text == "7 days"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("KANDJI_BRIDGE_SIGNAL_AGE_HOURS", "24h", "a number of hours from 1 to 8,784"),
        ("KANDJI_BRIDGE_SIGNAL_AGE_HOURS", "0", "a number of hours from 1 to 8,784"),
        ("KANDJI_BRIDGE_DETECTION_SECONDS", "3601", "a number of seconds from 1 to 3,600"),
    ],
)
def test_a_bad_limit_is_one_sentence(tmp_path: Path, name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(tmp_path, env={name: value})
    assert str(bad.value).startswith(f"{name} must be {says}, not {value!r}; set it so")
    assert str(bad.value).count(".") == 1 and str(bad.value).endswith(".")
