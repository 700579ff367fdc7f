"""With the scheduler running: Save starts the new source's first poll, Poll now queues one."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge.service.runtime import Runtime
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator


@contextlib.contextmanager
def running(scheduler: Scheduler) -> Iterator[Scheduler]:
    """The scheduler on its own event loop in a thread, as `serve` runs it; stopped after."""
    thread = threading.Thread(target=asyncio.run, args=(scheduler.run(),), daemon=True)
    thread.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(timeout=120)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    """Wait for what a user would see; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.fixture
def kandji(home: Path, allow_simulator: RunningSimulator) -> RunningSimulator:
    """The simulator, allowed as a Kandji URL (`home` first: it clears KANDJI_BRIDGE_*)."""
    return allow_simulator


def test_save_starts_the_first_poll_and_poll_now_queues_one(
    kandji: RunningSimulator, runtime: Runtime, api: TestClient, client: TestClient
) -> None:
    # A tick only every 10 minutes: a poll that starts sooner was started by the trigger.
    inline = runtime.jobs
    with running(Scheduler(runtime, tick_seconds=600)) as scheduler:
        runtime.jobs = scheduler
        created = api.post(
            "/api/sources",
            json={"name": "kandji-prod", "api_url": kandji.base_url, "token": kandji.token},
        )
        assert created.status_code == 201
        assert created.json()["message"].endswith(
            "Logs begin appearing within a minute. "
            "Historical audit events are backfilled on the first sync."
        )
        events = len(kandji.state.all_events())

        def backfilled() -> bool:
            source = api.get("/api/sources/kandji-prod").json()
            return source["status"] == "ok" and source["events_ingested"] == events

        wait_until(backfilled, "the first poll backfills the new source")
        listing = client.get("/sources")
        assert "Background jobs are not running" not in listing.text

        kandji.state.add_generated_events(5)
        polled = client.post("/sources/kandji-prod/poll", data={"csrf_token": client.csrf})
        assert polled.headers["location"] == "/sources/kandji-prod?polled=queued"
        assert "Poll queued" in client.get(polled.headers["location"]).text
        wait_until(
            lambda: api.get("/api/sources/kandji-prod").json()["events_ingested"] == events + 5,
            "Poll now collects the new events",
        )
        runtime.jobs = inline
