"""A rule heavier than KANDJI_BRIDGE_DETECTION_SECONDS in a real `serve`: the engine stops it,
its sentence (naming it and what to do) is what the Detections page and `detections list` show,
its window is not skipped, and the other rule goes on."""

import html
import os
import subprocess
from pathlib import Path

import httpx

from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.detections.windows import last_window_end
from kandji_bridge.jobs import status as jobs

from .helpers import wait_until
from .test_serve import CLI, serve_process

WINDOW = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
# EXPLAIN accepts it; running it builds a set from 10^11 numbers.
HEAVY = (
    "kandjiEventId IN (SELECT toString(number) FROM numbers(100000000000) "
    "WHERE number % 1000000007 = 1234567)"
)
STOPPED = (
    "Detection too-heavy ran longer than the 1 s a rule may run and was stopped; make its SQL "
    "read less (a shorter lookback, fewer columns), raise KANDJI_BRIDGE_DETECTION_SECONDS, or "
    "disable it."
)


def write_rule(folder: Path, name: str, where: str) -> None:
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndisplayName: {name}\ndescription: A test rule.\n"
        "severity: High\nschedule: '@1m'\n"
    )
    sql = f"SELECT * FROM kandji_logs WHERE {WINDOW} AND {where}"  # noqa: S608 (a rule file)
    (folder / f"{name}.sql").write_text(sql)


def test_a_rule_over_its_time_limit_is_named_and_the_others_run(home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home), "KANDJI_BRIDGE_DETECTION_SECONDS": "1"}
    rules = tmp_path / "rules"
    rules.mkdir()
    write_rule(rules, "too-heavy", HEAVY)
    write_rule(rules, "light", "eventName = 'never.happens'")
    for args in (
        ["detections", "import", str(rules)],
        ["detections", "enable", "too-heavy"],
        ["detections", "enable", "light"],
    ):
        done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    with open_state(load_settings(env=env)) as state:
        users.create_user(state, "analyst", "a password of the test")
        token = users.create_api_token(state, "analyst", "page reader")
        with serve_process(env, tmp_path / "serve.log") as (_process, url):
            heavy = jobs.detection_job("too-heavy")
            wait_until(
                lambda: (s := jobs.job_status(state, heavy)) and s.last_error,
                "the heavy rule stopped",
                timeout=180,
            )
            wait_until(lambda: last_window_end(state, "light"), "the light rule's window")
            page = httpx.get(
                f"{url}/detections", headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            assert page.status_code == 200
            assert html.escape(STOPPED, quote=False) in page.text
        assert jobs.job_status(state, heavy).last_error == STOPPED
        assert last_window_end(state, "too-heavy") is None, "its window waits for the next round"

    listed = subprocess.run(
        [*CLI, "detections", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert f"Error: {STOPPED}" in " ".join(listed.stderr.split())
