"""Which requests fail, and how: a seeded draw per API request, so a run can be replayed."""

import random

FAULT_KINDS = ("http_500", "http_502", "http_503", "slow", "truncated", "dropped")


class FaultPlan:
    def __init__(self, rate: float, seed: int) -> None:
        self._rate = rate
        self._rng = random.Random(f"faults:{seed}")

    def next(self) -> str | None:
        """The next request's fault, or None; one draw per request keeps the sequence fixed."""
        roll, kind = self._rng.random(), self._rng.choice(FAULT_KINDS)
        return kind if roll < self._rate else None
