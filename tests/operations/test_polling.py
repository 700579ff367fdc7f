"""Poll a source: the operation itself against the simulator, and the three front ends that reach
it (`logs sync`, the web API's Poll now through the runner, serve's scheduler) doing the same."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import ENV_ALLOWED_HOSTS, ENV_LOG_STORE
from kandji_bridge.db import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations.polling import (
    PassFailed,
    check_resync_window,
    poll_source,
    sync_source,
)
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.web.app import create_app
from service.helpers import running, wait_until

DEVICES_ONLY = "devices-only-token"


def test_poll_source_stores_the_history_then_only_what_is_new(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=3, events=600, history_days=30, seed=61)
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    pages: list[int] = []
    requests: list[int] = []

    first = poll_source(
        runtime.settings,
        state,
        store,
        runtime.enricher,
        "acme",
        on_page=lambda result, stats: pages.append(result.pages),
        on_requests=lambda stats: requests.append(
            sum(e.requests for e in stats.by_endpoint.values())
        ),
    )

    assert (first.backfill, first.stored, first.error) == (True, 600, None)
    assert pages == list(range(1, first.pages + 1)), "progress is told after each page"
    assert requests and requests[0] >= first.pages
    sim.state.add_generated_events(7)
    again = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    assert (again.backfill, again.stored) == (False, 7)
    assert store.count(source.id) == 607


def test_a_token_without_the_audit_permission_ends_the_pass_with_one_sentence(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(
        devices=3, events=20, history_days=30, seed=62, tokens={DEVICES_ONLY: {"devices"}}
    )
    runtime = runtime_for(sim)
    sources.add_source(state, "acme", sim.base_url, DEVICES_ONLY)
    result = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    assert result.stored == 0
    assert result.error is not None and "List audit events" in result.error
    assert DEVICES_ONLY not in result.error


def test_the_cli_the_web_api_and_the_scheduler_poll_alike(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore, tmp_path: Path
) -> None:
    """One tenant, three sources reading it, each polled by one front end: the same events
    stored, the same job status."""
    sim = simulator_factory(devices=3, events=450, history_days=30, seed=63)
    runtime = runtime_for(sim)
    added = {
        name: sources.add_source(state, name, sim.base_url, sim.token, poll_interval=3600)
        for name in ("by-cli", "by-web", "by-scheduler")
    }

    # `logs sync` as users run it, a process of its own with its own log store.
    env = {
        **os.environ,
        ENV_ALLOWED_HOSTS: sim.host_port,
        ENV_LOG_STORE: f"chdb://{tmp_path / 'cli-logs'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "kandji_bridge", "logs", "sync", "by-cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Backfilled 450 new events for by-cli"), done.stdout

    # The REST API's Poll now, with no scheduler: the InlineRunner runs it in the request.
    users.create_user(state, "admin", "a long enough password")
    token = users.create_api_token(state, "admin", "tests", users.ADMIN)
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"}) as api:
        polled = api.post("/api/sources/by-web/poll")
    assert polled.json() == {"queued": False, "error": None}
    assert store.count(added["by-web"].id) == 450

    # serve's scheduler.
    scheduler = Scheduler(runtime, tick_seconds=0.1)
    job = jobs.source_job(added["by-scheduler"].id)
    with running(scheduler):
        wait_until(lambda: (s := jobs.job_status(state, job)) and s.runs, "the scheduler polled")
    assert store.count(added["by-scheduler"].id) == 450

    statuses = jobs.job_statuses(state)
    shapes = {
        name: (s.runs, s.failures, s.last_error, s.running, s.last_success_at is not None)
        for name, info in added.items()
        if (s := statuses[jobs.source_job(info.id)])
    }
    assert shapes == dict.fromkeys(added, (1, 0, None, False, True))


def test_sync_source_holds_the_job_and_a_failed_pass_keeps_its_result(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(
        devices=3,
        events=40,
        history_days=30,
        seed=64,
        tokens={"full-token": {"audit", "devices", "details"}, DEVICES_ONLY: {"devices"}},
    )
    runtime = runtime_for(sim)
    good = sources.add_source(state, "good", sim.base_url, "full-token")
    sources.add_source(state, "partial", sim.base_url, DEVICES_ONLY)

    done = sync_source(runtime.settings, state, store, runtime.enricher, "good")
    assert done.stored == 40
    status = jobs.job_status(state, jobs.source_job(good.id))
    assert status is not None and (status.runs, status.last_error) == (1, None)

    with pytest.raises(PassFailed) as failed:
        sync_source(runtime.settings, state, store, runtime.enricher, "partial")
    assert failed.value.result.stored == 0
    assert failed.value.message.startswith("The pass for source partial stopped early: ")
    assert failed.value.message.endswith("run `kandji-bridge logs sync partial` again to resume.")
    partial = sources.get_source(state, "partial")
    recorded = jobs.job_status(state, jobs.source_job(partial.id))
    assert recorded is not None and recorded.last_error == failed.value.message


def test_a_resync_must_start_within_the_stored_history(
    simulator, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    runtime = runtime_for(simulator)
    info = sources.add_source(state, "acme", simulator.base_url, simulator.token)
    later = datetime.now(UTC)
    window = (later - timedelta(days=1), later)
    with pytest.raises(BridgeError, match="Nothing is stored for source acme yet"):
        sync_source(runtime.settings, state, store, runtime.enricher, "acme", window=window)
    assert jobs.job_status(state, jobs.source_job(info.id)) is None, "a refusal is no failed run"
    sync_source(runtime.settings, state, store, runtime.enricher, "acme")
    future = (later + timedelta(days=30), later + timedelta(days=31))
    with pytest.raises(BridgeError, match="before --from"):
        check_resync_window(store, info, future)
