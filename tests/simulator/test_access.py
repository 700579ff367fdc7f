"""Tokens and their permissions, unknown paths and write methods, answered as Kandji (DRF) does;
the stats every test and benchmark reads."""

from collections.abc import Callable

import httpx
import pytest

from kandji_bridge.simulator.server import RunningSimulator

from .helpers import client

DEVICE = "/api/v1/devices/{device_id}/details"
PATHS = {"audit": "/api/v1/audit/events", "devices": "/api/v1/devices", "details": DEVICE}
NOT_ALLOWED = {"detail": "You do not have permission to perform this action."}


def url(simulator: RunningSimulator, permission: str) -> str:
    return PATHS[permission].format(device_id=simulator.devices[0].device_id)


@pytest.mark.parametrize("permission", sorted(PATHS))
def test_each_endpoint_needs_its_own_permission(
    simulator_factory: Callable[..., RunningSimulator], permission: str
) -> None:
    others = frozenset(PATHS) - {permission}
    simulator = simulator_factory(
        devices=5, events=20, tokens={"only-this": frozenset({permission}), "all-but": others}
    )
    assert simulator.token == "only-this"  # no token has all three: the first
    with client(simulator, "only-this") as http:
        assert http.get(url(simulator, permission)).status_code == 200
    with client(simulator, "all-but") as http:
        response = http.get(url(simulator, permission))
    assert (response.status_code, response.json()) == (403, NOT_ALLOWED)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Authentication credentials were not provided."),
        ({"Authorization": "Token abc"}, "Authentication credentials were not provided."),
        ({"Authorization": "Bearer"}, "Invalid token header. No credentials provided."),
        ({"Authorization": "Bearer not-a-token"}, "Invalid token."),
    ],
)
def test_missing_or_wrong_tokens_are_401(
    simulator: RunningSimulator, headers: dict[str, str], detail: str
) -> None:
    for permission in PATHS:
        response = httpx.get(simulator.base_url + url(simulator, permission), headers=headers)
        assert (response.status_code, response.json()) == (401, {"detail": detail})
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_permissions_change_at_run_time(simulator: RunningSimulator) -> None:
    state = simulator.state
    with client(simulator) as http:
        state.revoke_permission(simulator.token, "audit")
        assert http.get("/api/v1/audit/events").status_code == 403
        assert http.get("/api/v1/devices").status_code == 200
        state.grant_permission(simulator.token, "audit")
        assert http.get("/api/v1/audit/events").status_code == 200
        state.set_token("new", {"devices"})
        state.delete_token(simulator.token)
        assert http.get("/api/v1/devices").json() == {"detail": "Invalid token."}
    with client(simulator, "new") as http:
        assert http.get("/api/v1/devices").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/devices", "/", "/api/v1/devices/x"])
def test_unknown_paths_are_404(simulator: RunningSimulator, path: str) -> None:
    with client(simulator) as http:
        response = http.get(path)
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_nothing_can_be_written(simulator: RunningSimulator, method: str) -> None:
    before = (simulator.events(), [d.device_name for d in simulator.devices])
    with client(simulator) as http:
        for permission in PATHS:
            response = http.request(method, url(simulator, permission), json={"name": "x"})
            assert response.status_code == 405
            assert response.json() == {"detail": f'Method "{method}" not allowed.'}
        # DRF authenticates before it looks at the method.
        response = httpx.request(method, simulator.base_url + "/api/v1/devices")
        assert response.status_code == 401
    assert (simulator.events(), [d.device_name for d in simulator.devices]) == before


def test_stats_count_requests_by_endpoint_and_status(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        http.get("/api/v1/audit/events?limit=1")
        http.get(url(simulator, "details"))
        http.get("/api/v1/devices/unknown-id/details")
        http.post("/api/v1/devices")
        httpx.get(simulator.base_url + "/api/v1/devices")
        served = httpx.get(simulator.base_url + "/_simulator/stats").json()
    assert served == simulator.stats.snapshot()
    assert served == {
        "requests": 5,
        "by_endpoint": {
            "GET /api/v1/audit/events": 1,
            "GET /api/v1/devices/{device_id}/details": 2,
            "POST /api/v1/devices": 1,
            "GET /api/v1/devices": 1,
        },
        "by_status": {"200": 2, "404": 1, "405": 1, "401": 1},
        "throttled": 0,
        "faults": {},
    }
    simulator.stats.reset()
    assert simulator.stats.requests == 0
