"""The shared rate limiter: sliding windows as the server counts, 429 pauses, one per tenant."""

import asyncio
import threading
import time

import pytest
from kandji_fakes import VirtualTime

from kandji_bridge.kandji.ratelimit import RateLimiter, limiter_for

Interval = tuple[float, float]  # (start, answer): the server saw the request somewhere in it


def _limiter(vt: VirtualTime, per_second: float, per_hour: float = 10_000, margin: float = 0.01):
    return RateLimiter(per_second, per_hour, margin=margin, clock=vt.clock, sleep=vt.sleep)


async def _requests(
    limiter: RateLimiter, vt: VirtualTime, count: int, duration: float, log: list[Interval]
) -> None:
    for _ in range(count):
        permit = await limiter.acquire()
        start = vt.now
        await vt.sleep(duration)
        permit.done()
        log.append((start, vt.now))


def _most_in_a_window(intervals: list[Interval], window: float) -> int:
    """The most requests one server window can hold, whenever within its interval each arrived.

    A window ending at t can hold every request started by t and answered after t - window; the
    count only grows at a start, so checking the windows ending at each start is enough."""
    return max(
        sum(1 for start, end in intervals if start <= t and end > t - window) for t, _ in intervals
    )


async def test_a_burst_up_to_the_limit_then_a_wait_of_one_window_after_the_answers(
    virtual_time: VirtualTime,
) -> None:
    limiter = _limiter(virtual_time, per_second=5, margin=0.01)
    log: list[Interval] = []
    await virtual_time.run(_requests(limiter, virtual_time, 6, 0.02, log))
    starts = [start for start, _ in log]
    assert starts[:5] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    # The first answer came at 0.02: one window (plus the margin) later, room for the sixth.
    assert starts[5] == pytest.approx(1.03)


async def test_concurrent_callers_never_overfill_a_window_and_use_over_95_percent(
    virtual_time: VirtualTime,
) -> None:
    limiter = _limiter(virtual_time, per_second=20)
    log: list[Interval] = []
    await virtual_time.run(*(_requests(limiter, virtual_time, 100, 0.013, log) for _ in range(6)))
    assert len(log) == 600
    assert _most_in_a_window(log, 1.0) <= 20
    assert _most_in_a_window(log, 1.0099) <= 20  # the margin too
    starts = sorted(start for start, _ in log)
    rate = (len(starts) - 20) / (starts[-1] - starts[0])
    assert 0.95 * 20 <= rate <= 20


async def test_requests_in_flight_count_as_arriving_now(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=2)
    log: list[Interval] = []
    await virtual_time.run(*(_requests(limiter, virtual_time, 1, 5.0, log) for _ in range(3)))
    # Two slow requests fill the window until one is answered (at 5 s), one window later.
    assert sorted(start for start, _ in log) == pytest.approx([0.0, 0.0, 6.01])
    assert _most_in_a_window(log, 1.0) <= 2


async def test_the_hour_window_holds_the_hourly_budget(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=50, per_hour=120)
    log: list[Interval] = []
    await virtual_time.run(_requests(limiter, virtual_time, 130, 0.01, log))
    starts = [start for start, _ in log]
    assert max(starts[:120]) < 3.0  # the hourly budget is spent at the per-second pace
    assert min(starts[120:]) >= 3600.0  # then nothing until the first answer leaves the hour
    assert _most_in_a_window(log, 3600.0) <= 120
    assert _most_in_a_window(log, 1.0) <= 50


async def test_a_pause_holds_every_caller(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=50)
    await virtual_time.run(_requests(limiter, virtual_time, 1, 0.01, []))
    limiter.pause(7.0)
    limiter.pause(2.0)  # a shorter pause does not cut the longer one short
    permits = await virtual_time.run(*(limiter.acquire() for _ in range(3)))
    assert [permit.waited for permit in permits] == [pytest.approx(7.0)] * 3


async def test_a_permit_tells_the_time_waited_and_ends_once(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=1, margin=0.0)
    [first] = await virtual_time.run(limiter.acquire())
    assert first.waited == 0.0
    first.done()
    first.done()  # a second done() changes nothing
    [second] = await virtual_time.run(limiter.acquire())
    assert second.waited == pytest.approx(1.0)


async def test_fractional_limits_round_down(virtual_time: VirtualTime) -> None:
    limiter = _limiter(virtual_time, per_second=2.9, margin=0.0)
    log: list[Interval] = []
    await virtual_time.run(_requests(limiter, virtual_time, 3, 0.0, log))
    assert [start for start, _ in log] == [0.0, 0.0, 1.0]


def test_limits_must_allow_a_request() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0.5, 100)
    with pytest.raises(ValueError):
        RateLimiter(10, 0)
    with pytest.raises(ValueError):
        RateLimiter(10, 100, margin=-1)


def test_one_limiter_is_shared_across_threads_and_event_loops() -> None:
    limiter = RateLimiter(per_second=10, per_hour=1000)
    log: list[Interval] = []
    lock = threading.Lock()

    async def caller() -> None:
        for _ in range(8):
            permit = await limiter.acquire()
            start = time.monotonic()
            await asyncio.sleep(0.002)
            permit.done()
            with lock:
                log.append((start, time.monotonic()))

    threads = [threading.Thread(target=asyncio.run, args=(caller(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 16
    assert _most_in_a_window(log, 1.0) <= 10


def test_one_limiter_per_tenant() -> None:
    first = limiter_for("https://limiter-test.api.kandji.io")
    assert limiter_for("https://LIMITER-TEST.api.kandji.io") is first
    assert (first.per_second, first.per_hour) == (50, 10_000)
    assert limiter_for("https://other-limiter-test.api.kandji.io") is not first
    assert limiter_for("http://127.0.0.1:1") is not limiter_for("http://127.0.0.1:2")
    # Limits given later apply to every caller of that tenant.
    assert limiter_for("https://limiter-test.api.kandji.io", per_second=5) is first
    assert (first.per_second, first.per_hour) == (5, 10_000)
