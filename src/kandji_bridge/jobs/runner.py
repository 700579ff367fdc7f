"""How a front end asks for a job to run: the JobRunner.

Two runners exist. serve's scheduler (`service/scheduler.py`) queues the job and runs it in the
background, soon; the InlineRunner runs it now, in the caller, wherever no scheduler runs (the
web app in tests, say). Both hold the job's lease, run the same function (`operations.jobs.run_job`)
and record its status the same way, so the UI, the API and /metrics read one truth. `background`
tells a front end which it got, to say "queued" or "done".
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kandji_bridge import redact
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import exclusive
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.counters import Counters

log = logging.getLogger(__name__)

# Runs a job once: (job key, stop, the runner's counters) -> False if stopped before it was
# done; raises a BridgeError if it failed.
RunJob = Callable[[str, threading.Event, Counters], bool]


@dataclass(frozen=True)
class JobOutcome:
    job: str
    queued: bool  # True: it runs in the background soon; False: it ran in the caller
    error: str | None = None  # an inline run's failure, one sentence (also in its job status)


class JobRunner(Protocol):
    """Runs jobs ("source:ID", "mapping:ID") for the front ends."""

    @property
    def background(self) -> bool:
        """True: runs happen in the background and on schedule; False: only when triggered."""
        ...

    @property
    def counters(self) -> Counters: ...

    def trigger(self, job: str) -> JobOutcome:
        """Run `job` as soon as possible, due or not (Poll now, Sync now, a new source)."""
        ...

    def running_jobs(self) -> set[str]: ...


class InlineRunner:
    """Runs a triggered job at once, in the calling thread, under the job's lease."""

    background = False

    def __init__(self, state: StateDB, run: RunJob) -> None:
        self.state = state
        self.run = run
        self.counters = Counters()
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def trigger(self, job: str) -> JobOutcome:
        jobs.parse_job(job)
        busy = (
            "Another process (`serve`, or a `logs sync` or `inventory sync`) is running this "
            "job now; try again when it is done"
        )
        with self._lock:
            self._running.add(job)
        try:
            with exclusive.claimed(self.state, job, busy) as claim:
                claim.stopped = not self.run(job, claim.lost, self.counters)
        except BridgeError as exc:
            error = redact.scrub(exc.message)
            log.warning("Job %s failed: %s", job, error)
            return JobOutcome(job, queued=False, error=error)
        except Exception as exc:
            log.exception("Job %s failed unexpectedly", job)
            return JobOutcome(job, queued=False, error=exclusive.unexpected(exc))
        finally:
            with self._lock:
                self._running.discard(job)
        return JobOutcome(job, queued=False)

    def running_jobs(self) -> set[str]:
        with self._lock:
            return set(self._running)
