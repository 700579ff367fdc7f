"""Several real `serve` processes on one PostgreSQL state DB and one ClickHouse log store (the
HTTP test fixture), one of them killed with -9: who ran which job when, read from each serve's
own log (`serve --debug` logs every run's start and end with its lease holder), and how long the
killed serve's jobs took to move. Used by tests/service/test_multiserve.py and by
benchmarks/takeover.py.

Each serve runs in a UTS namespace of its own where it can (`unshare --uts`, as root), with its
own host name: the serves are then on three "hosts" as far as the leases can tell, so a killed
serve's jobs move only once its leases run out, as between machines. Without it they share the
host, and a survivor sees the dead holder's pid gone and takes over at once.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

CLI = [sys.executable, "-m", "kandji_bridge", "--debug", "serve", "--port", "0"]
SERVING = re.compile(r"Serving on (http://\S+)")
# "2026-12-06 09:40:01,123 INFO kandji_bridge.service.scheduler: Job source:ID started by HOLDER"
_RUN_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO kandji_bridge\.service\.scheduler: "
    r"Job (\S+) (started by|ended in) (\S+)$"
)


@dataclass
class Serve:
    process: subprocess.Popen
    url: str
    log: Path
    host: str  # the host name it runs under

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass(frozen=True)
class JobRun:
    """One run of a job by one serve, from its log; `end` None: it never ended (killed)."""

    job: str
    holder: str
    start: datetime
    end: datetime | None


def separate_hosts() -> bool:
    """Whether serves can run under host names of their own here (unshare, as root)."""
    if shutil.which("unshare") is None:
        return False
    tried = subprocess.run(
        ["unshare", "--uts", "hostname", "kb-probe"], capture_output=True, timeout=30
    )
    return tried.returncode == 0


@contextmanager
def serves(
    count: int, env: dict[str, str], folder: Path, *, own_hosts: bool
) -> Iterator[list[Serve]]:
    """`count` serves, each with a home of its own under `folder`; killed on exit if running."""
    with ExitStack() as stack:
        started = []
        for number in range(count):
            served = {**env, "KANDJI_BRIDGE_HOME": str(folder / f"home-{number}")}
            log = folder / f"serve-{number}.log"
            host = f"kb-serve-{number}" if own_hosts else None
            started.append(stack.enter_context(_serve(served, log, host)))
        yield started


@contextmanager
def _serve(env: dict[str, str], log: Path, host: str | None) -> Iterator[Serve]:
    command = CLI
    if host is not None:
        # unshare execs the shell, which execs serve: the pid is serve's, for kill -9.
        script = f'hostname {host} && exec "$@"'
        command = ["unshare", "--uts", "sh", "-c", script, "sh", *CLI]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        while True:
            try:
                line = lines.get(timeout=90)
            except queue.Empty:
                raise RuntimeError(f"serve did not start: {log.read_text()[-2000:]}") from None
            if match := SERVING.search(line):
                break
        yield Serve(process, match.group(1), log, host or os.uname().nodename)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def kill_hard(serve: Serve) -> datetime:
    """`kill -9` the serve; the local time it was killed at (as its log's clock reads)."""
    killed_at = datetime.now()
    os.kill(serve.pid, signal.SIGKILL)
    serve.process.wait(timeout=30)
    return killed_at


def stop(serve: Serve) -> int:
    """SIGTERM, as a service manager stops it; its exit code."""
    serve.process.send_signal(signal.SIGTERM)
    return serve.process.wait(timeout=120)


def job_runs(logs: list[Path]) -> list[JobRun]:
    """Every run each serve's log records, in start order."""
    runs: list[JobRun] = []
    for log in logs:
        open_runs: dict[str, tuple[str, datetime]] = {}
        for line in log.read_text(errors="replace").splitlines():
            match = _RUN_LINE.match(line)
            if not match:
                continue
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            job, what, holder = match[2], match[3], match[4]
            if what == "started by":
                open_runs[job] = (holder, at)
            elif job in open_runs:
                holder, start = open_runs.pop(job)
                runs.append(JobRun(job, holder, start, at))
        runs.extend(JobRun(job, holder, start, None) for job, (holder, start) in open_runs.items())
    return sorted(runs, key=lambda run: run.start)


def overlapping(runs: list[JobRun], killed_at: datetime) -> list[tuple[JobRun, JobRun]]:
    """Pairs of runs of one job by two holders at the same time; a run the kill cut short ends
    at the kill."""
    found = []
    by_job: dict[str, list[JobRun]] = {}
    for run in runs:
        by_job.setdefault(run.job, []).append(run)
    for job_runs_ in by_job.values():
        for index, first in enumerate(job_runs_):
            first_end = first.end or killed_at
            for second in job_runs_[index + 1 :]:
                if second.holder != first.holder and second.start < first_end:
                    found.append((first, second))
    return found


def takeover_seconds(runs: list[JobRun], jobs: set[str], killed_at: datetime) -> dict[str, float]:
    """For each of `jobs` (the killed serve's), how long after the kill another serve started it."""
    taken: dict[str, float] = {}
    for run in runs:
        if run.job in jobs and run.job not in taken and run.start > killed_at:
            taken[run.job] = (run.start - killed_at).total_seconds()
    return taken


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)
