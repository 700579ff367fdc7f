"""Fault injection: a seeded share of requests fail in each way a real service can, and the
tenant's data is never harmed by it."""

import json
import time
from collections import Counter
from collections.abc import Callable

import httpx

from kandji_bridge.simulator.server import RunningSimulator

from .helpers import client


def outcome(http: httpx.Client, path: str) -> str:
    """What a client sees: an HTTP error (JSON or HTML), a slow answer, a broken body, or a
    connection closed mid-response."""
    started = time.monotonic()
    try:
        response = http.get(path)
    except httpx.RemoteProtocolError:
        return "dropped"
    if response.status_code != 200:
        kind = "json" if response.headers["content-type"] == "application/json" else "html"
        return f"{response.status_code} {kind}"
    try:
        json.loads(response.content)
    except json.JSONDecodeError:
        return "truncated"
    return "slow" if time.monotonic() - started >= 0.15 else "ok"


def test_every_kind_of_fault_happens_and_none_harms_the_tenant(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = simulator_factory(
        devices=20, events=300, fault_rate=1, slow_response_seconds=0.15, rate_per_second=0
    )
    before = (simulator.events(), [(d.device_name, d.os_version) for d in simulator.devices])
    paths = ["/api/v1/audit/events?limit=50", "/api/v1/devices"]
    with client(simulator) as http:
        seen = Counter(outcome(http, paths[i % 2]) for i in range(40))
    assert set(seen) == {"500 json", "502 html", "503 html", "slow", "truncated", "dropped"}
    faults = simulator.stats.faults
    assert dict(faults) == {
        "http_500": seen["500 json"],
        "http_502": seen["502 html"],
        "http_503": seen["503 html"],
        "slow": seen["slow"],
        "truncated": seen["truncated"],
        "dropped": seen["dropped"],
    }
    assert simulator.stats.by_status["dropped"] == seen["dropped"]
    after = (simulator.events(), [(d.device_name, d.os_version) for d in simulator.devices])
    assert after == before


def test_the_fault_rate_is_the_share_of_failing_requests_and_is_seeded(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    runs = []
    for _ in range(2):
        simulator = simulator_factory(
            devices=5, events=10, fault_rate=0.3, slow_response_seconds=0, rate_per_second=0
        )
        with client(simulator) as http:
            runs.append([outcome(http, "/api/v1/devices") for _ in range(100)])
    assert runs[0] == runs[1], "same seed, same faults in the same order"
    failed = sum(result != "ok" for result in runs[0])
    assert 15 <= failed <= 45


def test_faults_only_hit_requests_that_would_succeed(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = simulator_factory(devices=5, events=10, fault_rate=1, rate_per_second=0)
    response = httpx.get(simulator.base_url + "/api/v1/devices")
    assert response.status_code == 401
    assert httpx.get(simulator.base_url + "/_simulator/stats").status_code == 200
