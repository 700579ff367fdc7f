"""The windows a rule runs on: consecutive [from, to) spans of `receivedAt` that tile time.

A rule's schedule (five-field cron, a cron alias, or an interval such as `@15m`, in UTC) fires at
boundaries b0 < b1 < b2 ...; a window runs from one boundary to the next. `due_windows` is given
where the rule's windows have reached (the end of the last window it ran, kept in the state DB),
now, and the time up to which events are stored ("stored up to": the collectors have written
everything received before it), and returns the windows to run now, in order:

- the first starts exactly where the last one ended: no gap, no overlap, across restarts;
- none ends after now or after what is stored, so no window runs over events still arriving;
- at most `max_windows` per call: a rule that fell behind (a stopped service) catches up over
  several ticks instead of all at once;
- a rule that never ran starts with the last complete window (events received before a rule
  existed are not its business; a caller may give `first_start` to go further back).

A window is recorded as run (`record_window`) only after its matches are stored; a crash in
between runs it again, which stores and sends nothing twice (see results.py).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kandji_bridge.db import StateDB
from kandji_bridge.db.models import DetectionWindow
from kandji_bridge.detections.rules import next_run, previous_run

MAX_WINDOWS_PER_TICK = 96  # a day of 15-minute windows
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    start: datetime  # receivedAt >= start
    end: datetime  # receivedAt < end


def due_windows(
    schedule: str,
    last_end: datetime | None,
    now: datetime,
    stored_up_to: datetime | None,
    *,
    max_windows: int = MAX_WINDOWS_PER_TICK,
    first_start: datetime | None = None,
) -> list[Window]:
    """The windows to run now, in order (see the module docstring). Times are aware, UTC."""
    limit = _whole(now if stored_up_to is None else min(now, stored_up_to))
    if last_end is not None:
        start = _whole(last_end)
    elif first_start is not None:
        start = _whole(first_start)
    else:
        latest = previous_run(schedule, limit)
        start = previous_run(schedule, latest - _SECOND)
    windows: list[Window] = []
    while len(windows) < max_windows:
        end = next_run(schedule, start)
        if end > limit:
            break
        windows.append(Window(start, end))
        start = end
    return windows


def last_window_end(state: StateDB, detection: str) -> datetime | None:
    with state.session() as session:
        return session.scalar(
            select(DetectionWindow.last_window_to).where(DetectionWindow.detection == detection)
        )


def last_window_ends(state: StateDB) -> dict[str, datetime]:
    """Where every rule's windows have reached, by rule name (one query for a tick of all)."""
    with state.session() as session:
        rows = session.execute(select(DetectionWindow.detection, DetectionWindow.last_window_to))
        return {name: end for name, end in rows}


def record_window(state: StateDB, detection: str, window: Window) -> bool:
    """Record that `window` ran; only moves forward from exactly where the last window ended.

    False when another process recorded a window first (its window is the one that counts).
    """
    with state.session() as session:
        moved = session.execute(
            update(DetectionWindow)
            .where(
                DetectionWindow.detection == detection,
                DetectionWindow.last_window_to == window.start,
            )
            .values(last_window_to=window.end)
        )
        if moved.rowcount == 1:
            return True
        if session.get(DetectionWindow, detection) is not None:
            return False
    try:
        with state.session() as session:
            session.add(DetectionWindow(detection=detection, last_window_to=window.end))
    except IntegrityError:
        return False
    return True


def _whole(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("window times must be aware datetimes (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0)
