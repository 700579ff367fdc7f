"""The sign-in throttle: failed sign-ins counted per address and username, and per address, in a
sliding window; the addresses and usernames whose failures have all expired are forgotten.

The client's address, which the throttle counts by, is the socket's peer unless `serve` was told
to trust a reverse proxy's X-Forwarded-For (`--forwarded-allow-ips`), so a client cannot pick its
own apparent address.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kandji_bridge import users

# Failed sign-ins allowed per window: per address and username, and per address alone.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_USERNAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20
# How often the throttle forgets the addresses and usernames whose failures have all expired.
LOGIN_SWEEP_SECONDS = 60


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in attempt counted by the throttle; `wait` > 0 if it was refused (not counted)."""

    keys: tuple[str, ...]
    at: float
    wait: int


class LoginThrottle:
    """Counts failed sign-ins in a sliding window; refuses more once a limit is reached.

    Checking the count and counting the attempt are one step under a lock, and an attempt counts
    as failed before its password is checked (its place is given back if the password was
    right): so parallel requests cannot all pass the check before the first failure is counted,
    and no more passwords are checked than the limit allows.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._swept = clock()

    def __len__(self) -> int:
        """How many addresses and address+username pairs are being counted."""
        return len(self._failures)

    def begin(self, address: str, username: str) -> LoginAttempt:
        """Count an attempt from `address` as `username`, or refuse it while a limit is reached."""
        keys = (f"{address}|{users.normalize_username(username)}", address)
        limits = (LOGIN_FAILURES_PER_USERNAME, LOGIN_FAILURES_PER_ADDRESS)
        with self._lock:
            now = self._clock()
            if now - self._swept >= LOGIN_SWEEP_SECONDS:
                self._sweep(now)
            wait = max(self._wait(key, limit, now) for key, limit in zip(keys, limits, strict=True))
            if wait:
                return LoginAttempt(keys, now, wait)
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            return LoginAttempt(keys, now, 0)

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: the attempt is not a failure after all."""
        with self._lock:
            for key in attempt.keys:
                window = self._failures.get(key)
                if window is not None and attempt.at in window:
                    window.remove(attempt.at)
                    if not window:
                        del self._failures[key]

    def _wait(self, key: str, limit: int, now: float) -> int:
        window = self._failures.get(key)
        if window is None:
            return 0
        while window and window[0] <= now - LOGIN_WINDOW_SECONDS:
            window.popleft()
        if not window:
            del self._failures[key]
            return 0
        if len(window) < limit:
            return 0
        return int(window[0] + LOGIN_WINDOW_SECONDS - now) + 1

    def _sweep(self, now: float) -> None:
        """Forget the keys whose last failure left the window (addresses that never came back)."""
        self._swept = now
        expired = [
            key
            for key, window in self._failures.items()
            if window[-1] <= now - LOGIN_WINDOW_SECONDS
        ]
        for key in expired:
            del self._failures[key]
