"""The Integrations REST API against a simulated tenant: the connection, mappings, sync, preview."""

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections, records
from kandji_bridge.assets.collections import FieldSpec
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.db.models import Source
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator

MAPPING = {
    "name": "Kandji Device Import",
    "collection": "ITAM",
    "identifier": {"kandji": "serial_number", "field": "Serial"},
    "fields": [{"kandji": "device_name", "field": "Name"}],
}


def itam(runtime: Runtime) -> None:
    collections.create_collection(
        runtime.state,
        "ITAM",
        [
            FieldSpec("Serial", FieldType.TEXT, unique=True),
            FieldSpec("Device ID", FieldType.TEXT, unique=True),
            FieldSpec("Name", FieldType.TEXT),
            FieldSpec("Model Identifier", FieldType.TEXT),
        ],
    )


@pytest.fixture
def limited(
    home, simulator_factory: Callable[..., RunningSimulator], monkeypatch: pytest.MonkeyPatch
) -> RunningSimulator:
    """A tenant of 5 devices whose only token, "list-only", lacks Device details (listed before
    `runtime` so that the runtime's settings allow it)."""
    simulator = simulator_factory(devices=5, events=0, tokens={"list-only": {"devices"}})
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", simulator.host_port)
    return simulator


def connect(api: TestClient, simulator: RunningSimulator, token: str | None = None):
    body = {"base_url": simulator.base_url, "api_key": token or simulator.token}
    return api.put("/api/integrations/kandji", json=body)


def source_rows(runtime: Runtime) -> list[Source]:
    with runtime.state.session() as session:
        return list(session.query(Source).all())


