"""`demo` shows detections at work: the simulated tenant plays two attacks and the pack's alerts
appear on the Alerts API and page (within two minutes of the start; the wait below is only a
bound, so a loaded machine does not fail it)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.test_demo import READY, sign_in

EXPECTED = {
    "kandji-api-token-sensitive-permissions",
    "kandji-delete-burst",
    "kandji-secret-viewed-by-new-actor",
}


def test_demo_alerts_fire_soon_after_start(home: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    command = [sys.executable, "-m", "kandji_bridge", "demo", "--port", "0", "--no-browser"]
    started = time.monotonic()
    demo = subprocess.Popen(
        [*command, "--devices", "30", "--events", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        while READY not in (line := demo.stdout.readline()):
            assert line, "demo exited early: " + "".join(lines) + demo.stderr.read()
            lines.append(line)
        output = "".join(lines)
        assert "Enabled the detection pack" in output
        url, password = re.search(r"Sign in at (\S+) as demo with password (\S+)", output).groups()
        with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
            sign_in(client, password)
            fired: set[str] = set()
            while time.monotonic() - started < 300 and not fired >= EXPECTED:
                fired = {alert["detection"] for alert in client.get("/api/alerts").json()}
                time.sleep(2)
            assert fired >= EXPECTED, fired
            print(f"alerts after {time.monotonic() - started:.0f} s")
            page = client.get("/alerts")
            assert "Kandji Burst of Deletes by One Actor" in page.text
    finally:
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=60)
    assert demo.returncode == 0, stderr
    assert "Traceback" not in stderr
