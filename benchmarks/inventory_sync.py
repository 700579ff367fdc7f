"""Benchmark the device import.

(a) API requests for a full sync of N simulated devices (default 100,000):
    - no detail field mapped: the device-list calls, which must be exactly ceil(N / 300);
    - detail fields mapped: a first sync (every device new) costs the list calls plus N details
      calls; after C devices check in (default 5 %), a sync costs the list calls plus C. The
      naive way (details for every device on every run, as common sync scripts do) costs the
      list calls plus N every time; the ratio is naive / ours for that second sync.
(b) Upsert throughput into SQLite and PostgreSQL, in records per second of the sync's write phase
    (from its first batch to its last: comparing with what is stored, converting, writing,
    committing; the device listing is left out): a first import (every record created) and a
    sync in which every device changed two fields (every record updated). Target: >= 5,000/s.
(c) A second sync with nothing changed writes zero rows.

The simulator runs in a process of its own (no shared GIL) with its limits raised, and so does the
client's limiter: this measures the importer, not Kandji's 10,000 requests an hour.

    python benchmarks/inventory_sync.py
    python benchmarks/inventory_sync.py --devices 20000 --runs 1 --backend sqlite --no-details
"""

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections, records
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.db.models import (
    MappedDevice,
    Record,
    RecordChange,
    RecordKey,
    RecordSortKey,
    SyncRun,
)
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.sync import PAGE_SIZE, SyncReport, sync_mapping
from kandji_bridge.kandji.ratelimit import limiter_for
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import running_simulator

POSTGRES_URL = "postgresql+psycopg://kb:kb@127.0.0.1:5432/kb_test"
UNLIMITED = {"rate_per_second": 1e6, "rate_per_hour": 1e9}
FIELDS = [
    "Device ID:text:unique", "Serial Number:text:unique", "Name:text", "Model:text",
    "OS Version:text", "Last Check In:datetime", "User Email:text", "Tags:list",
    "Missing:boolean", "Blueprint:text", "Model Identifier:text", "FileVault:boolean",
    "Disk GB:number",
]  # fmt: skip
LIST_PAIRS = [
    "serial_number=Serial Number", "device_name=Name", "model=Model", "os_version=OS Version",
    "last_check_in=Last Check In", "user_email=User Email", "tags=Tags", "is_missing=Missing",
    "blueprint_name=Blueprint",
]  # fmt: skip
DETAIL_PAIRS = [
    "serial_number=Serial Number", "model_identifier=Model Identifier",
    "filevault_enabled=FileVault", "boot_volume_capacity_gb=Disk GB",
]  # fmt: skip
TABLES = (Record, RecordKey, RecordSortKey, RecordChange, MappedDevice, SyncRun)


# -- the simulated tenant, in its own process ---------------------------------------------------


def serve_simulator(devices: int, seed: int, control: Connection) -> None:
    """Serve a tenant and obey `control`: ("check_in", n), ("change_all",), ("stats",), "stop"."""
    config = SimulatorConfig(devices=devices, events=1, seed=seed, **UNLIMITED)
    with running_simulator(config) as sim:
        control.send((sim.base_url, sim.host_port, sim.token))
        while True:
            command = control.recv()
            if command == "stop":
                return
            with sim.state.lock:
                if command[0] == "check_in":  # n devices spread over the fleet check in
                    step = max(1, len(sim.devices) // command[1])
                    for device in sim.devices[::step][: command[1]]:
                        device.last_check_in_us += 1_000_000
                elif command[0] == "change_all":  # two mapped fields change on every device
                    for device in sim.devices:
                        device.device_name += "*"
                        device.last_check_in_us += 1_000_000
                control.send(sim.stats.snapshot())


@contextlib.contextmanager
def simulator(devices: int, seed: int) -> Iterator[tuple[Connection, str]]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_simulator, args=(devices, seed, theirs), daemon=True
    )
    process.start()
    try:
        base_url, host_port, token = ours.recv()
        os.environ["KANDJI_BRIDGE_ALLOWED_HOSTS"] = host_port
        limiter_for(base_url, per_second=UNLIMITED["rate_per_second"], per_hour=1e9)
        yield ours, f"{base_url} {token}"
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(timeout=30)
        if process.is_alive():
            process.kill()


