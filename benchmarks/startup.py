"""Start-up cost: how long the CLI takes and how much memory it and an idle `serve` hold.

Each command runs as a fresh subprocess (`python -m kandji_bridge ...`), `--runs` times; the
median wall time and the median peak RSS (the child's ru_maxrss) are reported:

- `--help`;
- `source list` on a home with one source;
- `verify NAME` against a simulated tenant (`kandji-bridge simulate`, started once).

Then `serve` starts on that home (one simulator source, 2,000 events of history), backfills it,
and is left idle for `--idle-seconds`: its resident memory (/proc/PID/status VmRSS, median of a
sample a second over the last 5 s) and its peak (VmHWM) are reported. Linux only (/proc).

`--tree PYTHON[,SRC]` (repeatable) runs the same measurements with other interpreters (another
virtualenv: other dependencies) and source trees (their `src` folder put first on PYTHONPATH),
interleaved run by run, so a before/after comparison is made in one session on this noisy
machine:

    python benchmarks/startup.py                                  # this interpreter's package
    git archive BEFORE | tar -x -C /tmp/before
    python benchmarks/startup.py --tree .venv/bin/python,/tmp/before/src --tree .venv/bin/python
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from child_process import Process
from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state

BASE_URL = re.compile(r"base URL: (http://\S+)")
SERVING = re.compile(r"Serving on (http://\S+)")
TOKEN = "startup-benchmark-token"  # noqa: S105 (the simulated tenant's)
HISTORY_EVENTS = 2_000
STARTUP_SECONDS = 120


@dataclass
class Figures:
    """One source tree's samples: wall seconds and peak RSS (MB) by command; serve's RSS."""

    python: str
    env: dict[str, str]
    api_token: str
    wall: dict[str, list[float]] = field(default_factory=dict)
    peak_mb: dict[str, list[float]] = field(default_factory=dict)
    serve_idle_mb: list[float] = field(default_factory=list)
    serve_idle_file_mb: list[float] = field(default_factory=list)  # mapped files (the engine's)
    serve_peak_mb: list[float] = field(default_factory=list)


# Runs a command as its child and prints the child's wall time and peak RSS. The child is forked
# from this small process: one started from the benchmark itself (vfork, then exec) would report
# the benchmark's own peak, as Linux keeps ru_maxrss across exec.
MEASURE = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - started, usage.ru_maxrss)
"""


