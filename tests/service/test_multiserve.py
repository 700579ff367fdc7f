"""Several `serve` processes: an embedded store has one owner, and a second serve on it is
refused with who owns it; serves on one PostgreSQL state DB answer for each other."""

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx

from kandji_bridge.service.advert import ADVERT_FILE

from .test_serve import CLI, serve_process


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
