"""Benchmark the logs pipeline: normalize + enrich, and normalize + enrich + store into chDB.

Synthetic audit events in the shapes of Kandji's examples (about 30% carry a public client IP)
are generated up front; each stage then runs on them, pinned to one core, several times, and the
median rate is reported as Markdown, with the peak RSS of each stage.

    python benchmarks/logs_pipeline.py                 # 1,000,000 events, 3 runs
    python benchmarks/logs_pipeline.py --events 100000 --runs 3 --batch-sizes 500,5000
    python benchmarks/logs_pipeline.py --stores embedded,one-path,server   # runs interleaved

--stores: which store code paths the store stage runs (benchmarks/store_paths.py); with more
than one, their runs alternate (run 1 of each, then run 2 of each, ...), so a noisy machine
weighs on all of them alike.

`.mmdb` files: --mmdb PATH (repeatable); by default MaxMind's test databases in
tests/data/maxmind (City, ISP, Connection-Type, ASN). They are small, but every lookup is
cached per address anyway, so the pipeline's cost is the first lookup of each address.
"""

import argparse
import gc
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from kandji_bridge.logs.enrich import Enricher, Geoip2FastDatabase, build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.store import SqlLogStore
from kandji_bridge.logs.transform import transform
from store_paths import STORES, opened

ROOT = Path(__file__).resolve().parent.parent
MAXMIND = ROOT / "tests" / "data" / "maxmind"
DEFAULT_MMDB = [
    MAXMIND / name
    for name in (
        "GeoIP2-City-Test.mmdb",
        "GeoIP2-ISP-Test.mmdb",
        "GeoIP2-Connection-Type-Test.mmdb",
        "GeoLite2-ASN-Test.mmdb",
    )
]
STAGE_NAMES = {
    "embedded": "chDB",
    "one-path": "chDB through clickhouse-connect",
    "server": "HTTP fixture through clickhouse-connect",
}
PAGE = 500  # Kandji's largest audit page: the collector transforms one page at a time
MAXMIND_TEST_IPS = ("81.2.69.142", "89.160.20.112", "216.160.83.56", "1.128.0.1", "149.101.100.1")


@dataclass(frozen=True, slots=True)
class Event:
    data: dict[str, Any]
    raw: str


# --- synthetic events ----------------------------------------------------------------------------


def generate(count: int, seed: int = 7) -> list[Event]:
    """Events like Kandji's, one year of history, oldest first, ~30% with a public client IP."""
    rng = random.Random(seed)
    public = [*MAXMIND_TEST_IPS, *_public_pool(rng, 2000)]
    private = ["10.0.4.17", "10.20.30.40", "192.168.1.76", "172.16.5.9"]
    uuids = [_uuid(rng) for _ in range(4000)]
    admins = [(_uuid(rng), f"admin{i}@example.com", f"Admin {i}") for i in range(25)]
    names = ["GitHub", "Zoom", "homebrew", "1Password 8", "Slack", "FileVault", "Chrome", "Okta"]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=365) / max(count, 1)
    events = []
    for n in range(count):
        occurred = start + step * n
        actor_id, email, name = rng.choice(admins)
        metadata: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.30:
            metadata = {"ip_address": rng.choice(public), "user_agent": "Mozilla/5.0"}
        elif roll < 0.36:
            metadata = {"ip_address": rng.choice(private), "user_agent": "python-requests/2.32"}
        if metadata and rng.random() < 0.7:
            metadata["actor_email"], metadata["actor_name"] = email, name
        data = {
            "id": f"01JB{n:022d}",
            "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": actor_id,
            "actor_type": "user",
            **_body(rng, uuids, names),
            "metadata": metadata,
        }
        events.append(Event(data, orjson.dumps(data).decode()))
    return events


def _body(rng: random.Random, uuids: list[str], names: list[str]) -> dict[str, Any]:
    kind = rng.random()
    target = rng.choice(uuids)
    if kind < 0.35:
        items = [{"id": rng.choice(uuids), "name": rng.choice(names)} for _ in range(3)]
        state = {
            "library_items_added": items[:1],
            "library_items_removed": [],
            "library_items_scoped": items,
            "name": "Engineering",
        }
        return _target("update", target, "blueprint", "library_items", state)
    if kind < 0.55:
        state = {"active": True, "label": None, "type": "custom-app", "name": rng.choice(names)}
        return _target(
            rng.choice(["create", "update", "delete"]), target, "library_item", "", state
        )
    if kind < 0.75:
        state = {
            "device_name": "Ana's MacBook Pro",
            "serial_number": "C02XK0AAJGH5",
            "blueprint_id": rng.choice(uuids),
            "previous_blueprint_id": rng.choice(uuids),
        }
        return _target("update", target, "device", "blueprint", state)
    if kind < 0.88:
        state = {"device_name": "Ana's MacBook Pro", "serial_number": "C02XK0AAJGH5"}
        return _target("view", target, "device", "filevault_key", state)
    permissions = [{"path": "/api/v1/audit/events", "http_method": "GET"}]
    state = {"description": None, "permissions": permissions, "label": "SIEM export"}
    return _target("update", target, "api_token", "", state)


