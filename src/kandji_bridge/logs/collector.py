"""The audit-log collector: Kandji's audit events into the log store, each stored exactly once.

Source → transform → sink, one page at a time, so memory stays flat however long the history.

Exactly once, whatever crashes: the checkpoint is never written anywhere, it is derived from what
the store holds (the latest stored eventTime). A pass asks Kandji for everything from that time
minus an overlap window, oldest first, and drops the events whose Kandji id is already stored.
A page is inserted oldest month first, one statement a month (an insert is all-or-nothing only
within one partition), so whatever a crash leaves stored is an unbroken prefix of the history;
the next pass starts again from its end. The overlap window also catches events that Kandji
records late with an `occurred_at` a little in the past.
"""

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kandji_bridge.errors import BridgeError
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import KandjiError
from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.store import LogStore
from kandji_bridge.logs.transform import transform

# Kandji stamps occurred_at when it records an event, so late arrivals are seconds late at most.
DEFAULT_OVERLAP = timedelta(minutes=2)
KANDJI_HISTORY_DAYS = 366  # Kandji keeps a year of audit history


@dataclass(frozen=True)
class CollectorSource:
    """What the collector needs to know of a source (its token goes to the client, not here)."""

    id: str
    name: str
    retention_days: int


@dataclass
class PassResult:
    """What one collection pass did; `error` is set when the pass stopped early."""

    backfill: bool
    start: datetime | None  # the start_date asked of Kandji; None: all the history it keeps
    pages: int = 0
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    covered_until: datetime | None = None  # occurred_at of the newest event seen
    error: str | None = None
    stopped: bool = False  # ended early by `stop`, after storing the page in hand
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class SourceBusy(BridgeError):
    """Another process is collecting this source right now."""


@contextmanager
def source_lock(home: Path, source: CollectorSource) -> Iterator[None]:
    """Hold the source for this process, so two runs never collect the same source at once."""
    folder = home / "locks"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / f"source-{source.id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SourceBusy(
                f"Source {source.name} is being collected by another kandji-bridge process; "
                "wait for it to finish (or stop it) and try again."
            ) from None
        yield
    finally:
        os.close(fd)


def pass_start(
    store: LogStore, source: CollectorSource, backfill_days: int | None, overlap: timedelta
) -> tuple[bool, datetime | None]:
    """Where the next pass starts: the stored history's end minus the overlap, else a backfill.

    A backfill never asks for events older than the source's retention: the store's TTL would
    drop them as soon as they landed.
    """
    checkpoint = store.latest_checkpoint(source.id)
    if checkpoint is not None:
        return False, checkpoint.event_time - overlap
    days = min(backfill_days or source.retention_days, source.retention_days)
    if days >= KANDJI_HISTORY_DAYS:
        return True, None  # everything Kandji still holds
    return True, datetime.now(UTC) - timedelta(days=days)


async def collect(
    client: KandjiClient,
    store: LogStore,
    source: CollectorSource,
    workspace_id: str,
    *,
    enricher: Enricher | None = None,
    backfill_days: int | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    on_page: Callable[[PassResult], None] | None = None,
    stop: threading.Event | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> PassResult:
    """One pass: every event Kandji has after the stored history, normalized, enriched, stored.

    A Kandji error ends the pass with `error` set; what was stored before it stays stored.
    Setting `stop` ends the pass after the page in hand is stored (a service shutting down);
    the next pass resumes from there. `window` (start, end) collects that period again instead
    (`logs resync`): the events already stored are skipped as in any pass.
    """
    if window is None:
        backfill, start = pass_start(store, source, backfill_days, overlap)
        end = None
    else:
        (start, end), backfill = window, False
    result = PassResult(backfill=backfill, start=start)
    try:
        async for page in client.iter_audit_pages(
            sort_by="occurred_at", start_date=start, end_date=end
        ):
            context = NormalizeContext(workspace_id, source.id, source.retention_days)
            out = transform(page.events, context, enricher)
            rows = _unique(out.rows)
            # Quarantine first: once the page's rows are stored the checkpoint is past these.
            if out.quarantine:
                result.quarantined += store.insert_quarantine(out.quarantine)
            if rows:
                times = [row["eventTime"] for row in rows]
                stored = store.existing_event_ids(
                    source.id, (row["eventID"] for row in rows), between=(min(times), max(times))
                )
                new_rows = [row for row in rows if row["eventID"] not in stored]
                for month in _by_month(new_rows):
                    store.insert(month)
                result.stored += len(new_rows)
                result.duplicates += len(out.rows) - len(new_rows)
                result.covered_until = max(times)
            result.pages += 1
            result.fetched += len(page.events)
            if on_page is not None:
                on_page(result)
            if stop is not None and stop.is_set():
                result.stopped = True
                break
    except KandjiError as exc:
        result.error = str(exc)
    result.finished = time.monotonic()
    return result


def _by_month(rows: list[dict]) -> list[list[dict]]:
    """The rows split by the store's partition (the month of eventTime), oldest month first."""
    months: dict[tuple[int, int], list[dict]] = {}
    for row in rows:
        months.setdefault((row["eventTime"].year, row["eventTime"].month), []).append(row)
    return [months[key] for key in sorted(months)]


def _unique(rows: list[dict]) -> list[dict]:
    """The rows with the first of any repeated Kandji id in the page (a page may repeat one)."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        if row["eventID"] not in seen:
            seen.add(row["eventID"])
            unique.append(row)
    return unique
