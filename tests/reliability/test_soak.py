"""Fault soak, slow suite: with 20 % of requests failing and limits below the client's, both
pipelines end with complete data (a run that stops on an error is run again, as `serve` would).

benchmarks/soak.py is the larger run that reports requests, retries, 429s and time lost.
"""

from collections import Counter
from pathlib import Path

import pytest

from kandji_bridge.inventory.fields import dig
from kandji_bridge.simulator.details import device_details
from kandji_bridge.simulator.devices import device_json

from .harness import CrashHarness, crash_seed

FAULTY = {"fault_rate": 0.2, "rate_per_second": 10, "rate_per_hour": 5_000}
MAX_RUNS = 10


def until_complete(harness: CrashHarness, *command: str) -> int:
    for run in range(1, MAX_RUNS + 1):
        if harness.attempt(*command).returncode == 0:
            return run
    raise AssertionError(f"seed {harness.seed}: `{' '.join(command)}` failed {MAX_RUNS} times")


def add_source(harness: CrashHarness) -> None:
    harness.run(
        "source", "add", "--name", "acme", "--url", harness.sim.base_url,
        "--token-env", "KANDJI_TOKEN", "--no-verify",
    )  # fmt: skip


@pytest.mark.slow
def test_logs_sync_under_faults_stores_every_event_once(home: Path, simulator_factory) -> None:
    seed = crash_seed()
    sim = simulator_factory(devices=5, events=8_000, history_days=365, seed=seed, **FAULTY)
    harness = CrashHarness(home, sim, seed)
    add_source(harness)
    until_complete(harness, "logs", "sync", "acme")
    rows = harness.json_lines(
        "logs", "query", "SELECT kandjiEventId FROM kandji_logs", "--format", "json"
    )
    ids = [row["kandjiEventId"] for row in rows]
    assert len(ids) == len(set(ids)), f"seed {seed}: an event was stored twice"
    assert sorted(ids) == sorted(e["id"] for e in sim.events()), f"seed {seed}: events lost"
    assert sum(sim.stats.snapshot()["faults"].values()) > 0


@pytest.mark.slow
def test_inventory_sync_under_faults_imports_every_device_once(
    home: Path, simulator_factory
) -> None:
    seed = crash_seed()
    sim = simulator_factory(devices=300, events=0, seed=seed, **FAULTY)
    harness = CrashHarness(home, sim, seed)
    add_source(harness)
    harness.run(
        "collection", "create", "ITAM", "--field", "Device ID:text:unique",
        "--field", "Name:text", "--field", "OS:text", "--field", "System Version:text",
    )  # fmt: skip
    harness.run(
        "mapping", "create", "--name", "devices", "--source", "acme", "--collection", "ITAM",
        "--identifier", "device_id=Device ID", "--field", "device_name=Name",
        "--field", "os_version=OS", "--field", "system_version=System Version", "--no-verify",
    )  # fmt: skip
    until_complete(harness, "inventory", "sync", "devices")
    records = harness.json_lines("collection", "export", "ITAM", "--format", "json")
    held = Counter(record["Device ID"] for record in records)
    assert set(held) == {d.device_id for d in sim.devices}, f"seed {seed}: devices missing"
    assert max(held.values()) == 1, f"seed {seed}: a device has two records"
    by_id = {record["Device ID"]: record for record in records}
    for device in sim.devices:
        listed = device_json(device, sim.state.check_in_us(device))
        record = by_id[device.device_id]
        assert (record["Name"], record["OS"]) == (listed["device_name"], listed["os_version"])
        details = device_details(device, seed, sim.state.check_in_us(device))
        wanted = dig(details, "general.system_version") or None
        assert record["System Version"] == wanted, f"seed {seed}: details of {device.device_id}"
    assert sum(sim.stats.snapshot()["faults"].values()) > 0
