"""SIGKILL `logs sync` and `inventory sync` at random moments, restart them, and check the data.

After every kill and at the end, against the simulator: every audit event stored exactly once
(compared by Kandji id), one record per device in the collection, and after a final clean sync
every record holds the device's current values. 3 kills per command in the default suite, 50 in
the slow one (`pytest -m slow`). KANDJI_BRIDGE_CRASH_SEED replays a run.
"""

from collections import Counter
from pathlib import Path

import pytest

from kandji_bridge.simulator.devices import device_json

from .harness import CrashHarness, crash_seed

DEFAULT_KILLS = 3
SLOW_KILLS = 50
FIELDS = {
    "device_id": "Device ID",
    "serial_number": "Serial",
    "device_name": "Name",
    "os_version": "OS",
    "model": "Model",
}


def crash_logs_sync(home: Path, simulator_factory, kills: int) -> None:
    seed = crash_seed()
    sim = simulator_factory(
        devices=10, events=12_000, history_days=365, seed=seed, rate_per_second=15,
        rate_per_hour=0,
    )  # fmt: skip
    harness = CrashHarness(home, sim, seed)
    harness.run(
        "source", "add", "--name", "acme", "--url", sim.base_url, "--token-env", "KANDJI_TOKEN",
        "--no-verify",
    )  # fmt: skip

    def stored() -> list[str]:
        rows = harness.json_lines(
            "logs", "query", "SELECT kandjiEventId FROM kandji_logs", "--format", "json"
        )
        return [row["kandjiEventId"] for row in rows]

    def exactly_once_so_far() -> None:
        ids = stored()
        duplicated = [i for i, n in Counter(ids).items() if n > 1]
        assert not duplicated, f"seed {seed}: stored twice after a kill: {duplicated[:5]}"
        unknown = set(ids) - {e["id"] for e in sim.events()}
        assert not unknown, (
            f"seed {seed}: stored events Kandji does not have: {sorted(unknown)[:5]}"
        )

    def new_events() -> None:
        sim.state.add_generated_events(harness.rng.randint(100, 2_500))

    report = harness.kill_runs(
        ("logs", "sync", "acme"), kills, longest=3.0, between=new_events, check=exactly_once_so_far
    )
    harness.run("logs", "sync", "acme")
    ids = stored()
    expected = [e["id"] for e in sim.events()]
    assert len(ids) == len(set(ids)), f"seed {seed}: an event was stored twice"
    assert sorted(ids) == sorted(expected), f"seed {seed}: an event was lost"
    print(f"logs sync: {report.kills} kills survived, {report.finished} runs ended on their own, "
          f"{len(expected)} events stored once each")  # fmt: skip


def register_devices(harness: CrashHarness, *source_flags: str) -> None:
    """Source `acme` on the simulator, collection ITAM and mapping `devices` of FIELDS into it."""
    harness.run(
        "source", "add", "--name", "acme", "--url", harness.sim.base_url,
        "--token-env", "KANDJI_TOKEN", *source_flags, "--no-verify",
    )  # fmt: skip
    harness.run(
        "collection", "create", "ITAM", "--field", "Device ID:text:unique",
        *[arg for label in list(FIELDS.values())[1:] for arg in ("--field", f"{label}:text")],
    )  # fmt: skip
    harness.run(
        "mapping", "create", "--name", "devices", "--source", "acme", "--collection", "ITAM",
        "--identifier", "device_id=Device ID",
        *[arg for key, label in list(FIELDS.items())[1:] for arg in ("--field", f"{key}={label}")],
        "--no-verify",
    )  # fmt: skip


def crash_inventory_sync(home: Path, simulator_factory, kills: int) -> None:
    seed = crash_seed()
    sim = simulator_factory(devices=3_000, events=0, seed=seed, rate_per_second=0, rate_per_hour=0)
    harness = CrashHarness(home, sim, seed)
    register_devices(harness)

    def records() -> list[dict]:
        return harness.json_lines("collection", "export", "ITAM", "--format", "json")

    def one_record_per_device() -> None:
        ids = Counter(record["Device ID"] for record in records())
        duplicated = [i for i, n in ids.items() if n > 1]
        assert not duplicated, f"seed {seed}: a device has two records: {duplicated[:5]}"

    def change_devices() -> None:
        for device in harness.rng.sample(sim.devices, harness.rng.randint(20, 300)):
            if harness.rng.random() < 0.5:
                sim.state.rename_device(device.device_id, f"renamed-{harness.rng.randrange(10**6)}")
            else:
                sim.state.update_device_os(device.device_id)

    report = harness.kill_runs(
        ("inventory", "sync", "devices"), kills, longest=3.0, between=change_devices,
        check=one_record_per_device,
    )  # fmt: skip
    harness.run("inventory", "sync", "devices")
    held = {record["Device ID"]: record for record in records()}
    assert len(held) == len(records()) == len(sim.devices), f"seed {seed}: records != devices"
    for device in sim.devices:
        record = held.get(device.device_id)
        assert record is not None, f"seed {seed}: device {device.device_id} has no record"
        listed = device_json(device, sim.state.check_in_us(device))  # what Kandji lists now
        current = {label: listed[key] or None for key, label in FIELDS.items()}
        values = {label: record[label] for label in FIELDS.values()}
        assert values == current, f"seed {seed}: record of {device.device_id} is stale"
    again = harness.run("inventory", "sync", "devices")
    assert "created 0, updated 0," in again, f"seed {seed}: an unchanged sync wrote: {again}"
    # Each killed run was closed as interrupted by the sync after it: none shows running for good.
    history = harness.run("inventory", "runs", "devices", "--limit", "1000").splitlines()
    left_running = [line for line in history if " UTC  running" in line]
    assert not left_running, f"seed {seed}: runs left running for good: {left_running}"
    interrupted = sum(line.strip().startswith("Interrupted:") for line in history)
    print(f"inventory sync: {report.kills} kills survived, {report.finished} runs ended on their "
          f"own ({interrupted} sync runs closed as interrupted), {len(held)} records, one per "
          "device, all current")  # fmt: skip


def test_logs_sync_survives_kill_9(home: Path, simulator_factory) -> None:
    crash_logs_sync(home, simulator_factory, DEFAULT_KILLS)


def test_inventory_sync_survives_kill_9(home: Path, simulator_factory) -> None:
    crash_inventory_sync(home, simulator_factory, DEFAULT_KILLS)


@pytest.mark.slow
def test_logs_sync_survives_50_kills(home: Path, simulator_factory) -> None:
    crash_logs_sync(home, simulator_factory, SLOW_KILLS)


@pytest.mark.slow
def test_inventory_sync_survives_50_kills(home: Path, simulator_factory) -> None:
    crash_inventory_sync(home, simulator_factory, SLOW_KILLS)
