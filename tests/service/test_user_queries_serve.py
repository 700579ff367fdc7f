"""A real `serve` with heavy user queries running: ingestion, /healthz and /metrics go on, past
the caps a query gets 429 at once, and SIGTERM stops the service in seconds, not at the queries'
time limit."""

import re
import signal
import threading
from pathlib import Path

import httpx

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state

from .helpers import wait_until
from .test_serve import cli_env, serve_process

# Runs until its time limit (10 minutes here); numbers_mt is a table function users may use.
HEAVY = "SELECT count() FROM numbers_mt(10000000000000) WHERE sipHash64(number) % 7 = 1"
STORED = re.compile(r'^kandji_bridge_events_stored\{source="acme"\} (\S+)$', re.M)
RUNNING = re.compile(r"^kandji_bridge_user_queries_running (\S+)$", re.M)


class Query:
    """One POST /api/logs/query in a thread: its answer, once there is one."""

    def __init__(self, url: str, token: str, sql: str = HEAVY) -> None:
        self.reply: httpx.Response | None = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(url, token, sql), daemon=True)
        self.thread.start()

    def _run(self, url: str, token: str, sql: str) -> None:
        try:
            self.reply = httpx.post(
                f"{url}/api/logs/query",
                json={"sql": sql},
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
        except httpx.HTTPError as exc:
            self.error = exc


def post_query(url: str, token: str, sql: str = "SELECT 1") -> httpx.Response:
    return httpx.post(
        f"{url}/api/logs/query",
        json={"sql": sql},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def metric(url: str, token: str, pattern: re.Pattern[str]) -> int:
    reply = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    reply.raise_for_status()
    match = pattern.search(reply.text)
    return int(float(match.group(1))) if match else 0


def events_stored(url: str, token: str) -> int:
    return metric(url, token, STORED)


def test_heavy_queries_leave_ingestion_and_health_alone_and_sigterm_stops_them(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    # Live mode: ten new audit events a second, polled every second.
    sim = simulator_factory(devices=5, events=200, history_days=2, events_per_minute=600)
    env = cli_env(home, sim, KANDJI_BRIDGE_QUERY_SECONDS="600")
    tokens = {}
    with open_state(load_settings(env=env)) as state:
        sources.add_source(state, "acme", sim.base_url, sim.token, poll_interval=1)
        for name in ("alice", "bob", "carol"):
            users.create_user(state, name, f"{name}-password-123")
            tokens[name] = users.create_api_token(state, name, "queries")
    log = tmp_path / "serve.log"
    with serve_process(env, log) as (process, url):
        wait_until(lambda: events_stored(url, tokens["carol"]) >= 200, "the backfill stored")
        heavy = [Query(url, tokens[name]) for name in ("alice", "alice", "bob", "bob")]

        # Watched on /metrics: a probing query would take a place a heavy one needs.
        wait_until(lambda: metric(url, tokens["carol"], RUNNING) == 4, "the four queries running")
        mine = post_query(url, tokens["alice"])
        assert mine.status_code == 429
        assert mine.json()["detail"] == (
            "You have 2 queries running, the most one user may run at once; wait for one to "
            "finish and run this one again."
        )
        everyone = post_query(url, tokens["carol"])
        assert everyone.status_code == 429 and everyone.headers["retry-after"]
        assert everyone.json()["detail"].startswith(
            "4 queries are running, the most this service runs at once; try again in a minute"
        )
        # While the four run: the service answers and events keep arriving.
        for _ in range(3):
            assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        before = events_stored(url, tokens["carol"])
        wait_until(lambda: events_stored(url, tokens["carol"]) >= before + 20, "new events")
        assert all(query.thread.is_alive() for query in heavy), "the heavy queries still run"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
        for query in heavy:
            query.thread.join(timeout=30)
            assert query.reply is not None, f"no answer: {query.error}"
            assert query.reply.status_code == 503
            assert query.reply.json()["detail"] == (
                "The service is stopping and stopped the query; run it again once it is back."
            )
    assert "Traceback" not in log.read_text()
