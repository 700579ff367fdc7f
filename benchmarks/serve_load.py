"""Load: one `serve` polling 20 sources spread over several simulated tenants.

Starts `--tenants` simulator processes (`kandji-bridge simulate`, live mode: new audit events
every few seconds), registers `--sources` sources across them (round robin, each polled every
`--poll-interval` seconds), and runs one `kandji-bridge serve` process on 127.0.0.1. Once every
source has finished its backfill, it samples for `--minutes`:

- each source's lag: now minus the newest event stored for it (asked through the REST API's
  `/api/logs/query`, the only way in while serve owns the embedded store). A tenant emits an event
  every 60/events-per-minute seconds, so this is the age of the newest event a query can see
  plus at most that gap; eventTime is whole seconds, so it errs on the high side by up to 1 s.
- `kandji_bridge_source_lag_seconds` from `/metrics` (time since the last successful poll).
- serve's CPU (% of one core, from /proc/PID/stat) and RSS (/proc/PID/status).

The target: every source's lag under 2 poll intervals. Linux only (/proc).

    python benchmarks/serve_load.py                     # 5 tenants, 20 sources, 10 s polls, 5 min
    python benchmarks/serve_load.py --poll-interval 60 --minutes 10
    python benchmarks/serve_load.py --minutes 1 --json  # one JSON object (the slow test reads it)
    python benchmarks/serve_load.py --pack '@1m'        # the detection pack enabled, every minute

With `--pack SCHEDULE` every rule of the built-in pack is enabled on that schedule (as `demo`
does), and the detections job's runs and the rules' errors are reported; run it once with and
once without to see the pack's share of serve's CPU.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from child_process import Process
from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.jobs import status as jobs
from kandji_bridge.operations.detections import enable_pack

CLI = (sys.executable, "-m", "kandji_bridge")
SERVING = re.compile(r"Serving on (http://\S+)")
BASE_URL = re.compile(r"base URL: (http://\S+)")
LAG_METRIC = re.compile(r'^kandji_bridge_source_lag_seconds\{source="([^"]+)"\} (\S+)$', re.M)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STARTUP_SECONDS = 120
BACKFILL_SECONDS = 900


@dataclass
class SourceLag:
    name: str
    source_id: str
    tenant: int
    samples: list[float] = field(default_factory=list)  # seconds: now - newest stored event
    metric: list[float] = field(default_factory=list)  # seconds since its last successful poll

    def summary(self) -> dict[str, float]:
        return {
            "p50": percentile(self.samples, 50),
            "p95": percentile(self.samples, 95),
            "max": max(self.samples),
            "metric_max": max(self.metric) if self.metric else float("nan"),
        }


@dataclass
class LoadResult:
    tenants: int
    sources: int
    poll_interval: int
    events_per_minute: float
    minutes: float
    backfill_seconds: float = 0.0
    lags: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_percent: float = 0.0  # of one core, over the whole sampling window
    cpu_percent_max: float = 0.0  # the busiest sampling interval
    rss_mb_median: float = 0.0
    rss_mb_max: float = 0.0
    rss_mb_first: float = 0.0  # at the first and the last sample: does it grow?
    rss_mb_last: float = 0.0
    events_stored: int = 0
    pack: str = ""  # the pack's schedule, when it was enabled
    detection_ticks: int = 0  # runs of the detections job while sampling
    detection_errors: list[str] = field(default_factory=list)  # the rules' last errors

    @property
    def worst_lag(self) -> float:
        return max(lag["max"] for lag in self.lags.values())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE / 1e6


def start_tenants(args: argparse.Namespace, work: Path) -> list[tuple[Process, str, str]]:
    tenants = []
    for number in range(args.tenants):
        token = f"load-tenant-{number}"
        process = Process(
            [
                *CLI, "simulate", "--host", "127.0.0.1", "--port", "0",
                "--devices", "10", "--events", str(args.history_events), "--history-days", "30",
                "--seed", str(100 + number), "--token", token,
                "--events-per-minute", str(args.events_per_minute),
            ],
            {**os.environ},
            work / f"tenant-{number}.log",
        )  # fmt: skip
        tenants.append((process, process.wait_for(BASE_URL, STARTUP_SECONDS), token))
    return tenants


def register(env: dict[str, str], args: argparse.Namespace, tenants: list) -> tuple[list, str]:
    """The sources (round robin over the tenants) and an account; its API token."""
    lags = []
    with open_state(load_settings(env=env)) as state:
        for number in range(args.sources):
            tenant = number % len(tenants)
            _, url, token = tenants[tenant]
            name = f"tenant{tenant}-source{number}"
            info = sources.add_source(state, name, url, token, poll_interval=args.poll_interval)
            lags.append(SourceLag(name, info.id, tenant))
        if args.pack:
            enable_pack(state, args.pack)
        users.create_user(state, "load", "load-benchmark-pw-1")
        api_token = users.create_api_token(state, "load", "load benchmark")
    return lags, api_token


def newest_stored(client: httpx.Client) -> dict[str, float]:
    """Each source's newest stored event time (Unix seconds) and event count, by source id."""
    reply = client.post(
        "/api/logs/query",
        json={
            "sql": "SELECT sourceID, toUnixTimestamp(max(eventTime)), count() "
            "FROM kandji_logs GROUP BY sourceID",
            "limit": None,
        },
    )
    reply.raise_for_status()
    return {row[0]: (float(row[1]), int(row[2])) for row in reply.json()["rows"]}


