"""SIGKILL `serve` at random moments while it backfills a source and imports devices, restart it,
and check the data against the simulator.

`serve` runs as users run it: a real process on a free port of 127.0.0.1, its scheduler polling
a source every second and syncing a mapping that the REST API triggers, against the simulator over
HTTP. While it runs, audit events keep arriving and devices change; between runs, more of both.
A device change renames it and moves it to a newer OS at once, so a record holding one without the
other is half-updated. After every kill, with serve down: no event stored twice or unknown to the
tenant, one record per device, every record one whole version of its device. At the end, after a
clean final pass of serve (stopped with SIGTERM): every event stored exactly once, every record
current, and a further `inventory sync` writes nothing. 3 kills in the default suite, 50 in the
slow one; KANDJI_BRIDGE_CRASH_SEED replays the random choices.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.db.models import utcnow
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.jobs import status as jobs
from kandji_bridge.simulator.devices import device_json
from kandji_bridge.simulator.server import RunningSimulator

from .harness import CrashHarness, KillReport, ServeProcess, crash_seed
from .test_crash import DEFAULT_KILLS, FIELDS, SLOW_KILLS, register_devices

SYNC = "/api/mappings/devices/sync"
RUNS = "/api/mappings/devices/runs"
LONGEST_AFTER_SERVING = 5.0  # seconds: a kill lands in the backfill, a sync, or a later poll
KILLED_IN_STARTUP = 0.15  # the share of kills that land before serve serves


class TenantChanges:
    """Events and device changes made to the simulated tenant, and every version of each device
    (name, OS) the tenant has listed."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.versions = {d.device_id: {(d.device_name, d.os_version)} for d in sim.devices}

    def change_devices(self, rng: random.Random, count: int) -> None:
        for device in rng.sample(self.sim.devices, count):
            with self.sim.state.lock:  # one version: no listing sees the rename without the OS
                self.sim.state.rename_device(device.device_id, f"renamed-{rng.randrange(10**9)}")
                self.sim.state.update_device_os(device.device_id)
                self.versions[device.device_id].add((device.device_name, device.os_version))

    def burst(self, rng: random.Random) -> None:
        """What happens in the tenant while serve is down."""
        self.sim.state.add_generated_events(rng.randint(100, 2_500))
        self.change_devices(rng, rng.randint(20, 300))

    @contextmanager
    def live(self, rng: random.Random) -> Iterator[None]:
        """Events arriving and devices changing while serve runs, from a thread of their own."""
        stop = threading.Event()

        def arrive() -> None:
            while not stop.wait(rng.uniform(0.05, 0.3)):
                self.sim.state.add_generated_events(rng.randint(1, 40))
                if rng.random() < 0.3:
                    self.change_devices(rng, rng.randint(1, 5))

        thread = threading.Thread(target=arrive, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)


def setup_tenant(harness: CrashHarness, sim: RunningSimulator) -> str:
    """A source polled every second, a collection and a mapping, an account; its API token."""
    register_devices(harness, "--poll-interval", "1")
    harness.run("user", "create", "admin", "--password-stdin", input="crash-harness-pw-1\n")
    return harness.run(
        "user", "token", "admin", "--name", "crash harness", "--scope", "admin"
    ).strip()


