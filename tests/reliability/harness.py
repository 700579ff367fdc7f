"""Run real `kandji-bridge` processes against a simulator, kill them with SIGKILL, check after.

A seed drives every random choice (when to kill, what changes in the tenant between runs), so a
failure replays with KANDJI_BRIDGE_CRASH_SEED=<seed>; the seed is in every assertion message.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from kandji_bridge.kandji.simulator.server import RunningSimulator

CLI = (sys.executable, "-m", "kandji_bridge")


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
        }

    def attempt(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def run(self, *args: str, timeout: float = 600) -> str:
        """Run a command to its end; its stdout. A failure says the command and the seed."""
        done = self.attempt(*args, timeout=timeout)
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
            assert report.finished <= 3 * kills, (
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
                continue
            finally:
                stderr = process.stderr.read().decode() if process.stderr else ""
                if process.stderr:
                    process.stderr.close()
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


def wait_until(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)
