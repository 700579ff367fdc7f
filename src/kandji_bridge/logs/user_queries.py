"""SQL that people type (`logs query`, the SQL page and its CSV download, `/api/logs/query`): the
limits it runs under and the sessions it runs on, apart from the collector's.

Each user query runs on a session of its own, never on the session the collector inserts through
(a heavy query there held the store's lock, so ingestion, /metrics and every page waited on it).
A session is read-only in the engine (`readonly = 1`, set last, so nothing a query says can lift
its time or memory limit), and carries a `log_comment` that names it as a user query, so that
`cancel_all` can stop every running one with one `KILL QUERY` when the service stops.

At most `per_user` queries of one user and `total` of everyone run at once; one more is refused
at once (QueryBusy, HTTP 429) rather than queued, so it cannot tie up a web worker either.
"""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kandji_bridge.errors import BridgeError

if TYPE_CHECKING:
    from kandji_bridge.logs.store import QueryResult

# What every user query's log_comment starts with: KILL QUERY finds them by it.
COMMENT_PREFIX = "kandji-bridge user query "
# How long closing the store waits for cancelled queries to hand their session back.
_CLOSE_WAIT_SECONDS = 10.0


class QueryBusy(BridgeError):
    """Too many user queries run already; the same query may run a moment later (HTTP 429)."""


class QueryCancelled(BridgeError):
    """The service is stopping: the query was stopped, or not started (HTTP 503)."""


@dataclass(frozen=True)
class QueryLimits:
    """Set from KANDJI_BRIDGE_QUERY_* (config.Settings.query_limits)."""

    seconds: int = 120  # max_execution_time
    memory_mb: int = 2048  # max_memory_usage
    per_user: int = 2
    total: int = 4

    def engine_settings(self, comment: str) -> dict[str, int | str]:
        return {
            "max_execution_time": self.seconds,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.memory_mb * 1024 * 1024,
            # The lowest CPU priority (nice 19) for the query's threads: the collector and the
            # web server come first (benchmarks/heavy_queries.py measures the difference).
            "os_thread_priority": 19,
            "log_comment": comment,
        }


class UserSession(Protocol):
    """One engine session (or client) that runs one user query at a time."""

    def select(self, sql: str) -> "QueryResult": ...

    def close(self) -> None: ...


class UserQueries:
    """Admission (the per-user and total caps) and a pool of user-query sessions."""

    def __init__(
        self,
        limits: QueryLimits,
        open_session: Callable[[str], UserSession],
        kill: Callable[[str], None],
    ) -> None:
        self.limits = limits
        self._open_session = open_session  # given the session's log_comment
        self._kill = kill  # given the log_comment prefix of the queries to stop
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._idle: list[UserSession] = []
        self._closed = False

    @contextmanager
    def session(self, user: str) -> Iterator[Callable[[str], "QueryResult"]]:
        """How to run the statements of one query of `user` (on a session of its own), or
        QueryBusy / QueryCancelled at once."""
        with self._lock:
            if self._closed:
                raise QueryCancelled(_STOPPING)
            mine, everyone = self._running[user], sum(self._running.values())
            if mine >= self.limits.per_user:
                raise QueryBusy(
                    f"You have {mine} queries running, the most one user may run at once; wait "
                    "for one to finish and run this one again."
                )
            if everyone >= self.limits.total:
                raise QueryBusy(
                    f"{everyone} queries are running, the most this service runs at once; try "
                    "again in a minute, or narrow the heavy ones with WHERE on eventTime."
                )
            self._running[user] += 1
            session = self._idle.pop() if self._idle else None
        try:
            if session is None:
                session = self._open_session(f"{COMMENT_PREFIX}{uuid.uuid4().hex}")
            yield self._checked(session)
        finally:
            with self._lock:
                self._running[user] -= 1
                if not self._running[user]:
                    del self._running[user]
                keep = session is not None and not self._closed
                if keep:
                    self._idle.append(session)
            if session is not None and not keep:
                session.close()

    def _checked(self, session: UserSession) -> Callable[[str], "QueryResult"]:
        def select(sql: str) -> "QueryResult":
            if self._closed:  # cancel_all came between two statements of this query
                raise QueryCancelled(STOPPED)
            result = session.select(sql)
            if self._closed:  # a killed statement may return what it had (an empty EXPLAIN)
                raise QueryCancelled(STOPPED)
            return result

        return select

    def running(self) -> int:
        with self._lock:
            return sum(self._running.values())

    def cancel_all(self) -> None:
        """Start no more user queries and stop the running ones (the service is stopping)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = bool(self._running)
        for session in idle:
            session.close()
        if busy:
            self._kill(COMMENT_PREFIX)

    def close(self) -> None:
        """cancel_all, then wait (a little) until the stopped queries have let their sessions go;
        killed again every half second, for a statement that reached the engine after a kill."""
        self.cancel_all()
        deadline = time.monotonic() + _CLOSE_WAIT_SECONDS
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.5)
            if self.running():
                self._kill(COMMENT_PREFIX)


_STOPPING = "The service is stopping, so the query did not run; run it again once it is back."
STOPPED = "The service is stopping and stopped the query; run it again once it is back."
