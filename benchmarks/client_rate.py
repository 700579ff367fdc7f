"""Benchmark the Kandji client's rate limiting against the simulator.

Both pipelines' traffic is replayed at once: one client pages audit events (500 a page, over and
over) and another lists devices (300 a page) and fetches device details with 6 workers; the two
share the tenant's limiter, as in `serve`. The simulator runs in its own process, so client and
server do not share a GIL, and counts its arrivals in sliding windows as Kandji does.

(a) limits equal to the client's: the sustained request rate as a share of the allowed rate,
    and the 429s (the target: >= 95 % and none);
(b) tenant limits lower than the client's: the run must finish without a failed call; 429s and
    retries are counted.

    python benchmarks/client_rate.py                  # every scenario, 3 runs each
    python benchmarks/client_rate.py --runs 5 --scenario equal-20/s --scenario lower-10/s

The sustained rate is the rate of 200 answers from 2 s after the first request on, over a whole
number of `per_second` answers: a sliding 1-second window lets requests go in bursts, and neither
the opening burst nor where the run happens to stop should sway the figure.

The hour window cannot slide within a benchmark, so the per-hour scenario lowers the hourly budget
to 1,800 and runs 45 s: the client must spend exactly the budget, at the per-second pace, with no
429, and then wait rather than send more.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import httpx

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import KandjiError
from kandji_bridge.kandji.ratelimit import Permit, RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import running_simulator

DETAIL_WORKERS = 6
WARM_UP = 2.0  # seconds left out of the sustained rate: the opening burst and what it shifts


@dataclass(frozen=True)
class Scenario:
    name: str
    tenant_per_second: float
    tenant_per_hour: float
    client_per_second: float
    client_per_hour: float
    seconds: float


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("equal-20/s", 20, 100_000, 20, 100_000, 20),
        Scenario("equal-50/s", 50, 100_000, 50, 100_000, 20),
        Scenario("equal-1800/h", 50, 1_800, 50, 1_800, 45),
        Scenario("lower-10/s", 10, 100_000, 50, 100_000, 20),
        Scenario("lower-25/s", 25, 100_000, 50, 100_000, 20),
    )
}


@dataclass
class Run:
    requests: int  # requests the client started (retries included)
    sustained: float  # answered requests/s after the warm-up
    budget_seconds: float  # from the first to the last start
    ok: int  # 200 answers, as the simulator counted them
    throttled: int  # 429 answers, as the simulator counted them
    client_429: int
    retries: int
    failed: int  # calls that raised in the end


class RecordingLimiter(RateLimiter):
    """The tenant's limiter, noting when each request was let through."""

    def __init__(self, per_second: float, per_hour: float) -> None:
        super().__init__(per_second, per_hour)
        self.starts: list[float] = []

    async def acquire(self) -> Permit:
        permit = await super().acquire()
        self.starts.append(time.monotonic())
        return permit


def serve_simulator(scenario: Scenario, pipe: Connection) -> None:
    config = SimulatorConfig(
        devices=300,
        events=5_000,
        history_days=90,
        seed=17,
        rate_per_second=scenario.tenant_per_second,
        rate_per_hour=scenario.tenant_per_hour,
    )
    with running_simulator(config) as simulator:
        ids = [device.device_id for device in simulator.devices]
        pipe.send((simulator.base_url, simulator.token, ids))
        pipe.recv()  # until the benchmark is done with it


