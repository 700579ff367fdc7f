"""`demo`, the README's first command: a new user signs in and sees logs and assets."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kandji_bridge.cli.demo import DEMO_POLL_INTERVAL
from kandji_bridge.config import DEFAULT_POLL_INTERVAL
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, DEVICE_LIST

READY = "demo ready"


def sign_in(client: httpx.Client, password: str) -> None:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    response = client.post(
        "/login", data={"username": "demo", "password": password, "csrf_token": csrf}
    )
    assert response.status_code == 303, response.text


def test_demo_serves_logs_and_assets_to_a_signed_in_user(home: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    command = [sys.executable, "-m", "kandji_bridge", "demo", "--port", "0", "--no-browser"]
    demo = subprocess.Popen(
        [*command, "--devices", "5", "--events", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, "demo exited early: " + "".join(lines) + demo.stderr.read()
            lines.append(line)
            if READY in line:
                break
        output = "".join(lines)
        assert "5 devices, 50 audit events" in output
        assert output.count("ok  ") == 5, output
        url, password = re.search(r"Sign in at (\S+) as demo with password (\S+)", output).groups()
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
            sign_in(client, password)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events = client.get(
                    "/api/logs/events", params={"from": "2000-01-01T00:00:00Z"}
                ).json()
                records = client.get("/api/collections/Demo devices/records").json()
                if records.get("total") == 5 and events.get("events"):
                    break
                time.sleep(1)
            assert records["total"] == 5, records
            assert events["events"], events
            # Both tokens' permissions are known, shown on Sources and on the mapping.
            granted = {s["name"]: s["permissions"] for s in client.get("/api/sources").json()}
            assert AUDIT_EVENTS.label in granted["demo"] and DEVICE_LIST.label in granted["demo"]
            only = granted["demo-devices-only"]
            assert only is not None and DEVICE_LIST.label in only and AUDIT_EVENTS.label not in only
            sources_page = client.get("/sources").text
            assert "permissions not checked yet" not in sources_page
            # The demo's source polls the local simulator at the demo's own interval, as its
            # start message says; the one without audit events only shows its refusal, at the
            # product's default.
            assert f"(polled every {DEMO_POLL_INTERVAL} s;" in output
            intervals = {s["name"]: s["poll_interval"] for s in client.get("/api/sources").json()}
            assert intervals == {
                "demo": DEMO_POLL_INTERVAL,
                "demo-devices-only": DEFAULT_POLL_INTERVAL,
            }
    finally:
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 0, stderr
    assert "Stopped." in stdout
    assert "Traceback" not in stderr
