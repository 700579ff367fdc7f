"""Kandji's limits as sliding windows: beyond them a 429 with Retry-After and DRF's message."""

import time
from collections.abc import Callable

import httpx

from kandji_bridge.simulator.ratelimit import SlidingWindowLimiter
from kandji_bridge.simulator.server import RunningSimulator

from .helpers import client


def test_requests_beyond_the_per_second_limit_get_429(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = simulator_factory(devices=3, events=10, rate_per_second=5)
    with client(simulator) as http:
        statuses = [http.get("/api/v1/devices").status_code for _ in range(8)]
        throttled = http.get("/api/v1/devices")
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        assert throttled.status_code == 429
        retry_after = int(throttled.headers["Retry-After"])
        assert retry_after == 1
        assert throttled.json() == {
            "detail": "Request was throttled. Expected available in 1 second."
        }
        time.sleep(retry_after)
        assert http.get("/api/v1/devices").status_code == 200
    stats = httpx.get(simulator.base_url + "/_simulator/stats").json()
    assert stats["throttled"] == stats["by_status"]["429"] == statuses.count(429) + 1


def test_the_hourly_window_slides() -> None:
    limiter = SlidingWindowLimiter([(50, 1.0), (100, 3600.0)])
    now = 1000.0
    for _ in range(100):
        assert limiter.acquire(now) == 0
        now += 0.1  # 10/s: under the per-second limit
    assert limiter.acquire(now) == 3590  # the first request leaves the window at 1000 + 3600
    assert limiter.acquire(4599.9) == 1
    assert limiter.acquire(4600.05) == 0


def test_the_per_second_window_slides() -> None:
    limiter = SlidingWindowLimiter([(2, 1.0), (0, 3600.0)])  # 0: no hourly limit
    assert [limiter.acquire(t) for t in (0.0, 0.5, 0.9, 1.01, 1.2)] == [0, 0, 1, 0, 1]
    assert [limiter.acquire(t) for t in (1.51, 2.02)] == [0, 0]