def _target(action: str, target: str, kind: str, component: str, state: dict) -> dict[str, Any]:
    return {
        "action": action,
        "target_id": target,
        "target_type": kind,
        "target_component": component,
        "new_state": state,
    }


def _public_pool(rng: random.Random, size: int) -> list[str]:
    import ipaddress

    pool: list[str] = []
    while len(pool) < size:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global and not address.is_multicast:
            pool.append(str(address))
    return pool


def _uuid(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}"


# --- measuring -----------------------------------------------------------------------------------


def pages(events: list[Event]) -> Iterator[list[Event]]:
    for start in range(0, len(events), PAGE):
        yield events[start : start + PAGE]


def normalize_enrich(events: list[Event], make_enricher: Callable[[], Enricher]) -> float:
    """Seconds to transform every event, page by page, as the collector does."""
    enricher = make_enricher()
    ctx = NormalizeContext("ws-bench", "src-bench", 36500)
    began = time.perf_counter()
    rows = 0
    for page in pages(events):
        rows += len(transform(page, replace(ctx, received_at=datetime.now(UTC)), enricher).rows)
    elapsed = time.perf_counter() - began
    assert rows == len(events)
    enricher.close()
    return elapsed


def normalize_enrich_store(
    events: list[Event],
    make_enricher: Callable[[], Enricher],
    batch: int,
    dedup: bool,
    kind: str = "embedded",
) -> float:
    """Seconds for the collector's path: transform page by page, insert every `batch` rows.

    Opening the store and creating the table are outside the timing; with `dedup`, each page
    first asks the store which of its event ids are already there, as the collector will.
    """
    enricher = make_enricher()
    ctx = NormalizeContext("ws-bench", "src-bench", 36500)
    folder = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    try:
        with opened(kind, folder) as store:
            elapsed = _store_all(store, events, enricher, ctx, batch, dedup)
    finally:
        enricher.close()
        shutil.rmtree(folder, ignore_errors=True)
    return elapsed


def _store_all(
    store: SqlLogStore,
    events: list[Event],
    enricher: Enricher,
    ctx: NormalizeContext,
    batch: int,
    dedup: bool,
) -> float:
    began = time.perf_counter()
    stored, buffer = 0, []
    for page in pages(events):
        rows = transform(page, replace(ctx, received_at=datetime.now(UTC)), enricher).rows
        if dedup:
            between = (rows[0]["eventTime"], rows[-1]["eventTime"])
            held = store.existing_event_ids(
                ctx.source_id, [row["kandjiEventId"] for row in rows], between
            )
            rows = [row for row in rows if row["kandjiEventId"] not in held]
        buffer.extend(rows)
        if len(buffer) >= batch:
            stored += store.insert(buffer)
            buffer = []
    stored += store.insert(buffer)
    elapsed = time.perf_counter() - began
    assert store.count() == stored == len(events), "every event must be stored once"
    return elapsed


