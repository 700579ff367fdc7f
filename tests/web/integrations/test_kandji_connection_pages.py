"""Integrations → Kandji with a log source on the same tenant: a device-only key is refused
rather than replacing the log source's key, can be kept as a connection of its own, and the page
shows which connection the mappings use with which permissions."""

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

from .test_integrations_api import itam

TOKENS = {
    "logs-token": frozenset({"audit"}),
    "device-import-token": frozenset({"devices", "details"}),
}


@pytest.fixture
def kandji(home, simulator_factory, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSimulator]:
    """A tenant with a logs-only and a device-only token, allowed as a Kandji API URL (taken
    before `runtime`, which reads the allowed hosts)."""
    sim = simulator_factory(devices=3, events=10, history_days=10, seed=91, tokens=TOKENS)
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", sim.host_port)
    yield sim


def form(client: TestClient, **fields: object) -> dict[str, object]:
    return {"csrf_token": client.csrf, **fields}  # type: ignore[attr-defined]


def text_of(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</(div|table)>', page, re.S)
    assert found, f"no {testid} on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def test_a_device_key_is_refused_rather_than_replacing_a_log_source_key(
    kandji: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sources.add_source(runtime.state, "acme", kandji.base_url, "logs-token")

    refused = client.post(
        "/integrations/kandji",
        data=form(client, base_url=kandji.base_url, api_key="device-import-token"),
    )

    assert refused.status_code == 400
    said = text_of(refused.text, "connection-conflict")
    assert "would replace the key of source acme" in said
    assert '"List audit events" (GET /api/v1/audit/events)' in said
    assert "the audit log collection of source acme" in said
    assert "Save as a separate connection" in said
    assert "kandji-bridge" not in said
    assert 'data-testid="separate"' in refused.text
    assert "device-import-token" not in refused.text
    assert sources.get_source_token(runtime.state, "acme") == "logs-token"

    kept_apart = client.post(
        "/integrations/kandji",
        data=form(client, base_url=kandji.base_url, api_key="device-import-token", separate="1"),
    )

    assert kept_apart.status_code == 200
    assert 'data-testid="connection-saved"' in kept_apart.text
    assert sources.get_source_token(runtime.state, "acme") == "logs-token"
    names = [info.name for info in sources.list_sources(runtime.state)]
    assert len(names) == 2 and "acme" in names


def test_the_page_shows_the_connection_the_mappings_use_and_its_permissions(
    kandji: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    saved = client.post(
        "/integrations/kandji",
        data=form(client, base_url=kandji.base_url, api_key="device-import-token"),
    )
    assert saved.status_code == 200
    (device_source,) = sources.list_sources(runtime.state)
    itam(runtime)
    mappings.create_mapping(
        runtime.state,
        MappingSpec("laptops", device_source.name, "ITAM", parse_pair("device_id=Device ID")),
    )
    # A log source saved later is not the connection the mappings use.
    sources.add_source(runtime.state, "acme-logs", kandji.base_url, "logs-token")

    page = client.get("/integrations/kandji")

    table = text_of(page.text, "connections")
    assert f"{device_source.name} new mappings" in table
    assert "Device list, Device details" in table
    assert "laptops" in table
    assert "acme-logs" not in table
    assert f"source <strong>{device_source.name}</strong>" in page.text


def test_the_api_refuses_the_same_and_keeps_a_key_apart_when_asked(
    kandji: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    sources.add_source(runtime.state, "acme", kandji.base_url, "logs-token")
    body = {"base_url": kandji.base_url, "api_key": "device-import-token"}

    refused = api.put("/api/integrations/kandji", json=body)
    kept_apart = api.put("/api/integrations/kandji", json=body | {"separate": True})

    assert refused.status_code == 400
    assert '"List audit events"' in refused.json()["detail"]
    assert "the audit log collection of source acme" in refused.json()["detail"]
    assert kept_apart.status_code == 200, kept_apart.text
    assert kept_apart.json()["source"] not in (None, "acme")
    assert sources.get_source_token(runtime.state, "acme") == "logs-token"
