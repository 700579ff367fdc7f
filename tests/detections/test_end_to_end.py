"""The pieces together, as the scheduler will call them: due windows, a pack rule run on a real
chDB store, its matches stored, the alert delivered to a real webhook; then the same tick again
after a crash before the window was recorded: nothing stored or sent twice."""

import dataclasses
from datetime import timedelta

from kandji_bridge.db import StateDB
from kandji_bridge.detections import KANDJI_PACK, channels
from kandji_bridge.detections.outbox import deliver_due, enqueue
from kandji_bridge.detections.results import (
    ensure_detections_table,
    read_records,
    split_matches,
    store_records,
)
from kandji_bridge.detections.rules import load_rule
from kandji_bridge.detections.run import run_detection
from kandji_bridge.detections.windows import due_windows, last_window_end, record_window
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore

from .receivers import HttpReceiver, signature_ok
from .test_results import WINDOW_FROM, WINDOW_TO, WORKSPACE, ingest, token_created

SECRET = "end-to-end-secret-0123456789"


def tick(state: StateDB, store: ChdbLogStore, detection, now, *, crash_before_record=False) -> None:
    windows = due_windows(
        detection.schedule, last_window_end(state, detection.name), now, stored_up_to=now
    )
    for window in windows:
        matches = run_detection(store, detection, window.start, window.end)
        records = split_matches(detection, matches, now=now, workspace_id=WORKSPACE)
        for record in store_records(store, records):
            if record.kind == "alert":
                enqueue(state, record.alert(), detection.notification_names, now)
        if crash_before_record:
            return
        record_window(state, detection.name, window)


def test_a_window_run_again_after_a_crash_alerts_once(state: StateDB, store: ChdbLogStore) -> None:
    ensure_detections_table(store)
    for table in (LOGS_TABLE, "detections"):
        store.query(f"TRUNCATE TABLE {table}", read_only=False)
    receiver = HttpReceiver().start()
    try:
        channels.add_webhook(state, "siem", receiver.url, SECRET)
        detection = dataclasses.replace(
            load_rule(KANDJI_PACK / "kandji-api-token-created.yaml", store),
            notification_names=("siem",),
        )
        record_window(state, detection.name, due_windows("@15m", None, WINDOW_FROM, None)[0])
        ingest(
            store,
            [token_created("01JENDTOEND000000000000001", WINDOW_FROM + timedelta(minutes=2))],
            WINDOW_FROM + timedelta(minutes=2),
        )
        now = WINDOW_TO + timedelta(seconds=20)

        tick(state, store, detection, now, crash_before_record=True)
        assert last_window_end(state, detection.name) == WINDOW_FROM  # not recorded: runs again
        tick(state, store, detection, now + timedelta(minutes=1))
        report = deliver_due(state, now + timedelta(minutes=1))
    finally:
        receiver.stop()

    assert last_window_end(state, detection.name) == WINDOW_TO
    assert len(read_records(store)) == 1
    assert report.sent == 1
    [got] = receiver.requests
    assert signature_ok(got, SECRET)
    assert got.json()["alert"]["windowTo"] == "2026-12-06T09:15:00Z"
    assert got.json()["alert"]["matches"][0]["targetType"] == "api_token"
