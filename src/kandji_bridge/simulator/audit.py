"""GET /api/v1/audit/events: query parsing, keyset cursors and paging, as Kandji (DRF) does it.

The cursor is base64 of a position, like Kandji's (`>dt:2025-03-17 22:29:25.301092+00:00`), plus
the event id as a tie-breaker so events with equal timestamps are never skipped or repeated:
`>dt:<occurred_at>,id:<ULID>` in occurred_at order, `>id:<ULID>` in id order. `>` pages forward
in the requested order (next), `<` backward (previous).
"""

import base64
import binascii
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kandji_bridge.simulator import timefmt, ulid
from kandji_bridge.simulator.events import MAX_ID_LAG_MS, EventLog

MAX_LIMIT = 500
SORT_FIELDS = ("occurred_at", "-occurred_at", "id", "-id")
DAY_US = 86_400 * 1_000_000


class QueryError(Exception):
    """A bad query parameter: status and DRF-style body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Position:
    occurred_us: int  # unused (0) in id order
    event_id: str


@dataclass(frozen=True)
class Query:
    limit: int
    by_id: bool
    descending: bool
    start_us: int | None
    end_us: int | None  # inclusive
    cursor: tuple[str, Position] | None  # (">" or "<", position)


def parse_query(params: dict[str, str]) -> Query:
    sort_by = params.get("sort_by") or "occurred_at"
    if sort_by not in SORT_FIELDS:
        raise QueryError(400, {"sort_by": [f'"{sort_by}" is not a valid choice.']})
    by_id = sort_by.lstrip("-") == "id"
    cursor = params.get("cursor")
    return Query(
        limit=_limit(params.get("limit")),
        by_id=by_id,
        descending=sort_by.startswith("-"),
        start_us=_date_param(params, "start_date", end_of_day=False),
        end_us=_date_param(params, "end_date", end_of_day=True),
        cursor=decode_cursor(cursor, by_id) if cursor else None,
    )


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return MAX_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise QueryError(400, {"limit": ["A valid integer is required."]}) from None
    if value < 1:
        raise QueryError(400, {"limit": ["Ensure this value is greater than or equal to 1."]})
    return min(value, MAX_LIMIT)


def _date_param(params: dict[str, str], name: str, end_of_day: bool) -> int | None:
    """`2024-11-26` or `2024-11-26T22:58:26.239570Z`; a bare end date includes that whole day."""
    text = params.get(name)
    if not text:
        return None
    try:
        if len(text) == 10:
            day_us = timefmt.to_us(datetime.combine(date.fromisoformat(text), datetime.min.time()))
            return day_us + DAY_US - 1 if end_of_day else day_us
        return timefmt.to_us(datetime.fromisoformat(text))
    except ValueError:
        raise QueryError(
            400,
            {
                name: [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ) from None


def encode_cursor(direction: str, position: Position, by_id: bool) -> str:
    if by_id:
        text = f"{direction}id:{position.event_id}"
    else:
        moment = timefmt.iso_space(position.occurred_us)
        text = f"{direction}dt:{moment},id:{position.event_id}"
    return base64.b64encode(text.encode()).decode("ascii")


def decode_cursor(cursor: str, by_id: bool) -> tuple[str, Position]:
    """DRF answers a cursor it cannot read with 404 "Invalid cursor"; so do we."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        direction, rest = text[0], text[1:]
        if direction not in "<>":
            raise ValueError(direction)
        if by_id:
            event_id = rest.removeprefix("id:")
            if not rest.startswith("id:") or len(event_id) != 26:
                raise ValueError(rest)
            return direction, Position(0, event_id)
        moment, _, event_id = rest.removeprefix("dt:").partition(",id:")
        if not rest.startswith("dt:") or len(event_id) != 26:
            raise ValueError(rest)
        return direction, Position(timefmt.to_us(datetime.fromisoformat(moment)), event_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise QueryError(404, {"detail": "Invalid cursor"}) from None


@dataclass
class Page:
    results: list[dict[str, Any]]
    next_cursor: str | None
    previous_cursor: str | None


def page(log: EventLog, query: Query) -> Page:
    """One page in the requested order, fetching limit + 1 to learn whether more remain."""
    backward_request = query.cursor is not None and query.cursor[0] == "<"
    forward_scan = query.descending == backward_request  # the direction we walk the arrays in
    found = list(_scan(log, query, forward_scan, limit=query.limit + 1))
    more = len(found) > query.limit
    found = found[: query.limit]
    if backward_request:
        found.reverse()
    positions = [Position(us, event_id) for us, event_id in found]
    results = [log.render(us, event_id) for us, event_id in found]

    def cursor(direction: str, position: Position) -> str:
        return encode_cursor(direction, position, query.by_id)

    if not positions:
        return Page(results, None, None)
    if backward_request:
        return Page(
            results, cursor(">", positions[-1]), cursor("<", positions[0]) if more else None
        )
    previous = cursor("<", positions[0]) if query.cursor is not None else None
    return Page(results, cursor(">", positions[-1]) if more else None, previous)


def _scan(log: EventLog, query: Query, forward: bool, limit: int) -> Iterator[tuple[int, str]]:
    """Events within the date range, strictly past the cursor, walking the arrays one way."""
    if query.by_id:
        keys, times = log.sorted_ids, log.sorted_id_times
        lo, hi = _id_range(log, query)
    else:
        keys, times = log.ids, log.times
        lo, hi = _time_range(log, query)
    if query.cursor is not None:
        at = _position_index(log, query.cursor[1], query.by_id)
        if forward:
            # Skip the cursor's own event: it was the last one the client saw.
            lo = max(lo, at + 1 if at < len(keys) and keys[at] == query.cursor[1].event_id else at)
        else:
            hi = min(hi, at)
    indices = range(lo, hi) if forward else range(hi - 1, lo - 1, -1)
    count = 0
    for index in indices:
        us = times[index]
        if (query.start_us is not None and us < query.start_us) or (
            query.end_us is not None and us > query.end_us
        ):
            continue  # only at the fuzzy edges of an id-order range
        yield us, keys[index]
        count += 1
        if count == limit:
            return


def _position_index(log: EventLog, position: Position, by_id: bool) -> int:
    if by_id:
        return bisect_left(log.sorted_ids, position.event_id)
    return log.time_position(position.occurred_us, position.event_id)


def _time_range(log: EventLog, query: Query) -> tuple[int, int]:
    lo = 0 if query.start_us is None else bisect_left(log.times, query.start_us)
    hi = len(log.times) if query.end_us is None else bisect_right(log.times, query.end_us)
    return lo, hi


def _id_range(log: EventLog, query: Query) -> tuple[int, int]:
    """An id's time part is its occurred_at plus 0..MAX_ID_LAG_MS, so dates bound an id range."""
    lo = 0
    hi = len(log.sorted_ids)
    if query.start_us is not None:
        lo = bisect_left(log.sorted_ids, ulid.lowest(query.start_us // 1000))
    if query.end_us is not None:
        hi = bisect_left(log.sorted_ids, ulid.lowest(query.end_us // 1000 + MAX_ID_LAG_MS + 1))
    return lo, hi
