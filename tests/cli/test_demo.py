"""`demo`, the README's first command: a new user sees a tenant verified and registered."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = "demo ready"


def test_demo_registers_a_verified_source_that_other_commands_can_use(home: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kandji_bridge",
            "demo",
            "--port",
            "0",
            "--devices",
            "5",
            "--events",
            "50",
            "--no-browser",
        ],
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
        allowed = next(
            line.split("=", 1)[1].strip()
            for line in lines
            if "KANDJI_BRIDGE_ALLOWED_HOSTS=" in line
        )
        verify = subprocess.run(
            [sys.executable, "-m", "kandji_bridge", "verify", "demo"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "KANDJI_BRIDGE_ALLOWED_HOSTS": allowed},
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=30)
    assert demo.returncode == 0, stderr
    assert "Stopped." in stdout
    assert "Traceback" not in stderr
