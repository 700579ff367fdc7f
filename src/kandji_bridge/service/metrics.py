"""`/metrics` in Prometheus text format.

What must outlive a restart and agree between processes comes from the state DB (job status, sync
runs) and the log store (events stored); what this process did since it started (events ingested,
Kandji requests, 429s, retries) comes from the job runner's counters in memory, which Prometheus
handles as counters that reset on restart. A fresh registry per scrape keeps one runtime's
figures apart from another's (tests run several in one process).
"""

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from kandji_bridge.db.models import Mapping, Source, SyncRun, utcnow
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.schema import LOGS_TABLE, QUARANTINE_TABLE
from kandji_bridge.logs.store import LogStoreError
from kandji_bridge.service.runtime import Runtime

log = logging.getLogger(__name__)

PREFIX = "kandji_bridge"
# The classic text format, which every Prometheus reads (newer clients announce 1.0.0 by default;
# the page is the same for our plain ASCII names).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render_metrics(runtime: Runtime) -> tuple[bytes, str]:
    """The metrics page: (body, content type)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RuntimeCollector(runtime))
    return generate_latest(registry), CONTENT_TYPE


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        state = self.runtime.state
        with state.session() as session:
            source_names = dict(session.execute(select(Source.id, Source.name)).all())
            polled = session.scalars(select(Source.id).where(Source.logs_enabled.is_(True))).all()
            mapping_names = dict(session.execute(select(Mapping.id, Mapping.name)).all())
            runs = session.execute(
                select(Mapping.name, SyncRun.status, func.count())
                .join(Mapping, Mapping.id == SyncRun.mapping_id)
                .group_by(Mapping.name, SyncRun.status)
            ).all()
        statuses = jobs.job_statuses(state)
        yield from self._memory()
        yield _lag(polled, source_names, statuses, utcnow())
        yield from self._store(source_names)
        sync_runs = CounterMetricFamily(
            f"{PREFIX}_sync_runs",
            "Device sync runs of each mapping, by how they ended (running, succeeded, failed).",
            labels=["mapping", "status"],
        )
        for mapping, status, count in runs:
            sync_runs.add_metric([mapping, status], count)
        yield sync_runs
        job_names = {jobs.source_job(source_id): source_names[source_id] for source_id in polled}
        job_names.update({jobs.mapping_job(mid): name for mid, name in mapping_names.items()})
        yield from _job_metrics(statuses, job_names)

    def _memory(self) -> Iterator[Metric]:
        counters = self.runtime.jobs.counters.snapshot()
        ingested = CounterMetricFamily(
            f"{PREFIX}_events_ingested",
            "Audit events this process stored, by source.",
            labels=["source"],
        )
        quarantined = CounterMetricFamily(
            f"{PREFIX}_events_quarantined",
            "Audit events this process could not normalize and quarantined, by source.",
            labels=["source"],
        )
        requests = CounterMetricFamily(
            f"{PREFIX}_kandji_requests",
            "HTTP requests this process sent to Kandji, retries included.",
            labels=["source", "endpoint"],
        )
        limited = CounterMetricFamily(
            f"{PREFIX}_kandji_rate_limited",
            "Kandji answers of 429 Too Many Requests this process received.",
            labels=["source", "endpoint"],
        )
        retries = CounterMetricFamily(
            f"{PREFIX}_kandji_retries",
            "Kandji requests this process sent again after a failure or a 429.",
            labels=["source", "endpoint"],
        )
        for source, counts in sorted(counters.items()):
            ingested.add_metric([source], counts.events_ingested)
            quarantined.add_metric([source], counts.events_quarantined)
            for endpoint, endpoint_counts in sorted(counts.by_endpoint.items()):
                requests.add_metric([source, endpoint], endpoint_counts.requests)
                limited.add_metric([source, endpoint], endpoint_counts.rate_limited)
                retries.add_metric([source, endpoint], endpoint_counts.retries)
        running = GaugeMetricFamily(f"{PREFIX}_jobs_running", "Jobs this process is running now.")
        running.add_metric([], len(self.runtime.jobs.running_jobs()))
        queries = GaugeMetricFamily(
            f"{PREFIX}_user_queries_running",
            "SQL queries of users (SQL page, /api/logs/query) this process is running now.",
        )
        queries.add_metric([], self.runtime.store.user_queries_running())
        yield from (ingested, quarantined, requests, limited, retries, running, queries)

    def _store(self, source_names: dict[str, str]) -> Iterator[Metric]:
        stored = GaugeMetricFamily(
            f"{PREFIX}_events_stored",
            "Audit events in the log store, by source (the store's TTL drops old ones).",
            labels=["source"],
        )
        quarantine = GaugeMetricFamily(
            f"{PREFIX}_quarantined_events",
            "Quarantined audit events in the log store, by source.",
            labels=["source"],
        )
        try:
            for metric, table in ((stored, LOGS_TABLE), (quarantine, QUARANTINE_TABLE)):
                result = self.runtime.store.query(
                    f"SELECT sourceID, count() FROM {table} GROUP BY sourceID"  # noqa: S608
                )
                counts = {source_id: int(count) for source_id, count in result.rows}
                for source_id, name in sorted(source_names.items(), key=lambda item: item[1]):
                    metric.add_metric([name], counts.get(source_id, 0))
        except LogStoreError as exc:
            log.warning("The log store did not answer for /metrics: %s", exc)
            return
        yield from (stored, quarantine)


def _lag(
    polled: list[str], names: dict[str, str], statuses: dict[str, jobs.JobStatusInfo], now: datetime
) -> Metric:
    lag = GaugeMetricFamily(
        f"{PREFIX}_source_lag_seconds",
        "Seconds since the source's last successful poll: how stale its logs may be "
        "(+Inf before its first).",
        labels=["source"],
    )
    for source_id in sorted(polled, key=names.__getitem__):
        status = statuses.get(jobs.source_job(source_id))
        success = status.last_success_at if status is not None else None
        lag.add_metric(
            [names[source_id]],
            (now - success).total_seconds() if success is not None else float("inf"),
        )
    return lag


def _job_metrics(
    statuses: dict[str, jobs.JobStatusInfo], names: dict[str, str]
) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        f"{PREFIX}_job_runs",
        "Runs of each scheduled job, by any process.",
        labels=["job", "name"],
    )
    errors = CounterMetricFamily(
        f"{PREFIX}_job_errors",
        "Failed runs of each scheduled job, by any process.",
        labels=["job", "name"],
    )
    for job, name in sorted(names.items()):
        status = statuses.get(job)
        runs.add_metric([job, name], status.runs if status else 0)
        errors.add_metric([job, name], status.failures if status else 0)
    yield from (runs, errors)
