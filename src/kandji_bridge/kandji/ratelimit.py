"""One request budget per Kandji tenant, shared by every caller in the process.

Kandji allows 10,000 requests an hour per tenant and 50 a second, counted (like Django REST
Framework's throttles and the simulator) as arrivals in sliding windows: a request is refused
with 429 when the last 1 s, or the last 3,600 s, already holds the limit.

The server's arrival times are unknown here, but each is bounded: a request arrives after it
leaves and before its response comes back. So a new request may start once, counting it, every
window holds at most the limit when each earlier request is placed at its *latest* possible
arrival: its response time, or now if it is still in flight. Two requests a window apart by that
measure are a window apart at the server whatever the network, event-loop or server queueing
delays, so our own traffic never gets a 429. The cost is one response time per window (a few ms
on a LAN, against 1 s or 3,600 s windows). Callers report completion with `Permit.done()`.

The bookkeeping is under a threading.Lock and the waiting happens outside it, so one limiter
serves callers in several threads and event loops (the log collector and the inventory sync).
"""

import asyncio
import bisect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

DEFAULT_PER_SECOND = 50.0
DEFAULT_PER_HOUR = 10_000.0
DEFAULT_MARGIN = 0.01  # seconds added to each window, for the server's rounding at its edges

SECOND = 1.0
HOUR = 3600.0
_POLL = 0.005  # how often to look again when the limit is all in flight


class Permit:
    """One request's place in the tenant's windows; call done() once its answer (or failure) is
    in. Until then the request counts as arriving now."""

    __slots__ = ("_limiter", "_open", "waited")

    def __init__(self, limiter: "RateLimiter", waited: float) -> None:
        self._limiter = limiter
        self._open = True
        self.waited = waited  # seconds acquire() waited for it

    def done(self) -> None:
        if self._open:
            self._open = False
            self._limiter._finish()


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
        self._ends: list[float] = []  # when finished requests got their answer, ascending
        self._in_flight = 0
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
            # (window length, requests allowed in it); a fractional limit rounds down, as a
            # server counting whole requests does.
            self._windows = (
                (SECOND + self._margin, math.floor(per_second)),
                (HOUR + self._margin, math.floor(per_hour)),
            )
            self._keep = max(limit for _, limit in self._windows)

    async def acquire(self) -> Permit:
        """Wait until one more request may start; call done() on the permit when it has ended."""
        start = self._clock()
        while True:
            with self._lock:
                now = self._clock()
                delay = self._delay(now)
                if delay <= 0:
                    self._in_flight += 1
                    return Permit(self, now - start)
            await self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds`: Kandji answered 429, so its count is ahead of ours."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _finish(self) -> None:
        with self._lock:
            self._in_flight -= 1
            bisect.insort(self._ends, self._clock())

    def _delay(self, now: float) -> float:
        ends = self._ends
        # Only the latest `keep` ends, within the longest window, can still hold a request back.
        stale = max(bisect.bisect_right(ends, now - self._windows[-1][0]), len(ends) - self._keep)
        if stale > 0:
            del ends[:stale]
        ready = max(now, self._paused_until)
        for window, limit in self._windows:
            room = limit - self._in_flight  # requests in flight may all arrive in this window
            if room <= 0:
                return max(ready - now, _POLL)
            if len(ends) >= room:
                # The room-th latest answer must be a window old before another may start.
                ready = max(ready, ends[-room] + window)
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
