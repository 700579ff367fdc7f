"""What an idle serve's hand-back of the engine's pages costs the next poll.

An idle `serve` hands chDB's library pages back once it is quiet after work
(service/idle_memory.py); the next write reads them back from the file. This opens a store,
backfills 2,000 events, then runs `--rounds` pairs of the work of a poll that stores 3 new events
(transform, the stored ids, insert, count), alternately right after a hand-back and without one,
and reports each side's wall time, CPU time (every thread of the process) and major page faults:
medians. Run it with no other process of this installation using chDB (the kernel keeps pages
another process maps, and then nothing is handed back).

    python benchmarks/idle_hand_back.py --rounds 7
"""

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from kandji_bridge.logs.enrich import Enricher, build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.store import ChdbLogStore, release_engine_pages
from kandji_bridge.logs.transform import transform
from logs_pipeline import Event, generate, pages

HISTORY = 2_000
NEW_PER_POLL = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="pairs of polls")
    args = parser.parse_args()
    events = generate(HISTORY + NEW_PER_POLL * 2 * args.rounds)
    ctx = NormalizeContext("ws-bench", "src-bench", 36500)
    enricher = build_enricher()
    figures: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="kb-hand-back-") as folder:
        store = ChdbLogStore(str(Path(folder) / "logs"))
        try:
            store.ensure_schema()
            for page in pages(events[:HISTORY]):
                store.insert(
                    transform(page, replace(ctx, received_at=datetime.now(UTC)), enricher).rows
                )
            time.sleep(3)  # the backfill's merges
            done = HISTORY
            for _ in range(args.rounds):
                for handed_back in (True, False):
                    if handed_back:
                        release_engine_pages()
                    time.sleep(2)
                    batch = events[done : done + NEW_PER_POLL]
                    done += NEW_PER_POLL
                    figures[handed_back].append(poll(store, batch, ctx, enricher))
        finally:
            store.close()
    print("| next poll | wall (median) | CPU (median) | major faults (median) | rounds |")
    print("|---|---:|---:|---:|---:|")
    for handed_back, runs in figures.items():
        label = "after a hand-back" if handed_back else "without one"
        wall = statistics.median(run[0] for run in runs) * 1000
        cpu = statistics.median(run[1] for run in runs) * 1000
        faults = statistics.median(run[2] for run in runs)
        print(f"| {label} | {wall:.0f} ms | {cpu:.0f} ms | {faults:.0f} | {len(runs)} |")


def poll(
    store: ChdbLogStore, batch: list[Event], ctx: NormalizeContext, enricher: Enricher
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and major faults of one small poll's store work."""
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    rows = transform(batch, replace(ctx, received_at=datetime.now(UTC)), enricher).rows
    between = (rows[0]["eventTime"], rows[-1]["eventTime"])
    store.existing_event_ids(ctx.source_id, [row["kandjiEventId"] for row in rows], between)
    store.insert(rows)
    store.count()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, after.ru_majflt - before.ru_majflt


if __name__ == "__main__":
    main()
