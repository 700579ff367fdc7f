"""Removing a source may delete its stored events too: from the confirmation page and from
`source remove NAME --delete-events`, through one operation; other sources' events stay."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.cli import main
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.store import LogStore, QuarantineEntry, open_log_store
from kandji_bridge.service.runtime import Runtime


def fill(state, store: LogStore) -> dict[str, str]:
    """Sources acme (3 events, 1 quarantined) and globex (2 events); their ids by name."""
    now = datetime.now(UTC).replace(microsecond=0)
    ids = {}
    for name, count in (("acme", 3), ("globex", 2)):
        info = sources.add_source(state, name, f"https://{name}.api.kandji.io", "t" * 36)
        ids[name] = info.id
        ctx = NormalizeContext("ws-remove", info.id, 36500, received_at=now)
        events = [
            {
                "id": f"01JREMOVE{name.upper()}{n:08d}",
                "action": "update",
                "occurred_at": (now - timedelta(minutes=n)).isoformat(),
                "actor_id": "a1",
                "actor_type": "user",
                "target_id": "bp",
                "target_type": "blueprint",
                "target_component": "",
                "new_state": {},
                "metadata": {},
            }
            for n in range(count)
        ]
        store.insert([normalize(e, json.dumps(e), ctx) for e in events])
    store.insert_quarantine([QuarantineEntry(ids["acme"], "bad time", '{"id": "Q1"}', "Q1")])
    return ids


def test_the_remove_page_offers_to_delete_the_events_and_does(
    runtime: Runtime, client: TestClient
) -> None:
    ids = fill(runtime.state, runtime.store)
    confirm = client.get("/sources/acme/remove").text
    assert 'name="delete_events"' in confirm and "Also delete its stored audit events" in confirm
    removed = client.post(
        "/sources/acme/remove", data={"csrf_token": client.csrf, "delete_events": "1"}
    )
    assert removed.status_code == 303
    page = client.get(removed.headers["location"]).text
    assert "Source acme was removed, and its 3 stored events deleted." in page
    assert (
        runtime.store.count(ids["acme"]) == 0 and runtime.store.quarantine_count(ids["acme"]) == 0
    )
    assert runtime.store.count(ids["globex"]) == 2
    # Without the box ticked the events stay, shown as a removed source's.
    kept = client.post("/sources/globex/remove", data={"csrf_token": client.csrf})
    assert "its stored events stay" in client.get(kept.headers["location"]).text
    assert runtime.store.count(ids["globex"]) == 2


def test_source_remove_delete_events_on_the_command_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(home)
    with open_state(settings) as state:
        store = open_log_store(settings.log_store)
        store.ensure_schema()
        ids = fill(state, store)
        store.close()
    with pytest.raises(SystemExit) as exit_info:
        main(["source", "remove", "acme", "--delete-events"])
    assert exit_info.value.code in (0, None)
    assert "Removed source acme and deleted its 3 stored events." in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["source", "remove", "acme", "--delete-events"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "No source named acme" in err and "Traceback" not in err
    store = open_log_store(settings.log_store)
    try:
        assert (store.count(ids["acme"]), store.count(ids["globex"])) == (0, 2)
        assert store.quarantine_count(ids["acme"]) == 0
    finally:
        store.close()
