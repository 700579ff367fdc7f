"""`demo` on a machine with a real setup: it runs in a home of its own, leaves the user's sources,
users and logs as they were, and a second run against the same demo home serves the same tenant,
so no audit event is stored twice. Both runs are real processes; the rows are counted in the
demo's log store through the command the demo prints."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.cli.demo import (
    DEMO_FOLDER,
    LIVE_EVENTS_PER_MINUTE,
    NO_AUDIT_SOURCE,
    SOURCE_NAME,
    TENANT_FILE,
    cli_commands,
    demo_settings,
    open_demo_home,
)
from kandji_bridge.config import ENV_DATABASE_URL, ENV_LOG_STORE, ENV_SECRET_KEY, load_settings
from kandji_bridge.db import open_state
from kandji_bridge.errors import BridgeError
from kandji_bridge.kandji.permissions import AUDIT_EVENTS
from kandji_bridge.simulator.scenarios import SCENARIO_EVENTS

DEVICES, EVENTS = 5, 50
READY = "demo ready"
COUNT = "SELECT count() AS stored, uniqExact(id) AS distinct_ids FROM kandji_logs"


def make_real_setup(home: Path) -> None:
    """The user's own setup: a source for their tenant and their admin account."""
    with open_state(load_settings(home)) as state:
        sources.add_source(state, "acme", "https://acme.api.kandji.io", "acme-token-value")
        users.create_user(state, "admin", "a long admin password")


def start_demo(env: dict[str, str], *options: str) -> tuple[subprocess.Popen, str]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "kandji_bridge", *options, "demo", "--port", "0", "--no-browser",
         "--devices", str(DEVICES), "--events", str(EVENTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            demo.kill()
            raise AssertionError("demo exited early: " + "".join(lines) + demo.stderr.read())
        lines.append(line)
        if READY in line:
            return demo, "".join(lines)
    demo.kill()
    raise AssertionError("demo did not get ready within 90 s: " + "".join(lines))


def stop(demo: subprocess.Popen) -> str:
    demo.send_signal(signal.SIGINT)
    stdout, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stdout


def wait_until_collected(output: str, at_least: int) -> int:
    """Sign in as the demo prints, and wait until the log store holds `at_least` events."""
    url, password = re.search(r"Sign in at (\S+) as demo with password (\S+)", output).groups()
    with httpx.Client(base_url=url, timeout=30) as client:
        login = client.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
        client.post("/login", data={"username": "demo", "password": password, "csrf_token": csrf})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/account").text)[1]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            answer = client.post(
                "/api/logs/query", json={"sql": COUNT}, headers={"X-CSRF-Token": csrf}
            ).json()
            stored = int(answer["rows"][0][0]) if answer.get("rows") else 0
            if stored >= at_least:
                return stored
            time.sleep(0.5)
    raise AssertionError(f"the demo stored fewer than {at_least} events within 90 s")


def printed_commands(output: str) -> list[list[str]]:
    """The `kandji-bridge --home ...` lines the demo prints, as argument lists."""
    return [
        shlex.split(line.strip(), comments=True)
        for line in output.splitlines()
        if line.strip().startswith("kandji-bridge --home")
    ]


