"""/metrics after the scheduler has polled a source and synced a mapping."""

from prometheus_client.parser import text_string_to_metric_families

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.service.metrics import render_metrics
from kandji_bridge.service.scheduler import Scheduler

from .helpers import running, wait_until
from .test_scheduler import add_mapping, status

AUDIT = "GET /api/v1/audit/events"
DEVICES = "GET /api/v1/devices"


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_show_what_the_scheduler_did(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=30, events=1_100, history_days=30, seed=31)
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, sim.token, poll_interval=3600)
    mapping = add_mapping(state, "acme")
    scheduler = Scheduler(runtime, tick_seconds=0.1)
    runtime.jobs = scheduler
    with running(scheduler):
        for job in (jobs.source_job(source.id), jobs.mapping_job(mapping.id)):
            wait_until(lambda job=job: (s := status(state, job)) and s.runs, f"{job} ran")

    body, content_type = render_metrics(runtime)
    assert content_type.startswith("text/plain; version=0.0.4")
    values = samples(body)
    acme = (("source", "acme"),)
    assert values[("kandji_bridge_events_ingested_total", acme)] == 1_100
    assert values[("kandji_bridge_events_stored", acme)] == 1_100
    assert values[("kandji_bridge_quarantined_events", acme)] == 0
    lag = values[("kandji_bridge_source_lag_seconds", acme)]
    assert 0 <= lag < float("inf")
    requests_sent = sim.stats.snapshot()["by_endpoint"]
    for endpoint in (AUDIT, DEVICES):
        labels = (("endpoint", endpoint), ("source", "acme"))
        assert values[("kandji_bridge_kandji_requests_total", labels)] == requests_sent[endpoint]
        assert values[("kandji_bridge_kandji_rate_limited_total", labels)] == 0
    ran = (("mapping", "devices"), ("status", "succeeded"))
    assert values[("kandji_bridge_sync_runs_total", ran)] == 1
    for job, name in (
        (jobs.source_job(source.id), "acme"),
        (jobs.mapping_job(mapping.id), "devices"),
    ):
        labels = (("job", job), ("name", name))
        assert values[("kandji_bridge_job_runs_total", labels)] == 1
        assert values[("kandji_bridge_job_errors_total", labels)] == 0


def test_a_source_never_polled_has_infinite_lag_and_counts_survive_a_restart(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    """A new process (no scheduler counters yet) still shows what the DB and the store hold."""
    sim = simulator_factory(devices=5, events=200, history_days=30, seed=32)
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, sim.token, poll_interval=3600)
    sources.add_source(state, "later", sim.base_url, sim.token)
    with running(Scheduler(runtime, tick_seconds=0.1)) as scheduler:
        scheduler.trigger(jobs.source_job(source.id))
        wait_until(lambda: (s := status(state, jobs.source_job(source.id))) and s.runs, "a poll")
    # "later" was due too, and may have been polled; a fresh source shows +Inf until polled.
    sources.add_source(state, "fresh", sim.base_url, sim.token)
    values = samples(render_metrics(runtime_for(sim))[0])  # a new runtime: a restarted process
    assert values[("kandji_bridge_events_stored", (("source", "acme"),))] == 200
    assert values[("kandji_bridge_source_lag_seconds", (("source", "fresh"),))] == float("inf")
    assert ("kandji_bridge_events_ingested_total", (("source", "acme"),)) not in values
