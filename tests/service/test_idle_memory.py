"""An idle serve hands back the log engine's pages that its last work read
(service/idle_memory.py): they were most of its resident memory after a backfill."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.service.idle_memory import GROWTH_KB, IdleWatch

from .helpers import wait_until
from .test_serve import CLI, cli_env, serve_process

HANDED_BACK = "Idle after work: handed back"


def test_pages_are_handed_back_only_when_serve_is_quiet_after_work() -> None:
    kept = 60_000
    grown = kept + GROWTH_KB + 1
    watch = IdleWatch(cpu_seconds=10.0, looked_at=100.0, kept_kb=kept)
    # A job is running (a poll, a sync): not now, whatever it read.
    assert not watch.hand_back_due(busy=True, cpu_seconds=10.1, now=105.0, file_kb=grown)
    # No job, but the process worked since the last look (a page, a user query, merges).
    assert not watch.hand_back_due(busy=False, cpu_seconds=11.0, now=110.0, file_kb=grown)
    # Quiet, and little was read since the last hand-back: nothing to give.
    assert not watch.hand_back_due(busy=False, cpu_seconds=11.01, now=115.0, file_kb=kept + 100)
    # Quiet after work that read pages.
    assert watch.hand_back_due(busy=False, cpu_seconds=11.02, now=120.0, file_kb=grown)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only (MADV_PAGEOUT, /proc)")
def test_serve_hands_back_the_engine_pages_once_idle_after_a_backfill(
    home: Path, tmp_path: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=3, events=2_000, history_days=30, seed=67)
    env = cli_env(home, sim)
    with open_state(load_settings(env=env)) as state:
        source = sources.add_source(state, "acme", sim.base_url, sim.token)
    log = tmp_path / "serve.log"
    with serve_process(env, log, debug=True) as (_process, _url):
        wait_until(lambda: HANDED_BACK in log.read_text(), "serve idle after the backfill", 180)
        text = log.read_text()
        # After the backfill's pass, not during it.
        assert text.index(f"Job source:{source.id} ended") < text.index(HANDED_BACK), text
        # The store answers as before: what it runs next reads its pages back.
        queried = subprocess.run(
            [*CLI, "logs", "query", "SELECT count() AS n FROM kandji_logs", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout) == {"n": 2_000}
