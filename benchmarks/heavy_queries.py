"""Heavy user SQL against a running `serve`: ingestion lag and /healthz latency with N queries.

Runs one simulated tenant in this process (live mode: `--events-per-minute` new audit events),
one `kandji-bridge serve` process polling it every `--poll-interval` seconds, and, for each N in
`--counts`, N heavy queries at once over `POST /api/logs/query` for `--seconds` (each query is a
CPU-bound count over `numbers_mt`, stopped by the service's time limit, which is set to the phase
length; the caps are raised to the largest N so that all N run). During each phase it samples:

- ingestion lag: now minus the time of the newest event stored. The store's count comes from
  `/metrics` (`kandji_bridge_events_stored`, read on the collector's session); the tenant makes
  events in time order and none late, so the count-th event is the newest stored.
- `/healthz` latency, four times a second, with a 30 s timeout (a timeout counts as 30 s).

Targets: lag stays within two poll intervals and /healthz answers within 5 s (p95) at every N.

    python benchmarks/heavy_queries.py                         # N = 0, 2, 4, 8; 30 s each
    python benchmarks/heavy_queries.py --counts 0,4 --seconds 20 --json
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import httpx
import orjson

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import RunningSimulator, running_simulator

CLI = (sys.executable, "-m", "kandji_bridge")
SERVING = re.compile(r"Serving on (http://\S+)")
STORED = re.compile(r'^kandji_bridge_events_stored\{source="acme"\} (\S+)$', re.M)
HEAVY = "SELECT count() FROM numbers_mt(10000000000000) WHERE sipHash64(number) % 7 = 1"
HEALTH_TIMEOUT = 30.0


@dataclass
class Phase:
    queries: int
    lag_median: float
    lag_p95: float
    lag_max: float
    healthz_median_ms: float
    healthz_p95_ms: float
    healthz_max_ms: float
    events_stored: int  # during the phase
    query_answers: dict[str, int]  # HTTP status -> how many of the heavy queries got it


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Serve:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.popen = subprocess.Popen(
                [*CLI, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=stderr
            )
        assert self.popen.stdout is not None
        deadline = time.monotonic() + 120
        for line in self.popen.stdout:
            if match := SERVING.search(line.decode()):
                self.url = match.group(1)
                return
            if time.monotonic() > deadline:
                break
        raise SystemExit(f"serve did not start: {log.read_text()}")

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout=30)


def stored(client: httpx.Client) -> int | None:
    try:
        reply = client.get("/metrics", timeout=HEALTH_TIMEOUT)
    except httpx.TimeoutException:
        return None
    match = STORED.search(reply.text)
    return int(float(match.group(1))) if match else 0


def event_times(sim: RunningSimulator) -> list[float]:
    return sorted(datetime.fromisoformat(e["occurred_at"]).timestamp() for e in sim.events())


def wait_for_backfill(sim: RunningSimulator, url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=url, headers=headers) as client:
        while len(sim.events()) - (stored(client) or 0) > 50:
            if time.monotonic() > deadline:
                raise SystemExit("the backfill did not finish in 120 s")
            time.sleep(1)


def run_phase(
    args: argparse.Namespace, sim: RunningSimulator, url: str, token: str, count: int
) -> Phase:
    headers = {"Authorization": f"Bearer {token}"}
    answers: list[int] = []

    def heavy() -> None:
        try:
            reply = httpx.post(
                f"{url}/api/logs/query",
                json={"sql": HEAVY},
                headers=headers,
                timeout=args.seconds + 120,
            )
            answers.append(reply.status_code)
        except httpx.HTTPError:
            answers.append(0)

    threads = [threading.Thread(target=heavy) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # the queries reach the engine
    lags: list[float] = []
    health: list[float] = []
    stop = threading.Event()

    def probe_health() -> None:
        with httpx.Client(base_url=url) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    client.get("/healthz", timeout=HEALTH_TIMEOUT).raise_for_status()
                    health.append(time.monotonic() - started)
                except httpx.HTTPError:
                    health.append(HEALTH_TIMEOUT)
                stop.wait(0.25)

    prober = threading.Thread(target=probe_health)
    prober.start()
    with httpx.Client(base_url=url, headers=headers) as client:
        first = stored(client) or 0
        last = first
        deadline = time.monotonic() + args.seconds - 4
        while time.monotonic() < deadline:
            count_now = stored(client)
            now = time.time()
            if count_now:
                times = event_times(sim)
                last = count_now
                lags.append(now - times[min(count_now, len(times)) - 1])
            time.sleep(1)
    stop.set()
    prober.join()
    for thread in threads:
        thread.join()
    statuses: dict[str, int] = {}
    for status in answers:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return Phase(
        queries=count,
        lag_median=statistics.median(lags) if lags else float("nan"),
        lag_p95=percentile(lags, 95) if lags else float("nan"),
        lag_max=max(lags) if lags else float("nan"),
        healthz_median_ms=statistics.median(health) * 1000,
        healthz_p95_ms=percentile(health, 95) * 1000,
        healthz_max_ms=max(health) * 1000,
        events_stored=last - first,
        query_answers=statuses,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--counts", default="0,2,4,8", help="heavy queries per phase")
    parser.add_argument("--seconds", type=int, default=30, help="length of each phase")
    parser.add_argument("--poll-interval", type=int, default=1)
    parser.add_argument("--events-per-minute", type=float, default=600)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    counts = [int(part) for part in args.counts.split(",")]
    config = SimulatorConfig(
        devices=5, events=500, history_days=2, events_per_minute=args.events_per_minute
    )
    with (
        tempfile.TemporaryDirectory(prefix="kb-heavy-") as folder,
        running_simulator(config) as sim,
    ):
        home = Path(folder)
        most = str(max([*counts, 1]))
        env = {
            **os.environ,
            "KANDJI_BRIDGE_HOME": str(home),
            "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
            "KANDJI_BRIDGE_QUERY_SECONDS": str(args.seconds),
            "KANDJI_BRIDGE_QUERIES": most,
            "KANDJI_BRIDGE_QUERIES_PER_USER": most,
        }
        with open_state(load_settings(env=env)) as state:
            sources.add_source(
                state, "acme", sim.base_url, sim.token, poll_interval=args.poll_interval
            )
            users.create_user(state, "bench", "bench-password-123")
            token = users.create_api_token(state, "bench", "heavy queries")
        serve = Serve(env, home / "serve.log")
        try:
            wait_for_backfill(sim, serve.url, token)
            phases = [run_phase(args, sim, serve.url, token, count) for count in counts]
        finally:
            code = serve.stop()
    if args.json:
        print(orjson.dumps({"phases": [asdict(p) for p in phases], "exit": code}).decode())
        return
    print(f"poll interval {args.poll_interval} s, {args.events_per_minute:g} events/min, "
          f"{args.seconds} s a phase; serve exited {code}")  # fmt: skip
    print("| heavy queries | lag median | lag p95 | lag max | /healthz median | /healthz p95 "
          "| /healthz max | events stored | query answers |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for p in phases:
        print(
            f"| {p.queries} | {p.lag_median:.1f} s | {p.lag_p95:.1f} s | {p.lag_max:.1f} s "
            f"| {p.healthz_median_ms:.1f} ms | {p.healthz_p95_ms:.1f} ms "
            f"| {p.healthz_max_ms:.1f} ms | {p.events_stored:,} | {p.query_answers} |"
        )


if __name__ == "__main__":
    main()
