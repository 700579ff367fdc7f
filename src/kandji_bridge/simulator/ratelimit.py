"""Kandji's published limits as sliding windows: N requests in any 1 s, M in any 3,600 s."""

import math
from collections import deque


class SlidingWindowLimiter:
    def __init__(self, limits: list[tuple[float, float]]) -> None:
        """`limits` is (requests, window seconds) pairs; a limit of 0 or less means none."""
        self._windows = [(int(n), seconds, deque[float]()) for n, seconds in limits if n > 0]

    def acquire(self, now: float) -> int:
        """Record a request at `now` and return 0, or return the whole seconds to wait (>= 1)
        without recording it: a throttled request does not use up the window, as in DRF."""
        wait = 0.0
        for limit, seconds, stamps in self._windows:
            while stamps and stamps[0] <= now - seconds:
                stamps.popleft()
            if len(stamps) >= limit:
                # The window has room again once enough of its oldest requests have aged out.
                wait = max(wait, stamps[len(stamps) - limit] + seconds - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        for _, _, stamps in self._windows:
            stamps.append(now)
        return 0
