"""The shared rate limiter: sliding windows as the server counts, 429 pauses, one per tenant."""

import asyncio
import threading
import time

import pytest
from kandji_fakes import VirtualTime

from kandji_bridge.kandji.ratelimit import RateLimiter, limiter_for


def _limiter(vt: VirtualTime, per_second: float, per_hour: float = 10_000, margin: float = 0.03):
    return RateLimiter(per_second, per_hour, margin=margin, clock=vt.clock, sleep=vt.sleep)


def _most_in_any_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    most, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


async def test_a_burst_up_to_the_limit_then_a_wait_of_one_window_plus_margin(
    virtual_time: VirtualTime,
) -> None:
    limiter = _limiter(virtual_time, per_second=5, margin=0.03)

    async def six() -> list[float]:
        starts = []
        for _ in range(6):
            await limiter.acquire()
            starts.append(virtual_time.now)
        return starts

    [starts] = await virtual_time.run(six())
    assert starts[:5] == [0.0] * 5
    assert starts[5] == pytest.approx(1.03)


async def test_concurrent_callers_never_exceed_a_window_and_use_over_95_percent_of_it(
    virtual_time: VirtualTime,
) -> None:
    limiter = _limiter(virtual_time, per_second=20, margin=0.03)
    starts: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            starts.append(virtual_time.now)
            await virtual_time.sleep(0.013)  # the request itself

    await virtual_time.run(*(caller(100) for _ in range(5)))
    assert len(starts) == 500
    assert _most_in_any_window(starts, 1.0) <= 20
    # A request arriving up to (nearly) the margin late still finds room in the server's window.
    assert _most_in_any_window(starts, 1.0299) <= 20
    rate = (len(starts) - 20) / (max(starts) - min(starts))
    assert rate >= 0.95 * 20


async def test_the_hour_window_holds_the_hourly_budget(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=50, per_hour=120)
    starts: list[float] = []

    async def caller() -> None:
        for _ in range(130):
            await limiter.acquire()
            starts.append(virtual_time.now)

    await virtual_time.run(caller())
    assert max(starts[:120]) < 3.0  # the hourly budget is spent at the per-second pace
    assert min(starts[120:]) >= 3600.0  # then nothing until the first start leaves the hour
    assert _most_in_any_window(starts, 3600.0) <= 120
    assert _most_in_any_window(starts, 1.0) <= 50


async def test_a_pause_holds_every_caller(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=50)
    starts: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        starts.append(virtual_time.now)

    await virtual_time.run(caller())
    limiter.pause(7.0)
    limiter.pause(2.0)  # a shorter pause does not cut the longer one short
    waited = await virtual_time.run(*(limiter.acquire() for _ in range(3)))
    assert waited == [pytest.approx(7.0)] * 3


async def test_acquire_reports_the_time_waited(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=1, margin=0.0)
    waited = await virtual_time.run(limiter.acquire())
    assert waited == [0.0]
    waited = await virtual_time.run(limiter.acquire())
    assert waited == [pytest.approx(1.0)]


async def test_fractional_limits_round_down(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=2.9, margin=0.0)
    starts: list[float] = []

    async def caller() -> None:
        for _ in range(3):
            await limiter.acquire()
            starts.append(virtual_time.now)

    await virtual_time.run(caller())
    assert starts == [0.0, 0.0, 1.0]


def test_limits_must_allow_a_request() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0.5, 100)
    with pytest.raises(ValueError):
        RateLimiter(10, 0)
    with pytest.raises(ValueError):
        RateLimiter(10, 100, margin=-1)


def test_one_limiter_is_shared_across_threads_and_event_loops() -> None:
    limiter = RateLimiter(per_second=10, per_hour=1000, margin=0.03)
    starts: list[float] = []
    lock = threading.Lock()

    async def caller() -> None:
        for _ in range(8):
            await limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=asyncio.run, args=(caller(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 16
    assert _most_in_any_window(starts, 1.0) <= 10


def test_one_limiter_per_tenant() -> None:
    first = limiter_for("https://limiter-test.api.kandji.io")
    assert limiter_for("https://LIMITER-TEST.api.kandji.io") is first
    assert (first.per_second, first.per_hour) == (50, 10_000)
    assert limiter_for("https://other-limiter-test.api.kandji.io") is not first
    assert limiter_for("http://127.0.0.1:1") is not limiter_for("http://127.0.0.1:2")
    # Limits given later apply to every caller of that tenant.
    assert limiter_for("https://limiter-test.api.kandji.io", per_second=5) is first
    assert (first.per_second, first.per_hour) == (5, 10_000)
