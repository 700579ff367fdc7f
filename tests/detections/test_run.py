"""Running one detection over a window: the window contract, parameters, and clear failures."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.rules import Detection, load_rule
from kandji_bridge.detections.run import DetectionRunError, run_detection
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.logs.transform import transform

from .test_rules import good_fields, write_rule

START = datetime(2025, 3, 6, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=15)


class Event:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.raw = json.dumps(data)


def token_event(event_id: str, actor_name: str = "admin") -> Event:
    return Event(
        {
            "id": event_id,
            "action": "create",
            "occurred_at": "2025-03-06T09:00:00Z",
            "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
            "actor_type": "user",
            "target_id": "a0726ca3-717d-41b9-a3af-c7d0bad8b784",
            "target_type": "api_token",
            "target_component": "",
            "new_state": {"label": "x"},
            "metadata": {"actor_name": actor_name},
        }
    )


def store_at(store: ChdbLogStore, received: datetime, *events: Event) -> None:
    ctx = NormalizeContext("ws", "src", 0, received_at=received)
    store.insert(transform(events, ctx).rows)


@pytest.fixture
def empty(store: ChdbLogStore) -> ChdbLogStore:
    store.query("TRUNCATE TABLE kandji_logs", read_only=False)
    return store


@pytest.fixture
def token_created(store: ChdbLogStore) -> Detection:
    return load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store)


def test_windows_tile_received_at_without_gap_or_overlap(
    empty: ChdbLogStore, token_created: Detection
) -> None:
    store_at(empty, START - timedelta(seconds=1), token_event("01JNQB00000000000000000001"))
    store_at(empty, START, token_event("01JNQB00000000000000000002"))
    store_at(empty, END - timedelta(seconds=1), token_event("01JNQB00000000000000000003"))
    store_at(empty, END, token_event("01JNQB00000000000000000004"))
    windows = [(START - timedelta(minutes=15), START), (START, END), (END, END + (END - START))]
    found = [
        sorted(row["eventID"] for row in run_detection(empty, token_created, a, b).rows)
        for a, b in windows
    ]
    assert found == [
        ["01JNQB00000000000000000001"],
        ["01JNQB00000000000000000002", "01JNQB00000000000000000003"],
        ["01JNQB00000000000000000004"],
    ]


def test_parameter_values_reach_the_engine_exactly(empty: ChdbLogStore, tmp_path: Path) -> None:
    # Quotes, backslashes, tabs and newlines: text the engine would otherwise read as escapes.
    awkward = 'O\'Brien \\ "the admin"\tand\na newline'
    store_at(empty, START, token_event("01JNQB00000000000000000011", awkward))
    store_at(empty, START, token_event("01JNQB00000000000000000012", "someone else"))
    sql = (
        "SELECT eventID FROM kandji_logs WHERE receivedAt >= {from:DateTime} "
        "AND receivedAt < {to:DateTime} AND actor['name'] = {targetType:String}"
    )
    detection = load_rule(write_rule(tmp_path, good_fields(), sql), empty)
    found = run_detection(empty, detection, START, END, {"targetType": awkward})
    assert found.rows == [{"eventID": "01JNQB00000000000000000011"}]


def test_a_rule_that_fails_at_run_time_names_the_rule(empty: ChdbLogStore, tmp_path: Path) -> None:
    sql = (
        "SELECT toUInt32(actorId) AS n FROM kandji_logs WHERE receivedAt >= {from:DateTime} "
        "AND receivedAt < {to:DateTime} AND targetType = {targetType:String}"
    )
    detection = load_rule(write_rule(tmp_path, good_fields(), sql), empty)
    store_at(empty, START, token_event("01JNQB00000000000000000021"))
    with pytest.raises(DetectionRunError) as raised:
        run_detection(empty, detection, START, END)
    message = str(raised.value)
    assert message.startswith("Detection test-rule failed to run: ")
    assert "Traceback" not in message and "Stack trace" not in message
    assert "\n" not in message
    # The failed query's partial output does not leak into the next query's result.
    assert empty.count() == 1


def test_a_parameter_value_the_engine_cannot_read(store: ChdbLogStore) -> None:
    burst = load_rule(KANDJI_PACK / "kandji-delete-burst.yaml", store)
    with pytest.raises(DetectionRunError) as raised:
        run_detection(store, burst, START, END, {"threshold": "many"})
    assert str(raised.value).startswith("Detection kandji-delete-burst failed to run: Value many")


def test_an_unknown_parameter_is_refused(store: ChdbLogStore) -> None:
    burst = load_rule(KANDJI_PACK / "kandji-delete-burst.yaml", store)
    with pytest.raises(DetectionRunError) as raised:
        run_detection(store, burst, START, END, {"treshold": "3"})
    assert str(raised.value) == (
        "Detection kandji-delete-burst has no parameter 'treshold'; its parameters: "
        "burstMinutes, threshold."
    )


@pytest.mark.parametrize(
    ("start", "end", "sentence"),
    [
        (END, START, "the window must start before it ends"),
        (START.replace(tzinfo=None), END, "window times need a time zone (UTC)"),
        (START + timedelta(microseconds=5), END, "window times are whole seconds"),
    ],
)
def test_bad_windows(
    store: ChdbLogStore, token_created: Detection, start: datetime, end: datetime, sentence: str
) -> None:
    with pytest.raises(DetectionRunError) as raised:
        run_detection(store, token_created, start, end)
    assert str(raised.value).startswith(f"Detection kandji-api-token-created: {sentence}")


def test_a_run_returns_at_most_max_rows_and_says_so(
    empty: ChdbLogStore, token_created: Detection
) -> None:
    events = [token_event(f"01JNQB000000000000000001{i:02d}") for i in range(5)]
    store_at(empty, START, *events)
    found = run_detection(empty, token_created, START, END, max_rows=3)
    assert (len(found.rows), found.truncated) == (3, True)
    found = run_detection(empty, token_created, START, END)
    assert (len(found.rows), found.truncated) == (5, False)
