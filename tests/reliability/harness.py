"""Run real `kandji-bridge` processes against a simulator, kill them with SIGKILL, check after.

A seed drives every random choice (when to kill, what changes in the tenant between runs), so a
failure replays with KANDJI_BRIDGE_CRASH_SEED=<seed>; the seed is in every assertion message.
"""

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from kandji_bridge.simulator.server import RunningSimulator

CLI = (sys.executable, "-m", "kandji_bridge")
SERVING = re.compile(r"Serving on (http://\S+)")
# What a sync says while a killed run's lease on its job has not run out yet.
BUSY = "by another process (`serve` or another"
LEASE_SECONDS = "2"  # a killed run's job is free again 2 s later


def crash_seed() -> int:
    """The seed from KANDJI_BRIDGE_CRASH_SEED, or a new one (printed, so a failure can replay)."""
    chosen = os.environ.get("KANDJI_BRIDGE_CRASH_SEED")
    seed = int(chosen) if chosen else random.SystemRandom().randrange(2**32)
    print(f"crash harness seed {seed}: replay with KANDJI_BRIDGE_CRASH_SEED={seed}")
    return seed


@dataclass
class KillReport:
    kills: int = 0  # processes killed with SIGKILL while running
    finished: int = 0  # runs that ended on their own before their kill time
    delays: list[float] = field(default_factory=list)


@dataclass
class CrashHarness:
    home: Path
    sim: RunningSimulator
    seed: int
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.env = {
            **os.environ,
            "KANDJI_BRIDGE_HOME": str(self.home),
            "KANDJI_BRIDGE_ALLOWED_HOSTS": self.sim.host_port,
            "KANDJI_TOKEN": self.sim.token,
            "KANDJI_BRIDGE_LEASE_SECONDS": LEASE_SECONDS,
        }

    def attempt(
        self, *args: str, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a command to its end; a sync refused while a killed run's lease lasts is retried."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                input=input,
            )  # fmt: skip
            if not (done.returncode == 1 and BUSY in done.stderr) or time.monotonic() > deadline:
                return done
            time.sleep(0.25)

    def run(self, *args: str, timeout: float = 600, input: str | None = None) -> str:
        """Run a command to its end; its stdout. A failure says the command and the seed."""
        done = self.attempt(*args, timeout=timeout, input=input)
        assert done.returncode == 0, (
            f"seed {self.seed}: `{' '.join(args)}` exited {done.returncode}: {done.stderr}"
        )
        return done.stdout

    def kill_runs(
        self,
        args: tuple[str, ...],
        kills: int,
        longest: float,
        between: Callable[[], None],
        check: Callable[[], None] | None = None,
    ) -> KillReport:
        """Start `args` again and again, SIGKILL it at a random moment, until `kills` kills.

        `between` changes the tenant before each start (so every run has work); `check`, if
        given, runs after each kill (the invariants must hold at every crash, not only at the end).
        """
        report = KillReport()
        while report.kills < kills:
            # Bounded, but loose: on a fast moment a short run often ends before its kill time.
            assert report.finished <= 10 * kills + 20, (
                f"seed {self.seed}: runs keep ending before their kill time; raise the load"
            )
            between()
            delay = self.rng.uniform(0.2, longest)
            process = subprocess.Popen(
                [*CLI, *args], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                report.kills += 1
                report.delays.append(delay)
                if check is not None:
                    check()
                # The killed run's lease on its job runs out: the next run starts on a free job
                # (else the kill could land while it is only being refused).
                time.sleep(float(LEASE_SECONDS))
                continue
            finally:
                stderr = process.stderr.read().decode() if process.stderr else ""
                if process.stderr:
                    process.stderr.close()
            if process.returncode == 1 and BUSY in stderr:
                time.sleep(0.25)  # the last killed run's lease has not run out yet
                continue
            assert process.returncode == 0, (
                f"seed {self.seed}: `{' '.join(args)}` exited {process.returncode}: {stderr}"
            )
            report.finished += 1
        return report

    def json_lines(self, *args: str) -> list:
        """The rows a `... --format json` command prints (one JSON value a line, or one array)."""
        text = self.run(*args).strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]


class ServeProcess:
    """A real `kandji-bridge serve` on a free port of 127.0.0.1; its stderr goes to `log`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=stderr,
                text=True,
            )  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url: str | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def wait_serving(self, seconds: float) -> str | None:
        """The URL once serve says it serves, or None if it does not within `seconds`."""
        deadline = time.monotonic() + seconds
        while self.url is None:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if match := SERVING.search(line):
                self.url = match.group(1)
        return self.url

    def api(self, method: str, path: str, token: str) -> httpx.Response:
        assert self.url is not None
        return httpx.request(
            method, f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._reader.join(timeout=10)


def wait_until(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)
