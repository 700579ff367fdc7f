"""The client against the simulated tenant over real HTTP: paging, permissions, 429s and faults."""

import asyncio
import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import (
    AuthenticationError,
    DeviceNotFoundError,
    PermissionDeniedError,
)
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, DEVICE_DETAILS, DEVICE_LIST
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.simulator.server import RunningSimulator

Factory = Callable[..., RunningSimulator]


def _client(simulator: RunningSimulator, token: str | None = None, **options: Any) -> KandjiClient:
    options.setdefault("limiter", RateLimiter(50, 10_000))
    return KandjiClient(ApiUrl(simulator.base_url), token or simulator.token, **options)


async def _backfill(client: KandjiClient, **options: Any) -> list[Any]:
    return [event async for page in client.iter_audit_pages(**options) for event in page.events]


async def _devices(client: KandjiClient, **options: Any) -> list[dict[str, Any]]:
    return [device async for page in client.iter_device_pages(**options) for device in page]


@pytest.mark.parametrize("events", [1234, 1000])
async def test_a_backfill_returns_every_event_once_in_ceil_n_over_500_requests(
    simulator_factory: Factory, events: int
) -> None:
    simulator = simulator_factory(devices=5, events=events, history_days=30, seed=3)
    async with _client(simulator) as client:
        got = await _backfill(client)
    expected = simulator.events()
    assert len(expected) == events
    assert [event.id for event in got] == [event["id"] for event in expected]
    assert [event.data for event in got] == expected
    assert simulator.stats.by_endpoint[f"GET {AUDIT_EVENTS.path}"] == math.ceil(events / 500)
    assert client.stats.requests == math.ceil(events / 500)
    assert client.stats.retries == client.stats.rate_limited == 0


async def test_raw_events_are_the_simulators_bytes(simulator: RunningSimulator) -> None:
    async with _client(simulator) as client:
        pages = [page async for page in client.iter_audit_pages(limit=50, sort_by="-id")]
    events = [event for page in pages for event in page.events]
    assert len(events) == 1200
    assert [e.id for e in events] == sorted((e.id for e in events), reverse=True)
    # The simulator writes pages with orjson (compact, keys in order): each raw event is exactly
    # that serialization of the event, so the slice neither lost nor added a byte.
    assert all(event.raw == orjson.dumps(event.data).decode() for event in events)
    # Resuming from a page's cursor gives the pages after it.
    async with _client(simulator) as client:
        resumed = [
            p
            async for p in client.iter_audit_pages(limit=50, sort_by="-id", cursor=pages[5].cursor)
        ]
    assert [e.id for p in resumed for e in p.events] == [e.id for p in pages[5:] for e in p.events]


@pytest.mark.parametrize(("devices", "calls"), [(650, 3), (600, 3), (40, 1)])
async def test_device_paging_returns_every_device_once(
    simulator_factory: Factory, devices: int, calls: int
) -> None:
    simulator = simulator_factory(devices=devices, events=10, history_days=5, seed=5)
    async with _client(simulator) as client:
        got = await _devices(client)
    assert sorted(d["device_id"] for d in got) == sorted(d.device_id for d in simulator.devices)
    assert len({d["device_id"] for d in got}) == devices
    assert simulator.stats.by_endpoint[f"GET {DEVICE_LIST.path}"] == calls


async def test_device_details_and_a_missing_device(simulator: RunningSimulator) -> None:
    device_id = simulator.devices[0].device_id
    async with _client(simulator) as client:
        details = await client.get_device_details(device_id)
        with pytest.raises(DeviceNotFoundError):
            await client.get_device_details("00000000-0000-0000-0000-000000000000")
    assert details["general"]["device_id"] == device_id


async def test_a_string_url_works_once_the_host_is_allowed(
    simulator: RunningSimulator,
) -> None:
    allowed = frozenset({simulator.host_port})
    async with KandjiClient(simulator.base_url, simulator.token, allowed_hosts=allowed) as client:
        assert len(await _devices(client)) == 40


async def test_401_and_403_for_each_permission(simulator_factory: Factory) -> None:
    simulator = simulator_factory(
        devices=3,
        events=10,
        history_days=5,
        seed=9,
        tokens={
            "token-audit": frozenset({"audit"}),
            "token-devices": frozenset({"devices"}),
            "token-details": frozenset({"details"}),
        },
    )
    device_id = simulator.devices[0].device_id
    calls = {
        AUDIT_EVENTS: lambda client: _backfill(client),
        DEVICE_LIST: lambda client: _devices(client),
        DEVICE_DETAILS: lambda client: client.get_device_details(device_id),
    }
    for token, granted in (
        ("token-audit", AUDIT_EVENTS),
        ("token-devices", DEVICE_LIST),
        ("token-details", DEVICE_DETAILS),
    ):
        async with _client(simulator, token) as client:
            for permission, call in calls.items():
                if permission == granted:
                    await call(client)
                    continue
                with pytest.raises(PermissionDeniedError) as caught:
                    await call(client)
                assert caught.value.permission == permission
                assert f'"{permission.label}"' in str(caught.value)
    async with _client(simulator, "not-a-known-token") as client:
        for call in calls.values():
            with pytest.raises(AuthenticationError):
                await call(client)


async def test_recovers_from_429s_when_the_tenant_allows_less_than_the_client(
    simulator_factory: Factory,
) -> None:
    simulator = simulator_factory(devices=30, events=10, history_days=5, seed=2, rate_per_second=8)
    ids = [device.device_id for device in simulator.devices]
    async with _client(simulator, limiter=RateLimiter(50, 10_000)) as client:
        queue = list(ids)

        async def worker() -> list[dict[str, Any]]:
            fetched = []
            while queue:
                fetched.append(await client.get_device_details(queue.pop()))
            return fetched

        results = await asyncio.gather(*(worker() for _ in range(6)))
    fetched = sorted(d["general"]["device_id"] for batch in results for d in batch)
    assert fetched == sorted(ids)
    assert simulator.stats.throttled > 0
    assert client.stats.rate_limited == simulator.stats.throttled
    assert client.stats.requests == simulator.stats.requests


async def test_no_429s_when_the_limits_match(simulator_factory: Factory) -> None:
    simulator = simulator_factory(devices=45, events=10, history_days=5, seed=4, rate_per_second=15)
    async with _client(simulator, limiter=RateLimiter(15, 10_000)) as client:
        queue = [device.device_id for device in simulator.devices]

        async def worker() -> None:
            while queue:
                await client.get_device_details(queue.pop())

        await asyncio.gather(*(worker() for _ in range(6)))
    assert simulator.stats.requests == 45
    assert simulator.stats.throttled == 0


async def test_recovers_from_a_20_percent_fault_rate(simulator_factory: Factory) -> None:
    simulator = simulator_factory(
        devices=320,
        events=2600,
        history_days=30,
        seed=11,
        fault_rate=0.2,
        slow_response_seconds=0.05,
    )
    async with _client(simulator, backoff_base=0.01, backoff_cap=0.05) as client:
        events = await _backfill(client)
        devices = await _devices(client)
        details = [await client.get_device_details(d["device_id"]) for d in devices[:20]]
    assert [e.id for e in events] == [e["id"] for e in simulator.events()]
    assert len({d["device_id"] for d in devices}) == 320
    assert len(details) == 20
    faults = simulator.stats.faults
    assert sum(faults.values()) > 0
    assert client.stats.retries == sum(faults.values()) - faults.get("slow", 0)
    assert client.stats.requests == simulator.stats.requests
