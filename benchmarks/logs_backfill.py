"""Backfill and freshness of the audit-log collector against the simulator.

Backfill: a simulator process holds N events; a real `kandji-bridge logs sync` process backfills
them into a fresh chDB store. Reported: audit-event requests against ceil(N / 500), the child's
peak RSS (getrusage), events/s, and whether every event landed exactly once.

Freshness: the simulator in live mode; the collector polls every --poll seconds in this process;
for each new event, the lag is the time it became queryable minus its occurred_at.

    python benchmarks/logs_backfill.py --sizes 100000 1000000 --freshness-seconds 60
"""

import argparse
import asyncio
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import running_simulator

TOKEN = "benchmark-token-0001"  # noqa: S105 (the simulator's, not a secret)
CLI = [sys.executable, "-m", "kandji_bridge"]


def start_simulator(events: int, port: int) -> subprocess.Popen:
    simulator = subprocess.Popen(
        [
            *CLI,
            "simulate",
            "--port",
            str(port),
            "--events",
            str(events),
            "--devices",
            "100",
            "--token",
            TOKEN,
            "--rate-per-second",
            "1000",
            "--rate-per-hour",
            "100000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in simulator.stdout:  # type: ignore[union-attr]
        if line.startswith("To let kandji-bridge use it"):
            return simulator
    raise RuntimeError("the simulator did not start")


def backfill(events: int, port: int) -> dict:
    simulator = start_simulator(events, port)
    try:
        with tempfile.TemporaryDirectory() as home:
            env = {
                **os.environ,
                "KANDJI_BRIDGE_HOME": home,
                "KANDJI_TOKEN": TOKEN,
                "KANDJI_BRIDGE_ALLOWED_HOSTS": f"127.0.0.1:{port}",
            }
            subprocess.run(
                [
                    *CLI,
                    "source",
                    "add",
                    "--name",
                    "bench",
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--token-env",
                    "KANDJI_TOKEN",
                    "--no-verify",
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            sync = subprocess.run(
                [*CLI, "logs", "sync", "bench"], env=env, capture_output=True, text=True
            )
            seconds = time.perf_counter() - started
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if sync.returncode != 0:
                raise RuntimeError(sync.stderr)
            stats = httpx.get(f"http://127.0.0.1:{port}/_simulator/stats").json()
            store = ChdbLogStore(str(Path(home) / "logs"))
            try:
                total, distinct = store.query(
                    "SELECT count(), uniqExact(kandjiEventId) FROM kandji_logs"
                ).rows[0]
            finally:
                store.close()
    finally:
        simulator.terminate()
        simulator.wait()
    requests = stats["by_endpoint"].get("GET /api/v1/audit/events", 0)
    return {
        "events": events,
        "stored": int(total),
        "distinct": int(distinct),
        "requests": requests,
        "minimum": math.ceil(events / 500),
        "seconds": seconds,
        "rate": events / seconds,
        # ru_maxrss only grows, so a smaller child after a larger one reads as the larger.
        "peak_mb": peak_kb / 1024 if peak_kb > before else float("nan"),
        "summary": re.sub(r"\s+", " ", sync.stdout.strip()),
    }


async def freshness(seconds: float, poll: float, per_minute: float) -> dict:
    config = SimulatorConfig(devices=50, events=2000, history_days=30, events_per_minute=per_minute)
    lags: list[float] = []
    with running_simulator(config) as sim, tempfile.TemporaryDirectory() as folder:
        store = ChdbLogStore(folder)
        store.ensure_schema()
        source = CollectorSource("bench-source", "bench", 365)
        enricher = build_enricher()
        seen: set[str] = set()
        async with KandjiClient(ApiUrl(sim.base_url), sim.token) as client:
            await collect(client, store, source, "bench-workspace", enricher=enricher)
            seen.update(row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(poll)
                await collect(client, store, source, "bench-workspace", enricher=enricher)
                queryable = datetime.now(UTC)
                rows = store.query("SELECT kandjiEventId, occurredAt FROM kandji_logs").rows
                for event_id, occurred_at in rows:
                    if event_id not in seen:
                        seen.add(event_id)
                        lag = queryable - datetime.fromisoformat(occurred_at)
                        lags.append(lag.total_seconds())
        store.close()
    lags.sort()
    return {
        "events": len(lags),
        "p50": statistics.median(lags),
        "p95": lags[max(0, math.ceil(0.95 * len(lags)) - 1)],
        "max": lags[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--port", type=int, default=18089)
    parser.add_argument("--freshness-seconds", type=float, default=60)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--events-per-minute", type=float, default=120)
    args = parser.parse_args()

    print(
        "| events | stored | distinct | audit requests | ceil(N/500) | seconds | events/s | "
        "peak RSS of `logs sync` |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        r = backfill(size, args.port)
        print(
            f"| {r['events']:,} | {r['stored']:,} | {r['distinct']:,} | {r['requests']:,} | "
            f"{r['minimum']:,} | {r['seconds']:.1f} | {r['rate']:,.0f} | {r['peak_mb']:.0f} MB |",
            flush=True,
        )
    if args.freshness_seconds > 0:
        f = asyncio.run(freshness(args.freshness_seconds, args.poll, args.events_per_minute))
        print()
        print(
            f"Freshness, poll every {args.poll:g} s, {args.events_per_minute:g} live events/min, "
            f"{args.freshness_seconds:g} s: {f['events']} events; lag p50 {f['p50']:.2f} s, "
            f"p95 {f['p95']:.2f} s, max {f['max']:.2f} s "
            f"(target p95 ≤ {args.poll + 1:g} s)."
        )


if __name__ == "__main__":
    main()
