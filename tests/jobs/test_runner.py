"""The job runners: one run now in the caller (InlineRunner), or queued on serve's scheduler. Both
run the same job and record its status the same way, against the simulator over HTTP."""

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.runner import InlineRunner
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.service.scheduler import Scheduler
from service.helpers import running, wait_until

# A token the simulator knows, without "List audit events".
DEVICES_ONLY = "devices-only-token"


def _shape(status: jobs.JobStatusInfo | None) -> tuple:
    """What the UI shows of a job status, times left out."""
    assert status is not None
    return (
        status.runs,
        status.failures,
        status.last_error,
        status.running,
        status.last_success_at is not None,
    )


def test_an_inline_run_records_its_status_as_the_scheduler_does(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=3, events=400, history_days=30, seed=41)
    runtime = runtime_for(sim)
    inline = sources.add_source(state, "inline", sim.base_url, sim.token, poll_interval=3600)
    queued = sources.add_source(state, "queued", sim.base_url, sim.token, poll_interval=3600)
    assert isinstance(runtime.jobs, InlineRunner), "without serve, jobs run inline"
    assert runtime.jobs.background is False

    outcome = runtime.jobs.trigger(jobs.source_job(inline.id))

    assert (outcome.queued, outcome.error) == (False, None)
    assert store.count(inline.id) == 400, "the run happened in the call"
    scheduler = Scheduler(runtime, tick_seconds=0.1)
    with running(scheduler):
        job = jobs.source_job(queued.id)
        assert scheduler.trigger(job).queued is True
        wait_until(lambda: (s := jobs.job_status(state, job)) and s.runs, "the scheduler ran it")
    assert store.count(queued.id) == 400
    statuses = jobs.job_statuses(state)
    assert _shape(statuses[jobs.source_job(inline.id)]) == (1, 0, None, False, True)
    assert _shape(statuses[jobs.source_job(inline.id)]) == _shape(statuses[job])
    assert leases.holders(state) == {}, "both runners give the job up when done"
    counted = runtime.jobs.counters.snapshot()["inline"]
    assert counted.events_ingested == 400, "/metrics counts an inline run too"


def test_a_failed_inline_run_records_one_sentence_as_the_scheduler_does(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(
        devices=3, events=50, history_days=30, seed=42, tokens={DEVICES_ONLY: {"devices"}}
    )
    runtime = runtime_for(sim)
    inline = sources.add_source(state, "inline", sim.base_url, DEVICES_ONLY, poll_interval=3600)
    queued = sources.add_source(state, "queued", sim.base_url, DEVICES_ONLY, poll_interval=3600)

    outcome = runtime.jobs.trigger(jobs.source_job(inline.id))

    assert outcome.error is not None
    assert "List audit events" in outcome.error, "it names the permission to grant"
    assert DEVICES_ONLY not in outcome.error
    assert "\n" not in outcome.error and "Traceback" not in outcome.error
    inline_status = jobs.job_status(state, jobs.source_job(inline.id))
    assert inline_status is not None and inline_status.last_error == outcome.error
    with running(Scheduler(runtime, tick_seconds=0.1)):
        job = jobs.source_job(queued.id)
        wait_until(lambda: (s := jobs.job_status(state, job)) and s.runs, "the scheduler ran it")
    assert (
        _shape(inline_status)
        == _shape(jobs.job_status(state, job))
        == (
            1,
            1,
            outcome.error,
            False,
            False,
        )
    )


def test_an_inline_run_waits_for_a_job_another_process_holds(
    simulator, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    runtime = runtime_for(simulator)
    source = sources.add_source(state, "acme", simulator.base_url, simulator.token)
    job = jobs.source_job(source.id)
    assert leases.acquire(state, job, "other-host:1:abcd", ttl=60)

    outcome = runtime.jobs.trigger(job)

    assert outcome.error is not None and outcome.error.startswith("Another process (`serve`")
    assert store.count(source.id) == 0, "nothing was collected beside the other process"
    assert jobs.job_status(state, job) is None, "a refused run is no failed run"
