"""What this process did for each source since it started, for the per-process /metrics.

Jobs add to the counters as they go, from whichever thread runs them (the scheduler's workers, or
the request that ran a job inline); /metrics reads a snapshot.
"""

import threading
from dataclasses import dataclass, field

from kandji_bridge.kandji.client import ClientStats
from kandji_bridge.logs.collector import PassResult


@dataclass
class RequestCounts:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


@dataclass
class SourceCounters:
    """What this process did for one source since it started (per-process /metrics)."""

    events_ingested: int = 0
    events_quarantined: int = 0
    by_endpoint: dict[str, RequestCounts] = field(default_factory=dict)


class Counters:
    """Per-source counters, added to from the worker threads and read by /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, SourceCounters] = {}

    def add_events(self, source: str, ingested: int, quarantined: int) -> None:
        with self._lock:
            counters = self._sources.setdefault(source, SourceCounters())
            counters.events_ingested += ingested
            counters.events_quarantined += quarantined

    def add_requests(self, source: str, endpoint: str, counts: RequestCounts) -> None:
        with self._lock:
            counters = self._sources.setdefault(source, SourceCounters())
            total = counters.by_endpoint.setdefault(endpoint, RequestCounts())
            total.requests += counts.requests
            total.retries += counts.retries
            total.rate_limited += counts.rate_limited

    def snapshot(self) -> dict[str, SourceCounters]:
        with self._lock:
            return {
                name: SourceCounters(
                    c.events_ingested,
                    c.events_quarantined,
                    {e: RequestCounts(**vars(r)) for e, r in c.by_endpoint.items()},
                )
                for name, c in self._sources.items()
            }


class Tracker:
    """Adds a run's progress to the counters as it goes, so /metrics moves during a backfill."""

    def __init__(self, counters: Counters, source: str) -> None:
        self.counters = counters
        self.source = source
        self.stored = 0
        self.quarantined = 0
        self.seen: dict[str, RequestCounts] = {}

    def page(self, result: PassResult, stats: ClientStats) -> None:
        self.counters.add_events(
            self.source, result.stored - self.stored, result.quarantined - self.quarantined
        )
        self.stored, self.quarantined = result.stored, result.quarantined
        self.client(stats)

    def client(self, stats: ClientStats) -> None:
        for endpoint, now in list(stats.by_endpoint.items()):
            before = self.seen.setdefault(endpoint, RequestCounts())
            delta = RequestCounts(
                now.requests - before.requests,
                now.retries - before.retries,
                now.rate_limited - before.rate_limited,
            )
            if delta.requests or delta.retries or delta.rate_limited:
                self.counters.add_requests(self.source, endpoint, delta)
                self.seen[endpoint] = RequestCounts(now.requests, now.retries, now.rate_limited)
