"""An idle `serve` hands back the log engine's pages that its last work read.

Most of an idle serve's resident memory is the embedded engine's library (chDB), file pages
that stay resident once read. serve hands them back once its store is open, but work reads them
again: a backfill about 100 MB, a poll that stores events 20-60 MB (the insert, then the merges),
and they stay until the kernel runs short of memory. So every `CHECK_SECONDS` serve looks: when it
was quiet since the last look (no job running, under `QUIET_CPU_SHARE` of a core) and its
file-backed resident memory has grown by more than `GROWTH_KB` since the last hand-back, it hands
the engine's pages back again (`release_engine_pages`). A quiet tick reads almost none of them,
so this happens once after each piece of work, not on every look. The price is the next write
reading its pages back from the file: about 0.1 s and 30 ms of CPU for a poll
(benchmarks/idle_hand_back.py; docs/benchmarks-log.md, "An idle serve within 250 MB"); a busy
serve is never quiet, and pays nothing.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kandji_bridge.logs.store import release_engine_pages

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
# A detections tick with nothing due uses about 30 ms of CPU every 5 s (0.6 % of a core).
QUIET_CPU_SHARE = 0.05
# A quiet serve's file pages grow by a few MB at most; a poll that stores events, 20-60 MB.
GROWTH_KB = 16 * 1024


@dataclass
class IdleWatch:
    """What the last look saw: the process's CPU seconds and when, and its file-backed resident
    memory (kB) right after the last hand-back."""

    cpu_seconds: float
    looked_at: float
    kept_kb: int

    def hand_back_due(self, *, busy: bool, cpu_seconds: float, now: float, file_kb: int) -> bool:
        """Whether serve was quiet since the last look and work has read pages since the last
        hand-back; records this look."""
        used = cpu_seconds - self.cpu_seconds
        quiet = not busy and used <= QUIET_CPU_SHARE * (now - self.looked_at)
        self.cpu_seconds, self.looked_at = cpu_seconds, now
        return quiet and file_kb - self.kept_kb > GROWTH_KB


def resident_file_kb() -> int:
    """This process's resident file-backed memory (RssFile), in kB; 0 where /proc has none."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return 0


def hand_back() -> int:
    """Hand the engine's pages back now; this process's resident file-backed memory after, kB."""
    release_engine_pages()
    return resident_file_kb()


async def hand_back_when_idle(busy: Callable[[], bool]) -> None:
    """Until cancelled: hand the engine's pages back whenever serve goes quiet after work.
    `busy()` says whether a job is running."""
    watch = IdleWatch(time.process_time(), time.monotonic(), resident_file_kb())
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        before = resident_file_kb()
        due = watch.hand_back_due(
            busy=busy(), cpu_seconds=time.process_time(), now=time.monotonic(), file_kb=before
        )
        if due:
            watch.kept_kb = await asyncio.to_thread(hand_back)
            log.info(
                "Idle after work: handed back %d MB of the log engine's pages",
                (before - watch.kept_kb) // 1024,
            )
