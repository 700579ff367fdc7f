"""Windows tile time: across arbitrary ticks, restarts and crashes, no gap and no overlap, never
past what is stored, bounded per tick; and the state DB keeps where each rule has reached."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kandji_bridge.db import StateDB
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.detections.windows import (
    Window,
    due_windows,
    last_window_end,
    record_window,
)

START = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # around a DST change elsewhere: UTC ignores it
SCHEDULES = [
    "@15m",
    "@1h",
    "@5m",
    "@30s",
    "*/15 * * * *",
    "0 * * * *",
    "*/7 * * * *",
    "0 9 * * 1-5",
]


def test_the_first_run_takes_the_last_complete_window() -> None:
    now = datetime(2026, 12, 6, 9, 20, 30, tzinfo=UTC)
    assert due_windows("*/15 * * * *", None, now, now) == [
        Window(datetime(2026, 12, 6, 9, 0, tzinfo=UTC), datetime(2026, 12, 6, 9, 15, tzinfo=UTC))
    ]


def test_no_window_ends_after_what_is_stored() -> None:
    last = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    now = datetime(2026, 12, 6, 9, 20, tzinfo=UTC)
    stored = datetime(2026, 12, 6, 8, 40, tzinfo=UTC)  # the collector is behind
    windows = due_windows("@15m", last, now, stored)
    assert [w.end.strftime("%H:%M") for w in windows] == ["08:15", "08:30"]


def test_a_rule_far_behind_catches_up_a_bounded_number_of_windows_per_tick() -> None:
    last = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    now = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)
    first = due_windows("@15m", last, now, now, max_windows=96)
    assert len(first) == 96 and first[-1].end == datetime(2026, 12, 2, tzinfo=UTC)
    second = due_windows("@15m", first[-1].end, now, now, max_windows=96)
    assert second[0].start == first[-1].end


ticks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6 * 3600),  # seconds until this tick
        st.integers(min_value=0, max_value=3 * 3600),  # how far "stored up to" lags behind now
        st.integers(min_value=0, max_value=200),  # windows run and recorded before a crash
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    schedule=st.sampled_from(SCHEDULES),
    ticks=ticks,
    offset=st.integers(min_value=0, max_value=7 * 86400),
    max_windows=st.integers(min_value=1, max_value=10),
)
def test_windows_over_arbitrary_ticks_and_restarts_tile_time_exactly(
    schedule: str, ticks: list[tuple[int, int, int]], offset: int, max_windows: int
) -> None:
    """Each tick runs the due windows and records them one by one; a crash (a restart) can stop
    it after any number of them. What was recorded always tiles time from the first window on,
    and every window ended before what was stored when it ran."""
    now = START + timedelta(seconds=offset)
    last_end: datetime | None = None  # what the state DB holds
    recorded: list[Window] = []
    stored_high = now - timedelta(days=1)
    for wait, lag, crash_after in ticks:
        now += timedelta(seconds=wait)
        stored = max(now - timedelta(seconds=lag), stored_high)  # stored up to never goes back
        stored_high = stored
        windows = due_windows(schedule, last_end, now, stored, max_windows=max_windows)
        assert len(windows) <= max_windows
        assert all(window.start < window.end <= stored <= now for window in windows)
        for window in windows[:crash_after]:
            if last_end is not None:
                assert window.start == last_end
            recorded.append(window)
            last_end = window.end
    for before, after in itertools.pairwise(recorded):
        assert before.end == after.start  # no gap, no overlap
    # Given enough ticks, everything up to the last boundary that is stored has been covered.
    while windows := due_windows(schedule, last_end, now, stored_high, max_windows=max_windows):
        recorded.extend(windows)
        last_end = windows[-1].end
    if recorded:
        assert last_end == previous_run(schedule, stored_high)


@given(
    first=st.sampled_from(SCHEDULES),
    second=st.sampled_from(SCHEDULES),
    minutes=st.integers(min_value=0, max_value=3 * 24 * 60),
)
@settings(max_examples=100, deadline=None)
def test_a_changed_schedule_continues_where_the_old_one_ended(
    first: str, second: str, minutes: int
) -> None:
    now = START + timedelta(days=3, minutes=minutes)
    before = due_windows(first, START, now, now, max_windows=1000)
    last_end = before[-1].end if before else START
    after = due_windows(second, last_end, now + timedelta(days=2), now + timedelta(days=2))
    if after:
        assert after[0].start == last_end
        for a, b in itertools.pairwise(after):
            assert a.end == b.start


def test_where_a_rule_has_reached_is_kept_and_only_moves_on(state: StateDB) -> None:
    first = Window(
        datetime(2026, 12, 6, 9, 0, tzinfo=UTC), datetime(2026, 12, 6, 9, 15, tzinfo=UTC)
    )
    second = Window(first.end, first.end + timedelta(minutes=15))
    assert last_window_end(state, "kandji-delete-burst") is None
    assert record_window(state, "kandji-delete-burst", first)
    assert last_window_end(state, "kandji-delete-burst") == first.end
    assert not record_window(state, "kandji-delete-burst", first)  # another process ran it
    assert record_window(state, "kandji-delete-burst", second)
    assert last_window_end(state, "kandji-delete-burst") == second.end
    skipped = Window(second.end + timedelta(minutes=15), second.end + timedelta(minutes=30))
    assert not record_window(state, "kandji-delete-burst", skipped)  # would leave a gap
    assert last_window_end(state, "kandji-delete-burst") == second.end


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_windows("@15m", None, datetime(2026, 12, 6, 9, 0), None)
