"""Load, slow suite: one `serve` polling 20 sources over 4 simulated tenants keeps every source's
lag under 2 poll intervals. It runs benchmarks/serve_load.py (the larger run, with CPU and memory,
recorded in benchmarks/RESULTS.md) for a shorter time and reads its JSON result."""

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "serve_load.py"
POLL_INTERVAL = 10


@pytest.mark.slow
def test_serve_keeps_20_sources_under_2_poll_intervals_of_lag(home: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--tenants", "4", "--sources", "20",
            "--poll-interval", str(POLL_INTERVAL), "--minutes", "1.5", "--json",
        ],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["lags"]) == 20
    late = {name: lag["max"] for name, lag in result["lags"].items()}
    late = {name: seconds for name, seconds in late.items() if seconds >= 2 * POLL_INTERVAL}
    assert not late, f"sources lagging 2 poll intervals or more: {late}"
