"""Service test helpers: a log store, a runtime around the state DB, a running scheduler."""

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kandji_bridge.config import ENV_ALLOWED_HOSTS
from kandji_bridge.db import StateDB
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbLogStore]:
    store = ChdbLogStore(str(tmp_path / "logs"))
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def runtime_for(
    state: StateDB, store: ChdbLogStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[RunningSimulator], Runtime]]:
    """A runtime whose settings allow the simulator's plain-http URL as a Kandji API URL."""
    enricher = build_enricher([], use_geoip2fast=False, env={})

    def make(sim: RunningSimulator) -> Runtime:
        # The environment does not list it: every path reads the allowed hosts from Settings.
        monkeypatch.delenv(ENV_ALLOWED_HOSTS, raising=False)
        settings = dataclasses.replace(state.settings, allowed_hosts=frozenset({sim.host_port}))
        return Runtime(settings, dataclasses.replace(state, settings=settings), store, enricher)

    yield make
    enricher.close()


@contextmanager
def running(scheduler: Scheduler) -> Iterator[Scheduler]:
    """The scheduler running on its own event loop in a thread; stopped and drained after."""
    thread = threading.Thread(target=asyncio.run, args=(scheduler.run(),), daemon=True)
    thread.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the scheduler did not stop"


def wait_until(condition: Callable[[], object], what: str, timeout: float = 90) -> None:
    """Wait for something a user would see; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)
