"""A full `demo`, run as a real process with --debug and exercised as a user would (sign in,
poll the source, sync the mapping, every page and API read, a few refused requests that carry
the token), never shows its Kandji token: not in stdout or stderr, not in any HTTP answer, not
in any file under its home (state DB, key file, log store), not in what the log store holds.

The demo's tenant is seeded, so the test knows the two tokens the demo registers without the demo
printing them. The demo account's password and setup link are printed by design; only the Kandji
token is searched for."""

import base64
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from kandji_bridge.cli.demo import COLLECTION, DEMO_FOLDER, MAPPING, SEED, SOURCE_NAME, demo_tokens

DEVICES, EVENTS = 5, 50
COMMAND = ["-m", "kandji_bridge", "--debug", "demo", "--port", "0", "--no-browser"]
READY = "demo ready"


def forms_of(token: str) -> list[bytes]:
    """The token as text, as UTF-16 (SQLite may store it so), and base64'd (a header dump)."""
    return [
        token.encode(),
        token.encode("utf-16-le"),
        base64.b64encode(token.encode()),
        quote(token, safe="").encode(),
    ]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def start_demo(home: Path) -> tuple[subprocess.Popen, str, str, list[str]]:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    demo = subprocess.Popen(
        [sys.executable, *COMMAND, "--devices", str(DEVICES), "--events", str(EVENTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            demo.kill()
            raise AssertionError("demo exited early: " + "".join(lines) + demo.stderr.read())
        lines.append(line)
        if READY in line:
            break
    found = re.search(r"Sign in at (\S+) as demo with password (\S+)", "".join(lines))
    if not found:
        demo.kill()
        raise AssertionError("demo did not get ready within 60 s: " + "".join(lines))
    return demo, *found.groups(), lines


def exercise(client: httpx.Client, password: str, token: str, tenant: str) -> list[httpx.Response]:
    """What a user does with the demo; returns every answer."""
    answers = [client.get("/login")]
    answers.append(
        client.post(
            "/login",
            data={"username": "demo", "password": password, "csrf_token": csrf_of(answers[0].text)},
        )
    )
    assert answers[-1].status_code == 303, answers[-1].text
    csrf = csrf_of(client.get("/account").text)
    mapping = quote(MAPPING)
    answers.append(client.post(f"/sources/{SOURCE_NAME}/poll", data={"csrf_token": csrf}))
    answers.append(client.post(f"/integrations/mappings/{mapping}/sync", data={"csrf_token": csrf}))
    assert all(a.status_code < 400 for a in answers[-2:]), [a.text for a in answers[-2:]]
    wait_for_data(client)
    sql = "SELECT * FROM kandji_logs"
    for path in (
        "/sources", f"/sources/{SOURCE_NAME}", "/sources/new/kandji",
        f"/sources/{SOURCE_NAME}/remove",
        "/logs?range=30d", f"/logs/sql?q={quote(sql)}", f"/logs/sql.csv?q={quote(sql)}",
        "/integrations", "/integrations/kandji", "/integrations/mappings",
        f"/integrations/mappings/{mapping}", "/integrations/mapping-form",
        "/collections", f"/collections/{quote(COLLECTION)}",
        f"/collections/{quote(COLLECTION)}/export", "/account", "/metrics", "/api/openapi.json",
        "/api/me", "/api/sources", f"/api/sources/{SOURCE_NAME}", "/api/integrations/kandji",
        "/api/mappings", f"/api/mappings/{mapping}", f"/api/mappings/{mapping}/runs",
        "/api/collections", f"/api/collections/{quote(COLLECTION)}",
        f"/api/collections/{quote(COLLECTION)}/records",
        "/api/logs/events?from=2000-01-01T00:00:00Z", "/api/logs/facets?from=2000-01-01T00:00:00Z",
    ):  # fmt: skip
        answers.append(client.get(path))
        assert answers[-1].status_code == 200, (path, answers[-1].status_code)
    event_id = client.get("/api/logs/events?from=2000-01-01T00:00:00Z").json()["events"][0]["id"]
    answers.append(client.get(f"/logs/events/{event_id}"))
    answers.append(client.get(f"/api/logs/events/{event_id}"))
    api = {"X-CSRF-Token": csrf}
    for statement in (sql, "SELECT * FROM system.query_log", "SELECT * FROM system.text_log"):
        answers.append(client.post("/api/logs/query", json={"sql": statement}, headers=api))
    answers.append(client.post(f"/api/mappings/{mapping}/preview", headers=api))
    # The token this test looks for is the tenant's: Kandji (the simulator) accepts it.
    answers.append(
        client.put(
            "/api/integrations/kandji", json={"base_url": tenant, "api_key": token}, headers=api
        )
    )
    assert answers[-1].json()["connected"] is True, answers[-1].text
    # Refused requests that carry the token: their errors must not echo it.
    answers += [
        client.put(
            "/api/integrations/kandji",
            json={"base_url": "http://169.254.169.254", "api_key": token},
            headers=api,
        ),
        client.post(
            "/api/sources/verify", json={"url": "http://127.0.0.1:1", "token": token}, headers=api
        ),
        client.post(
            "/api/sources",
            json={"name": "x", "api_url": "ftp://x", "token": token, "poll_interval": "often"},
            headers=api,
        ),
        client.post("/api/sources/verify", json={"url": 5, "token": [token]}, headers=api),
        client.post("/sources/verify", data={"url": "http://10.0.0.1", "token": token}),
    ]
    assert [a.status_code for a in answers[-5:]] == [400, 200, 422, 422, 403]
    return answers


def wait_for_data(client: httpx.Client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = client.get(f"/api/collections/{quote(COLLECTION)}/records").json()
        events = client.get("/api/logs/events?from=2000-01-01T00:00:00Z").json()
        if records.get("total") == DEVICES and events.get("events"):
            return
        time.sleep(0.5)
    raise AssertionError("the demo imported no devices or events within 60 s")


def test_a_demo_run_never_shows_its_kandji_token(home: Path) -> None:
    token, no_audit_token = demo_tokens(SEED)
    demo, url, password, lines = start_demo(home)
    try:
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
            tenant = re.search(r"Simulated Kandji tenant at (\S+):", "".join(lines))[1]
            answers = exercise(client, password, token, tenant)
        # From another shell, as the demo suggests: verify sends the stored token to the tenant.
        allowed = re.search(r"export KANDJI_BRIDGE_ALLOWED_HOSTS=(\S+)", "".join(lines))[1]
        env = {
            **os.environ,
            "KANDJI_BRIDGE_HOME": str(home / DEMO_FOLDER),
            "KANDJI_BRIDGE_ALLOWED_HOSTS": allowed,
        }
        commands = [["verify", SOURCE_NAME], ["source", "list"], ["collection", "list"]]
        shell = [
            subprocess.run(
                [sys.executable, "-m", "kandji_bridge", "--debug", *command],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            for command in commands
        ]
        assert [run.returncode for run in shell] == [0, 0, 0], [run.stderr for run in shell]
    finally:
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 0, stderr
    outputs = {
        "demo stdout": ("".join(lines) + stdout).encode(),
        "demo stderr": stderr.encode(),
        **{
            f"`{' '.join(run.args[3:])}` output": (run.stdout + run.stderr).encode()
            for run in shell
        },
    }
    assert "DEBUG" in stderr, "the demo ran without debug logs, so its log lines were not scanned"
    for number, answer in enumerate(answers):
        head = "".join(f"{k}: {v}\n" for k, v in answer.headers.items()).encode()
        outputs[f"answer {number} ({answer.request.method} {answer.request.url.path})"] = (
            head + answer.content
        )
    files = [path for path in home.rglob("*") if path.is_file()]
    assert any(path.name == "state.db" for path in files)
    assert any("logs" in path.relative_to(home).parts for path in files), "no log store files"
    for path in files:
        outputs[str(path.relative_to(home))] = path.read_bytes()
    for value in (token, no_audit_token):
        leaks = [name for name, data in outputs.items() if any(f in data for f in forms_of(value))]
        assert leaks == [], f"a Kandji token shows in: {leaks}"
    assert len(outputs) > 50
