"""`kandji-bridge demo`: how long from its start until its alerts show on the Alerts API.

Each run starts `python -m kandji_bridge demo --no-browser` in a fresh home (a new tenant, so its
two attacks play), signs in as the demo prints, and reads `/api/alerts` every second until every
alert the demo promises is there (or `--timeout` passes). Reported per run: the seconds from the
process's start to "demo ready", to the first alert, and to the last of the promised alerts; then
the medians.

`--tree SRC` (repeatable) runs the demo from other source trees (their `src` folder put first on
PYTHONPATH), alternately run by run, so a before/after comparison is made in one session on a
noisy machine:

    git archive BEFORE src | tar -x -C /tmp/before
    python benchmarks/demo_alerts.py --runs 5 --tree /tmp/before/src --tree src
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx

READY = "demo ready"
SIGN_IN = re.compile(r"Sign in at (\S+) as demo with password (\S+)")
PROMISED = (
    "kandji-api-token-sensitive-permissions",
    "kandji-delete-burst",
    "kandji-secret-viewed-by-new-actor",
)


@dataclass
class Run:
    ready: float
    first: float | None = None
    fired: dict[str, float] = field(default_factory=dict)  # detection -> seconds after start

    @property
    def last(self) -> float | None:
        if not all(name in self.fired for name in PROMISED):
            return None
        return max(self.fired[name] for name in PROMISED)


def run_demo(src: str | None, devices: int, events: int, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="kb-demo-bench-") as home:
        env = {**os.environ, "KANDJI_BRIDGE_HOME": home}
        if src:
            env["PYTHONPATH"] = src
        command = [sys.executable, "-m", "kandji_bridge", "demo", "--port", "0", "--no-browser"]
        started = time.monotonic()
        demo = subprocess.Popen(
            [*command, "--devices", str(devices), "--events", str(events)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            lines = []
            while READY not in (line := demo.stdout.readline()):
                if not line:
                    raise SystemExit("the demo exited early:\n" + "".join(lines))
                lines.append(line)
            run = Run(ready=time.monotonic() - started)
            url, password = SIGN_IN.search("".join(lines)).groups()
            with httpx.Client(base_url=url, timeout=30) as client:
                sign_in(client, password)
                while time.monotonic() - started < timeout and run.last is None:
                    for alert in client.get("/api/alerts").json():
                        seen = time.monotonic() - started
                        run.fired.setdefault(alert["detection"], seen)
                        run.first = run.first if run.first is not None else seen
                    time.sleep(1)
            return run
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.communicate()


def sign_in(client: httpx.Client, password: str) -> None:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    client.post("/login", data={"username": "demo", "password": password, "csrf_token": csrf})


def shown(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", action="append", help="a source tree's src folder (repeatable)")
    parser.add_argument("--devices", type=int, default=30)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    trees = args.tree or [None]
    results: dict[str | None, list[Run]] = {tree: [] for tree in trees}
    for number in range(1, args.runs + 1):
        for tree in trees:
            load = os.getloadavg()[0]
            run = run_demo(tree, args.devices, args.events, args.timeout)
            results[tree].append(run)
            print(
                f"run {number} {tree or 'installed'}: ready {run.ready:.0f} s, first alert "
                f"{shown(run.first)} s, all promised {shown(run.last)} s (load average "
                f"{load:.1f}); " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(run.fired.items())),
                flush=True,
            )
    for tree, runs in results.items():
        firsts = [run.first for run in runs if run.first is not None]
        lasts = [run.last for run in runs if run.last is not None]
        print(
            f"{tree or 'installed'}: {len(runs)} runs; first alert median "
            f"{shown(statistics.median(firsts) if firsts else None)} s "
            f"({shown(min(firsts, default=None))}-{shown(max(firsts, default=None))}), "
            f"all promised median {shown(statistics.median(lasts) if lasts else None)} s "
            f"({shown(min(lasts, default=None))}-{shown(max(lasts, default=None))}), "
            f"{len(runs) - len(lasts)} runs without all of them",
            flush=True,
        )


if __name__ == "__main__":
    main()
