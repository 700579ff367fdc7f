"""`inventory sync` and `logs sync` hold the same job leases as `serve`, as real processes.

Run on SQLite and PostgreSQL: a sync is refused (exit 1, one sentence) while another live
process holds its job and runs once it is released; a CLI sync killed with SIGKILL leaves its run
`running`, and the next sync closes it as interrupted; a CLI sync and serve's scheduler never
sync one mapping at once.
"""

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from kandji_bridge import source_registry as sources
from kandji_bridge.config import ENV_ALLOWED_HOSTS, ENV_LEASE_SECONDS
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import JobLease, SyncRun, utcnow
from kandji_bridge.inventory import runs
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator

from .helpers import running, wait_until
from .test_scheduler import add_mapping

CLI = (sys.executable, "-m", "kandji_bridge")
TEXT = {"capture_output": True, "text": True, "check": True}
SERVE = "serve-host:4242:0badf00d"  # another live process: it keeps its lease while the test runs


def cli_env(sim: RunningSimulator, lease_seconds: str = "2") -> dict[str, str]:
    """The test's home and state DB (set by the fixtures), the simulator allowed, short leases."""
    return {**os.environ, ENV_ALLOWED_HOSTS: sim.host_port, ENV_LEASE_SECONDS: lease_seconds}


def slow_tenant(simulator_factory, seed: int, devices: int = 1_500) -> RunningSimulator:
    """Devices listed 300 a page at 1 request a second: a sync that lasts seconds (one request
    at a time, so Kandji's 429 answers only make the client wait, never give up)."""
    return simulator_factory(
        devices=devices, events=0, history_days=30, seed=seed, rate_per_second=1
    )


def kandji_bridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def assert_refused(done: subprocess.CompletedProcess[str], sentence: str) -> None:
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: {sentence}"), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_inventory_sync_waits_for_the_process_holding_its_mapping(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=20, events=0, history_days=30, seed=31)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    job = jobs.mapping_job(mapping.id)
    env = cli_env(sim)
    assert leases.acquire(state, job, SERVE, ttl=120)

    refused = kandji_bridge(env, "inventory", "sync", "devices")
    assert_refused(
        refused,
        "Mapping devices is being synced by another process (`serve` or another `inventory "
        "sync`); wait for it to finish, or follow its run with `kandji-bridge inventory runs "
        "devices` (if that process was killed, it is free again within ",
    )
    assert runs.list_runs(state, mapping.id) == [], "a refused sync recorded a run"
    assert leases.holders(state) == {job: SERVE}, "a refused sync touched the holder's lease"
    # A dry run writes nothing, so it does not wait for the lease.
    dry = kandji_bridge(env, "inventory", "sync", "devices", "--dry-run")
    assert dry.returncode == 0 and "would be created 20" in dry.stdout, dry.stderr

    leases.release(state, job, SERVE)
    synced = kandji_bridge(env, "inventory", "sync", "devices")
    assert synced.returncode == 0, synced.stderr
    assert "created 20, updated 0" in synced.stdout
    assert leases.holders(state) == {}, "the sync did not release its lease"
    status = jobs.job_status(state, job)
    assert status is not None and status.last_success_at is not None and not status.running