def run_load(args: argparse.Namespace) -> LoadResult:
    result = LoadResult(
        args.tenants,
        args.sources,
        args.poll_interval,
        args.events_per_minute,
        args.minutes,
        pack=args.pack or "",
    )
    with tempfile.TemporaryDirectory(prefix="kb-load-") as folder:
        work = Path(folder)
        tenants = start_tenants(args, work)
        serve = None
        try:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("KANDJI_BRIDGE_")},
                "KANDJI_BRIDGE_HOME": str(work / "home"),
                "KANDJI_BRIDGE_ALLOWED_HOSTS": ",".join(url[7:] for _, url, _ in tenants),
            }
            if args.database_url:
                env["KANDJI_BRIDGE_DATABASE_URL"] = args.database_url
            os.environ["KANDJI_BRIDGE_ALLOWED_HOSTS"] = env["KANDJI_BRIDGE_ALLOWED_HOSTS"]
            lags, api_token = register(env, args, tenants)
            started = time.monotonic()
            serve = Process([*CLI, "serve", "--port", "0"], env, work / "serve.log")
            url = serve.wait_for(SERVING, STARTUP_SECONDS)
            headers = {"Authorization": f"Bearer {api_token}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                wait_for_backfills(client, lags, started)
                result.backfill_seconds = time.monotonic() - started
                ticks = detection_runs(env)
                sample(client, serve.popen.pid, lags, args, result)
                result.events_stored = sum(n for _, n in newest_stored(client).values())
                result.detection_ticks = detection_runs(env) - ticks
                result.detection_errors = detection_errors(env)
            result.lags = {lag.name: lag.summary() for lag in lags}
        finally:
            if serve is not None:
                code = serve.stop()
                if code != 0:
                    print(f"serve exited {code}: {serve.log.read_text()}", file=sys.stderr)
            for process, _, _ in tenants:
                process.stop()
    return result


def detection_runs(env: dict[str, str]) -> int:
    with open_state(load_settings(env=env)) as state:
        status = jobs.job_status(state, jobs.DETECTIONS_JOB)
    return status.runs if status else 0


def detection_errors(env: dict[str, str]) -> list[str]:
    with open_state(load_settings(env=env)) as state:
        statuses = jobs.job_statuses(state)
    return sorted(
        status.last_error
        for key, status in statuses.items()
        if key.startswith(f"{jobs.DETECTION}:") and status.last_error
    )


def wait_for_backfills(client: httpx.Client, lags: list[SourceLag], started: float) -> None:
    """Until every source has stored events up to a poll ago (its backfill is done)."""
    deadline = started + BACKFILL_SECONDS
    while True:
        newest = newest_stored(client)
        now = datetime.now(UTC).timestamp()
        if all(lag.source_id in newest and now - newest[lag.source_id][0] < 60 for lag in lags):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the backfills did not finish in {BACKFILL_SECONDS} s")
        time.sleep(1)


def sample(
    client: httpx.Client, pid: int, lags: list[SourceLag], args: argparse.Namespace,
    result: LoadResult,
) -> None:  # fmt: skip
    cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
    last_cpu, last_wall = cpu_start, wall_start
    rss: list[float] = []
    end = wall_start + args.minutes * 60
    while time.monotonic() < end:
        newest = newest_stored(client)
        now = datetime.now(UTC).timestamp()
        for lag in lags:
            lag.samples.append(max(0.0, now - newest[lag.source_id][0]))
        metrics = client.get("/metrics")
        metrics.raise_for_status()
        by_name = {name: float(value) for name, value in LAG_METRIC.findall(metrics.text)}
        for lag in lags:
            lag.metric.append(by_name[lag.name])
        cpu, wall = cpu_seconds(pid), time.monotonic()
        result.cpu_percent_max = max(
            result.cpu_percent_max, 100 * (cpu - last_cpu) / (wall - last_wall)
        )
        last_cpu, last_wall = cpu, wall
        rss.append(rss_mb(pid))
        time.sleep(args.sample_seconds)
    result.cpu_percent = 100 * (cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
    result.rss_mb_median = statistics.median(rss)
    result.rss_mb_max = max(rss)
    result.rss_mb_first, result.rss_mb_last = rss[0], rss[-1]


def report(result: LoadResult) -> None:
    print(
        f"{result.sources} sources over {result.tenants} tenants, poll interval "
        f"{result.poll_interval} s, {result.events_per_minute:g} events/min a tenant, "
        f"{result.minutes:g} min sampled after {result.backfill_seconds:.0f} s of backfill"
    )
    print(f"{'source':<22} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'metric max s':>13}")
    for name, lag in result.lags.items():
        print(
            f"{name:<22} {lag['p50']:>6.1f} {lag['p95']:>6.1f} {lag['max']:>6.1f} "
            f"{lag['metric_max']:>13.1f}"
        )
    bound = 2 * result.poll_interval
    verdict = "under" if result.worst_lag < bound else "NOT under"
    print(f"worst lag {result.worst_lag:.1f} s: {verdict} 2 poll intervals ({bound} s)")
    print(
        f"serve CPU {result.cpu_percent:.0f}% of a core (busiest {result.cpu_percent_max:.0f}%), "
        f"RSS median {result.rss_mb_median:.0f} MB, max {result.rss_mb_max:.0f} MB "
        f"(first sample {result.rss_mb_first:.0f}, last {result.rss_mb_last:.0f}); "
        f"{result.events_stored:,} events stored"
    )
    if result.pack:
        print(
            f"detection pack every {result.pack}: {result.detection_ticks} runs of the "
            f"detections job while sampling; {len(result.detection_errors)} rules with an error"
        )
        for error in result.detection_errors:
            print(f"  {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--poll-interval", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--events-per-minute", type=float, default=60)
    parser.add_argument("--history-events", type=int, default=2_000)
    parser.add_argument("--sample-seconds", type=float, default=2)
    parser.add_argument("--database-url", help="a PostgreSQL state DB instead of SQLite")
    parser.add_argument("--pack", help="enable the detection pack on this schedule (e.g. @1m)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    result = run_load(args)
    if args.json:
        print(orjson.dumps({**asdict(result), "worst_lag": result.worst_lag}).decode())
    else:
        report(result)


if __name__ == "__main__":
    main()
