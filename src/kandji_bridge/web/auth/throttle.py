"""The sign-in throttle: failed sign-ins counted per address and username, and per address, in a
sliding window; the failures that left the window are forgotten.

The failures are rows of the state DB (`login_failures`), not memory of one process, so several
`serve` processes on one state DB count them together: a guesser spreading attempts over them
gets no more tries than from one. A row holds the SHA-256 of what it counts, never the username
typed (people type passwords into that field by mistake).

The client's address, which the throttle counts by, is the socket's peer unless `serve` was told
to trust a reverse proxy's X-Forwarded-For (`--forwarded-allow-ips`), so a client cannot pick its
own apparent address.
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text

from kandji_bridge import users
from kandji_bridge.db.models import LoginFailure, utcnow
from kandji_bridge.db.state import StateDB

# Failed sign-ins allowed per window: per address and username, and per address alone.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_USERNAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20
# Any fixed number, the same in every process: the PostgreSQL advisory lock that serializes the
# check and the count of sign-ins (SQLite's BEGIN IMMEDIATE serializes them by itself).
_LOCK_ID = 0x6B62_6C67


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in attempt counted by the throttle; `wait` > 0 if it was refused (not counted)."""

    keys: tuple[str, ...]
    at: datetime
    wait: int
    rows: tuple[int, ...] = ()  # its failure rows, removed if the password was right


class LoginThrottle:
    """Counts failed sign-ins in a sliding window; refuses more once a limit is reached.

    Checking the count and counting the attempt are one transaction that holds a lock, and an
    attempt counts as failed before its password is checked (its place is given back if the
    password was right): so parallel requests, to one process or to several, cannot all pass the
    check before the first failure is counted, and no more passwords are checked than the limit
    allows.
    """

    def __init__(self, state: StateDB, clock: Callable[[], datetime] = utcnow) -> None:
        self._state = state
        self._clock = clock

    def __len__(self) -> int:
        """How many addresses and address+username pairs are being counted."""
        with self._state.session() as session:
            return session.scalar(select(func.count(func.distinct(LoginFailure.key)))) or 0

    def begin(self, address: str, username: str) -> LoginAttempt:
        """Count an attempt from `address` as `username`, or refuse it while a limit is reached."""
        keys = (_digest(f"{address}|{users.normalize_username(username)}"), _digest(address))
        limits = (LOGIN_FAILURES_PER_USERNAME, LOGIN_FAILURES_PER_ADDRESS)
        window = timedelta(seconds=LOGIN_WINDOW_SECONDS)
        with self._state.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
            now = self._clock()
            session.execute(delete(LoginFailure).where(LoginFailure.at <= now - window))
            wait = 0
            for key, limit in zip(keys, limits, strict=True):
                count, oldest = session.execute(
                    select(func.count(), func.min(LoginFailure.at)).where(LoginFailure.key == key)
                ).one()
                if count >= limit:
                    left = (oldest + window - now).total_seconds()
                    wait = max(wait, math.floor(left) + 1)
            if wait:
                return LoginAttempt(keys, now, wait)
            failures = [LoginFailure(key=key, at=now) for key in keys]
            session.add_all(failures)
            session.flush()
            return LoginAttempt(keys, now, 0, tuple(failure.id for failure in failures))

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: the attempt is not a failure after all."""
        with self._state.session() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.id.in_(attempt.rows)))


def _digest(counted: str) -> str:
    return hashlib.sha256(counted.encode()).hexdigest()
