"""Request counts that tests and benchmarks read (also served at GET /_simulator/stats)."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestStats:
    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)  # "GET /api/v1/devices" -> n
    by_status: Counter[str] = field(default_factory=Counter)  # "200", "429", ..., "dropped"
    throttled: int = 0  # 429 answers
    faults: Counter[str] = field(default_factory=Counter)  # fault kind -> n

    def record(self, endpoint: str, status: str, fault: str | None = None) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1
        self.by_status[status] += 1
        if status == "429":
            self.throttled += 1
        if fault is not None:
            self.faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "throttled": self.throttled,
            "faults": dict(self.faults),
        }

    def reset(self) -> None:
        self.requests = 0
        self.throttled = 0
        self.by_endpoint.clear()
        self.by_status.clear()
        self.faults.clear()