def reset_peak_rss() -> bool:
    """Linux lets a process reset its own peak RSS (VmHWM) by writing 5 to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Result:
    stage: str
    enrichment: str
    batch: str
    events: int
    rates: list[float]
    cpu_per_event: list[float]  # µs of CPU, all threads (chDB's included), per event
    peak_rss: float
    target: int

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def measure(
    stage: str, enrichment: str, batch: str, events: list[Event], runs: int, target: int,
    work: Callable[[], float],
) -> Result:  # fmt: skip
    return measure_interleaved([(stage, work)], enrichment, batch, events, runs, target)[0]


def measure_interleaved(
    stages: list[tuple[str, Callable[[], float]]], enrichment: str, batch: str,
    events: list[Event], runs: int, target: int,
) -> list[Result]:  # fmt: skip
    """Run 1 of every stage, then run 2 of every stage, ...: one noisy minute costs them alike."""
    results = [
        Result(stage, enrichment, batch, len(events), [], [], 0.0, target) for stage, _ in stages
    ]
    for run in range(runs):
        for result, (stage, work) in zip(results, stages, strict=True):
            gc.collect()
            reset_peak_rss()
            cpu_before = time.process_time()
            rate = len(events) / work()
            result.cpu_per_event.append((time.process_time() - cpu_before) / len(events) * 1e6)
            result.peak_rss = max(result.peak_rss, peak_rss_mb())
            result.rates.append(rate)
            print(
                f"  {stage} / {enrichment} / {batch}: run {run + 1}: {rate:,.0f}/s, "
                f"{result.cpu_per_event[-1]:.1f} µs CPU/event",
                file=sys.stderr,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events")
    parser.add_argument("--store-events", type=int, help="events for the store stage (all)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--batch-sizes", default="500,5000,20000", help="rows per chDB insert")
    parser.add_argument("--mmdb", action="append", type=Path, help=".mmdb file (repeatable)")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    parser.add_argument("--no-dedup", action="store_true", help="skip the dedup-check variant")
    parser.add_argument(
        "--stores", default="embedded", help=f"store code paths, comma-separated: {STORES}"
    )
    args = parser.parse_args()
    stores = args.stores.split(",")
    if unknown := set(stores) - set(STORES):
        parser.error(f"unknown store code path {', '.join(sorted(unknown))}; choose from {STORES}")

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})  # before chDB starts its threads: they inherit it
    mmdb = args.mmdb or [path for path in DEFAULT_MMDB if path.exists()]
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]

    started = time.perf_counter()
    events = generate(args.events)
    # The pre-generated input is not the pipeline's heap (the collector holds one page): keep
    # the garbage collector from walking it again and again.
    gc.freeze()
    generated_in = time.perf_counter() - started
    store_events = events[: args.store_events] if args.store_events else events
    with_ips = sum(1 for e in events if e.data["metadata"].get("ip_address"))
    print(f"generated {len(events):,} events in {generated_in:.1f} s", file=sys.stderr)
    Geoip2FastDatabase().lookup("81.2.69.142")  # load geoip2fast's data once, outside timings
    baseline_rss = peak_rss_mb()

    def geo_only() -> Enricher:
        return build_enricher([], env={})

    def with_mmdb() -> Enricher:
        return build_enricher(mmdb, env={})

    enrichers = [("geoip2fast", geo_only)]
    if mmdb:
        enrichers.append(("geoip2fast + .mmdb", with_mmdb))
    results = []
    for label, make in enrichers:
        results.append(
            measure(
                "normalize + enrich", label, "-", events, args.runs, 50_000,
                lambda make=make: normalize_enrich(events, make),
            )
        )  # fmt: skip
    for label, make in enrichers:
        for batch in batch_sizes:
            results.extend(
                measure_interleaved(
                    [
                        (
                            f"normalize + enrich + store ({STAGE_NAMES[kind]})",
                            lambda make=make, batch=batch, kind=kind: normalize_enrich_store(
                                store_events, make, batch, dedup=False, kind=kind
                            ),
                        )
                        for kind in stores
                    ],
                    label, f"{batch:,}", store_events, args.runs, 30_000,
                )
            )  # fmt: skip
    if not args.no_dedup:
        batch = max(batch_sizes)
        results.append(
            measure(
                "normalize + enrich + dedup check + store (chDB)", "geoip2fast", f"{batch:,}",
                store_events, args.runs, 30_000,
                lambda: normalize_enrich_store(store_events, geo_only, batch, dedup=True),
            )
        )  # fmt: skip

    command = "python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    print(f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print()
    print(
        f"{len(events):,} synthetic events ({with_ips / len(events):.0%} with a client IP: "
        f"public about 30%, private 6%), pages of {PAGE}; {args.runs} runs each, median shown; "
        f"pinned to {'core ' + str(args.cpu) if args.cpu >= 0 else 'no core'}; Python "
        f"{platform.python_version()}, {os.cpu_count()} cores. "
        f"RSS with the events generated: {baseline_rss:,.0f} MB. .mmdb: "
        f"{', '.join(path.name for path in mmdb) or 'none'}."
    )
    print()
    print("| stage | enrichment | rows per insert | events | events/s (median) | runs | "
          "CPU µs/event (median) | peak RSS | target |")  # fmt: skip
    print("|---|---|---:|---:|---:|---|---:|---:|---|")
    for r in results:
        runs = ", ".join(f"{rate:,.0f}" for rate in r.rates)
        verdict = "met" if r.median >= r.target else "**missed**"
        print(
            f"| {r.stage} | {r.enrichment} | {r.batch} | {r.events:,} | {r.median:,.0f} | "
            f"{runs} | {statistics.median(r.cpu_per_event):.1f} | {r.peak_rss:,.0f} MB | "
            f"≥ {r.target:,} {verdict} |"
        )


if __name__ == "__main__":
    main()
