"""Talking to a running simulator the way a client does: real HTTP, following `next` links."""

from typing import Any

import httpx

from kandji_bridge.simulator.server import RunningSimulator


def client(simulator: RunningSimulator, token: str | None = None) -> httpx.Client:
    token = simulator.token if token is None else token
    return httpx.Client(
        base_url=simulator.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def all_event_pages(http: httpx.Client, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of audit events from a first request with `params`, following `next`."""
    response = http.get("/api/v1/audit/events", params=params)
    pages = []
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        if pages[-1]["next"] is None:
            return pages
        response = http.get(pages[-1]["next"])


def all_events(http: httpx.Client, params: dict[str, str]) -> list[dict[str, Any]]:
    return [event for page in all_event_pages(http, params) for event in page["results"]]


def all_devices(http: httpx.Client, params: dict[str, str] | None = None, limit: int = 300) -> list:
    """Offset paging as the docs describe it: stop on a short page."""
    devices: list[dict[str, Any]] = []
    while True:
        page_params = {**(params or {}), "limit": str(limit), "offset": str(len(devices))}
        response = http.get("/api/v1/devices", params=page_params)
        assert response.status_code == 200, response.text
        devices.extend(response.json())
        if len(response.json()) < limit:
            return devices
