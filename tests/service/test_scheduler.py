"""The scheduler against the simulator over HTTP: polls land, failures show and clear, one run of
a job at a time."""

import itertools

from sqlalchemy import select

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import SyncRun
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.kandji.ratelimit import limiter_for
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.config import PERMISSION_KEYS

from .helpers import running, wait_until


def stored_ids(store: ChdbLogStore) -> list[str]:
    return [row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows]


def status(state: StateDB, job: str) -> jobs.JobStatusInfo | None:
    return jobs.job_statuses(state).get(job)


def add_mapping(
    state: StateDB, source: str, name: str = "devices", collection: str = "ITAM"
) -> mappings.MappingInfo:
    """A mapping of device ids and names into `collection` (made if needed), every minute."""
    if collection not in {c.collection.name for c in collections.list_collections(state)}:
        fields = [parse_field_spec("Device ID:text:unique"), parse_field_spec("Name:text")]
        collections.create_collection(state, collection, fields)
    spec = MappingSpec(
        name=name,
        source=source,
        collection=collection,
        identifier=parse_pair("device_id=Device ID"),
        pairs=[parse_pair("device_name=Name")],
        schedule_minutes=1,
    )
    return mappings.create_mapping(state, spec)


def test_a_source_is_backfilled_then_polled_and_every_event_lands_once(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=5, events=1_300, history_days=30, seed=21)
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, sim.token, poll_interval=1)
    job = jobs.source_job(source.id)
    with running(Scheduler(runtime, tick_seconds=0.1)):
        wait_until(lambda: (s := status(state, job)) and s.runs >= 2, "a backfill and a poll")
    ids = stored_ids(store)
    assert sorted(ids) == sorted(event["id"] for event in sim.events())
    assert len(ids) == len(set(ids)) == 1_300
    info = status(state, job)
    assert info is not None and info.last_error is None and info.failures == 0
    assert info.last_success_at is not None and not info.running


def test_a_failed_poll_shows_its_error_and_the_next_tick_retries_and_clears_it(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(
        devices=5, events=300, history_days=30, seed=22, tokens={"tok-1": {"devices"}}
    )
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, "tok-1", poll_interval=3600)
    job = jobs.source_job(source.id)
    with running(Scheduler(runtime, tick_seconds=0.1, retry_seconds=0.2)):
        wait_until(lambda: (s := status(state, job)) and s.failures >= 1, "the failed poll")
        failed = status(state, job)
        assert failed is not None and failed.last_error is not None
        assert "permission" in failed.last_error.lower()
        assert failed.last_error.count(". ") == 0, "one sentence"
        assert "tok-1" not in failed.last_error
        assert store.count() == 0
        # The admin grants the permission in Kandji; the retry succeeds without anyone asking.
        sim.state.set_token("tok-1", PERMISSION_KEYS)
        wait_until(lambda: (s := status(state, job)) and s.last_success_at, "the retried poll")
    cleared = status(state, job)
    assert cleared is not None and cleared.last_error is None
    assert store.count() == 300


def test_a_job_never_runs_twice_at_once_in_one_process_or_across_two(
    simulator_factory, runtime_for, state: StateDB
) -> None:
    """Two schedulers with their own holders (two processes, as far as the leases can tell) are
    told to sync one mapping over and over; its sync runs never overlap."""
    sim = simulator_factory(devices=900, events=0, history_days=30, seed=23)
    limiter_for(sim.base_url, per_second=6)  # four device pages: a sync takes a while
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    job = jobs.mapping_job(mapping.id)
    first = Scheduler(runtime_for(sim), holder="first", tick_seconds=0.05)
    second = Scheduler(runtime_for(sim), holder="second", tick_seconds=0.05)

    def finished_runs() -> list[SyncRun]:
        with state.session() as session:
            return list(
                session.scalars(select(SyncRun).where(SyncRun.finished_at.is_not(None))).all()
            )

    with running(first), running(second):
        while len(finished_runs()) < 4:
            for scheduler in (first, second, first):
                scheduler.trigger(job)
            wait_until(lambda: len(finished_runs()) >= 1, "a first sync")
    runs = sorted(finished_runs(), key=lambda run: run.started_at)
    assert all(run.status == "succeeded" for run in runs)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at, "two syncs of one mapping overlapped"
    assert status(state, job).runs == len(runs)


def test_a_sync_run_left_running_by_a_killed_process_is_closed_as_interrupted(
    simulator_factory, runtime_for, state: StateDB
) -> None:
    """A process that dies mid-sync leaves its run `running` and its lease held; once the lease
    runs out, the next process's sync closes that run as interrupted, and the UI stops showing a
    sync that will never end."""
    sim = simulator_factory(devices=20, events=0, history_days=30, seed=24)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    mapping = add_mapping(state, "acme")
    job = jobs.mapping_job(mapping.id)
    # What a process killed mid-sync leaves: its lease (run out), the job started, a run running.
    assert leases.acquire(state, job, "killed", ttl=0.01)
    jobs.record_start(state, job)
    orphan = runs.start_run(state, mapping.id)
    with running(Scheduler(runtime_for(sim), tick_seconds=0.05)):
        wait_until(lambda: (s := status(state, job)) and s.last_success_at, "the next sync")
    latest, closed = runs.list_runs(state, mapping.id)
    assert closed.id == orphan and closed.status == runs.FAILED
    assert closed.errors == [runs.INTERRUPTED] and closed.finished_at is not None
    assert latest.status == runs.SUCCEEDED and latest.created == 20
