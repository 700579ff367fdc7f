"""The scheduler of `serve`: polls each source and syncs each mapping on time, one run at a time.

Every tick (a second by default) it reads the jobs from the state DB (sources with logs enabled,
mappings), picks those that are due or were triggered, and starts each whose lease it can take.
A run is blocking work (HTTP, chDB, SQL), so it runs in a worker thread of its own with its own
asyncio loop and Kandji client, and the web UI on the main loop stays responsive; at most
`max_jobs` run at once. The lease (leases.py) keeps one run of a job at a time across processes;
the in-process table of running jobs keeps it within this one. Leases of running jobs are renewed
every third of their time to live; a job whose lease was taken over is told to stop.

When a job is due is decided from the state DB, so every process agrees: a source `poll interval`
seconds after its last run started, a mapping `schedule_minutes` after its last run (by `serve` or
by `inventory sync`). A failed run is retried after `retry_seconds` if that is sooner, and a run
whose process died is run again as soon as its lease is free.

Stopping: no new runs start; a running poll stops after the page in hand is stored (the collector
resumes from the store on the next pass); a mapping sync finishes. `run()` returns when all are
done.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from kandji_bridge import redact
from kandji_bridge.config import DEFAULT_LEASE_SECONDS
from kandji_bridge.db.models import Mapping, Source, SyncRun, utcnow
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import exclusive, leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.counters import Counters
from kandji_bridge.jobs.runner import JobOutcome
from kandji_bridge.jobs.status import JobStatusInfo
from kandji_bridge.operations.detections import enabled_rule_names
from kandji_bridge.service.runtime import Runtime

log = logging.getLogger(__name__)

# Two cores are common; each run is mostly waiting on Kandji's rate limit or the store.
DEFAULT_MAX_JOBS = 4
DEFAULT_RETRY_SECONDS = 60.0
# The detections job looks for due windows this often (each rule's follow its own schedule): a
# window's alert is stored at most this long after it ends. A tick with nothing due is a few
# state-DB reads (about 30 ms for the pack), so it can look often;
# the outbox sends what is due this often (its retries follow their own backoff).
DEFAULT_DETECTION_SECONDS = 5.0
DEFAULT_OUTBOX_SECONDS = 10.0


@dataclass(frozen=True)
class Job:
    key: str  # "source:ID", "mapping:ID"
    kind: str
    name: str  # the source's or the mapping's
    interval: timedelta
    last_run_started: datetime | None = None  # a mapping's last sync run, whoever ran it
    scheduled: bool = True  # a disabled mapping runs only when triggered (Sync now)


@dataclass
class _Running:
    job: Job
    stop: threading.Event
    renewed: float  # time.monotonic() of the last lease renewal


class Scheduler:
    """The JobRunner of `serve`: triggered jobs are queued and run in the background."""

    background = True

    def __init__(
        self,
        runtime: Runtime,
        *,
        holder: str | None = None,
        tick_seconds: float = 1.0,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_jobs: int = DEFAULT_MAX_JOBS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        detection_seconds: float = DEFAULT_DETECTION_SECONDS,
        outbox_seconds: float = DEFAULT_OUTBOX_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.holder = holder or leases.default_holder()
        # Ticks also renew leases: at least three to a lease's life, so none lapses in between.
        self.tick_seconds = min(tick_seconds, lease_seconds / 3)
        self.lease_seconds = lease_seconds
        self.max_jobs = max_jobs
        self.retry = timedelta(seconds=retry_seconds)
        self.detection_interval = timedelta(seconds=detection_seconds)
        self.outbox_interval = timedelta(seconds=outbox_seconds)
        self.counters = Counters()
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._triggered: set[str] = set()
        self._stopping = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="kb-job")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # -- control, from any thread -------------------------------------------------------------

    def trigger(self, job: str) -> JobOutcome:
        """Run `job` ("source:ID" / "mapping:ID") as soon as possible, due or not (Sync now)."""
        jobs.parse_job(job)
        with self._lock:
            self._triggered.add(job)
        self._wake_up()
        return JobOutcome(job, queued=True)

    def stop(self) -> None:
        """Start no more runs; ask running polls to stop after the page in hand."""
        self._stopping.set()
        with self._lock:
            for running in self._running.values():
                running.stop.set()
        self._wake_up()

    def running_jobs(self) -> set[str]:
        with self._lock:
            return set(self._running)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until stop(), then wait for the running jobs (renewing their leases)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while not (self._stopping.is_set() and not self.running_jobs()):
                await asyncio.to_thread(self._safe_tick)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
                self._wake.clear()
        finally:
            self._executor.shutdown(wait=True)

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except BridgeError as exc:  # the state DB is unreachable, say: try again next tick
            log.warning("The scheduler could not plan its jobs: %s", exc)
        except Exception:  # a bug must not stop every job of the service for good
            log.exception("The scheduler's tick failed; trying again at the next one")

    def tick(self) -> None:
        """Renew the leases of running jobs, then start the due jobs there is room for."""
        self._renew()
        if self._stopping.is_set():
            return
        with self._lock:
            free = self.max_jobs - len(self._running)
        if free <= 0:
            return
        for job in self._due():
            if free <= 0 or self._stopping.is_set():
                break
            if leases.acquire(self.runtime.state, job.key, self.holder, self.lease_seconds):
                self._start(job)
                free -= 1

    def _renew(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [r for r in self._running.values() if now - r.renewed > self.lease_seconds / 3]
        for running in stale:
            if leases.renew(self.runtime.state, running.job.key, self.holder, self.lease_seconds):
                running.renewed = now
            else:
                log.warning(
                    "Job %s was taken over by another process; stopping this run.",
                    running.job.key,
                )
                running.stop.set()

    def _due(self) -> list[Job]:
        """The jobs to start now, triggered ones first, then the longest overdue."""
        now = utcnow()
        statuses = jobs.job_statuses(self.runtime.state)
        with self._lock:
            running = set(self._running)
            triggered = set(self._triggered)
        known = list(self._jobs())
        with self._lock:  # forget triggers of jobs that no longer exist
            self._triggered &= {job.key for job in known}
        due: list[tuple[datetime, Job]] = []
        for job in known:
            if job.key in running:
                continue
            if job.key in triggered:
                due.append((datetime.min.replace(tzinfo=now.tzinfo), job))
                continue
            if not job.scheduled:
                continue
            when = self._next_run(job, statuses.get(job.key), now)
            if when <= now:
                due.append((when, job))
        due.sort(key=lambda pair: pair[0])
        return [job for _, job in due]

    def _next_run(self, job: Job, status: JobStatusInfo | None, now: datetime) -> datetime:
        starts = [job.last_run_started, status.last_started_at if status else None]
        last = max((start for start in starts if start is not None), default=None)
        if last is None or (status is not None and status.running):
            # Never run, or its last run never finished: its process died, since we could
            # take its lease only once that lease ran out.
            return now
        wait = job.interval
        if status is not None and status.last_error is not None:
            wait = min(wait, self.retry)
        return last + wait

    def _jobs(self) -> Iterator[Job]:
        with self.runtime.state.session() as session:
            for source_id, name, interval in session.execute(
                select(Source.id, Source.name, Source.poll_interval_seconds).where(
                    Source.logs_enabled.is_(True)
                )
            ):
                yield Job(
                    jobs.source_job(source_id), jobs.SOURCE, name, timedelta(seconds=interval)
                )
            last_runs = (
                select(SyncRun.mapping_id, func.max(SyncRun.started_at).label("started"))
                .group_by(SyncRun.mapping_id)
                .subquery()
            )
            rows = session.execute(
                select(
                    Mapping.id,
                    Mapping.name,
                    Mapping.schedule_minutes,
                    last_runs.c.started,
                    Mapping.enabled,
                ).outerjoin(last_runs, last_runs.c.mapping_id == Mapping.id)
            )
            for mapping_id, name, minutes, started, enabled in rows:
                yield Job(
                    jobs.mapping_job(mapping_id),
                    jobs.MAPPING,
                    name,
                    timedelta(minutes=minutes),
                    started,
                    scheduled=enabled,
                )
        if enabled_rule_names(self.runtime.state):
            # One job for every enabled rule: it loads the rules once and runs their due
            # windows oldest first, instead of one job per rule competing for `max_jobs`.
            yield Job(jobs.DETECTIONS_JOB, jobs.DETECTIONS, "rules", self.detection_interval)
            yield Job(jobs.OUTBOX_JOB, jobs.OUTBOX, "alerts", self.outbox_interval)

    # -- a run ---------------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        running = _Running(job, threading.Event(), time.monotonic())
        with self._lock:
            if self._stopping.is_set():  # stop() came since the tick looked: one page at most
                running.stop.set()
            self._running[job.key] = running
            self._triggered.discard(job.key)
        try:
            if job.kind == jobs.MAPPING:
                self._close_interrupted(job)
            jobs.record_start(self.runtime.state, job.key)
            # Who ran what and when, for an operator running several serves (`serve --debug`).
            log.info("Job %s started by %s", job.key, self.holder)
            self._executor.submit(self._execute, running)
        except BaseException:
            self._done(job)
            raise

    def _close_interrupted(self, job: Job) -> None:
        if jobs.close_interrupted(self.runtime.state, job.key):
            log.warning("The last sync of mapping %s was interrupted; syncing again.", job.name)

    def _execute(self, running: _Running) -> None:
        job, state = running.job, self.runtime.state
        try:
            finished = self.runtime.run_job(job.key, running.stop, self.counters)
        except BridgeError as exc:
            self._record(job, redact.scrub(exc.message))
        except Exception as exc:
            log.exception("Job %s failed unexpectedly", job.key)
            self._record(job, exclusive.unexpected(exc))
        else:
            self._record(job, None, finished)
        finally:
            log.info("Job %s ended in %s", job.key, self.holder)
            with contextlib.suppress(BridgeError):
                leases.release(state, job.key, self.holder)
            self._done(job)

    def _record(self, job: Job, error: str | None, finished: bool = True) -> None:
        state = self.runtime.state
        try:
            if error is None and finished:
                jobs.record_success(state, job.key)
            elif error is None:
                jobs.record_stopped(state, job.key)
            else:
                log.warning("%s %s failed: %s", job.kind.capitalize(), job.name, error)
                jobs.record_failure(state, job.key, error)
        except BridgeError as exc:
            log.warning("Could not record how job %s ended: %s", job.key, exc)

    def _done(self, job: Job) -> None:
        with self._lock:
            self._running.pop(job.key, None)
        self._wake_up()

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)
