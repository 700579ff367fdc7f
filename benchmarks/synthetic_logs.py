"""Fill a chDB log store with synthetic Kandji events, generated inside the engine.

Each benchmark writes its own INSERT ... SELECT FROM numbers() template (the events it needs);
this runs it in chunks over a year ending at `end` and merges the parts, as a store that has
lived a year would be.
"""

import time

from kandji_bridge.logs.schema import COLUMN_NAMES, LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore

YEAR = 365 * 86400
CHUNK = 1_000_000  # rows per INSERT ... SELECT


def fill(store: ChdbLogStore, template: str, columns: list[str], total: int, end: int) -> float:
    """Generate `total` events ending at `end` (Unix seconds); returns the seconds it took.

    `template` is formatted with columns, end, span, total, first and count.
    """
    assert set(columns) <= set(COLUMN_NAMES)
    started = time.perf_counter()
    for first in range(0, total, CHUNK):
        count = min(CHUNK, total - first)
        store.query(
            template.format(
                columns=", ".join(columns),
                end=end,
                span=YEAR,
                total=total,
                first=first,
                count=count,
            ),
            read_only=False,
        )
        print(f"  generated {first + count:,} / {total:,}", flush=True)
    store.query(f"OPTIMIZE TABLE {LOGS_TABLE} FINAL", read_only=False)
    return time.perf_counter() - started
