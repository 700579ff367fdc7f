"""Benchmark the records table: one page of a 100,000-record collection.

A collection is filled with N records (default 100,000) through the sync's own writer
(`assets.records.write_records`, as a first import writes them; device-like values: names, serials,
models, OS versions, check-in times, tags, numbers), on SQLite and on PostgreSQL. Then
`assets.browse.page_records` (what the web UI and the REST API call) is timed for the first,
middle and last page (50 records a page), unsorted and sorted by a text field, a number field and
a datetime field, each without and with a search, counting included. Target: <= 300 ms a page.

    python benchmarks/records_browse.py
    python benchmarks/records_browse.py --records 20000 --backend sqlite --repeat 3
    python benchmarks/records_browse.py --postgres-url postgresql+psycopg://kb:kb@HOST/DB
"""

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from inventory_sync import POSTGRES_URL, fresh_state, machine, postgres_version
from kandji_bridge.assets import browse, collections, records
from kandji_bridge.assets.collections import CollectionInfo, parse_field_spec
from kandji_bridge.assets.convert import format_datetime
from kandji_bridge.db import StateDB

FIELDS = [
    "Device ID:text:unique", "Serial Number:text:unique", "Name:text", "Model:text",
    "OS Version:text", "Last Check In:datetime", "User Email:text", "Tags:list",
    "Missing:boolean", "Disk GB:number", "Processor Cores:number",
]  # fmt: skip
MODELS = ["MacBook Air (M2, 2022)", "MacBook Pro (14-inch, 2023)", "iMac (24-inch, M3)",
          "Mac mini (2023)", "iPad Pro (11-inch)", "iPhone 15", "Apple TV 4K"]  # fmt: skip
PEOPLE = ["ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hiro", "ines", "jon"]
TAGS = ["finance", "engineering", "loaner", "design", "sales", "executive"]
BATCH = 5_000
PAGE_SIZE = 50
# (label, sort field, search): a text, a number and a datetime sort; a search that keeps about
# one record in seven (a model), so its last page is far in.
CASES = [
    ("creation order", None, ""),
    ("text (Name)", "Name", ""),
    ("number (Disk GB)", "Disk GB", ""),
    ("datetime (Last Check In)", "Last Check In", ""),
    ("creation order, search", None, "macbook air"),
    ("text (Name), search", "Name", "macbook air"),
    ("number (Disk GB), search", "Disk GB", "macbook air"),
]


def device_values(number: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    person = rng.choice(PEOPLE)
    model = rng.choice(MODELS)
    return {
        "Device ID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "Serial Number": f"C02{number:07d}{rng.choice('ABCDEFGHJK')}",
        "Name": f"{person.title()}'s {model.split(' (')[0]} {number}",
        "Model": model,
        "OS Version": f"{rng.randint(13, 15)}.{rng.randint(0, 6)}.{rng.randint(0, 3)}",
        "Last Check In": format_datetime(now - timedelta(seconds=rng.randint(0, 90 * 86400))),
        "User Email": f"{person}.{number}@example.com",
        "Tags": rng.sample(TAGS, rng.randint(0, 2)) or None,
        "Missing": rng.random() < 0.02,
        "Disk GB": rng.choice([128, 256, 512, 1000, 2000]) + round(rng.random(), 1),
        "Processor Cores": rng.choice([8, 10, 12, 16]),
    }


def fill(state: StateDB, count: int, seed: int) -> tuple[CollectionInfo, float]:
    """The ITAM collection with `count` records, written as a first import writes them."""
    collection = collections.create_collection(
        state, "ITAM", [parse_field_spec(spec) for spec in FIELDS]
    )
    by_label = {field.label: field for field in collection.fields}
    rng, now = random.Random(seed), datetime.now(UTC)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        writes = records.RecordWrites(collection, (), None, now)
        for number in range(first, min(first + BATCH, count)):
            values = {
                by_label[label].id: value
                for label, value in device_values(number, rng, now).items()
                if value is not None
            }
            writes.insert(records.new_record_id(), records.ACTIVE, values)
        with state.session() as session:
            records.write_records(session, writes)
    seconds = time.perf_counter() - started
    # Table statistics, as autovacuum gathers them soon after a large import on PostgreSQL;
    # without them its planner cannot tell that a page walks the sort index.
    with state.session() as session:
        session.execute(text("ANALYZE records"))
    return collection, seconds


def time_page(
    state: StateDB, collection: CollectionInfo, sort: str | None, search: str, page: int
) -> tuple[float, browse.RecordPage]:
    started = time.perf_counter()
    result = browse.page_records(
        state, collection, search=search, sort_field=sort, page=page, page_size=PAGE_SIZE
    )
    return time.perf_counter() - started, result


def measure(
    state: StateDB, collection: CollectionInfo, repeat: int
) -> list[tuple[str, int, dict[str, float]]]:
    """(case, matching records, {"first"|"middle"|"last": median ms, "once": the first call's
    ms, which makes the sort field's keys the first time it is sorted on})."""
    rows = []
    for label, sort, search in CASES:
        once, first = time_page(state, collection, sort, search, 1)  # also warms the cache
        pages = {"first": 1, "middle": max(1, first.pages // 2), "last": first.pages}
        medians = {}
        for where, number in pages.items():
            seconds = []
            for _ in range(repeat):
                took, result = time_page(state, collection, sort, search, number)
                assert result.page == number and result.rows, (label, where, result.page)
                seconds.append(took)
            medians[where] = statistics.median(seconds) * 1000
        rows.append((label, first.total, {**medians, "once": once * 1000}))
        print(f"  {label}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in medians.items()),
              file=sys.stderr)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--backend", action="append", choices=("sqlite", "postgresql"), help="(both)"
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--repeat", type=int, default=5, help="timings per page (median)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]

    results: dict[str, tuple[float, list[tuple[str, int, dict[str, float]]]]] = {}
    for backend in backends:
        with fresh_state(backend, args.postgres_url) as state:
            print(f"{backend}: filling {args.records:,} records", file=sys.stderr)
            collection, fill_seconds = fill(state, args.records, args.seed)
            results[backend] = (fill_seconds, measure(state, collection, args.repeat))

    shown = " ".join(sys.argv[1:])
    print(f"`python benchmarks/records_browse.py{' ' + shown if shown else ''}`, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}", end="")  # fmt: skip
    if "postgresql" in backends:
        print(f", PostgreSQL {postgres_version(args.postgres_url)} on the same machine", end="")
    print(".\n")
    print(
        f"`page_records` on {args.records:,} records, {PAGE_SIZE} a page, counting included; "
        f"median of {args.repeat} timings per page, in ms (target: <= 300 ms):\n"
    )
    print(
        "| backend | order | matching records | first page | middle page | last page "
        "| first call (makes the keys) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for backend, (_, rows) in results.items():
        for label, total, medians in rows:
            worst = max(worst, medians["first"], medians["middle"], medians["last"])
            print(
                f"| {backend} | {label} | {total:,} | {medians['first']:.0f} | "
                f"{medians['middle']:.0f} | {medians['last']:.0f} | {medians['once']:.0f} |"
            )
    print(f"\nSlowest page: {worst:.0f} ms (target 300 ms).")
    for backend, (fill_seconds, _) in results.items():
        print(f"{backend}: filling took {fill_seconds:.1f} s.")


if __name__ == "__main__":
    main()
