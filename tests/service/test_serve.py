"""`serve` as users run it: the web app and the scheduler in one process, stopped by a signal;
several processes sharing one PostgreSQL state DB."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.service.serve import run_serve
from kandji_bridge.simulator.server import RunningSimulator

from .helpers import wait_until
from .test_scheduler import add_mapping

CLI = [sys.executable, "-m", "kandji_bridge"]
SERVING = re.compile(r"Serving on (http://\S+)")


def test_run_serve_serves_until_stopped_and_prints_the_setup_link(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stop, ready = threading.Event(), queue.Queue()
    thread = threading.Thread(
        target=run_serve,
        args=(load_settings(), "127.0.0.1", 0),
        kwargs={"stop": stop, "on_ready": ready.put},
    )
    thread.start()
    try:
        url = ready.get(timeout=60)
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    printed = capsys.readouterr().out
    assert f"Serving on {url}\n" in printed
    assert f"open {url}/setup/" in printed


def test_a_port_in_use_is_one_clear_sentence(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BridgeError) as error:
            run_serve(load_settings(), "127.0.0.1", port)
        served = subprocess.run(
            [*CLI, "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert f"Cannot listen on 127.0.0.1:{port}" in str(error.value)
    assert "--port" in str(error.value)
    assert served.returncode == 1
    assert served.stderr.startswith(f"Error: Cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in served.stderr


@contextmanager
def serve_process(
    env: dict[str, str], log: Path, *, debug: bool = False
) -> Iterator[tuple[subprocess.Popen, str]]:
    """A real `serve` on a free port (its debug log in `log` with `debug`); yields the process
    and its URL once it serves."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*CLI, *(["--debug"] if debug else []), "serve", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    )
    reader.start()
    try:
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                pytest.fail(f"serve did not start: {log.read_text()}")
            if match := SERVING.search(line):
                break
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def cli_env(home: Path, sim: RunningSimulator, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KANDJI_BRIDGE_HOME": str(home),
        "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
        **extra,
    }


def audit_requests(sim: RunningSimulator) -> int:
    return sim.stats.snapshot()["by_endpoint"].get("GET /api/v1/audit/events", 0)


def test_sigterm_mid_backfill_exits_0_and_loses_or_repeats_nothing(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=5, events=8_000, history_days=365, seed=41, rate_per_second=6)
    env = cli_env(home, sim)
    with open_state(load_settings(env=env)) as state:
        source = sources.add_source(state, "acme", sim.base_url, sim.token)
        with serve_process(env, tmp_path / "serve.log") as (process, _url):
            wait_until(lambda: audit_requests(sim) >= 3, "the backfill under way")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()
        after = jobs.job_statuses(state)[jobs.source_job(source.id)]
        # Stopped mid-backfill: not a success (its lag keeps growing), not an error either.
        assert after.last_success_at is None and after.last_error is None and not after.running
    assert leases.holders(state) == {}, "the lease was released"
    synced = subprocess.run(
        [*CLI, "logs", "sync", "acme"], env=env, capture_output=True, text=True, timeout=300
    )
    assert synced.returncode == 0, synced.stderr
    assert "Collected" in synced.stdout, "the pass resumed from what serve stored"
    store = ChdbLogStore(str(home / "logs"))
    try:
        ids = [row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows]
    finally:
        store.close()
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert sorted(ids) == sorted(event["id"] for event in sim.events()), "an event was lost"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_serve_processes_share_the_jobs_and_one_takes_over_a_killed_ones(
    home: Path, tmp_path: Path, simulator_factory, state: StateDB, database_url: str
) -> None:
    sim = simulator_factory(devices=3_000, events=0, history_days=30, seed=42, rate_per_second=500)
    sources.add_source(state, "acme", sim.base_url, sim.token, logs_enabled=False)
    env = cli_env(home, sim, KANDJI_BRIDGE_DATABASE_URL=database_url)
    env["KANDJI_BRIDGE_LEASE_SECONDS"] = "2"
    seen: dict[str, set[str]] = {}  # holder: the jobs it was seen holding

    def watch() -> dict[str, str]:
        held = leases.holders(state)
        for job, holder in held.items():
            seen.setdefault(holder, set()).add(job)
        return held

    first_env = {**env, "KANDJI_BRIDGE_LOG_STORE": f"chdb://{tmp_path / 'logs-1'}"}
    second_env = {**env, "KANDJI_BRIDGE_LOG_STORE": f"chdb://{tmp_path / 'logs-2'}"}
    with (
        serve_process(first_env, tmp_path / "first.log") as (first, _),
        serve_process(second_env, tmp_path / "second.log") as (second, _),
    ):
        # Made once both serve: both see six jobs due at once, more than one process runs.
        mapping_jobs = {
            jobs.mapping_job(add_mapping(state, "acme", f"m{index}", f"C{index}").id)
            for index in range(6)
        }
        wait_until(lambda: watch() and len(seen) == 2, "both processes running syncs")
        # Kill the first process while it holds a job.
        first_holder = next(h for h in seen if f":{first.pid}:" in h)
        wait_until(lambda: first_holder in watch().values(), "the first process mid-sync")
        killed = {job for job, holder in leases.holders(state).items() if holder == first_holder}
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        second_holder = next(h for h in seen if f":{second.pid}:" in h)

        def taken_over() -> bool:
            watch()
            statuses = jobs.job_statuses(state)
            # A lease is taken before its run's status row is first written: no row, not done.
            return all(
                second_holder in {h for h, held in seen.items() if job in held}
                and (status := statuses.get(job)) is not None
                and status.last_success_at is not None
                and status.last_finished_at is not None
                and status.last_finished_at > status.last_started_at
                for job in killed
            )

        wait_until(taken_over, "the second process finishing the killed process's syncs")
        wait_until(
            lambda: all(
                (s := jobs.job_statuses(state).get(job)) and s.last_success_at
                for job in mapping_jobs
            ),
            "every mapping synced",
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    assert killed, "the first process held a job when it was killed"
    assert {h for h in seen if f":{first.pid}:" in h or f":{second.pid}:" in h} == set(seen)