def test_a_connection_is_tested_then_saved_as_a_source_that_is_not_polled(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    assert api.get("/api/integrations/kandji").json()["connected"] is False
    response = connect(api, allow_simulator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["connected"] is True and body["logs_enabled"] is False
    assert body["api_url"] == allow_simulator.base_url
    assert [(c["name"], c["ok"]) for c in body["checks"]] == [
        ("Base URL", True),
        ("API Key", True),
        ("Device list", True),
        ("Device details", True),
    ]
    assert allow_simulator.token not in response.text
    # Saving again reuses the source: one source for one API URL.
    assert connect(api, allow_simulator).status_code == 200
    rows = source_rows(runtime)
    assert len(rows) == 1 and rows[0].logs_enabled is False
    got = api.get("/api/integrations/kandji")
    assert got.json()["source"] == rows[0].name and allow_simulator.token not in got.text


def test_a_wrong_key_is_refused_and_nothing_is_saved(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    response = connect(api, allow_simulator, token="0" * 36)
    assert response.status_code == 400
    assert "refused the API token" in response.json()["detail"]
    assert source_rows(runtime) == []
    assert api.get("/api/integrations/kandji").json()["connected"] is False


def test_a_key_without_device_details_is_refused_naming_the_permission(
    limited: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    response = connect(api, limited, token="list-only")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert '"Device details"' in detail and "GET /device-details" in detail
    assert "API Token Management" in detail
    assert source_rows(runtime) == []


def test_a_web_app_url_is_accepted_and_the_api_url_derived(
    runtime: Runtime, api: TestClient
) -> None:
    # No network here: the derived host does not answer, and the error says which URL was tried.
    response = api.put(
        "/api/integrations/kandji",
        json={"base_url": "https://yourcompany.kandji.io", "api_key": "k" * 36},
    )
    assert response.status_code == 400
    assert "yourcompany.api.kandji.io" in response.json()["detail"]
    assert source_rows(runtime) == []


def test_mapping_create_syncs_at_once_and_shows_in_list_runs_and_preview(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    assert connect(api, allow_simulator).status_code == 200
    response = api.post("/api/mappings", json=MAPPING)
    assert response.status_code == 201, response.text
    body = response.json()
    devices = len(allow_simulator.devices)
    assert body["sync"] == "ran"
    assert body["last_run"]["status"] == "succeeded"
    assert body["last_run"]["created"] == devices
    assert [f["field"] for f in body["fields"]] == ["Serial", "Name"]
    assert body["fields"][0]["recommendation"] == "Common and acceptable identifier"
    collection = collections.get_collection(runtime.state, "ITAM")
    assert sum(1 for _ in records.iter_records(runtime.state, collection, (records.ACTIVE,))) == (
        devices
    )

    listed = api.get("/api/mappings").json()
    assert [m["name"] for m in listed] == ["Kandji Device Import"]
    preview = api.post("/api/mappings/Kandji Device Import/preview").json()
    assert preview["listed"] == devices and preview["created"] == 0
    assert preview["unchanged"] == devices and preview["changes"] == []

    synced = api.post("/api/mappings/Kandji Device Import/sync").json()
    assert synced["last_run"]["unchanged"] == devices
    run_list = api.get("/api/mappings/Kandji Device Import/runs").json()
    assert [run["created"] for run in run_list] == [0, devices]

    assert api.delete("/api/mappings/Kandji Device Import").status_code == 204
    assert api.get("/api/mappings/Kandji Device Import").status_code == 404
    assert sum(1 for _ in records.iter_records(runtime.state, collection, (records.ACTIVE,))) == (
        devices
    )


def test_preview_shows_field_by_field_what_would_be_created(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    sources.add_source(runtime.state, "sim", allow_simulator.base_url, allow_simulator.token)
    from kandji_bridge.inventory import mappings

    mappings.create_mapping(
        runtime.state,
        mappings.MappingSpec(
            "dry", "sim", "ITAM", mappings.Pair("serial_number", "Serial"),
            [mappings.Pair("device_name", "Name")],
        ),
    )  # fmt: skip
    preview = api.post("/api/mappings/dry/preview?limit=3").json()
    assert preview["created"] == len(allow_simulator.devices)
    assert len(preview["changes"]) == 3
    assert preview["more_changes"] == len(allow_simulator.devices) - 3
    first = preview["changes"][0]
    assert first["action"] == "create"
    assert [f["label"] for f in first["fields"]] == ["Serial", "Name"]
    assert api.get("/api/mappings/dry/runs").json() == []  # a dry run is no run


def test_an_identifier_into_a_field_not_marked_unique_is_refused_naming_the_unique_fields(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    assert connect(api, allow_simulator).status_code == 200
    bad = dict(MAPPING, identifier={"kandji": "serial_number", "field": "Name"})
    response = api.post("/api/mappings", json=bad)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "'Name'" in detail and "'Serial', 'Device ID'" in detail
    assert api.get("/api/mappings").json() == []


def test_an_unknown_kandji_field_is_refused(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    assert connect(api, allow_simulator).status_code == 200
    bad = dict(MAPPING, fields=[{"kandji": "serial_numbr", "field": "Name"}])
    response = api.post("/api/mappings", json=bad)
    assert response.status_code == 400
    assert "did you mean serial_number?" in response.json()["detail"]
    assert api.get("/api/mappings").json() == []


def test_a_detail_field_with_a_key_lacking_device_details_is_refused(
    limited: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    # Made outside the Integrations flow (which would refuse such a key), e.g. by `source add`.
    sources.add_source(runtime.state, "limited", limited.base_url, "list-only")
    body = dict(
        MAPPING,
        source="limited",
        fields=[{"kandji": "model_identifier", "field": "Model Identifier"}],
    )
    response = api.post("/api/mappings", json=body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "was not saved" in detail and '"Device details"' in detail
    assert api.get("/api/mappings").json() == []
    # Without a detail field the same key is enough.
    ok = api.post("/api/mappings", json=dict(MAPPING, source="limited"))
    assert ok.status_code == 201, ok.text
    assert ok.json()["last_run"]["created"] == 5


def test_patch_edits_a_mapping_and_a_breaking_edit_changes_nothing(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    assert connect(api, allow_simulator).status_code == 200
    assert api.post("/api/mappings", json=MAPPING).status_code == 201
    before = api.get("/api/mappings/Kandji Device Import").json()
    bad = api.patch(
        "/api/mappings/Kandji Device Import",
        json={"identifier": {"kandji": "device_id", "field": "Name"}, "enabled": False},
    )
    assert bad.status_code == 400
    assert "'Name' of collection ITAM is not" in bad.json()["detail"]
    assert api.get("/api/mappings/Kandji Device Import").json() == before
    response = api.patch(
        "/api/mappings/Kandji Device Import",
        json={
            "fields": [{"kandji": "device_id", "field": "Device ID"}],
            "remove_fields": ["Name"],
            "enabled": False,
            "schedule_minutes": 5,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enabled"] is False and body["schedule_minutes"] == 5
    assert [f["field"] for f in body["fields"]] == ["Serial", "Device ID"]
    assert api.get("/api/mappings").json()[0]["enabled"] is False


def test_a_mapping_without_a_connection_says_to_connect_first(
    runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    response = api.post("/api/mappings", json=MAPPING)
    assert response.status_code == 400
    assert "PUT /api/integrations/kandji" in response.json()["detail"]


def test_unknown_mappings_are_404(runtime: Runtime, api: TestClient) -> None:
    for method, path in (
        ("GET", "/api/mappings/nope"),
        ("DELETE", "/api/mappings/nope"),
        ("PATCH", "/api/mappings/nope"),
        ("POST", "/api/mappings/nope/sync"),
        ("POST", "/api/mappings/nope/preview"),
        ("GET", "/api/mappings/nope/runs"),
    ):
        response = api.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
        assert "No mapping named nope" in response.json()["detail"]


def test_with_the_scheduler_running_save_and_sync_now_trigger_the_mapping_job(
    home, allow_simulator: RunningSimulator, runtime: Runtime, api: TestClient
) -> None:
    itam(runtime)
    assert connect(api, allow_simulator).status_code == 200
    scheduler = Scheduler(runtime, tick_seconds=0.2)
    runtime.jobs = scheduler
    thread = threading.Thread(target=asyncio.run, args=(scheduler.run(),), daemon=True)
    thread.start()
    try:
        created = api.post("/api/mappings", json=MAPPING)
        assert created.status_code == 201, created.text
        assert created.json()["sync"] == "triggered"
        first = wait_for_runs(api, 1)
        assert first[0]["status"] == "succeeded"
        assert first[0]["created"] == len(allow_simulator.devices)
        assert api.post("/api/mappings/Kandji Device Import/sync").json()["sync"] == "triggered"
        second = wait_for_runs(api, 2)
        assert second[0]["unchanged"] == len(allow_simulator.devices)
    finally:
        scheduler.stop()
        thread.join(timeout=30)


def wait_for_runs(api: TestClient, count: int) -> list[dict]:
    """The mapping's runs once `count` of them have finished (the scheduler runs them)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = api.get("/api/mappings/Kandji Device Import/runs").json()
        if len(found) >= count and all(run["finished_at"] for run in found):
            return found
        time.sleep(0.1)
    pytest.fail(f"the scheduler did not finish {count} sync runs within 60 s")


def test_the_api_docs_list_the_integration_routes(runtime: Runtime, api: TestClient) -> None:
    paths = api.get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/integrations/kandji"]) == {"get", "put"}
    assert set(paths["/api/mappings"]) == {"get", "post"}
    assert set(paths["/api/mappings/{name}"]) == {"get", "patch", "delete"}
    for action in ("sync", "preview"):
        assert "post" in paths[f"/api/mappings/{{name}}/{action}"]
    assert "get" in paths["/api/mappings/{name}/runs"]
