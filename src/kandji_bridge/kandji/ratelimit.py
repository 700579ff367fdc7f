"""One request budget per Kandji tenant, shared by every caller in the process.

Kandji allows 10,000 requests an hour per tenant and 50 a second. The limiter keeps the start
time of recent requests and lets a new one start only when, counting it, no 1-second and no
1-hour sliding window holds more than the limit: the same arithmetic as a server counting arrivals.
The windows are `margin` longer than the server's, because a request reaches the server a little
after it leaves here and that delay varies (event-loop turns, a new connection): two requests a
full window apart here must still arrive a full window apart there.

The bookkeeping is under a threading.Lock and the waiting happens outside it, so one limiter
serves callers in several threads and event loops (the log collector and the inventory sync).
"""

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

DEFAULT_PER_SECOND = 50.0
DEFAULT_PER_HOUR = 10_000.0
DEFAULT_MARGIN = 0.03  # seconds; covers arrival jitter, costs 3% of the per-second rate

SECOND = 1.0
HOUR = 3600.0


class RateLimiter:
    def __init__(
        self,
        per_second: float = DEFAULT_PER_SECOND,
        per_hour: float = DEFAULT_PER_HOUR,
        *,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if margin < 0:
            raise ValueError("margin must be >= 0")
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._started: deque[float] = deque()  # start times, oldest first
        self._paused_until = -math.inf
        self.set_limits(per_second, per_hour)

    @property
    def per_second(self) -> float:
        return self._per_second

    @property
    def per_hour(self) -> float:
        return self._per_hour

    def set_limits(self, per_second: float, per_hour: float) -> None:
        if per_second < 1 or per_hour < 1:
            raise ValueError("rate limits must allow at least 1 request per window")
        with self._lock:
            self._per_second, self._per_hour = float(per_second), float(per_hour)
            # (window length, requests allowed to start in it); a fractional limit rounds down,
            # as a server counting whole requests does.
            self._windows = (
                (SECOND + self._margin, math.floor(per_second)),
                (HOUR + self._margin, math.floor(per_hour)),
            )
            self._keep = max(limit for _, limit in self._windows)

    async def acquire(self) -> float:
        """Wait until one more request may start, and count it; returns the seconds waited."""
        start = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._started.append(now)
                    return now - start
            await self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds`: Kandji answered 429, so its count is ahead of ours."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _delay(self, now: float) -> float:
        started = self._started
        oldest_useful = now - self._windows[-1][0]
        while started and (started[0] <= oldest_useful or len(started) > self._keep):
            started.popleft()
        ready = max(now, self._paused_until)
        for window, limit in self._windows:
            if len(started) >= limit:
                # The limit-th most recent start must leave the window before another may start.
                ready = max(ready, started[-limit] + window)
        return ready - now

    def __repr__(self) -> str:
        return f"RateLimiter(per_second={self._per_second:g}, per_hour={self._per_hour:g})"


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(
    base_url: str, per_second: float | None = None, per_hour: float | None = None
) -> RateLimiter:
    """The process-wide limiter of the tenant at `base_url` (keyed by host[:port]).

    Limits given here replace the tenant's current ones; omitted ones keep them (Kandji's
    published limits for a tenant seen the first time).
    """
    key = urlsplit(base_url).netloc.lower() or base_url.lower()
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(
                per_second or DEFAULT_PER_SECOND, per_hour or DEFAULT_PER_HOUR
            )
        elif per_second is not None or per_hour is not None:
            limiter.set_limits(per_second or limiter.per_second, per_hour or limiter.per_hour)
    return limiter
