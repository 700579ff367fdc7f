"""Scheduled jobs: their keys, and the status of their last runs in `job_status`.

A job is a source's polling (`source:<id>`), a mapping's sync (`mapping:<id>`), the windows of
every enabled detection (`detections:enabled`, which keeps each rule's own status under
`detection:<rule name>`) or the delivery of alerts (`outbox:alerts`). Its status row is written by
whichever process ran it, so the UI and /metrics of every process show the same.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kandji_bridge.db.models import JobStatus, utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.inventory import runs

SOURCE = "source"
MAPPING = "mapping"
DETECTION = "detection"
DETECTIONS = "detections"
DETECTIONS_JOB = f"{DETECTIONS}:enabled"
OUTBOX = "outbox"
OUTBOX_JOB = f"{OUTBOX}:alerts"
KINDS = (SOURCE, MAPPING, DETECTION, DETECTIONS, OUTBOX)


def source_job(source_id: str) -> str:
    return f"{SOURCE}:{source_id}"


def mapping_job(mapping_id: str) -> str:
    return f"{MAPPING}:{mapping_id}"


def detection_job(name: str) -> str:
    return f"{DETECTION}:{name}"


def parse_job(job: str) -> tuple[str, str]:
    """(kind, id) of a job key; ValueError if it is not one."""
    kind, sep, target = job.partition(":")
    if not sep or not target or kind not in KINDS:
        raise ValueError(f"{job!r} is not a job key (source:ID, mapping:ID, detection:NAME)")
    return kind, target


@dataclass(frozen=True)
class JobStatusInfo:
    job: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None  # one sentence; None after a success
    runs: int
    failures: int

    @property
    def running(self) -> bool:
        """A run started and has not finished (or its process died mid-run)."""
        started, finished = self.last_started_at, self.last_finished_at
        return started is not None and (finished is None or finished < started)


def record_start(state: StateDB, job: str) -> None:
    _upsert(state, job, last_started_at=utcnow())


def record_success(state: StateDB, job: str) -> None:
    now = utcnow()
    _upsert(
        state,
        job,
        last_finished_at=now,
        last_success_at=now,
        last_error=None,
        runs=JobStatus.runs + 1,
    )


def record_stopped(state: StateDB, job: str) -> None:
    """The run was stopped before it was done (the service is shutting down): neither a success,
    so the lag keeps growing, nor an error to show."""
    _upsert(state, job, last_finished_at=utcnow(), runs=JobStatus.runs + 1)


def record_failure(state: StateDB, job: str, error: str) -> None:
    _upsert(
        state,
        job,
        last_finished_at=utcnow(),
        last_error=error,
        runs=JobStatus.runs + 1,
        failures=JobStatus.failures + 1,
    )


def close_interrupted(state: StateDB, job: str) -> int:
    """For the caller that has just taken `job`'s lease: if the job's last run never finished, the
    process that ran it is gone, and a sync run it left `running` is closed as interrupted (none
    will ever finish it). How many runs were closed."""
    kind, target = parse_job(job)
    previous = job_status(state, job)
    if kind != MAPPING or previous is None or not previous.running:
        return 0
    assert previous.last_started_at is not None  # running implies started
    return runs.close_interrupted(state, target, previous.last_started_at)


def job_status(state: StateDB, job: str) -> JobStatusInfo | None:
    """The job's status, or None if it never ran."""
    with state.session() as session:
        row = session.get(JobStatus, job)
        return _info(row) if row is not None else None


def job_statuses(state: StateDB) -> dict[str, JobStatusInfo]:
    """Every job's status, by job key (jobs that never ran have none)."""
    with state.session() as session:
        return {row.job: _info(row) for row in session.scalars(select(JobStatus))}


def _upsert(state: StateDB, job: str, **values: object) -> None:
    """Update the job's row, or create it on the job's first run."""
    with state.session() as session:
        if session.execute(update(JobStatus).where(JobStatus.job == job).values(**values)).rowcount:
            return
    try:
        with state.session() as session:
            session.add(JobStatus(job=job, runs=0, failures=0))
    except IntegrityError:
        pass  # created meanwhile by another process; the update below applies to it
    with state.session() as session:
        session.execute(update(JobStatus).where(JobStatus.job == job).values(**values))


def _info(row: JobStatus) -> JobStatusInfo:
    return JobStatusInfo(
        job=row.job,
        last_started_at=row.last_started_at,
        last_finished_at=row.last_finished_at,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        runs=row.runs,
        failures=row.failures,
    )
