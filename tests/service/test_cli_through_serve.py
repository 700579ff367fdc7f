"""CLI commands that need the embedded log store work while `serve` holds it: they go through the
running service, found by the advert it writes in the home; a stale advert is ignored."""

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.service.advert import ADVERT_FILE

from .test_serve import CLI, cli_env, serve_process


def kandji_bridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def test_logs_query_and_sync_go_through_a_running_serve(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=3, events=300, history_days=30, seed=61)
    env = cli_env(home, sim)
    with open_state(load_settings(env=env)) as state:
        sources.add_source(state, "acme", sim.base_url, sim.token)
    with serve_process(env, tmp_path / "serve.log") as (process, url):
        advert = home / ADVERT_FILE
        assert stat.S_IMODE(advert.stat().st_mode) == 0o600
        text = advert.read_text()
        assert sim.token not in text and json.loads(text)["url"] == url

        synced = kandji_bridge(env, "logs", "sync", "acme")
        assert synced.returncode == 0, synced.stderr
        assert "Polled acme through the running service: 300 events stored" in synced.stdout

        queried = kandji_bridge(
            env, "logs", "query", "SELECT count() AS n FROM kandji_logs", "--format", "json"
        )
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout) == {"n": 300}

        refused = kandji_bridge(env, "logs", "query", "DROP TABLE kandji_logs")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith("Error: ")

        missing = kandji_bridge(env, "logs", "sync", "nope")
        assert missing.returncode == 1 and "nope" in missing.stderr, missing.stderr

        # The local credential reaches only what the CLI needs, nothing else of the API.
        credential = json.loads(text)["credential"]
        other = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {credential}"})
        assert other.status_code == 401

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert not (home / ADVERT_FILE).exists(), "a stopped serve left its advert"


def test_a_stale_advert_is_ignored(home: Path, simulator_factory) -> None:
    """A serve that died (its pid gone), or a pid alive that does not answer as serve: the
    command opens the store itself."""
    sim = simulator_factory(devices=1, events=0, history_days=30, seed=62)
    env = cli_env(home, sim)
    dead = subprocess.Popen(["true"])
    dead.wait()
    home.mkdir(parents=True, exist_ok=True)
    for pid in (dead.pid, os.getpid()):
        advert = {
            "url": "http://127.0.0.1:9",
            "pid": pid,
            "log_store": f"chdb://{home / 'logs'}",
            "credential": "kbl_x",
        }
        (home / ADVERT_FILE).write_text(json.dumps(advert))
        queried = kandji_bridge(env, "logs", "query", "SELECT 1 AS one", "--format", "json")
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout) == {"one": 1}
