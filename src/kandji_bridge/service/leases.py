"""Job leases: which process runs a job, on SQLite and PostgreSQL alike: a `serve` scheduler,
or an `inventory sync` / `logs sync` run from the command line (exclusive.py).

A lease is a row in `job_leases` (job, holder, expires_at). Taking one is a single conditional
UPDATE (free, expired, or already ours), or an INSERT when the job has no row yet; the database
decides every race: two UPDATEs on one row are serialized and the loser's WHERE no longer
matches, and of two INSERTs the second hits the primary key. A holder renews its leases while it
runs the job, so a process that dies stops renewing and its lease runs out for another to take.
Expiry compares the holders' clocks, so the machines sharing a database keep time with NTP.
"""

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from kandji_bridge.db.models import JobLease, utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import ConfigError

DEFAULT_LEASE_SECONDS = 30.0
# How long a job stays held by a process that stopped renewing it (died, hung, lost the network):
# the time before another process (`serve`, `inventory sync`, `logs sync`) may take it over.
ENV_LEASE_SECONDS = "KANDJI_BRIDGE_LEASE_SECONDS"


def lease_seconds() -> float:
    """The leases' time to live, from KANDJI_BRIDGE_LEASE_SECONDS (default 30 s)."""
    value = os.environ.get(ENV_LEASE_SECONDS)
    if not value:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 3600:
        raise ConfigError(
            f"{ENV_LEASE_SECONDS} must be a number of seconds from 1 to 3600, not {value!r}."
        )
    return seconds


def default_holder() -> str:
    """This process's name in the lease table: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def acquire(state: StateDB, job: str, holder: str, ttl: float) -> bool:
    """Take `job` for `ttl` seconds if it is free, expired, or already `holder`'s."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    with state.session() as session:
        taken = session.execute(
            update(JobLease)
            .where(JobLease.job == job, or_(JobLease.holder == holder, JobLease.expires_at <= now))
            .values(holder=holder, expires_at=expires)
        )
        if taken.rowcount == 1:
            return True
        if session.get(JobLease, job) is not None:
            return False  # held by another process, and still alive
    try:
        with state.session() as session:
            session.add(JobLease(job=job, holder=holder, expires_at=expires))
    except IntegrityError:
        return False  # another process inserted it first
    return True


def renew(state: StateDB, job: str, holder: str, ttl: float) -> bool:
    """Extend `holder`'s lease on `job`; False if it is no longer theirs (taken over)."""
    with state.session() as session:
        renewed = session.execute(
            update(JobLease)
            .where(JobLease.job == job, JobLease.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=ttl))
        )
        return renewed.rowcount == 1


def release(state: StateDB, job: str, holder: str) -> None:
    """Give `job` up at once (if `holder` still has it), so another process need not wait."""
    with state.session() as session:
        session.execute(delete(JobLease).where(JobLease.job == job, JobLease.holder == holder))


def holders(state: StateDB) -> dict[str, str]:
    """Who holds each job whose lease has not expired: {job: holder}."""
    with state.session() as session:
        rows = session.execute(
            select(JobLease.job, JobLease.holder).where(JobLease.expires_at > utcnow())
        )
        return {job: holder for job, holder in rows}


def seconds_left(state: StateDB, job: str) -> float | None:
    """How long the lease on `job` has still to run (None if nobody holds it)."""
    with state.session() as session:
        expires = session.scalar(select(JobLease.expires_at).where(JobLease.job == job))
    if expires is None:
        return None
    left = (expires - utcnow()).total_seconds()
    return left if left > 0 else None