def run_printed(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kandji_bridge", *command[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_demo_runs_in_its_own_home_and_a_restart_stores_no_event_twice(home: Path) -> None:
    make_real_setup(home)
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    demo_home = home / DEMO_FOLDER

    demo, first = start_demo(env)
    try:
        assert f"The demo runs in its own home, {demo_home}" in first
        wait_until_collected(first, EVENTS + SCENARIO_EVENTS)
        allowed = re.search(r"export KANDJI_BRIDGE_ALLOWED_HOSTS=(\S+)", first)[1]
        shell = {**env, "KANDJI_BRIDGE_ALLOWED_HOSTS": allowed}
        commands = printed_commands(first)
        assert all(command[1:3] == ["--home", str(demo_home)] for command in commands), commands
        verified = {
            command[-1]: run_printed(command, shell) for command in commands if "verify" in command
        }
        # The printed query works while the demo runs: it goes through the demo's service.
        queried_live = run_printed(next(c for c in commands if "query" in c), shell)
    finally:
        stop(demo)
    assert queried_live.returncode == 0, queried_live.stderr
    assert verified[SOURCE_NAME].returncode == 0, verified[SOURCE_NAME].stderr
    # The second token lacks the audit permission: verify says which one, and how to grant it.
    no_audit = verified[NO_AUDIT_SOURCE]
    assert no_audit.returncode == 1
    assert AUDIT_EVENTS.label in no_audit.stdout + no_audit.stderr

    # The tenant's clock goes on while the demo is stopped: a live event is due by the restart.
    time.sleep(60 / LIVE_EVENTS_PER_MINUTE + 1)
    demo, second = start_demo(env)
    try:
        assert "again as it was" not in second  # same sizes: no notice
        wait_until_collected(second, EVENTS + SCENARIO_EVENTS + 1)
    finally:
        stop(demo)

    query = next(c for c in printed_commands(first) if "query" in c)
    counted = run_printed([*query[:-1], COUNT, "--format", "json"], env)  # its SQL: a count
    assert counted.returncode == 0, counted.stderr
    row = json.loads(counted.stdout)  # one line: one row
    assert row["stored"] == row["distinct_ids"], row
    tenant = json.loads((demo_home / TENANT_FILE).read_text())
    minutes = (datetime.now(UTC) - datetime.fromisoformat(tenant["history_end"])).total_seconds()
    live_due = int(minutes / 60 * LIVE_EVENTS_PER_MINUTE) + 1
    # The attack scenarios (for the detections) are played once, and served again unchanged.
    assert EVENTS < row["stored"] <= EVENTS + SCENARIO_EVENTS + live_due, (row, live_due)

    # The user's own setup is as it was: no demo source, no demo account, no demo logs.
    with open_state(load_settings(home)) as state:
        assert [s.name for s in sources.list_sources(state)] == ["acme"]
        assert [u.username for u in users.list_users(state)] == ["admin"]
    assert not (home / "logs").exists()


def test_demo_refuses_a_home_that_holds_a_real_setup(home: Path, tmp_path: Path) -> None:
    real = tmp_path / "work"
    make_real_setup(real)
    before = (real / "state.db").read_bytes()
    run = subprocess.run(
        [sys.executable, "-m", "kandji_bridge", "--home", str(real), "demo", "--no-browser"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert run.returncode == 1
    assert "holds no demo, so the demo leaves it alone" in run.stderr
    assert "Traceback" not in run.stderr
    assert (real / "state.db").read_bytes() == before


def test_the_demo_never_uses_the_state_db_log_store_or_key_of_the_users_setup(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_setup = {
        ENV_DATABASE_URL: "postgresql+psycopg://kb:secret@db.example/kb",
        ENV_LOG_STORE: "clickhouse://kb:secret@ch.example:8123/kb",
        ENV_SECRET_KEY: "the-users-key",
    }
    for name, value in users_setup.items():
        monkeypatch.setenv(name, value)
    settings, chosen = demo_settings(load_settings())
    assert not chosen
    assert settings.home == home / DEMO_FOLDER
    assert settings.database_url == f"sqlite:///{home / DEMO_FOLDER / 'state.db'}"
    assert settings.log_store == f"chdb://{home / DEMO_FOLDER / 'logs'}"
    assert settings.secret_key is None
    # The commands it prints would reach the user's setup with these set: they unset them first.
    lines = cli_commands(settings.home, "127.0.0.1:9")
    assert lines[0] == f"unset {' '.join(users_setup)}"


def test_a_demo_home_keeps_its_tenant_when_other_sizes_are_asked(tmp_path: Path) -> None:
    demo_home = tmp_path / "demo"
    tenant, notice = open_demo_home(demo_home, 5, 50)
    assert notice is None
    again, notice = open_demo_home(demo_home, 200, 5000)
    assert again == tenant  # the events already stored are this tenant's
    assert notice is not None and "5 devices and 50 audit events" in notice
    (demo_home / TENANT_FILE).write_text("{not json")
    with pytest.raises(BridgeError, match="unreadable; remove"):
        open_demo_home(demo_home, 5, 50)
