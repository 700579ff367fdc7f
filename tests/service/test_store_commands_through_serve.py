"""The CLI commands that write to the embedded log store (a resync, a first sync's backfill, a new
retention, deleting a removed source's events) work while `serve` holds the store, through the
running service, and still work on their own without it."""

import json
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.jobs import status as jobs
from kandji_bridge.service.advert import ADVERT_FILE

from .test_cli_through_serve import kandji_bridge
from .test_serve import cli_env, serve_process

DAY = 86_400


def add_unpolled_source(env: dict[str, str], name: str, sim) -> None:
    """A source serve's scheduler leaves alone for a day (its job ran just now), so what the
    commands do is theirs alone."""
    with open_state(load_settings(env=env)) as state:
        info = sources.add_source(state, name, sim.base_url, sim.token, poll_interval=DAY)
        jobs.record_start(state, jobs.source_job(info.id))
        jobs.record_success(state, jobs.source_job(info.id))


def count(env: dict[str, str], where: str) -> dict[str, int]:
    sql = f"SELECT count() AS n, uniqExact(id) AS ids FROM kandji_logs WHERE {where}"  # noqa: S608
    queried = kandji_bridge(env, "logs", "query", sql, "--format", "json")
    assert queried.returncode == 0, queried.stderr
    return json.loads(queried.stdout)


def exercise_store_commands(env: dict[str, str], name: str, source_id: str) -> None:
    mine = f"sourceID = '{source_id}'"
    backfilled = kandji_bridge(env, "logs", "sync", name, "--backfill-days", "5")
    assert backfilled.returncode == 0, backfilled.stderr
    assert "Backfilled" in backfilled.stdout and f"for {name}" in backfilled.stdout
    recent = count(env, mine)
    assert 0 < recent["n"] < 300 and recent["n"] == recent["ids"], recent
    assert count(env, f"{mine} AND eventTime < now() - INTERVAL 6 DAY")["n"] == 0

    start = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()
    resynced = kandji_bridge(env, "logs", "resync", name, "--from", start)
    assert resynced.returncode == 0, resynced.stderr
    assert resynced.stdout.startswith("Resynced "), resynced.stdout
    after = count(env, mine)
    assert after["n"] > recent["n"] and after["n"] == after["ids"], "stored once each"
    again = kandji_bridge(env, "logs", "resync", name, "--from", start)
    assert again.returncode == 0 and again.stdout.startswith("Resynced 0 new events"), again
    assert count(env, mine) == after

    updated = kandji_bridge(env, "source", "update", name, "--retention-days", "7")
    assert updated.returncode == 0, updated.stderr
    assert "retention" in updated.stdout
    ttl = kandji_bridge(
        env,
        "logs",
        "query",
        f"SELECT DISTINCT sourceTTL AS ttl FROM kandji_logs WHERE {mine}",  # noqa: S608
        "--format",
        "json",
    )
    assert [json.loads(line) for line in ttl.stdout.splitlines()] == [{"ttl": 7}], ttl

    held = count(env, mine)["n"]  # the new retention may have dropped the oldest already
    assert 0 < held <= after["n"]
    removed = kandji_bridge(env, "source", "remove", name, "--delete-events")
    assert removed.returncode == 0, removed.stderr
    assert f"deleted its {held:,} stored events" in removed.stdout
    assert count(env, mine)["n"] == 0


def test_store_commands_go_through_a_running_serve_and_work_without_it(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=2, events=300, history_days=30, seed=63)
    env = cli_env(home, sim)
    add_unpolled_source(env, "acme", sim)
    with open_state(load_settings(env=env)) as state:
        acme = sources.get_source(state, "acme").id
    with serve_process(env, tmp_path / "serve.log") as (process, _url):
        exercise_store_commands(env, "acme", acme)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0

    add_unpolled_source(env, "beta", sim)
    with open_state(load_settings(env=env)) as state:
        beta = sources.get_source(state, "beta").id
    exercise_store_commands(env, "beta", beta)


def test_refusals_through_a_running_serve_are_one_sentence(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=1, events=20, history_days=30, seed=64)
    env = cli_env(home, sim)
    add_unpolled_source(env, "acme", sim)
    with serve_process(env, tmp_path / "serve.log") as (_process, url):
        refusals = {
            ("logs", "resync", "acme", "--from", "2026-01-01"): "Nothing is stored for source acme",
            ("source", "update", "nope", "--retention-days", "5"): "nope",
            ("source", "remove", "nope", "--delete-events"): "nope",
            ("logs", "sync", "nope", "--backfill-days", "3"): "nope",
        }
        for args, said in refusals.items():
            refused = kandji_bridge(env, *args)
            assert refused.returncode == 1, (args, refused.stdout)
            # A pass says on stderr that the service runs it; then the one sentence.
            error = refused.stderr.splitlines()[-1]
            assert error.startswith("Error: ") and said in error, refused.stderr
            assert "Traceback" not in refused.stderr and refused.stderr.count("Error") == 1
        assert count(env, "1")["n"] == 0

        credential = json.loads((home / ADVERT_FILE).read_text())["credential"]
        answer = httpx.post(
            f"{url}/api/sources/acme/poll",
            json={"end": "2026-01-01T00:00:00Z"},
            headers={"Authorization": f"Bearer {credential}"},
        )
        assert answer.status_code == 400
        assert answer.json() == {
            "detail": "An end was given without a start; give the period's start too."
        }
