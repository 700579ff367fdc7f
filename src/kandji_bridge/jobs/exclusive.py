"""One run of a job outside the scheduler (`inventory sync`, `logs sync`, the InlineRunner),
under serve's lease.

The scheduler keeps one run of a job at a time across processes with the job's lease
(leases.py); a command that runs the same job takes the same lease, so a CLI sync and serve's
scheduled one (or two CLI syncs) never run at once, on SQLite and PostgreSQL alike. While it
runs, a thread renews the lease every third of its time to live, so a long import keeps it; at
the end it is released at once. The run is recorded in the job's status as the scheduler records
its own, so a CLI run killed mid-sync is seen as interrupted by whichever process takes the job
next, and its sync run closed (jobs.close_interrupted).
"""

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kandji_bridge import redact
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs

log = logging.getLogger(__name__)


class JobBusy(BridgeError):
    """Another live process (serve, or another command) holds the job's lease."""


@dataclass
class Claim:
    """The job held by this process; `lost` is set if another process took the lease over
    (this one stopped renewing it in time: the state DB was unreachable, the process hung)."""

    job: str
    holder: str
    lost: threading.Event = field(default_factory=threading.Event)
    interrupted: int = 0  # sync runs of a killed earlier run, closed when the lease was taken
    stopped: bool = False  # set by the run when it ended before it was done (asked to stop)


@contextlib.contextmanager
def claimed(state: StateDB, job: str, busy: str, busy_in_web: str | None = None) -> Iterator[Claim]:
    """Hold `job` for the block: take its lease or raise JobBusy(`busy` + when a killed holder's
    lease runs out; `busy_in_web` for the web UI), renew it meanwhile, record the run in the
    job's status, release it after."""
    ttl = state.settings.lease_seconds
    claim = Claim(job, leases.default_holder())
    if not leases.acquire(state, job, claim.holder, ttl):
        free = _free_again(state, job)
        raise JobBusy(busy + free, in_web=busy_in_web and busy_in_web + free)
    done = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(state, claim, ttl, done), name="kb-lease", daemon=True
    )
    renewer.start()
    try:
        claim.interrupted = jobs.close_interrupted(state, job)
        jobs.record_start(state, job)
        try:
            yield claim
        except BridgeError as exc:
            _record(jobs.record_failure, state, job, redact.scrub(exc.message))
            raise
        except KeyboardInterrupt:
            _record(jobs.record_stopped, state, job)
            raise
        except Exception as exc:
            _record(jobs.record_failure, state, job, unexpected(exc))
            raise
        _record(jobs.record_stopped if claim.stopped else jobs.record_success, state, job)
    finally:
        done.set()
        renewer.join()
        with contextlib.suppress(BridgeError):
            leases.release(state, job, claim.holder)


def unexpected(exc: Exception) -> str:
    """The status sentence of a run that failed on a bug, as the scheduler records it."""
    return redact.scrub(f"Unexpected {type(exc).__name__}: {exc}")


def _renew(state: StateDB, claim: Claim, ttl: float, done: threading.Event) -> None:
    while not done.wait(ttl / 3):
        try:
            if leases.renew(state, claim.job, claim.holder, ttl):
                continue
        except BridgeError as exc:  # unreachable for now: try again; the lease may still hold
            log.warning("Could not renew the lease on job %s: %s", claim.job, exc)
            continue
        log.warning("Job %s was taken over by another process.", claim.job)
        claim.lost.set()
        return


def _free_again(state: StateDB, job: str) -> str:
    with contextlib.suppress(BridgeError):
        left = leases.seconds_left(state, job)
        if left is not None:
            return f" (if that process was killed, it is free again within {math.ceil(left)} s)."
    return "."


def _record(record: Callable[..., None], state: StateDB, job: str, *args: str) -> None:
    """Record how the run ended; a state DB gone meanwhile must not hide the run's own outcome."""
    try:
        record(state, job, *args)
    except BridgeError as exc:
        log.warning("Could not record how job %s ended: %s", job, exc)