def command(control: Connection, *message: Any) -> dict[str, Any]:
    control.send(message)
    return control.recv()


# -- state databases --------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_state(backend: str, postgres_url: str) -> Iterator[StateDB]:
    """An empty state DB: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    with tempfile.TemporaryDirectory() as home:
        env = {key: value for key, value in os.environ.items() if key.startswith("KANDJI_")}
        env.pop("KANDJI_BRIDGE_DATABASE_URL", None)
        schema = None
        if backend == "postgresql":
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            with create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
                admin.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
            env["KANDJI_BRIDGE_DATABASE_URL"] = url.render_as_string(hide_password=False)
        state = open_state(load_settings(home, env=env))
        try:
            yield state
        finally:
            state.close()
            if schema is not None:
                with create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
                    admin.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def prepare(state: StateDB, source: str, pairs: list[str], sorted_on: list[str]) -> None:
    base_url, token = source.split(" ")
    sources.add_source(state, "sim", base_url, token)
    collection = collections.create_collection(
        state, "ITAM", [parse_field_spec(spec) for spec in FIELDS]
    )
    for label in sorted_on:  # as the records table's first sort on each does
        records.add_field_sort_keys(state, collection, collection.field(label))
    spec = mappings.MappingSpec(
        "bench", "sim", "ITAM", mappings.parse_pair("device_id=Device ID"),
        [mappings.parse_pair(pair) for pair in pairs],
    )  # fmt: skip
    mappings.create_mapping(state, spec)


def row_counts(state: StateDB) -> dict[str, int]:
    with state.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in TABLES
        }


# -- measuring a sync -------------------------------------------------------------------------


@dataclass
class Timed:
    report: SyncReport
    seconds: float  # the whole sync
    write_seconds: float  # its write phase

    @property
    def records_per_second(self) -> float:
        written = self.report.created + self.report.updated + self.report.unchanged
        return written / self.write_seconds


def timed_sync(state: StateDB) -> Timed:
    marks: list[float] = []

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "write":
            marks.append(time.perf_counter())

    started = time.perf_counter()
    report = asyncio.run(sync_mapping(state, "bench", progress=progress))
    return Timed(report, time.perf_counter() - started, marks[-1] - marks[0])


@dataclass
class ThroughputRun:
    create: Timed
    unchanged: Timed
    update: Timed
    unchanged_rows: int  # rows the unchanged sync wrote, counted in the tables


def throughput_run(
    backend: str, args: argparse.Namespace, control: Connection, source: str
) -> ThroughputRun:
    with fresh_state(backend, args.postgres_url) as state:
        prepare(state, source, LIST_PAIRS, args.sorted)
        create = timed_sync(state)
        before = row_counts(state)
        unchanged = timed_sync(state)
        after = row_counts(state)
        changed_rows = sum(after.values()) - sum(before.values()) - 1  # less its own run row
        command(control, "change_all")
        update = timed_sync(state)
    for timed, expected in ((create, "created"), (update, "updated")):
        assert getattr(timed.report, expected) == args.devices, (expected, timed.report)
    assert unchanged.report.unchanged == args.devices and unchanged.report.rows_written == 0
    return ThroughputRun(create, unchanged, update, changed_rows)


@dataclass
class DetailsRun:
    first: SyncReport
    unchanged: SyncReport
    checked_in: SyncReport
    simulator_counts: dict[str, int]


def details_run(args: argparse.Namespace, control: Connection, source: str) -> DetailsRun:
    before = command(control, "stats", None)["by_endpoint"]
    with fresh_state("sqlite", args.postgres_url) as state:
        prepare(state, source, DETAIL_PAIRS, args.sorted)
        first = timed_sync(state).report
        unchanged = timed_sync(state).report
        command(control, "check_in", args.checked_in)
        checked_in = timed_sync(state).report
    after = command(control, "stats", None)["by_endpoint"]
    counts = {endpoint: after[endpoint] - before.get(endpoint, 0) for endpoint in after}
    return DetailsRun(first, unchanged, checked_in, counts)


# -- report -----------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def postgres_version(url: str) -> str:
    with create_engine(url).connect() as connection:
        return str(connection.scalar(text("SHOW server_version")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="simulated devices")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per backend")
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), help="(both)"
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--checked-in", type=int, help="devices that check in (default: 5 %%)")
    parser.add_argument("--no-details", action="store_true", help="skip the details scenario")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--sorted",
        action="append",
        default=[],
        metavar="LABEL",
        help="a field the records table was sorted on, so the import writes its sort keys",
    )
    args = parser.parse_args()
    args.checked_in = args.checked_in or max(1, args.devices // 20)
    backends = args.backend or ["sqlite", "postgresql"]
    # The list has no total: only a short page ends it, so a multiple of 300 needs one empty
    # page more. Otherwise this is ceil(devices / 300).
    list_calls = args.devices // PAGE_SIZE + 1

    throughput: dict[str, list[ThroughputRun]] = {}
    details = None
    with simulator(args.devices, args.seed) as (control, source):
        for backend in backends:
            for number in range(args.runs):
                run = throughput_run(backend, args, control, source)
                throughput.setdefault(backend, []).append(run)
                print(
                    f"{backend} run {number + 1}: create {run.create.records_per_second:,.0f}/s, "
                    f"update {run.update.records_per_second:,.0f}/s, unchanged "
                    f"{run.unchanged.records_per_second:,.0f}/s",
                    file=sys.stderr,
                )
        if not args.no_details:
            details = details_run(args, control, source)

    shown = " ".join(sys.argv[1:])
    print(f"`python benchmarks/inventory_sync.py{' ' + shown if shown else ''}`, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}", end="")  # fmt: skip
    if "postgresql" in backends:
        print(f", PostgreSQL {postgres_version(args.postgres_url)} on the same machine", end="")
    print(".\n")

    print(f"API requests for a full sync of {args.devices:,} devices (300 a page):\n")
    print("| sync | device list | device details | total | naive (details every device) |")
    print("|---|---:|---:|---:|---:|")
    sample = next(iter(throughput.values()))[0]
    for label, report in (
        ("no detail field, first sync", sample.create.report),
        ("no detail field, nothing changed", sample.unchanged.report),
    ):
        assert report.api_requests == list_calls, report
        print(f"| {label} | {report.api_requests:,} | 0 | {report.api_requests:,} | - |")
    if details is not None:
        naive = list_calls + args.devices
        for label, report in (
            ("detail fields, first sync (all new)", details.first),
            ("detail fields, nothing changed", details.unchanged),
            (f"detail fields, {args.checked_in:,} devices checked in", details.checked_in),
        ):
            listed = report.api_requests - report.details_requests
            print(
                f"| {label} | {listed:,} | {report.details_requests:,} | "
                f"{report.api_requests:,} | {naive:,} |"
            )
        ratio = naive / details.checked_in.api_requests
        print(
            f"\nceil({args.devices:,} / 300) = {math.ceil(args.devices / PAGE_SIZE):,}; "
            f"list calls made: {list_calls:,}. The simulator counted "
            + ", ".join(f"{n:,} {endpoint}" for endpoint, n in details.simulator_counts.items())
            + f" for the three detail syncs. Naive / ours after {args.checked_in:,} check-ins: "
            f"{naive:,} / {details.checked_in.api_requests:,} = {ratio:.1f}x fewer requests."
        )

    print(f"\nUpsert throughput, records/s of the write phase, median of {args.runs} runs:\n")
    print("| backend | first import (creates) | every device changed (updates) | nothing "
          "changed (compare only) | rows written by the unchanged sync |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for backend, runs_ in throughput.items():

        def median(attribute: str, runs_: list[ThroughputRun] = runs_) -> float:
            return statistics.median(getattr(r, attribute).records_per_second for r in runs_)

        each = " / ".join(f"{r.create.records_per_second:,.0f}" for r in runs_)
        print(
            f"| {backend} | {median('create'):,.0f} ({each}) | {median('update'):,.0f} | "
            f"{median('unchanged'):,.0f} | {max(r.unchanged_rows for r in runs_)} |"
        )
    for backend, runs_ in throughput.items():
        seconds = statistics.median(r.create.seconds for r in runs_)
        print(
            f"\n{backend}: a whole first sync of {args.devices:,} devices (listing included) "
            f"took {seconds:.1f} s (median)."
        )


if __name__ == "__main__":
    main()
