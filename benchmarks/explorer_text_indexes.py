"""Measure data-skipping indexes for the explorer's text search (a case-insensitive substring of
rawLog) on one month of an explorer store (benchmarks/explorer.py --store DIR).

Each candidate gets a table of its own holding the same month (copied from `kandji_logs`, so the
copy's time is the engine's cost of writing those rows with that index), then each text is
counted over it: the granules the index leaves to read, and the median wall and CPU time. A month
has the density of the full year, so the share of granules left is what a year would read.

    python benchmarks/explorer_text_indexes.py --store /work/s5/explorer50m --runs 3
"""

# Every value reaches SQL as an int or a constant of this file, hence no S608 findings to act on.
# ruff: noqa: S608

import argparse
import re
import statistics
import time

from kandji_bridge.logs.schema import LOGS_DDL, LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore

COPY = "kandji_logs_candidate"
TEXTS = ("recovery", "mac-4242", "81.0.")
# name, the INDEX clause (empty: none), how a text is matched with it
CANDIDATES = (
    ("no index (ILIKE)", "", "rawLog ILIKE '%{text}%'"),
    (
        "ngrambf_v1(3) on lowerUTF8(rawLog)",
        "INDEX raw_ngrams lowerUTF8(rawLog) TYPE ngrambf_v1(3, 65536, 3, 0) GRANULARITY 1",
        "lowerUTF8(rawLog) LIKE '%{text}%'",
    ),
    (
        "tokenbf_v1 on lowerUTF8(rawLog)",
        "INDEX raw_tokens lowerUTF8(rawLog) TYPE tokenbf_v1(65536, 3, 0) GRANULARITY 1",
        "lowerUTF8(rawLog) LIKE '%{text}%'",
    ),
    (
        "text index, ngrams(3), lowerUTF8",
        "INDEX raw_text rawLog TYPE text(tokenizer = ngrams(3), preprocessor = lowerUTF8(rawLog))",
        "rawLog ILIKE '%{text}%' AND hasAllTokens(rawLog, '{text}')",
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="an explorer benchmark store")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    store = ChdbLogStore(args.store)
    try:
        month = store.query(
            f"SELECT toYYYYMM(max(eventTime) - toIntervalMonth(1)) FROM {LOGS_TABLE}"
        ).rows[0][0]
        print(f"Month {month}; median of {args.runs} runs after a warm-up\n")
        print("| candidate | copy s (CPU s) | text | granules read | wall ms | CPU ms | rows |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for name, index, condition in CANDIDATES:
            measure(store, name, index, condition, int(month), args.runs)
    finally:
        store.query(f"DROP TABLE IF EXISTS {COPY}", read_only=False)
        store.close()


def measure(store: ChdbLogStore, name: str, index: str, condition: str, month: int, runs: int):
    store.query(f"DROP TABLE IF EXISTS {COPY}", read_only=False)
    ddl = LOGS_DDL.replace(f"EXISTS {LOGS_TABLE} (", f"EXISTS {COPY} (")
    if index:
        ddl = ddl.replace("\n)\nENGINE", f",\n    {index}\n)\nENGINE")
    store.query(ddl, read_only=False)
    wall, cpu = time.perf_counter(), time.process_time()
    store.query(
        f"INSERT INTO {COPY} SELECT * FROM {LOGS_TABLE} WHERE toYYYYMM(eventTime) = {month}",
        read_only=False,
    )
    store.query(f"OPTIMIZE TABLE {COPY} FINAL", read_only=False)
    copied = f"{time.perf_counter() - wall:.1f} ({time.process_time() - cpu:.1f})"
    for text in TEXTS:
        sql = f"SELECT count() FROM {COPY} WHERE {condition.format(text=text)}"
        plan = "\n".join(row[0] for row in store.query(f"EXPLAIN indexes = 1 {sql}").rows)
        granules = re.findall(r"Granules: (\d+)/(\d+)", plan)
        read, total = granules[-1] if granules else ("?", "?")
        store.query(sql)
        walls, cpus = [], []
        for _ in range(runs):
            started, used = time.perf_counter(), time.process_time()
            rows = store.query(sql).rows[0][0]
            walls.append((time.perf_counter() - started) * 1000)
            cpus.append((time.process_time() - used) * 1000)
        print(
            f"| {name} | {copied} | `{text}` | {read}/{total} | {statistics.median(walls):,.0f} "
            f"| {statistics.median(cpus):,.0f} | {int(rows):,} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
