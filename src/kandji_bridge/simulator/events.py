"""The tenant's audit log, kept compactly in the two orders it is paged in.

Each event is a (time, ULID) pair in sorted arrays: one ordered by (occurred_at, id), one by id.
Content is rendered when a page asks for it (event_kinds.py), except for events whose content was
set explicitly (live-mode device changes, events a test adds), which are kept in a dict.
"""

import random
from array import array
from bisect import bisect_left, bisect_right
from typing import Any

from kandji_bridge.simulator import event_kinds, timefmt, ulid
from kandji_bridge.simulator.event_kinds import Body
from kandji_bridge.simulator.tenant import Tenant

# Kandji's ULIDs are minted a little after the event happened (the example's id is 62 ms later
# than its occurred_at), so id order and occurred_at order can differ; we keep that quirk.
MAX_ID_LAG_MS = 120
# Share of each UTC hour in the day's activity: mostly European and American working hours.
HOUR_US = 3_600_000_000
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 10, 10, 10, 10, 9, 8, 7, 6, 5, 4, 3)


def new_event_id(rng: random.Random, occurred_us: int) -> str:
    return ulid.encode(occurred_us // 1000 + rng.randrange(MAX_ID_LAG_MS + 1), rng.getrandbits(80))


def history_times(rng: random.Random, count: int, start_us: int, end_us: int) -> list[int]:
    """`count` sorted instants in [start_us, end_us), busier in working hours: each picks an hour
    of the range weighted by its hour of day, then a moment within it."""
    slots = range(start_us // HOUR_US, (end_us - 1) // HOUR_US + 1)
    weights = [_HOUR_WEIGHTS[hour % 24] for hour in slots]
    times: list[int] = []
    while len(times) < count:
        for hour in rng.choices(slots, weights, k=count - len(times)):
            us = hour * HOUR_US + int(rng.random() * HOUR_US)
            if start_us <= us < end_us:  # the range's first and last hours are partial
                times.append(us)
    times.sort()
    return times


class EventLog:
    def __init__(self, tenant: Tenant, seed: int) -> None:
        self._tenant = tenant
        self._seed = seed
        self.times = array("q")  # occurred_at (µs), sorted by (occurred_at, id) ...
        self.ids: list[str] = []  # ... with the ids in the same order
        self.sorted_ids: list[str] = []  # ids in id order ...
        self.sorted_id_times = array("q")  # ... with their occurred_at
        self._bodies: dict[str, Body] = {}
        self._broken: dict[str, dict[str, Any]] = {}  # fields served as given, for bad-input tests

    def load(self, pairs: list[tuple[int, str]]) -> None:
        """Bulk-load generated events (faster than add() one by one)."""
        pairs.sort()
        self.times = array("q", (us for us, _ in pairs))
        self.ids = [event_id for _, event_id in pairs]
        by_id = sorted(pairs, key=lambda pair: pair[1])
        self.sorted_ids = [event_id for _, event_id in by_id]
        self.sorted_id_times = array("q", (us for us, _ in by_id))

    def break_event(self, event_id: str, fields: dict[str, Any]) -> None:
        """Serve these fields in place of the event's own (a malformed event, as Kandji might)."""
        self._broken[event_id] = fields

    def add(self, occurred_us: int, event_id: str, body: Body | None = None) -> None:
        position = self.time_position(occurred_us, event_id)
        self.times.insert(position, occurred_us)
        self.ids.insert(position, event_id)
        position = bisect_left(self.sorted_ids, event_id)
        self.sorted_ids.insert(position, event_id)
        self.sorted_id_times.insert(position, occurred_us)
        if body is not None:
            self._bodies[event_id] = body

    def __len__(self) -> int:
        return len(self.ids)

    def time_position(self, occurred_us: int, event_id: str) -> int:
        """Index of the first event at or after (occurred_us, event_id) in occurred_at order."""
        lo = bisect_left(self.times, occurred_us)
        hi = bisect_right(self.times, occurred_us, lo)
        return bisect_left(self.ids, event_id, lo, hi)

    def render(self, occurred_us: int, event_id: str) -> dict[str, Any]:
        body = self._bodies.get(event_id)
        if body is None:
            body = event_kinds.generated_body(self._tenant, self._seed, ulid.randomness(event_id))
        event = event_kinds.assemble(event_id, timefmt.iso_z(occurred_us), body)
        broken = self._broken.get(event_id)
        return event if broken is None else {**event, **broken}

    def all(self) -> list[dict[str, Any]]:
        """Every event in (occurred_at, id) order (for tests: fine for thousands, not millions)."""
        return [
            self.render(us, event_id) for us, event_id in zip(self.times, self.ids, strict=True)
        ]
