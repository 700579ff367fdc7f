"""Takeover: how long a `kill -9`ed serve's sources wait before another serve polls them.

Each run starts three `kandji-bridge serve` processes on one PostgreSQL state DB (a schema of
its own in `--postgres-url`) and one ClickHouse log store (the repository's HTTP test fixture,
tests/support/clickhouse_http.py: chDB behind ClickHouse's HTTP interface, not a server), each
serve under a host name of its own where `unshare --uts` works (as root), so the leases treat
them as three machines. `--sources` simulated tenants in live mode are polled every
`--poll-seconds`; once each has been polled, the serve holding a source's lease is killed with
-9, and the run reads from the serves' logs (`serve --debug`):

- takeover: from the kill to the first run of each of the killed serve's jobs by another serve
  (the bound: lease time to live + one poll interval);
- lag back: from the kill to the end of that run, when the source's lag (time since its last
  successful poll) is back under one poll interval.

With `--one-host` the serves share this host's name: a survivor sees the killed serve's pid
gone and takes its jobs without waiting for the lease. Prints each run and the medians. Linux
only; needs PostgreSQL.

    python benchmarks/takeover.py --postgres-url postgresql+psycopg://kb:kb@127.0.0.1:5432/kb_f
    python benchmarks/takeover.py --postgres-url URL --runs 5 --lease-seconds 30 --poll-seconds 10
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.db.engine import parse_url
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import running_simulator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from support import clickhouse_http, multiserve  # noqa: E402 (the tests' own helpers)


@contextlib.contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped after."""
    base = parse_url(url)
    schema = f"kb_takeover_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def one_run(
    args: argparse.Namespace, fixture: clickhouse_http.RunningFixture, folder: Path, seed: int
) -> tuple[float, float, bool]:
    """(takeover seconds, lag-back seconds, on separate host names) of one kill."""
    database = f"takeover_{uuid.uuid4().hex[:10]}"
    fixture.execute(f"CREATE DATABASE {database}")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(postgres_schema(args.postgres_url))
        tenants = [
            stack.enter_context(
                running_simulator(
                    SimulatorConfig(
                        devices=5,
                        events=400,
                        history_days=3,
                        seed=seed + number,
                        events_per_minute=120,
                        rate_per_second=500,
                    )
                )
            )
            for number in range(args.sources)
        ]
        home = folder / "setup"
        settings = load_settings(home, env={"KANDJI_BRIDGE_DATABASE_URL": database_url})
        state = stack.enter_context(open_state(settings))
        for number, sim in enumerate(tenants):
            sources.add_source(
                state, f"tenant{number}", sim.base_url, sim.token, poll_interval=args.poll_seconds
            )
        source_jobs = {jobs.source_job(source.id) for source in sources.list_sources(state)}
        env = {
            **os.environ,
            "KANDJI_BRIDGE_DATABASE_URL": database_url,
            "KANDJI_BRIDGE_LOG_STORE": fixture.log_store_url(database),
            "KANDJI_BRIDGE_LEASE_SECONDS": str(args.lease_seconds),
            "KANDJI_BRIDGE_ALLOWED_HOSTS": ",".join(sim.host_port for sim in tenants),
            "KANDJI_BRIDGE_SECRET_KEY": (home / "secret.key").read_text().strip(),
        }
        own_hosts = not args.one_host and multiserve.separate_hosts()
        running = stack.enter_context(multiserve.serves(3, env, folder, own_hosts=own_hosts))

        def polled() -> bool:
            statuses = jobs.job_statuses(state)
            return all(
                (s := statuses.get(job)) is not None and s.last_success_at for job in source_jobs
            )

        multiserve.wait_for(polled, "every source's first poll", timeout=300)

        def holding() -> tuple[multiserve.Serve, set[str]] | None:
            held = leases.holders(state)
            for serve in running:
                mine = {job for job, holder in held.items() if f":{serve.pid}:" in holder}
                if mine & source_jobs:
                    return serve, mine
            return None

        multiserve.wait_for(holding, "a serve polling a source", timeout=300)
        victim, victim_jobs = holding()  # type: ignore[misc]
        killed_at = multiserve.kill_hard(victim)
        logs = [serve.log for serve in running]

        def moved() -> bool:
            runs = multiserve.job_runs(logs)
            return set(multiserve.takeover_seconds(runs, victim_jobs, killed_at)) == victim_jobs

        multiserve.wait_for(moved, "the killed serve's jobs taken over", timeout=300)
        multiserve.wait_for(
            lambda: _lag_back(multiserve.job_runs(logs), victim_jobs & source_jobs, killed_at),
            "the killed serve's sources polled again",
        )
        for serve in running:
            if serve is not victim:
                multiserve.stop(serve)
        runs = multiserve.job_runs(logs)
        takeover = max(multiserve.takeover_seconds(runs, victim_jobs, killed_at).values())
        lag_back = _lag_back(runs, victim_jobs & source_jobs, killed_at)
    fixture.execute(f"DROP DATABASE IF EXISTS {database} SYNC")
    return takeover, lag_back or float("nan"), own_hosts


def _lag_back(runs: list[multiserve.JobRun], wanted: set[str], killed_at: datetime) -> float | None:
    """Seconds from the kill until a run of each of `wanted` by another serve had ended."""
    ends = {}
    for run in runs:
        if run.job in wanted and run.start > killed_at and run.end and run.job not in ends:
            ends[run.job] = (run.end - killed_at).total_seconds()
    return max(ends.values()) if set(ends) == wanted else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("KANDJI_BRIDGE_TEST_POSTGRES_URL"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--poll-seconds", type=int, default=4)
    parser.add_argument("--lease-seconds", type=float, default=8)
    parser.add_argument(
        "--one-host", action="store_true", help="run the serves under this host's name"
    )
    args = parser.parse_args()
    if not args.postgres_url:
        parser.error("give --postgres-url (or set KANDJI_BRIDGE_TEST_POSTGRES_URL)")
    takeovers, lags = [], []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kb-takeover-")))
        fixture = stack.enter_context(clickhouse_http.running(tmp / "clickhouse", {"kb": "kb"}))
        for number in range(args.runs):
            folder = tmp / f"run-{number}"
            folder.mkdir()
            takeover, lag_back, own_hosts = one_run(args, fixture, folder, 500 + 10 * number)
            takeovers.append(takeover)
            lags.append(lag_back)
            hosts = "three host names" if own_hosts else "one host"
            print(
                f"run {number + 1}: takeover {takeover:.2f} s, lag back {lag_back:.2f} s "
                f"({hosts}; lease {args.lease_seconds:g} s, poll {args.poll_seconds} s)",
                flush=True,
            )
    print(
        f"median over {args.runs} runs: takeover {statistics.median(takeovers):.2f} s "
        f"(bound: lease + one poll = {args.lease_seconds + args.poll_seconds:g} s), "
        f"lag back {statistics.median(lags):.2f} s; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
