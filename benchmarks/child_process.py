"""A command a benchmark starts (serve, a simulated tenant): its stdout read line by line in a
thread so that a line can be awaited, its stderr kept in a log file, and a stop as Ctrl-C gives
(SIGTERM, then a kill if it does not end)."""

import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.popen = subprocess.Popen(
                args, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], seconds: float) -> str:
        """The first group of the first line matching `pattern`; SystemExit with the log when the
        process ends or `seconds` pass first."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if match := pattern.search(line):
                return match.group(1)
            if time.monotonic() > deadline or self.popen.poll() is not None:
                command = " ".join(str(arg) for arg in self.popen.args[1:])  # type: ignore[union-attr]
                raise SystemExit(f"{command} did not start: {self.log.read_text()}")

    def stop(self) -> int:
        """Stop it as Ctrl-C would; its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=30)
