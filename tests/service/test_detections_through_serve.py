"""The `detections` and `alerts` commands work while `serve` holds the embedded log store: they go
through the running service (a folder to validate or import is sent as its files), and they print
the same when no service runs."""

import json
import signal
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.detections.results import (
    ensure_detections_table,
    split_matches,
    store_records,
)
from kandji_bridge.detections.rules import load_rule
from kandji_bridge.detections.run import run_detection
from kandji_bridge.logs.store import open_ready_store
from kandji_bridge.operations.alerts import add_channel

from .test_cli_through_serve import kandji_bridge
from .test_serve import cli_env, serve_process

RULE = "every-event"
WINDOW = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
EVENTS = 40
FIXTURE_EVENT = {
    "id": "01JNQA0000000000000000TC01",
    "action": "create",
    "occurred_at": "2025-03-06T09:03:10.120000Z",
    "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
    "actor_type": "user",
    "target_id": "a0726ca3-717d-41b9-a3af-c7d0bad8b784",
    "target_type": "api_token",
    "target_component": "",
    "new_state": {"label": "SIEM export", "permissions": []},
    "metadata": {},
}


def write_rule(folder: Path, name: str, where: str = "1") -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\ndisplayName: Every event\ndescription: A test rule.\n"
        "severity: High\nschedule: '@1h'\n"
    )
    sql = f"SELECT * FROM kandji_logs WHERE {WINDOW} AND {where}"  # noqa: S608 (a rule file)
    (folder / f"{name}.sql").write_text(sql)


def rules_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my rules"
    write_rule(folder, RULE)
    positive = {"positive": [{"case": "any event", "matches": 1, "events": [FIXTURE_EVENT]}]}
    (folder / f"{RULE}.fixtures.yaml").write_text(json.dumps(positive))
    return folder


def store_an_alert(env: dict[str, str], rules: Path) -> str:
    """What a scheduled run of the rule would have stored: an alert over the events synced."""
    settings = load_settings(env=env)
    store, _notice = open_ready_store(settings.log_store, settings.query_limits)
    try:
        detection = replace(load_rule(rules / f"{RULE}.yaml", store), notification_names=("siem",))
        now = datetime.now(UTC).replace(microsecond=0)
        matches = run_detection(store, detection, now - timedelta(days=1), now)
        ensure_detections_table(store)
        records = split_matches(
            detection, matches, now=now, workspace_id="ws", signal_age=timedelta(days=400)
        )
        stored = store_records(store, records)
    finally:
        store.close()
    assert [r.kind for r in stored] == ["alert"]
    return stored[0].id


def ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = kandji_bridge(env, *args)
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def refused(env: dict[str, str], *args: str) -> str:
    done = kandji_bridge(env, *args)
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


def exercise(env: dict[str, str], rules: Path, broken: Path, alert_id: str) -> dict[str, str]:
    """Every detections and alerts command as a user runs them; what each printed."""
    seen = {}
    imported = ok(env, "detections", "import", str(rules)).stdout
    assert imported in (f"Imported {RULE}.\n", f"Replaced {RULE}.\n"), imported

    assert ok(env, "detections", "validate", str(rules)).stdout == f"ok    {RULE}\n"
    error = refused(env, "detections", "validate", str(broken))
    assert "ok    every-event" not in error
    assert error.startswith("Error: Rule broken-rule: broken-rule.yaml is not valid YAML"), error
    error = refused(env, "detections", "import", str(broken))
    assert error.startswith("Error: Nothing was imported: Rule broken-rule"), error

    listed = json.loads(ok(env, "detections", "list", "--format", "json").stdout)
    mine = next(r for r in listed if r["name"] == RULE)
    assert mine == {
        "name": RULE,
        "display_name": "Every event",
        "severity": "High",
        "schedule": "@1h",
        "origin": "imported",
        "enabled": False,
        "channels": [],
        "last_error": None,
    }
    assert len(listed) > 10, "the built-in pack is listed too"
    table = ok(env, "detections", "list").stdout
    assert RULE in table and "kandji-api-token-created" in table

    alerts = json.loads(ok(env, "alerts", "list", "--format", "json").stdout)
    assert [a["id"] for a in alerts] == [alert_id]
    assert alerts[0]["detection"] == RULE and alerts[0]["matches"] == EVENTS
    assert len(alerts[0]["matched_ids"]) == EVENTS
    seen["alerts"] = json.dumps(alerts)
    assert alert_id in ok(env, "alerts", "list", "--detection", RULE).stdout
    assert ok(env, "alerts", "list", "--severity", "Low").stderr == "No alerts yet.\n"

    start = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    ran = ok(env, "detections", "run", RULE, "--from", start, "--format", "json")
    rows = json.loads(ran.stdout)
    assert len(rows) == EVENTS and ran.stderr == f"{EVENTS} matches; nothing was sent.\n"
    seen["run ids"] = sorted(row["id"] for row in rows)
    table = ok(env, "detections", "run", RULE, "--from", start).stdout
    assert "eventName" in table and rows[0]["id"] in table
    assert "There is no detection named nope" in refused(
        env, "detections", "run", "nope", "--from", start
    )

    enabled = ok(env, "detections", "enable", RULE, "--notify", "siem").stdout
    assert enabled == f"Enabled {RULE} (@1h, alerts to siem).\n"
    listed = json.loads(ok(env, "detections", "list", "--format", "json").stdout)
    mine = next(r for r in listed if r["name"] == RULE)
    assert mine["enabled"] is True and mine["channels"] == ["siem"]
    assert "no-such-channel" in refused(
        env, "detections", "enable", RULE, "--notify", "no-such-channel"
    )
    assert ok(env, "detections", "disable", RULE).stdout == f"Disabled {RULE}.\n"
    listed = json.loads(ok(env, "detections", "list", "--format", "json").stdout)
    assert next(r for r in listed if r["name"] == RULE)["enabled"] is False

    tested = ok(env, "detections", "test", RULE).stdout
    assert tested == f"pass  Rule {RULE}, positive case 'any event': 1 row(s), expected 1.\n"
    return seen


def test_detections_and_alerts_commands_work_beside_a_running_serve_and_without_it(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=2, events=EVENTS, history_days=20, seed=71)
    env = cli_env(home, sim)
    with open_state(load_settings(env=env)) as state:
        sources.add_source(state, "acme", sim.base_url, sim.token)
        add_channel(state, "webhook", "siem", url="http://127.0.0.1:9/hook")
    ok(env, "logs", "sync", "acme")
    rules = rules_folder(tmp_path)
    broken = tmp_path / "broken"
    write_rule(broken, "broken-rule")
    (broken / "broken-rule.yaml").write_text("name: [unclosed\n")
    alert_id = store_an_alert(env, rules)

    with serve_process(env, tmp_path / "serve.log") as (process, _url):
        through_serve = exercise(env, rules, broken, alert_id)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert exercise(env, rules, broken, alert_id) == through_serve
