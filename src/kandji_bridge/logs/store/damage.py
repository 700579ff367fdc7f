"""Damaged parts: what the engine could not read and moved aside, and the sentence that tells the
user which events are missing and how to get them back."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kandji_bridge.logs.schema import LOGS_TABLE


@dataclass(frozen=True)
class DamagedPart:
    """A part of a table the engine could not read and moved aside (into `detached/`): its rows
    are missing from every query until it is restored or its events are collected again."""

    table: str
    name: str  # as moved, e.g. broken-on-start_202610_1_1_1
    reason: str  # the engine's prefix: broken-on-start, unexpected, ...
    path: str
    partition: str  # kandji_logs: the month, YYYYMM
    rows: int | None  # from the part's count.txt, when the store is on this machine


# Why the engine moves a part aside that are damage; a part detached by hand has no reason.
DAMAGE_REASONS = ("broken", "unexpected", "covered-by-broken", "noquorum")


def part_rows(path: str) -> int | None:
    try:
        return int((Path(path) / "count.txt").read_text())
    except (OSError, ValueError):
        return None


def describe_damage(parts: Sequence[DamagedPart], *, in_web: bool = False) -> str | None:
    """One sentence for the user: which parts were moved aside, where, and how to recover (on a
    source's page in the web UI, with `logs resync` in the CLI)."""
    if not parts:
        return None
    described = []
    for part in parts:
        rows = f"{part.rows:,} rows" if part.rows is not None else "rows not known"
        month = part.partition
        period = ""
        if part.table == LOGS_TABLE and len(month) == 6 and month.isdigit():
            first = datetime(int(month[:4]), int(month[4:]), 1)
            last = datetime(first.year + first.month // 12, first.month % 12 + 1, 1) - timedelta(
                days=1
            )
            dates = (
                f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
                if in_web
                else f"--from {first:%Y-%m-%d} --to {last:%Y-%m-%d}"
            )
            period = f" of {first:%Y-%m} ({dates})"
        described.append(f"{part.table}{period}, {rows}, moved to {part.path}")
    again = (
        "on each source's page under Sources (Collect a period again)"
        if in_web
        else "with `kandji-bridge logs resync SOURCE --from ... --to ...`"
    )
    return (
        f"The log store found {len(parts)} damaged part{'s' if len(parts) > 1 else ''} it could "
        f"not read and moved aside, so their events are missing from queries: "
        f"{'; '.join(described)}; restore the store from a backup, or collect that period again "
        f"{again}, then delete the moved folder to clear this notice."
    )