def run_once(python: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command run to its end; it must succeed."""
    child = subprocess.run(
        [python, "-c", MEASURE, "-m", "kandji_bridge", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    code, wall, peak_kb = child.stdout.split()[-3:]
    if code != "0":
        raise SystemExit(f"kandji-bridge {' '.join(args)} exited {code}: {child.stderr}")
    return float(wall), int(peak_kb) / 1024


def proc_status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def make_home(env: dict[str, str], url: str) -> str:
    """One source on the simulator and an account in env's home; the account's API token."""
    with open_state(load_settings(env=env)) as state:
        sources.add_source(state, "sim", url, TOKEN)
        users.create_user(state, "bench", "startup-benchmark-pw-1")
        return users.create_api_token(state, "bench", "startup benchmark")


def stored_events(client: httpx.Client) -> int:
    reply = client.post("/api/logs/query", json={"sql": "SELECT count() FROM kandji_logs"})
    return int(reply.json()["rows"][0][0]) if reply.status_code == 200 else -1


def measure_serve(tree: Figures, idle_seconds: float, log: Path) -> tuple[float, float, float]:
    """Start serve, wait for its backfill, leave it idle; its idle RSS, the part of it that is
    mapped files (chDB's library), and its peak RSS, in MB."""
    serve = Process([tree.python, "-m", "kandji_bridge", "serve", "--port", "0"], tree.env, log)
    try:
        url = serve.wait_for(SERVING, STARTUP_SECONDS)
        headers = {"Authorization": f"Bearer {tree.api_token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            deadline = time.monotonic() + STARTUP_SECONDS
            while stored_events(client) < HISTORY_EVENTS:
                if time.monotonic() > deadline:
                    raise SystemExit(f"serve did not store the history: {log.read_text()}")
                time.sleep(0.5)
        # Idle: no request from here on (a query would load what a user query needs).
        time.sleep(max(0.0, idle_seconds - 5))
        idle, files = [], []
        for _ in range(5):
            idle.append(proc_status_mb(serve.popen.pid, "VmRSS"))
            files.append(proc_status_mb(serve.popen.pid, "RssFile"))
            time.sleep(1)
        peak = proc_status_mb(serve.popen.pid, "VmHWM")
        return statistics.median(idle), statistics.median(files), peak
    finally:
        serve.stop()


def run(args: argparse.Namespace) -> dict[str, Figures]:
    trees = args.tree or [sys.executable]
    figures: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="kb-startup-") as folder:
        work = Path(folder)
        base = {k: v for k, v in os.environ.items() if not k.startswith("KANDJI_BRIDGE_")}
        simulator = Process(
            [sys.executable, "-m", "kandji_bridge", "simulate", "--host", "127.0.0.1", "--port",
             "0", "--devices", "10", "--events", str(HISTORY_EVENTS), "--history-days", "30",
             "--token", TOKEN],
            base,
            work / "simulator.log",
        )  # fmt: skip
        try:
            url = simulator.wait_for(BASE_URL, STARTUP_SECONDS)
            for number, tree in enumerate(trees):
                env = {
                    **base,
                    "KANDJI_BRIDGE_ALLOWED_HOSTS": url.removeprefix("http://"),
                    "KANDJI_TOKEN": TOKEN,
                }
                python, _, src = tree.partition(",")
                if src:
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
                env["KANDJI_BRIDGE_HOME"] = str(work / f"home-{number}")
                figures[tree] = Figures(python, env, make_home(env, url))
            commands = {
                "--help": ["--help"],
                "source list": ["source", "list"],
                "verify": ["verify", "sim"],
            }
            for _ in range(args.runs):
                for tree in trees:  # interleaved: the machine's noise falls on every tree alike
                    for label, command in commands.items():
                        wall, peak = run_once(figures[tree].python, command, figures[tree].env)
                        figures[tree].wall.setdefault(label, []).append(wall)
                        figures[tree].peak_mb.setdefault(label, []).append(peak)
            for _ in range(args.serve_runs):
                for number, tree in enumerate(trees):
                    idle, files, peak = measure_serve(
                        figures[tree], args.idle_seconds, work / f"serve-{number}.log"
                    )
                    figures[tree].serve_idle_mb.append(idle)
                    figures[tree].serve_idle_file_mb.append(files)
                    figures[tree].serve_peak_mb.append(peak)
        finally:
            simulator.stop()
    return figures


def report(figures: dict[str, Figures], args: argparse.Namespace) -> None:
    print(
        f"{args.runs} runs of each command, {args.serve_runs} of serve "
        f"({args.idle_seconds:g} s idle after a {HISTORY_EVENTS:,}-event backfill); medians; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| interpreter[,source tree] | figure | wall | peak RSS |")
    print("|---|---|---:|---:|")
    for tree, tree_figures in figures.items():
        name = tree
        for label, walls in tree_figures.wall.items():
            wall = statistics.median(walls)
            peak = statistics.median(tree_figures.peak_mb[label])
            print(f"| {name} | `{label}` | {wall:.2f} s | {peak:.0f} MB |")
        if tree_figures.serve_idle_mb:
            idle = statistics.median(tree_figures.serve_idle_mb)
            files = statistics.median(tree_figures.serve_idle_file_mb)
            peak = statistics.median(tree_figures.serve_peak_mb)
            print(
                f"| {name} | `serve` idle RSS (of it mapped files) / peak | | "
                f"{idle:.0f} MB ({files:.0f} MB) / {peak:.0f} MB |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command")
    parser.add_argument("--serve-runs", type=int, default=3, help="serve starts (0: none)")
    parser.add_argument("--idle-seconds", type=float, default=20, help="idle time before reading")
    parser.add_argument(
        "--tree",
        action="append",
        metavar="PYTHON[,SRC]",
        help="an interpreter and a src folder to measure (repeatable; interleaved)",
    )
    args = parser.parse_args()
    report(run(args), args)


if __name__ == "__main__":
    main()
