"""Several `serve` processes: an embedded store has one owner, and a second serve on it is
refused with who owns it; serves on one PostgreSQL state DB answer for each other."""

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import utcnow
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import open_log_store
from kandji_bridge.service.advert import ADVERT_FILE
from kandji_bridge.web.auth import sessions, throttle
from support import multiserve

from .test_scheduler import add_mapping
from .test_serve import CLI, serve_process

ADMIN, PASSWORD = "admin", "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_second_serve_on_an_embedded_store_says_who_owns_it_and_changes_nothing(
    home: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    with serve_process(env, tmp_path / "first.log") as (first, url):
        advert = (home / ADVERT_FILE).read_bytes()
        started = json.loads(advert)["started_at"]
        second = subprocess.run(
            [*CLI, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120
        )
        # A serve of another home pointed at the same folder: the kernel's lock names the owner.
        other_home = tmp_path / "other-home"
        elsewhere = subprocess.run(
            [*CLI, "serve", "--port", "0"],
            env={
                **env,
                "KANDJI_BRIDGE_HOME": str(other_home),
                "KANDJI_BRIDGE_LOG_STORE": f"chdb://{home / 'logs'}",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (home / ADVERT_FILE).read_bytes() == advert, "the second serve replaced the advert"
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert first.poll() is None
    for refused in (second, elsewhere):
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "Serving on" not in refused.stdout
    host = socket.gethostname()
    # The owner as serve.json has it: pid, host, since when, URL; then what to do instead.
    assert second.stderr.startswith(
        f"Error: The embedded log store {(home / 'logs').resolve()} is owned by the `serve` "
        f"with pid {first.pid} on {host} since {started[:10]} {started[11:19]} UTC, at {url}"
    ), second.stderr
    for words in ("PostgreSQL state DB", "ClickHouse log store", "docs/scale-out.md"):
        assert words in second.stderr
    assert f"pid {first.pid} on {host}" in elsewhere.stderr
    assert not other_home.exists(), "the refused serve made a home"


@contextmanager
def serves_on_one_state_db(
    tmp_path: Path, database_url: str, count: int, **extra: str
) -> Iterator[list[tuple[subprocess.Popen, str]]]:
    """`count` real serves as on `count` machines: a home of their own each, one PostgreSQL
    state DB and one secret key (KANDJI_BRIDGE_SECRET_KEY, as docs/scale-out.md says)."""
    key = Fernet.generate_key().decode()
    with ExitStack() as stack:
        started = []
        for number in range(count):
            home = tmp_path / f"serve-{number}"
            env = {
                **os.environ,
                "KANDJI_BRIDGE_HOME": str(home),
                "KANDJI_BRIDGE_DATABASE_URL": database_url,
                "KANDJI_BRIDGE_SECRET_KEY": key,
                **extra,
            }
            started.append(stack.enter_context(serve_process(env, tmp_path / f"{number}.log")))
        yield started


def sign_in_form(url: str) -> tuple[str, str]:
    """The sign-in form's double-submit cookie and token, as a browser got them from `url`."""
    form = httpx.get(f"{url}/login")
    return form.cookies[sessions.LOGIN_CSRF_COOKIE], CSRF_FIELD.search(form.text)[1]


def sign_in_on(url: str, form: tuple[str, str], password: str) -> httpx.Response:
    cookie, csrf = form
    return httpx.post(
        f"{url}/login",
        data={"username": ADMIN, "password": password, "csrf_token": csrf},
        headers={"Cookie": f"{sessions.LOGIN_CSRF_COOKIE}={cookie}"},
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_any_serve_answers_the_ui_and_api_of_a_session_made_on_another(
    home: Path, tmp_path: Path, state: StateDB, database_url: str
) -> None:
    users.create_user(state, ADMIN, PASSWORD)
    with serves_on_one_state_db(tmp_path, database_url, 2) as [(_, a), (_, b)]:
        # The sign-in form served by A, posted to B; the session made by B, used on A.
        signed_in = sign_in_on(b, sign_in_form(a), PASSWORD)
        assert signed_in.status_code == 303, signed_in.text
        cookie = {sessions.SESSION_COOKIE: signed_in.cookies[sessions.SESSION_COOKIE]}
        account = httpx.get(f"{a}/account", cookies=cookie)
        assert account.status_code == 200
        csrf = CSRF_FIELD.search(account.text)[1]
        # A form of A's page, with A's CSRF token, posted to B: B makes the API token.
        made = httpx.post(
            f"{b}/account/tokens",
            data={"name": "script", "scope": users.ADMIN, "csrf_token": csrf},
            cookies=cookie,
        )
        assert made.status_code == 200, made.text
        token = re.search(r"kbt_[\w-]+", made.text)[0]
        for url in (a, b):
            me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["username"] == ADMIN
        # A forged token is refused by the serve that did not make the session either.
        forged = httpx.post(
            f"{a}/account/tokens", data={"name": "x", "csrf_token": "forged"}, cookies=cookie
        )
        assert forged.status_code == 403
        # Signed out on A: the session is gone on B too.
        out = httpx.post(f"{a}/logout", data={"csrf_token": csrf}, cookies=cookie)
        assert out.status_code == 303
        assert httpx.get(f"{b}/api/me", cookies=cookie).status_code == 401

        # Wrong passwords spread over both serves count together.
        form = sign_in_form(a)
        limit = throttle.LOGIN_FAILURES_PER_USERNAME
        codes = [sign_in_on((a, b)[n % 2], form, f"guess {n}").status_code for n in range(limit)]
        assert codes == [401] * limit
        for url in (a, b):
            refused = sign_in_on(url, form, PASSWORD)
            assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text


POLL_SECONDS, LEASE_SECONDS = 6, 6


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_serves_one_killed_lose_and_repeat_nothing_and_take_over_within_the_lease(
    home: Path,
    tmp_path: Path,
    state: StateDB,
    database_url: str,
    clickhouse_url: str,
    simulator_factory,
) -> None:
    tenants = [
        simulator_factory(
            devices=1_500 if number == 0 else 5,
            events=400,
            history_days=3,
            seed=90 + number,
            events_per_minute=120,
            rate_per_second=500,
        )
        for number in range(3)
    ]
    for number, sim in enumerate(tenants):
        sources.add_source(
            state, f"tenant{number}", sim.base_url, sim.token, poll_interval=POLL_SECONDS
        )
    source_jobs = {jobs.source_job(source.id) for source in sources.list_sources(state)}
    mapping_jobs = {
        jobs.mapping_job(add_mapping(state, "tenant0", f"m{number}", f"C{number}").id)
        for number in range(3)
    }
    env = {
        **os.environ,
        "KANDJI_BRIDGE_DATABASE_URL": database_url,
        "KANDJI_BRIDGE_LOG_STORE": clickhouse_url,
        "KANDJI_BRIDGE_LEASE_SECONDS": str(LEASE_SECONDS),
        "KANDJI_BRIDGE_ALLOWED_HOSTS": ",".join(sim.host_port for sim in tenants),
        # The key the tokens were stored with: every serve needs the same one.
        "KANDJI_BRIDGE_SECRET_KEY": (home / "secret.key").read_text().strip(),
    }
    own_hosts = multiserve.separate_hosts()
    with multiserve.serves(3, env, tmp_path, own_hosts=own_hosts) as running:

        def succeeded(job_keys: set[str], after: datetime | None = None) -> bool:
            statuses = jobs.job_statuses(state)
            return all(
                (status := statuses.get(job)) is not None
                and status.last_success_at is not None
                and (after is None or status.last_success_at > after)
                for job in job_keys
            )

        multiserve.wait_for(lambda: succeeded(source_jobs), "every source's first poll")

        # The victim: a serve holding a source's lease (and whatever else it holds) right now.
        def holding() -> tuple[multiserve.Serve, set[str]] | None:
            held = leases.holders(state)
            for serve in running:
                mine = {job for job, holder in held.items() if f":{serve.pid}:" in holder}
                if mine & source_jobs:
                    return serve, mine
            return None

        multiserve.wait_for(holding, "a serve polling a source")
        victim, victim_jobs = holding()
        killed_at = multiserve.kill_hard(victim)
        killed_utc = utcnow()
        survivors = [serve for serve in running if serve is not victim]
        logs = [serve.log for serve in running]

        def taken_over() -> dict[str, float]:
            return multiserve.takeover_seconds(multiserve.job_runs(logs), victim_jobs, killed_at)

        multiserve.wait_for(lambda: set(taken_over()) == victim_jobs, "the killed serve's jobs")
        multiserve.wait_for(
            lambda: succeeded(source_jobs, after=killed_utc), "every source polled after the kill"
        )
        # Every event the tenants have now is stored once the serves catch up.
        wanted = {event["id"] for sim in tenants for event in sim.events()}
        store = open_log_store(clickhouse_url)
        try:

            def stored() -> list[str]:
                return [row[0] for row in store.query("SELECT kandjiEventId FROM kandji_logs").rows]

            multiserve.wait_for(lambda: wanted <= set(stored()), "every event stored")
            multiserve.wait_for(
                lambda: succeeded(
                    mapping_jobs, after=killed_utc if victim_jobs & mapping_jobs else None
                ),
                "every mapping synced",
            )
            for serve in survivors:
                assert multiserve.stop(serve) == 0, serve.log.read_text()[-2000:]
            ids = stored()
        finally:
            store.close()
    runs = multiserve.job_runs(logs)
    assert multiserve.overlapping(runs, killed_at) == [], "two serves ran one job at once"
    assert len(ids) == len(set(ids)), "an event was stored twice"
    assert set(ids) <= {event["id"] for sim in tenants for event in sim.events()}
    assert wanted <= set(ids), "an event was lost"
    # Each survivor ran jobs; the holders are the three serves, under their own host names.
    holders = {run.holder for run in runs}
    assert {holder.split(":")[1] for holder in holders} == {str(s.pid) for s in running}
    if own_hosts:
        assert {holder.split(":")[0] for holder in holders} == {s.host for s in running}
    statuses = jobs.job_statuses(state)
    errors = {job: statuses[job].last_error for job in source_jobs | mapping_jobs}
    assert set(errors.values()) == {None}, errors
    takeover = multiserve.takeover_seconds(runs, victim_jobs, killed_at)
    assert max(takeover.values()) <= LEASE_SECONDS + POLL_SECONDS, takeover
    # The killed serve's sources: their lag (time since the last successful poll) is back under
    # two poll intervals by lease + one poll after the kill, so a run of each ended after that
    # moment less two polls.
    back_by = killed_at + timedelta(seconds=LEASE_SECONDS + POLL_SECONDS)
    for job in victim_jobs & source_jobs:
        ends = [run.end for run in runs if run.job == job and run.end and run.end <= back_by]
        assert ends and max(ends) >= back_by - timedelta(seconds=2 * POLL_SECONDS), (
            [run for run in runs if run.job == job],
            killed_at,
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_serve_whose_secret_key_reads_no_stored_token_refuses_to_start(
    home: Path, tmp_path: Path, state: StateDB, database_url: str, simulator_factory
) -> None:
    sim = simulator_factory(devices=1, events=10, history_days=1, seed=95)
    sources.add_source(state, "acme", sim.base_url, sim.token)
    env = {
        **os.environ,
        "KANDJI_BRIDGE_HOME": str(tmp_path / "another-machine"),
        "KANDJI_BRIDGE_DATABASE_URL": database_url,
        "KANDJI_BRIDGE_LOG_STORE": f"chdb://{tmp_path / 'logs'}",
        "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
    }
    refused = subprocess.run(
        [*CLI, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "Error: This serve's secret key reads none of the Kandji tokens stored in the state DB"
    ), refused.stderr
    assert "KANDJI_BRIDGE_SECRET_KEY" in refused.stderr and "Traceback" not in refused.stderr
    assert sim.token not in refused.stderr + refused.stdout
    assert leases.holders(state) == {} and jobs.job_statuses(state) == {}, "it ran a job"
