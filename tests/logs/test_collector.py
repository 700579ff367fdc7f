"""The collector against the simulator over HTTP: every event stored once, whatever happens."""

import asyncio
import math
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.logs.collector import (
    CollectorSource,
    PassResult,
    collect,
    source_lock,
)
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.simulator.server import RunningSimulator

WORKSPACE = "6f1c1d8e-0000-4000-8000-000000000001"
SOURCE = CollectorSource(id="9d7a3c52-0000-4000-8000-000000000002", name="acme", retention_days=365)
AUDIT = "GET /api/v1/audit/events"


def run_pass(sim: RunningSimulator, store: ChdbLogStore, **options: object) -> PassResult:
    async def go() -> PassResult:
        client = KandjiClient(
            ApiUrl(sim.base_url),
            sim.token,
            limiter=RateLimiter(1000, 1_000_000),
            max_tries=8,
            backoff_base=0.01,
            backoff_cap=0.05,
        )
        async with client:
            return await collect(client, store, SOURCE, WORKSPACE, **options)  # type: ignore[arg-type]

    return asyncio.run(go())


def stored_ids(store: ChdbLogStore) -> list[str]:
    return [row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows]


def audit_requests(sim: RunningSimulator) -> int:
    return sim.stats.snapshot()["by_endpoint"].get(AUDIT, 0)


@pytest.fixture
def store(tmp_path: Path):
    store = ChdbLogStore(str(tmp_path / "logs"))
    store.ensure_schema()
    yield store
    store.close()


def test_a_backfill_stores_every_event_once_in_the_fewest_requests(
    simulator_factory, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=20, events=3_210, history_days=365, seed=3)
    result = run_pass(sim, store)
    expected = [event["id"] for event in sim.events()]
    ids = stored_ids(store)
    assert result.error is None
    assert result.backfill and result.stored == len(expected) == 3_210
    assert sorted(ids) == sorted(expected)
    assert audit_requests(sim) == math.ceil(3_210 / 500)


def test_the_next_pass_adds_only_new_and_late_events(simulator_factory, store) -> None:
    sim = simulator_factory(devices=10, events=600, history_days=30, seed=4)
    run_pass(sim, store)
    newest = max(datetime.fromisoformat(e["occurred_at"]) for e in sim.events())
    late = sim.state.add_event(
        action="update",
        target_type="blueprint",
        target_id="4a0c5cbe-1111-4c1d-9d5e-000000000001",
        target_component="",
        new_state={"name": "late"},
        metadata={},
        occurred_at=newest - timedelta(seconds=90),
    )
    sim.state.add_generated_events(7)
    result = run_pass(sim, store)
    assert not result.backfill
    assert result.stored == 8 and result.error is None
    ids = stored_ids(store)
    assert late["id"] in ids
    assert len(ids) == len(set(ids)) == 608


def test_backfill_days_limits_the_first_sync(simulator_factory, store) -> None:
    sim = simulator_factory(devices=5, events=900, history_days=90, seed=5)
    result = run_pass(sim, store, backfill_days=30)
    cutoff = datetime.now(UTC) - timedelta(days=30, minutes=1)
    recent = [e for e in sim.events() if datetime.fromisoformat(e["occurred_at"]) >= cutoff]
    assert 0 < result.stored <= len(recent) + 5
    assert result.stored < 900


def test_a_lost_permission_stops_the_pass_and_keeps_what_is_stored(simulator_factory, store):
    sim = simulator_factory(devices=5, events=700, history_days=10, seed=6)
    run_pass(sim, store)
    sim.state.revoke_permission(sim.token, "audit")
    result = run_pass(sim, store)
    assert result.error is not None and '"List audit events"' in result.error
    assert store.count(SOURCE.id) == 700


def test_faults_and_throttling_still_land_every_event_once(simulator_factory, store) -> None:
    sim = simulator_factory(
        devices=5,
        events=2_500,
        history_days=60,
        seed=8,
        fault_rate=0.25,
        rate_per_second=30,
        slow_response_seconds=0.2,
    )
    result = run_pass(sim, store)
    assert result.error is None, result.error
    ids = stored_ids(store)
    assert sorted(ids) == sorted(e["id"] for e in sim.events())
    assert sum(sim.stats.snapshot()["faults"].values()) > 0


def test_an_event_that_cannot_be_normalized_is_quarantined_not_lost(simulator_factory, store):
    sim = simulator_factory(devices=5, events=50, history_days=5, seed=9)
    sim.state.add_malformed_event(occurred_at="not a time")
    result = run_pass(sim, store)
    assert result.quarantined == 1
    assert store.quarantine_count(SOURCE.id) == 1
    again = run_pass(sim, store)
    assert again.quarantined == 0 and store.quarantine_count(SOURCE.id) == 1


def test_one_source_is_collected_by_one_process_at_a_time(tmp_path: Path) -> None:
    with source_lock(tmp_path, SOURCE):
        script = (
            "import sys; from pathlib import Path;"
            "from kandji_bridge.logs.collector import source_lock, SourceBusy, CollectorSource;"
            f"s = CollectorSource({SOURCE.id!r}, 'acme', 365)\n"
            "try:\n"
            f"    with source_lock(Path({str(tmp_path)!r}), s): sys.exit(0)\n"
            "except SourceBusy as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert other.returncode == 3
    assert "being collected by another kandji-bridge process" in other.stdout
    with source_lock(tmp_path, SOURCE):
        pass  # free again once the holder is done


def test_kill_9_mid_backfill_then_resume_loses_and_duplicates_nothing(
    home: Path, simulator_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `logs sync` process killed with SIGKILL at random moments, then run to the end."""
    sim = simulator_factory(
        devices=10, events=12_000, history_days=365, seed=11, rate_per_second=15
    )
    env = {
        **os.environ,
        "KANDJI_BRIDGE_HOME": str(home),
        "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
        "KANDJI_TOKEN": sim.token,
        "KANDJI_BRIDGE_LEASE_SECONDS": "1",  # a killed sync's hold on the source, 1 s after
    }
    cli = [sys.executable, "-m", "kandji_bridge"]
    added = subprocess.run(
        [
            *cli,
            "source",
            "add",
            "--name",
            "acme",
            "--url",
            sim.base_url,
            "--token-env",
            "KANDJI_TOKEN",
            "--no-verify",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    rng = random.Random(11)
    kills = 0
    for _ in range(3):
        sync = subprocess.Popen(
            [*cli, "logs", "sync", "acme"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(1.0, 2.5))
        if sync.poll() is None:
            sync.send_signal(signal.SIGKILL)
            kills += 1
            time.sleep(1.0)  # its lease runs out: the next sync is not refused
        sync.wait(timeout=30)
    assert kills >= 1
    final = subprocess.run(
        [*cli, "logs", "sync", "acme"], env=env, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    store = ChdbLogStore(str(home / "logs"))
    try:
        ids = stored_ids(store)
    finally:
        store.close()
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert sorted(ids) == sorted(e["id"] for e in sim.events()), "an event was lost"


def test_a_page_across_a_month_boundary_is_inserted_oldest_month_first() -> None:
    from kandji_bridge.logs.collector import _by_month

    times = [
        datetime(2026, 3, 1, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC),
    ]
    rows = [{"eventTime": t, "eventID": str(i)} for i, t in enumerate(times)]
    months = _by_month(rows)
    assert [[row["eventID"] for row in month] for month in months] == [["1"], ["0", "2"]]
