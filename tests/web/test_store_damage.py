"""A part the embedded store cannot read is moved aside when the store opens; that is said on the
next command's stderr, on the Sources page and in the API, with how to recover. The part is
damaged for real: one of its files cut short on disk between two opens of the store."""

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.store import ChdbLogStore, open_log_store
from kandji_bridge.service.runtime import Runtime

SOURCE = "src-acme"


def rows(count: int, month: int, first: int) -> list[dict]:
    start = datetime(2026, month, 3, tzinfo=UTC)
    return [
        {
            "sourceID": SOURCE,
            "id": f"row-{n}",
            "eventID": f"evt-{n}",
            "kandjiEventId": f"evt-{n}",
            "eventTime": start + timedelta(minutes=n),
            "receivedAt": start,
            "sourceTTL": 0,
        }
        for n in range(first, first + count)
    ]


def damage_october(folder: Path) -> None:
    """300 events in October and 200 in November, then October's data file cut in half."""
    store = ChdbLogStore(str(folder))
    try:
        store.ensure_schema()
        store.insert(rows(300, 10, 0))
        store.insert(rows(200, 11, 1000))
        october = store.query(
            "SELECT path FROM system.parts WHERE table = 'kandji_logs' AND active "
            "AND partition_id = '202610'"
        ).rows[0][0]
    finally:
        store.close()
    data = Path(october) / "data.bin"
    os.truncate(data, data.stat().st_size // 2)


@pytest.fixture
def runtime(home: Path) -> Iterator[Runtime]:
    """The web tests' runtime, opened on a home whose log store has a damaged part."""
    settings = load_settings(home)
    state = open_state(settings)
    damage_october(home / "logs")
    store = open_log_store(settings.log_store)
    store.ensure_schema()
    enricher = build_enricher()
    try:
        yield Runtime(settings, state, store, enricher)
    finally:
        enricher.close()
        store.close()
        state.close()


def test_the_next_command_says_which_part_was_moved_aside_and_how_to_recover(
    home: Path,
) -> None:
    damage_october(home / "logs")
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    done = subprocess.run(
        [*(sys.executable, "-m", "kandji_bridge"), "logs", "query",
         "SELECT count() FROM kandji_logs", "--format", "csv"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["count()", "200"]  # October's 300 events are gone from queries
    warning = " ".join(done.stderr.split())  # as one line, whatever the terminal width
    assert warning.startswith("Warning: The log store found 1 damaged part it could not read")
    assert "kandji_logs of 2026-10 (--from 2026-10-01 --to 2026-10-31), 300 rows" in warning
    assert "/detached/broken-on-start_202610_" in warning
    assert "restore the store from a backup, or collect that period again" in warning
    assert "kandji-bridge logs resync SOURCE" in warning


def test_the_api_and_the_sources_page_show_the_damaged_part(client: TestClient, api) -> None:
    body = api.get("/api/logs/storage").json()
    [part] = body["damaged_parts"]
    assert part["table"] == "kandji_logs" and part["rows"] == 300
    assert part["reason"] == "broken-on-start" and part["partition"] == "202610"
    assert "/detached/broken-on-start_202610_" in part["path"]
    assert "logs resync" in body["notice"]
    page = client.get("/sources")
    assert page.status_code == 200
    assert "data-store-damage" in page.text
    assert "1 damaged part it could not read" in page.text and "300 rows" in page.text
    # The page says what to do in the UI, not which command to run.
    assert "of 2026-10 (2026-10-01 to 2026-10-31)" in page.text
    assert "Collect a period again" in page.text and "logs resync" not in page.text


def test_a_healthy_store_shows_no_notice(home: Path) -> None:
    settings = load_settings(home)
    store = open_log_store(settings.log_store)
    try:
        store.ensure_schema()
        assert store.damaged_parts() == []
    finally:
        store.close()
