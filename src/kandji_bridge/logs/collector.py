"""The audit-log collector: Kandji's audit events into the log store, each stored exactly once.

Source → transform → sink, one page at a time, so memory stays flat however long the history.

Exactly once, whatever crashes: the checkpoint is never written anywhere, it is derived from what
the store holds (the latest stored eventTime). A pass asks Kandji for everything from that time
minus an overlap window, oldest first, and drops the events whose Kandji id is already stored.
A page is inserted oldest month first, one statement a month (an insert is all-or-nothing only
within one partition), so whatever a crash leaves stored is an unbroken prefix of the history;
the next pass starts again from its end. The overlap window also catches events that Kandji
records late with an `occurred_at` a little in the past.

Every element of a page is stored or quarantined, and none blocks the others:

- An element that is not an event (not an object, unreadable, no usable id or occurred_at, too
  large, ...) goes to `kandji_logs_quarantine` with its raw text and the reason; the rest of its
  page and the pages after it are stored. The quarantine keeps one entry per source and raw text,
  so the overlap window fetching it again adds nothing.
- An id repeated within one page: the first event with it is stored. A repeat with the very same
  text is counted as a duplicate; a repeat whose text differs is quarantined (Kandji sent two
  different events under one id, and the store keeps one row per id), so nothing it said is lost.
  An event whose id is already stored (fetched again by the overlap) is never stored again.
- An event dated in the future (beyond `CLOCK_SKEW` from now) is stored like any other: it is
  what Kandji holds, and quarantining it would hide a real event from searches and detections.
  The checkpoint leaves it out (only eventTimes up to now + CLOCK_SKEW count), so one event
  dated 2105 cannot make every later pass ask for events after 2105 and collect nothing. The
  overlap fetches it again each pass, and the id check drops it.
- An event the API returns with a time older than the checkpoint (recorded late, or a server
  that ignores start_date) is stored if its id is not: the id check covers the page's whole
  time range, and the checkpoint does not move backwards for it.
- Kandji may record an event late with an `occurred_at` before the checkpoint minus the overlap;
  asking from the checkpoint never returns it. So once a day (`REREAD`, kept per source in its
  lock file) a pass asks from the checkpoint minus a whole `REREAD` instead: a day's events
  fetched again and dropped by the id check, for the few recorded late. A re-read stopped early
  is not counted, so the next pass re-reads; the late events it stored are older than the
  checkpoint and do not move it, so exactly once holds through a crash in the middle of one.
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
from kandji_bridge.logs.store import LogStore, QuarantineEntry
from kandji_bridge.logs.transform import transform

# Kandji stamps occurred_at when it records an event, so late arrivals are seconds late at most.
DEFAULT_OVERLAP = timedelta(minutes=2)
# How far ahead of this machine's clock an event may be dated and still move the checkpoint.
CLOCK_SKEW = timedelta(minutes=5)
# How far back, and how often, a pass asks again for what it already has (see above).
REREAD = timedelta(hours=24)
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
    covered_until: datetime | None = None  # newest occurred_at seen, future-dated ones aside
    reread: bool = False  # asked from the checkpoint minus REREAD, not just the overlap
    error: str | None = None
    stopped: bool = False  # ended early by `stop`, after storing the page in hand
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


class SourceBusy(BridgeError):
    """Another process is collecting this source right now."""


@dataclass(frozen=True)
class SourceHold:
    """A source this process holds; its lock file keeps when the source was last re-read."""

    fd: int

    @property
    def reread_due(self) -> bool:
        """Whether no pass on this machine re-read the source in the last REREAD."""
        try:
            last = float(os.pread(self.fd, 32, 0).decode())
        except ValueError:
            return True
        return not 0 <= time.time() - last < REREAD.total_seconds()

    def record(self, result: PassResult) -> None:
        """Note a re-read that ran to its end, so the next one is REREAD away."""
        if result.reread and result.error is None and not result.stopped:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{time.time():.0f}".encode(), 0)


@contextmanager
def source_lock(home: Path, source: CollectorSource) -> Iterator[SourceHold]:
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
        yield SourceHold(fd)
    finally:
        os.close(fd)


def pass_start(
    store: LogStore, source: CollectorSource, backfill_days: int | None, overlap: timedelta
) -> tuple[bool, datetime | None]:
    """Where the next pass starts: the stored history's end minus the overlap, else a backfill.

    A backfill never asks for events older than the source's retention: the store's TTL would
    drop them as soon as they landed.
    """
    checkpoint = store.latest_checkpoint(source.id, not_after=datetime.now(UTC) + CLOCK_SKEW)
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
    reread: bool = False,
    on_page: Callable[[PassResult], None] | None = None,
    stop: threading.Event | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> PassResult:
    """One pass: every event Kandji has after the stored history, normalized, enriched, stored.

    A Kandji error ends the pass with `error` set; what was stored before it stays stored.
    Setting `stop` ends the pass after the page in hand is stored (a service shutting down);
    the next pass resumes from there. `reread` asks from the checkpoint minus REREAD (callers
    pass their SourceHold's `reread_due`, and give it the result to `record`). `window` (start,
    end) collects that period again instead (`logs resync`): the events already stored are
    skipped as in any pass.
    """
    if window is None:
        since = max(overlap, REREAD) if reread else overlap
        backfill, start = pass_start(store, source, backfill_days, since)
        end = None
    else:
        (start, end), backfill = window, False
    result = PassResult(backfill=backfill, start=start, reread=reread and not backfill)
    try:
        async for page in client.iter_audit_pages(
            sort_by="occurred_at", start_date=start, end_date=end
        ):
            context = NormalizeContext(workspace_id, source.id, source.retention_days)
            out = transform(page.events, context, enricher)
            rows, repeats = _unique(out.rows)
            out.quarantine.extend(_repeat_entry(row, context) for row in repeats)
            # Before the rows: once they are stored the checkpoint may pass this page, and a
            # crash in between would leave its bad events neither stored nor quarantined.
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
                result.duplicates += len(out.rows) - len(new_rows) - len(repeats)
                ceiling = context.received_at + CLOCK_SKEW
                newest = max((when for when in times if when <= ceiling), default=None)
                if newest is not None and (
                    result.covered_until is None or newest > result.covered_until
                ):
                    result.covered_until = newest
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


def _unique(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The rows with the first of each Kandji id in the page, and the repeats that differ from it.

    A repeat with the same raw text as the first is the same event sent twice: it is dropped.
    """
    first: dict[str, dict] = {}
    unique = []
    repeats = []
    for row in rows:
        held = first.setdefault(row["eventID"], row)
        if held is row:
            unique.append(row)
        elif held["rawLog"] != row["rawLog"]:
            repeats.append(row)
    return unique, repeats


def _repeat_entry(row: dict, context: NormalizeContext) -> QuarantineEntry:
    return QuarantineEntry(
        source_id=context.source_id,
        reason=(
            f"another event in the same page has the id {row['eventID']}, and that one is "
            "stored; this one differs from it, and kandji_logs holds one event per id"
        ),
        raw_log=row["rawLog"],
        kandji_event_id=row["eventID"],
        received_at=context.received_at,
    )
