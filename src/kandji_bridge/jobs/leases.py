"""Job leases: which process runs a job, on SQLite and PostgreSQL alike: a `serve` scheduler,
or an `inventory sync` / `logs sync` run from the command line (exclusive.py).

A lease is a row in `job_leases` (job, holder, expires_at, and where the holder runs: host, pid,
the pid's start time). Taking one is a single conditional UPDATE (free, expired, or already
ours), or an INSERT when the job has no row yet; the database decides every race: two UPDATEs on
one row are serialized and the loser's WHERE no longer matches, and of two INSERTs the second
hits the primary key. A holder renews its leases while it runs the job, so a process that dies
stops renewing and its lease runs out for another to take. On the holder's own host a dead
holder is seen at once (its pid is gone, a zombie, or now another process's), so rerunning a
killed command does not wait; a holder on another host keeps its lease until it runs out.
Expiry compares the holders' clocks, so the machines sharing a database keep time with NTP.
"""

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from kandji_bridge.db.models import JobLease, utcnow
from kandji_bridge.db.state import StateDB

_PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    """A process as a lease records it."""

    host: str
    pid: int
    started: int | None  # clock ticks after boot (Linux /proc); None where there is no /proc


def this_process() -> Process:
    pid = os.getpid()
    return Process(socket.gethostname()[:255], pid, _proc_stat(pid)[1])


def default_holder() -> str:
    """This process's name in the lease table: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def holder_alive(pid: int, started: int | None) -> bool:
    """Whether the process of this host that took a lease still runs: its pid exists, is not a
    zombie, and (where /proc tells) started when the holder did, so a reused pid is not it."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, run by another user
    state, ticks = _proc_stat(pid)
    if state in ("Z", "X"):
        return False  # killed, waiting for its parent to collect it
    return started is None or ticks is None or ticks == started


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """(state letter, start time in clock ticks) from /proc/PID/stat; Nones without /proc."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None, None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None, None


def acquire(state: StateDB, job: str, holder: str, ttl: float) -> bool:
    """Take `job` for `ttl` seconds if it is free, expired, already `holder`'s, or held by a
    process of this host that is gone."""
    now = utcnow()
    me = this_process()
    values = {
        "holder": holder,
        "expires_at": now + timedelta(seconds=ttl),
        "host": me.host,
        "pid": me.pid,
        "pid_started": me.started,
    }
    with state.session() as session:
        taken = session.execute(
            update(JobLease)
            .where(JobLease.job == job, or_(JobLease.holder == holder, JobLease.expires_at <= now))
            .values(**values)
        )
        if taken.rowcount == 1:
            return True
        held = session.get(JobLease, job)
        if held is not None:
            if held.host != me.host or held.pid is None or holder_alive(held.pid, held.pid_started):
                return False  # held by another process, alive or on another host
            # Its holder died on this host: take the job now, unless another process just did.
            taken = session.execute(
                update(JobLease)
                .where(JobLease.job == job, JobLease.holder == held.holder)
                .values(**values)
            )
            return taken.rowcount == 1
    try:
        with state.session() as session:
            session.add(JobLease(job=job, **values))
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
