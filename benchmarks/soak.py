"""Fault soak: `logs sync` and `inventory sync` against a faulty, stingy simulator.

Each pipeline runs twice as real `kandji-bridge` processes, with the same seed and data: once
against a clean simulator (no faults, no limits: the baseline) and once with `fault_rate` of the
API requests failing on purpose (500/502/503, slow, truncated bodies, dropped connections) and
rate limits lower than the client's own (50/s, 10,000/h). A run that stops on an error is run
again, as a user or `serve` would, and counted. The data must end complete: every audit event
stored once, one current record per device. Reported: requests, retries (requests beyond the
baseline's), 429s and faults (from the simulator's /_simulator/stats), runs, and the time lost
(faulty wall time minus baseline). Not a pass/fail test; tests/reliability/test_soak.py is.

    python benchmarks/soak.py
    python benchmarks/soak.py --events 20000 --devices 500 --fault-rate 0.2 --rate-per-second 10
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from kandji_bridge.inventory.fields import dig
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.details import device_details
from kandji_bridge.simulator.devices import device_json
from kandji_bridge.simulator.server import RunningSimulator, running_simulator

CLI = (sys.executable, "-m", "kandji_bridge")
MAX_RUNS = 10
FIELDS = {
    "device_id": "Device ID",
    "serial_number": "Serial",
    "device_name": "Name",
    "os_version": "OS",
    "system_version": "System Version",
}


@dataclass
class Outcome:
    pipeline: str
    faulty: bool
    seconds: float = 0.0
    runs: int = 0  # runs needed until the data was complete
    stats: dict = field(default_factory=dict)
    complete: bool = False
    detail: str = ""


class Cli:
    def __init__(self, home: Path, sim: RunningSimulator) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KANDJI_BRIDGE_")},
            "KANDJI_BRIDGE_HOME": str(home),
            "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
            "KANDJI_TOKEN": sim.token,
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` failed: {done.stderr.strip()}")
        return done

    def json(self, *args: str) -> list:
        text = self.run(*args).stdout.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def simulator_config(args: argparse.Namespace, faulty: bool) -> SimulatorConfig:
    return SimulatorConfig(
        devices=args.devices,
        events=args.events,
        history_days=365,
        seed=args.seed,
        fault_rate=args.fault_rate if faulty else 0,
        rate_per_second=args.rate_per_second if faulty else 0,
        rate_per_hour=args.rate_per_hour if faulty else 0,
        slow_response_seconds=args.slow_seconds,
    )


def until_complete(cli: Cli, command: tuple[str, ...], outcome: Outcome) -> None:
    started = time.monotonic()
    while outcome.runs < MAX_RUNS:
        outcome.runs += 1
        done = cli.run(*command, check=False)
        if done.returncode == 0:
            break
        outcome.detail += f"run {outcome.runs} stopped: {done.stderr.strip().splitlines()[-1]}\n"
    outcome.seconds = time.monotonic() - started


def soak_logs(args: argparse.Namespace, faulty: bool) -> Outcome:
    outcome = Outcome("logs sync", faulty)
    with (
        tempfile.TemporaryDirectory() as home,
        running_simulator(simulator_config(args, faulty)) as sim,
    ):
        cli = Cli(Path(home), sim)
        cli.run(
            "source",
            "add",
            "--name",
            "acme",
            "--url",
            sim.base_url,
            "--token-env",
            "KANDJI_TOKEN",
            "--no-verify",
        )
        sim.stats.reset()
        until_complete(cli, ("logs", "sync", "acme"), outcome)
        outcome.stats = httpx.get(f"{sim.base_url}/_simulator/stats").json()
        rows = cli.json(
            "logs", "query", "SELECT kandjiEventId FROM kandji_logs", "--format", "json"
        )
        ids = [row["kandjiEventId"] for row in rows]
        expected = sorted(event["id"] for event in sim.events())
        duplicates = sum(n - 1 for n in Counter(ids).values())
        outcome.complete = sorted(ids) == expected
        outcome.detail += f"{len(set(ids))} of {len(expected)} events, {duplicates} duplicates"
    return outcome


def soak_inventory(args: argparse.Namespace, faulty: bool) -> Outcome:
    outcome = Outcome("inventory sync", faulty)
    with (
        tempfile.TemporaryDirectory() as home,
        running_simulator(simulator_config(args, faulty)) as sim,
    ):
        cli = Cli(Path(home), sim)
        cli.run(
            "source",
            "add",
            "--name",
            "acme",
            "--url",
            sim.base_url,
            "--token-env",
            "KANDJI_TOKEN",
            "--no-verify",
        )
        cli.run(
            "collection",
            "create",
            "ITAM",
            "--field",
            "Device ID:text:unique",
            *[a for label in list(FIELDS.values())[1:] for a in ("--field", f"{label}:text")],
        )
        cli.run(
            "mapping",
            "create",
            "--name",
            "devices",
            "--source",
            "acme",
            "--collection",
            "ITAM",
            "--identifier",
            "device_id=Device ID",
            "--no-verify",
            *[a for k, label in list(FIELDS.items())[1:] for a in ("--field", f"{k}={label}")],
        )
        sim.stats.reset()
        until_complete(cli, ("inventory", "sync", "devices"), outcome)
        outcome.stats = httpx.get(f"{sim.base_url}/_simulator/stats").json()
        records = cli.json("collection", "export", "ITAM", "--format", "json")
        held = Counter(record["Device ID"] for record in records)
        by_id = {record["Device ID"]: record for record in records}
        stale = 0
        for device in sim.devices:
            listed = device_json(device, sim.state.check_in_us(device))
            record = by_id.get(device.device_id, {})
            stale += any(
                record.get(FIELDS[key]) != (listed[key] or None)
                for key in ("device_id", "serial_number", "device_name", "os_version")
            )
            details = device_details(device, args.seed, sim.state.check_in_us(device))
            stale += record.get("System Version") != (
                dig(details, "general.system_version") or None
            )
        duplicates = sum(n - 1 for n in held.values())
        outcome.complete = len(held) == len(sim.devices) and not duplicates and not stale
        outcome.detail += (
            f"{len(held)} of {len(sim.devices)} devices, {duplicates} duplicates, {stale} stale"
        )
    return outcome


def report(clean: Outcome, faulty: Outcome) -> None:
    stats, base = faulty.stats, clean.stats
    faults = sum(stats["faults"].values())
    print(f"## {faulty.pipeline}")
    print(
        f"- baseline (no faults, no limits): {clean.seconds:.1f} s, {base['requests']} requests,"
        f" {clean.runs} run(s), complete: {clean.complete} ({clean.detail.strip()})"
    )
    print(
        f"- faulty: {faulty.seconds:.1f} s, {stats['requests']} requests, "
        f"{stats['requests'] - base['requests']} retries, {stats['throttled']} answered 429, "
        f"{faults} faults injected {dict(sorted(stats['faults'].items()))}, "
        f"{faulty.runs} run(s), complete: {faulty.complete}"
    )
    print(f"- time lost to faults and throttling: {faulty.seconds - clean.seconds:.1f} s")
    for line in faulty.detail.strip().splitlines():
        print(f"  - {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--rate-per-second", type=float, default=10)
    parser.add_argument("--rate-per-hour", type=float, default=5_000)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    print(
        f"soak: {args.events} events, {args.devices} devices, fault rate {args.fault_rate}, "
        f"limits {args.rate_per_second:g}/s and {args.rate_per_hour:g}/h "
        f"(the client's: 50/s, 10,000/h), seed {args.seed}\n"
    )
    ok = True
    for soak in (soak_logs, soak_inventory):
        clean, faulty = soak(args, faulty=False), soak(args, faulty=True)
        report(clean, faulty)
        ok = ok and clean.complete and faulty.complete
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