async def drive(scenario: Scenario, base_url: str, token: str, device_ids: list[str]) -> Run:
    limiter = RecordingLimiter(scenario.client_per_second, scenario.client_per_hour)
    failures: list[KandjiError] = []
    rng = random.Random(1)

    answered: list[float] = []  # when each call got its 200

    async def audit_pager(client: KandjiClient) -> None:
        async for _ in client.iter_audit_pages(limit=500):
            answered.append(time.monotonic())

    async def device_pager(client: KandjiClient) -> None:
        async for _ in client.iter_device_pages(limit=300):
            answered.append(time.monotonic())

    async def detail_worker(client: KandjiClient) -> None:
        await client.get_device_details(rng.choice(device_ids))
        answered.append(time.monotonic())

    async def keep_going(call: Any, client: KandjiClient) -> None:
        while True:
            try:
                await call(client)
            except KandjiError as error:  # counted; the run goes on, as a pipeline's next pass
                failures.append(error)

    api_url = ApiUrl(base_url)
    async with (
        KandjiClient(api_url, token, limiter=limiter) as logs,
        KandjiClient(api_url, token, limiter=limiter) as inventory,
    ):
        tasks = [
            asyncio.create_task(keep_going(audit_pager, logs)),
            asyncio.create_task(keep_going(device_pager, inventory)),
            *(
                asyncio.create_task(keep_going(detail_worker, inventory))
                for _ in range(DETAIL_WORKERS)
            ),
        ]
        await asyncio.sleep(scenario.seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with httpx.AsyncClient() as plain:
            server = (await plain.get(f"{base_url}/_simulator/stats")).json()

    starts = limiter.starts
    return Run(
        requests=len(starts),
        sustained=sustained_rate(answered, int(scenario.tenant_per_second), starts[0] + WARM_UP),
        budget_seconds=starts[-1] - starts[0],
        ok=server["by_status"].get("200", 0),
        throttled=server["throttled"],
        client_429=logs.stats.rate_limited + inventory.stats.rate_limited,
        retries=logs.stats.retries + inventory.stats.retries,
        failed=len(failures),
    )


def sustained_rate(answered: list[float], per_second: int, since: float) -> float:
    """Answers per second over whole multiples of `per_second` answers after `since`.

    A sliding window lets requests go in bursts of up to `per_second`; counting over a whole
    number of bursts keeps where the run happens to stop from swaying the rate."""
    times = sorted(t for t in answered if t >= since)
    bursts = (len(times) - 1) // per_second
    return bursts * per_second / (times[bursts * per_second] - times[0])


def run_once(scenario: Scenario) -> Run:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_simulator, args=(scenario, theirs), daemon=True)
    process.start()
    try:
        base_url, token, device_ids = ours.recv()
        return asyncio.run(drive(scenario, base_url, token, device_ids))
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        process.join(timeout=15)
        if process.is_alive():
            process.kill()


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def report(results: dict[str, list[Run]], runs: int) -> str:
    lines = [
        f"Medians of {runs} runs each (lowest and highest rate in brackets).",
        "",
        "| scenario | tenant limits | client limits | run | requests sent | answered 200 "
        "| sustained rate | % of the tenant's rate | 429s | retries | failed calls |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, scenario_runs in results.items():
        scenario = SCENARIOS[name]
        rates = [run.sustained for run in scenario_runs]
        rate = statistics.median(rates)
        share = rate / scenario.tenant_per_second * 100
        requests = median(scenario_runs, "requests")
        note = f"{share:.1f}%"
        if scenario.tenant_per_hour < 10_000:
            # The hourly budget is the limit here: how much of it was spent, and how fast.
            spent = median(scenario_runs, "ok") / scenario.tenant_per_hour * 100
            seconds = median(scenario_runs, "budget_seconds")
            note += (
                f"; {spent:.1f}% of the hour's {scenario.tenant_per_hour:,.0f} in {seconds:.1f} s"
            )
        lines.append(
            f"| {name} | {scenario.tenant_per_second:g}/s, {scenario.tenant_per_hour:,.0f}/h "
            f"| {scenario.client_per_second:g}/s, {scenario.client_per_hour:,.0f}/h "
            f"| {scenario.seconds:g} s | {requests:,.0f} | {median(scenario_runs, 'ok'):,.0f} "
            f"| {rate:.2f}/s [{min(rates):.2f}, {max(rates):.2f}] | {note} "
            f"| {median(scenario_runs, 'throttled'):.0f} | {median(scenario_runs, 'retries'):.0f} "
            f"| {median(scenario_runs, 'failed'):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per scenario (3)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only these (repeatable); default: all",
    )
    args = parser.parse_args()
    names = args.scenario or list(SCENARIOS)
    results: dict[str, list[Run]] = {}
    for name in names:
        results[name] = []
        for number in range(1, args.runs + 1):
            run = run_once(SCENARIOS[name])
            results[name].append(run)
            print(f"{name} run {number}: {run}", file=sys.stderr)
    print(
        f"`python benchmarks/client_rate.py --runs {args.runs}` on {datetime.now(UTC):%Y-%m-%d}, "
        f"Python {platform.python_version()}, {multiprocessing.cpu_count()} cores."
    )
    print()
    print(report(results, args.runs))


if __name__ == "__main__":
    main()