def test_a_killed_inventory_sync_is_shown_interrupted_after_the_next_sync(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = slow_tenant(simulator_factory, seed=32, devices=900)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    env = cli_env(sim)
    process = subprocess.Popen(
        [*CLI, "inventory", "sync", "devices"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: runs.list_runs(state, mapping.id), "the sync's run to start")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    (killed,) = runs.list_runs(state, mapping.id)
    assert killed.status == runs.RUNNING

    # Its lease outlives it by up to 2 s: until then the next sync is refused, then it runs.
    deadline = time.monotonic() + 30
    while (done := kandji_bridge(env, "inventory", "sync", "devices")).returncode != 0:
        assert_refused(done, "Mapping devices is being synced by another process")
        assert time.monotonic() < deadline, "the killed sync's lease never ran out"
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr
    latest, closed = runs.list_runs(state, mapping.id)
    assert closed.id == killed.id and closed.status == runs.FAILED
    assert closed.errors == [runs.INTERRUPTED] and closed.finished_at is not None
    assert latest.status == runs.SUCCEEDED

    shown = kandji_bridge(env, "inventory", "runs", "devices")
    assert shown.returncode == 0
    assert "UTC  running" not in shown.stdout, shown.stdout
    assert "UTC  failed" in shown.stdout and "UTC  succeeded" in shown.stdout
    assert "Interrupted: the process running this sync stopped" in shown.stdout


def test_a_sync_longer_than_its_lease_keeps_it_until_it_ends(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = slow_tenant(simulator_factory, seed=35, devices=3_000)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    job = jobs.mapping_job(mapping.id)
    env = cli_env(sim, lease_seconds="1")  # a sync of seconds on 1 s leases
    process = subprocess.Popen(
        [*CLI, "inventory", "sync", "devices"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: lease_expiry(state, job), "the sync to take its lease")
        first = lease_expiry(state, job)
        assert first is not None
        # Past the time to live it was taken with, the lease is still the sync's, renewed.
        wait_until(lambda: utcnow() > first, "the first lease time to run out")
        renewed = lease_expiry(state, job)
        assert process.poll() is None, "the sync ended too soon for this test; slow it down"
        assert renewed is not None and renewed > first, "the running sync lost its lease"
        assert_refused(
            kandji_bridge(env, "inventory", "sync", "devices"),
            "Mapping devices is being synced by another process",
        )
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, err
    assert "created 3000, updated 0" in out and "lost its hold" not in err
    (run,) = runs.list_runs(state, mapping.id)
    assert run.status == runs.SUCCEEDED and run.created == 3_000
    assert leases.holders(state) == {}


def lease_expiry(state: StateDB, job: str) -> datetime | None:
    with state.session() as session:
        return session.scalar(select(JobLease.expires_at).where(JobLease.job == job))


def test_a_cli_sync_and_serve_never_sync_one_mapping_at_once(
    simulator_factory, runtime_for, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=200, events=0, history_days=30, seed=33)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    job = jobs.mapping_job(mapping.id)
    env = cli_env(sim)
    outcomes = []
    scheduler = Scheduler(runtime_for(sim), tick_seconds=0.05, lease_seconds=2)
    with running(scheduler):
        for _ in range(4):
            scheduler.trigger(job)  # serve's "Sync now", again and again
            outcomes.append(kandji_bridge(env, "inventory", "sync", "devices"))
    for done in outcomes:
        if done.returncode != 0:
            assert_refused(done, "Mapping devices is being synced by another process")
    with state.session() as session:
        synced = session.scalars(
            select(SyncRun).where(SyncRun.mapping_id == mapping.id).order_by(SyncRun.started_at)
        ).all()
    assert any(done.returncode == 0 for done in outcomes) and len(synced) > 1
    for earlier, later in itertools.pairwise(synced):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, (
            "a CLI sync and serve's sync of one mapping overlapped"
        )


def test_logs_sync_waits_for_the_process_collecting_its_source(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=5, events=300, history_days=30, seed=34)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    job = jobs.source_job(source.id)
    env = cli_env(sim)
    assert leases.acquire(state, job, SERVE, ttl=120)

    refused = kandji_bridge(env, "logs", "sync", "acme")
    assert_refused(
        refused,
        "Source acme is being collected by another process (`serve` or another `logs sync`); "
        "wait for it to finish and try again (if that process was killed, it is free again "
        "within ",
    )
    assert leases.holders(state) == {job: SERVE}

    leases.release(state, job, SERVE)
    collected = kandji_bridge(env, "logs", "sync", "acme")
    assert collected.returncode == 0, collected.stderr
    assert "Backfilled 300 new events for acme" in collected.stdout
    assert leases.holders(state) == {}
    status = jobs.job_status(state, job)
    assert status is not None and status.last_success_at is not None and not status.running


def test_a_logs_sync_killed_with_sigkill_can_be_rerun_at_once(
    simulator_factory, state: StateDB, home: Path
) -> None:
    # 2,500 events at 500 a page and 1 request a second: a backfill that lasts seconds.
    sim = simulator_factory(devices=5, events=2_500, history_days=30, seed=36, rate_per_second=1)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    job = jobs.source_job(source.id)
    env = cli_env(sim, lease_seconds="600")  # only the holder's death can free the job in time
    process = subprocess.Popen(
        [*CLI, "logs", "sync", "acme"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: leases.holders(state), "the sync to take its source's lease")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the sync ended before it was killed"
    assert job in leases.holders(state), "the killed sync's lease is not left behind"

    rerun = kandji_bridge(env, "logs", "sync", "acme")
    assert rerun.returncode == 0, rerun.stderr
    assert "another process" not in rerun.stderr and "Traceback" not in rerun.stderr
    assert leases.holders(state) == {}
    status = jobs.job_status(state, job)
    assert status is not None and status.last_success_at is not None and not status.running


def test_an_inventory_sync_killed_with_sigkill_can_be_rerun_at_once(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = slow_tenant(simulator_factory, seed=37, devices=900)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    env = cli_env(sim, lease_seconds="600")
    process = subprocess.Popen(
        [*CLI, "inventory", "sync", "devices"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: runs.list_runs(state, mapping.id), "the sync's run to start")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the sync ended before it was killed"

    rerun = kandji_bridge(env, "inventory", "sync", "devices")
    assert rerun.returncode == 0, rerun.stderr
    assert "created 900" in rerun.stdout or "updated" in rerun.stdout, rerun.stdout
    latest, closed = runs.list_runs(state, mapping.id)
    assert closed.status == runs.FAILED and closed.errors == [runs.INTERRUPTED]
    assert latest.status == runs.SUCCEEDED


def test_a_sync_waits_for_a_holder_on_another_host_until_its_lease_runs_out(
    simulator_factory, state: StateDB, home: Path
) -> None:
    sim = simulator_factory(devices=5, events=300, history_days=30, seed=38)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    job = jobs.source_job(source.id)
    env = cli_env(sim, lease_seconds="600")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    with state.session() as session:  # as `serve` on another machine writes it; that pid is
        session.add(  # free here, which says nothing about the other machine
            JobLease(
                job=job,
                holder="far-host:4242:0badf00d",
                expires_at=utcnow() + timedelta(seconds=600),
                host="far-host.example",
                pid=int(gone.stdout),
                pid_started=None,
            )
        )

    assert_refused(kandji_bridge(env, "logs", "sync", "acme"), "Source acme is being collected")
    assert leases.holders(state) == {job: "far-host:4242:0badf00d"}
    with state.session() as session:  # its time to live passes (that host stopped renewing)
        session.execute(update(JobLease).where(JobLease.job == job).values(expires_at=utcnow()))
    collected = kandji_bridge(env, "logs", "sync", "acme")
    assert collected.returncode == 0, collected.stderr
    assert "Backfilled 300 new events for acme" in collected.stdout