def crash_serve(home: Path, tmp_path: Path, simulator_factory, kills: int) -> None:
    seed = crash_seed()
    sim = simulator_factory(
        devices=3_000, events=15_000, history_days=365, seed=seed, rate_per_second=20,
        rate_per_hour=0,
    )  # fmt: skip
    harness = CrashHarness(home, sim, seed)
    token = setup_tenant(harness, sim)
    changes = TenantChanges(sim)
    by_id = {device.device_id: device for device in sim.devices}

    def stored() -> list[str]:
        rows = harness.json_lines(
            "logs", "query", "SELECT kandjiEventId FROM kandji_logs", "--format", "json"
        )
        return [row["kandjiEventId"] for row in rows]

    def records() -> list[dict]:
        return harness.json_lines("collection", "export", "ITAM", "--format", "json")

    def check_after_kill(number: int) -> None:
        ids = stored()
        duplicated = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicated, f"seed {seed}, kill {number}: stored twice: {duplicated[:5]}"
        unknown = set(ids) - {event["id"] for event in sim.events()}
        assert not unknown, f"seed {seed}, kill {number}: unknown events: {sorted(unknown)[:5]}"
        held = records()
        counts = Counter(record["Device ID"] for record in held)
        duplicated = [i for i, n in counts.items() if n > 1]
        assert not duplicated, f"seed {seed}, kill {number}: two records: {duplicated[:5]}"
        for record in held:
            device = by_id[record["Device ID"]]
            assert (record["Serial"], record["Model"]) == (
                device.serial_number,
                device.model.name,
            ), f"seed {seed}, kill {number}: record of {device.device_id} has another's values"
            assert (record["Name"], record["OS"]) in changes.versions[device.device_id], (
                f"seed {seed}, kill {number}: record of {device.device_id} is half-updated: "
                f"{record['Name']!r}, {record['OS']!r} was never a version of the device"
            )

    def job_keys(state: StateDB) -> tuple[str, str]:
        return (
            jobs.source_job(sources.get_source(state, "acme").id),
            jobs.mapping_job(mappings.get_mapping(state, "devices").id),
        )

    seen_starts: dict[str, object] = {}

    def interrupted() -> list[bool]:
        """Which of the two jobs (poll, sync) the kill caught mid-run: a run started by the
        killed process that never finished (not one left by an earlier kill)."""
        hits = []
        with open_state(load_settings(env=harness.env)) as state:
            statuses = jobs.job_statuses(state)
            for key in job_keys(state):
                status = statuses.get(key)
                started = status.last_started_at if status is not None else None
                hits.append(
                    status is not None and status.running and seen_starts.get(key) != started
                )
                seen_starts[key] = started
        return hits

    report = KillReport()
    caught = [0, 0]
    for number in range(1, kills + 1):
        changes.burst(harness.rng)
        in_startup = harness.rng.random() < KILLED_IN_STARTUP
        longest = 1.5 if in_startup else LONGEST_AFTER_SERVING
        delay = harness.rng.uniform(0.1 if in_startup else 0, longest)
        with changes.live(random.Random(harness.rng.random())):
            serve = ServeProcess(harness.env, tmp_path / f"serve-{number}.log")
            try:
                if not in_startup:
                    assert serve.wait_serving(60), f"serve did not start: {serve.log.read_text()}"
                    assert serve.api("POST", SYNC, token).status_code == 200
                time.sleep(delay)
                assert serve.process.poll() is None, (
                    f"seed {seed}: serve exited on its own: {serve.log.read_text()}"
                )
                serve.kill()
            finally:
                serve.close()
        report.kills += 1
        report.delays.append(delay)
        caught = [n + hit for n, hit in zip(caught, interrupted(), strict=True)]
        check_after_kill(number)

    # The final pass: nothing changes any more; one clean run of each job, then SIGTERM.
    serve = ServeProcess(harness.env, tmp_path / "serve-final.log")
    try:
        assert serve.wait_serving(60), f"serve did not start: {serve.log.read_text()}"
        started = utcnow()
        assert serve.api("POST", SYNC, token).status_code == 200
        with open_state(load_settings(env=harness.env)) as state:
            keys = job_keys(state)
            deadline = time.monotonic() + 600
            while True:
                statuses = jobs.job_statuses(state)
                if all(
                    (status := statuses.get(key)) is not None
                    and status.last_success_at is not None
                    and status.last_success_at > started
                    for key in keys
                ):
                    break
                assert time.monotonic() < deadline, f"seed {seed}: no clean pass: {statuses}"
                time.sleep(0.2)
        # What the UI and the API show: no sync that will never end.
        history = serve.api("GET", f"{RUNS}?limit=1000", token).json()
        left_running = [run["id"] for run in history if run["status"] == "running"]
        assert not left_running, f"seed {seed}: runs left running for good: {left_running}"
        interrupted_runs = sum(run["errors"] == [runs.INTERRUPTED] for run in history)
        assert serve.stop() == 0, f"seed {seed}: {serve.log.read_text()}"
    finally:
        serve.close()

    ids = stored()
    expected = [event["id"] for event in sim.events()]
    assert len(ids) == len(set(ids)), f"seed {seed}: an event was stored twice"
    assert sorted(ids) == sorted(expected), f"seed {seed}: an event was lost"
    held = {record["Device ID"]: record for record in records()}
    assert len(held) == len(sim.devices), f"seed {seed}: records != devices"
    for device in sim.devices:
        record = held.get(device.device_id)
        assert record is not None, f"seed {seed}: device {device.device_id} has no record"
        listed = device_json(device, sim.state.check_in_us(device))
        current = {label: listed[key] or None for key, label in FIELDS.items()}
        assert {label: record[label] for label in FIELDS.values()} == current, (
            f"seed {seed}: record of {device.device_id} is stale"
        )
    again = harness.run("inventory", "sync", "devices")
    assert "created 0, updated 0," in again, f"seed {seed}: an unchanged sync wrote: {again}"
    print(f"serve: {report.kills} kills survived ({caught[0]} mid-poll, {caught[1]} mid-sync; "
          f"{interrupted_runs} sync runs closed as interrupted), {len(expected)} events stored "
          f"once each, {len(held)} records, one per device, all current")  # fmt: skip


def test_serve_survives_kill_9(home: Path, tmp_path: Path, simulator_factory) -> None:
    crash_serve(home, tmp_path, simulator_factory, DEFAULT_KILLS)


@pytest.mark.slow
def test_serve_survives_50_kills(home: Path, tmp_path: Path, simulator_factory) -> None:
    crash_serve(home, tmp_path, simulator_factory, SLOW_KILLS)
