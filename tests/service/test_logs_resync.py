"""`logs resync` as a real process against the simulator: it fills a hole, stores nothing twice,
and holds the source's job like `logs sync` (on SQLite and PostgreSQL)."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore

from .test_cli_leases import SERVE, assert_refused, cli_env, kandji_bridge


def stored_ids(home: Path) -> list[str]:
    store = ChdbLogStore(str(home / "logs"))
    try:
        return [row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows]
    finally:
        store.close()


def test_resync_fills_a_deleted_day_and_stores_nothing_twice(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=5, events=900, history_days=20, seed=41)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    env = cli_env(sim)
    synced = kandji_bridge(env, "logs", "sync", "acme")
    assert synced.returncode == 0, synced.stderr
    days = Counter(datetime.fromisoformat(e["occurred_at"]).date() for e in sim.events())
    day = sorted(days)[len(days) // 2]
    store = ChdbLogStore(str(home / "logs"))
    try:
        store.query(
            f"DELETE FROM kandji_logs WHERE toDate(eventTime) = '{day}'",  # noqa: S608
            read_only=False,
        )
    finally:
        store.close()
    assert len(stored_ids(home)) == 900 - days[day]

    filled = kandji_bridge(env, "logs", "resync", "acme", "--from", str(day), "--to", str(day))
    assert filled.returncode == 0, filled.stderr
    assert f"Resynced {days[day]:,} new events for acme" in filled.stdout
    assert f"the period {day} 00:00:00 to {day} 23:59:59 UTC" in filled.stdout
    ids = stored_ids(home)
    assert len(ids) == len(set(ids)) and set(ids) == {e["id"] for e in sim.events()}

    again = kandji_bridge(env, "logs", "resync", "acme", "--from", str(sorted(days)[0]))
    assert again.returncode == 0, again.stderr
    assert "Resynced 0 new events for acme" in again.stdout
    assert "(900 already stored, 0 quarantined)" in again.stdout
    assert sorted(stored_ids(home)) == sorted(ids)


def test_resync_waits_for_the_process_collecting_its_source(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=5, events=200, history_days=10, seed=42)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    env = cli_env(sim)
    assert kandji_bridge(env, "logs", "sync", "acme").returncode == 0
    job = jobs.source_job(source.id)
    assert leases.acquire(state, job, SERVE, ttl=120)
    refused = kandji_bridge(env, "logs", "resync", "acme", "--from", "2020-01-01")
    assert_refused(refused, "Source acme is being collected by another process")
    assert leases.holders(state) == {job: SERVE}
    leases.release(state, job, SERVE)
    done = kandji_bridge(env, "logs", "resync", "acme", "--from", "2020-01-01")
    assert done.returncode == 0 and "Resynced 0 new events" in done.stdout, done.stderr
    assert leases.holders(state) == {}


def test_resync_refuses_a_period_it_cannot_collect_safely(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=5, events=100, history_days=10, seed=43)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    env = cli_env(sim)
    first = kandji_bridge(env, "logs", "resync", "acme", "--from", "2020-01-01")
    assert first.returncode == 1 and "Nothing is stored for source acme yet" in first.stderr
    assert jobs.job_status(state, jobs.source_job(source.id)) is None  # no failed run recorded
    assert kandji_bridge(env, "logs", "sync", "acme").returncode == 0
    later = str((datetime.now(UTC) + timedelta(days=2)).date())
    ahead = kandji_bridge(env, "logs", "resync", "acme", "--from", later, "--to", "2999-01-01")
    assert ahead.returncode == 1 and "before --from; run `kandji-bridge logs sync acme`" in (
        ahead.stderr
    )
    backwards = kandji_bridge(
        env, "logs", "resync", "acme", "--from", "2026-02-02", "--to", "2026-02-01"
    )
    assert backwards.returncode == 2 and "is not before --to" in backwards.stderr
    bad = kandji_bridge(env, "logs", "resync", "acme", "--from", "yesterday")
    assert bad.returncode == 2 and "--from 'yesterday' is not a date" in bad.stderr
    for done in (first, ahead, backwards, bad):
        assert "Traceback" not in done.stderr and sim.token not in done.stderr
