"""Backfill and freshness of the audit-log collector against the simulator.

Backfill: a simulator process holds N events; a real `kandji-bridge logs sync` process backfills
them into a fresh chDB store. Reported: audit-event requests against ceil(N / 500), the child's
peak RSS (getrusage), events/s, and whether every event landed exactly once.

Freshness: the simulator in live mode; the collector polls every --poll seconds in this process;
for each new event, the lag is the time it became queryable minus its occurred_at.

    python benchmarks/logs_backfill.py --sizes 100000 1000000 --freshness-seconds 60
    python benchmarks/logs_backfill.py --sizes 1000000 --stores embedded,one-path --runs 3

--stores: which store code path `logs sync` writes through (benchmarks/store_paths.py); with more
than one, their runs alternate, and each child's own peak RSS is read (wait4).
"""

import argparse
import asyncio
import math
import os
import re
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
from store_paths import STORES

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


def sync_command(kind: str) -> list[str]:
    """`kandji-bridge logs sync bench`, its chdb:// store opened as `kind`."""
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import store_paths\n"
        f"store_paths.patch_opening({kind!r})\n"
        "from kandji_bridge.cli import main\n"
        "main(['logs', 'sync', 'bench'])\n"
    )
    return [sys.executable, "-c", script]


def run_measured(command: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run a child; its exit code, stdout, stderr and its own peak RSS in MB (wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return child.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss / 1024


def backfill(events: int, port: int, kind: str = "embedded") -> dict:
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
            started = time.perf_counter()
            code, out, err, peak_mb = run_measured(sync_command(kind), env)
            seconds = time.perf_counter() - started
            if code != 0:
                raise RuntimeError(err)
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
        "peak_mb": peak_mb,
        "summary": re.sub(r"\s+", " ", out.strip()),
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
    parser.add_argument("--stores", default="embedded", help=f"comma-separated: {STORES[:2]}")
    parser.add_argument("--runs", type=int, default=1, help="runs per size and store")
    args = parser.parse_args()
    stores = args.stores.split(",")

    print(
        "| store | events | stored | distinct | audit requests | ceil(N/500) | seconds | "
        "events/s | peak RSS of `logs sync` |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        peaks: dict[str, list[float]] = {kind: [] for kind in stores}
        for _ in range(args.runs):
            for kind in stores:  # interleaved: the machine's noise weighs on each alike
                r = backfill(size, args.port, kind)
                peaks[kind].append(r["peak_mb"])
                print(
                    f"| {kind} | {r['events']:,} | {r['stored']:,} | {r['distinct']:,} | "
                    f"{r['requests']:,} | {r['minimum']:,} | {r['seconds']:.1f} | "
                    f"{r['rate']:,.0f} | {r['peak_mb']:.0f} MB |",
                    flush=True,
                )
        if args.runs > 1:
            for kind, values in peaks.items():
                print(f"| {kind}: median peak RSS | {size:,} | | | | | | | "
                      f"{statistics.median(values):.0f} MB |")  # fmt: skip
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
